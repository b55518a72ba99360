"""Workload (g), spawn, on Python's asyncio: create_subprocess_exec /bin/true and wait for
it, N times one after the other. Children per second of wall time; every child must exit 0.
    python3 spawn_asyncio.py [N]"""
import asyncio
import sys
import time


async def spawn_all(n):
    for _ in range(n):
        p = await asyncio.create_subprocess_exec("/bin/true")
        if await p.wait() != 0:
            sys.exit("FAIL: spawn asyncio: /bin/true did not exit 0")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    t0 = time.monotonic()
    asyncio.run(spawn_all(n))
    s = time.monotonic() - t0
    print(f"spawn asyncio {n} ops {s:.6f} s {n / s:.0f} ops/s")


main()
