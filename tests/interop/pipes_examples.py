"""The pipe and terminal examples, driven by Python's asyncio through real pipes.

  pipes_examples.py line_filter LINE_FILTER_PATH
    1 MiB of random text lines into the filter's stdin, its stdout read slowly (4 KiB at a
    time, a pause after each), so that the filter's stdout pipe fills and its writes must
    wait; stdout and the copy file must both equal the input, byte for byte.
  pipes_examples.py serial_console SERIAL_CONSOLE_PATH
    The console's demo over a pseudo-terminal: the commands and the fake device's answers,
    the silent command's timeout included, in order."""

import asyncio
import os
import tempfile

from interop import Failure, STEP_TIMEOUT, check, compare, main


def text_lines(rng, total):
    """Lines of printable ASCII, 0 to 300 characters each, `total` bytes in all; the last
    one has no newline, as a file's last line may not."""
    out = bytearray()
    while len(out) < total:
        n = rng.randint(0, 300)
        out += bytes(rng.randint(32, 126) for _ in range(n)) + b"\n"
    return bytes(out[:total])


async def line_filter(program, rng):
    data = text_lines(rng, 1 << 20)
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "copy.txt")
        proc = await asyncio.create_subprocess_exec(
            program, copy, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)

        async def feed():
            proc.stdin.write(data)
            await proc.stdin.drain()
            proc.stdin.close()

        feeding = asyncio.create_task(feed())
        got = bytearray()
        reads = 0
        while True:
            chunk = await asyncio.wait_for(proc.stdout.read(4096), STEP_TIMEOUT)
            if not chunk:
                break
            got += chunk
            reads += 1
            if reads % 4 == 0:
                await asyncio.sleep(0.002)  # a slow consumer: the pipe fills behind it
        await asyncio.wait_for(feeding, STEP_TIMEOUT)
        rc = await asyncio.wait_for(proc.wait(), STEP_TIMEOUT)
        check(rc == 0, f"line_filter exited with {rc}")
        compare("stdout", data, bytes(got))
        with open(copy, "rb") as f:
            compare("the copy file", data, f.read())
    print(f"{len(data)} bytes through line_filter, stdout read slowly in {reads} reads, "
          "and the copy file, identical")


EXPECTED = [
    "> AT", "< OK",
    "> ATI", "< ioloop fake GPS 1.0", "< OK",
    "> AT+GPS?", "< $GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47", "< OK",
    "> AT+SLEEP", "  (no answer within 500 ms)",
    "> AT+FOO", "< ERROR",
    "serial_console: done",
]


async def serial_console(program):
    proc = await asyncio.create_subprocess_exec(program, stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), STEP_TIMEOUT)
    check(proc.returncode == 0, f"serial_console exited with {proc.returncode}")
    lines = out.decode().splitlines()
    at = [line for line in lines if line.startswith(("> ", "< ", "  (", "serial_console: done"))]
    if at != EXPECTED:
        raise Failure("serial_console's demo said:\n" + "\n".join(lines))
    print(f"serial_console's demo: {len(EXPECTED)} lines as expected")


async def test(args, rng):
    which, program = args
    if which == "line_filter":
        await line_filter(program, rng)
    elif which == "serial_console":
        await serial_console(program)
    else:
        raise Failure(f"unknown example {which}")


if __name__ == "__main__":
    main(test)
