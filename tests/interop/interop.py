"""What the interoperability tests share: start an example server, learn its port from the
line it prints, keep reading its output (a full pipe would block it), stop it with SIGINT
and check that it stopped cleanly; random payloads; byte-for-byte comparison.

Only Python's standard library: the peer under test is Python's own asyncio."""

import asyncio
import os
import random
import re
import signal
import sys

LISTENING = re.compile(rb"listening on (?:\[([^\]]+)\]|([^\s:]+)):(\d+)")

# Every test ends by itself: a peer that hangs fails the test instead of blocking CTest.
STEP_TIMEOUT = 60.0


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def payloads(rng, sizes):
    """Random bytes of each size (reproducible from the test's seed)."""
    return [rng.randbytes(n) for n in sizes]


def standard_sizes(rng):
    """Edge sizes around the 64 KiB read chunk and write-buffer mark, up to 1 MiB, and a few
    random ones."""
    fixed = [0, 1, 2, 100, 4095, 4096, 65535, 65536, 65537, 300_000, 1 << 20]
    return fixed + [rng.randint(1, 1 << 20) for _ in range(4)]


def compare(name, sent, got):
    if sent == got:
        return
    where = next((i for i, (a, b) in enumerate(zip(sent, got)) if a != b), min(len(sent), len(got)))
    raise Failure(f"{name}: sent {len(sent)} bytes, got {len(got)} back; first difference at byte {where}")


class Server:
    """An example program run as a server: `cmd` must make it print 'listening on HOST:PORT'."""

    def __init__(self, cmd):
        self.cmd = cmd
        self.proc = None
        self.host = None
        self.port = None
        self.output = bytearray()
        self._drain = None

    async def start(self):
        self.proc = await asyncio.create_subprocess_exec(*self.cmd, stdout=asyncio.subprocess.PIPE)
        try:
            while True:
                line = await asyncio.wait_for(self.proc.stdout.readline(), STEP_TIMEOUT)
                check(line, f"{self.cmd[0]} exited before saying where it listens: {bytes(self.output)!r}")
                self.output += line
                m = LISTENING.search(line)
                if m:
                    self.host = (m.group(1) or m.group(2)).decode()
                    self.port = int(m.group(3))
                    break
        except BaseException:
            # It may have exited already (the usual reason for getting here): then there is
            # nothing to kill, and the exception that says why must not be hidden.
            if self.proc.returncode is None:
                try:
                    self.proc.kill()
                except ProcessLookupError:
                    pass
            await self.proc.wait()
            raise
        self._drain = asyncio.create_task(self._read_rest())
        return self

    async def _read_rest(self):
        while chunk := await self.proc.stdout.read(65536):
            self.output += chunk

    async def stop(self, expect_line=b"stopped by SIGINT"):
        """SIGINT, then the program must exit 0 in time and say why it stopped."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            rc = await asyncio.wait_for(self.proc.wait(), STEP_TIMEOUT)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise Failure(f"{self.cmd[0]} did not stop within {STEP_TIMEOUT} s of SIGINT")
        await self._drain
        check(rc == 0, f"{self.cmd[0]} exited with {rc}; its output:\n{self.output.decode(errors='replace')}")
        if expect_line:
            check(expect_line in self.output, f"{self.cmd[0]} did not print {expect_line!r}")

    async def kill(self):
        if self.proc and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def main(test):
    """Runs `async def test(args, rng)`; exit 0 on success, 1 on failure, with the seed."""
    seed = int(os.environ.get("IOLOOP_INTEROP_SEED", random.SystemRandom().randrange(1 << 32)))
    rng = random.Random(seed)
    try:
        asyncio.run(asyncio.wait_for(test(sys.argv[1:], rng), 5 * STEP_TIMEOUT))
    except Failure as e:
        print(f"FAILED: {e} (IOLOOP_INTEROP_SEED={seed})", file=sys.stderr)
        sys.exit(1)
    except asyncio.TimeoutError:
        print(f"FAILED: timed out (IOLOOP_INTEROP_SEED={seed})", file=sys.stderr)
        sys.exit(1)
    print(f"passed (IOLOOP_INTEROP_SEED={seed})")
