"""The tail_follow example as a real child, following a log that is written, rotated and
truncated under it by this script, as a logger and logrotate would.

  tail_follow.py TAIL_FOLLOW_PATH

The log gets lines in random batches (some written in two pieces, so that the follower
sees a line without its end and must wait for it); then it is rotated the logrotate way:
renamed away, more lines still written to the old file (the logger has not reopened yet),
a new file made at the path; then more lines; then it is truncated in place (copytruncate)
and written again. Every line must come out exactly once, in order; SIGINT must stop the
follower with exit status 0."""

import asyncio
import os
import signal
import tempfile

from interop import Failure, STEP_TIMEOUT, check, main


class Output:
    """The follower's stdout, read as it comes; wait_for(n) returns once n lines are in."""

    def __init__(self, stream):
        self.stream = stream
        self.lines = []

    async def wait_for(self, n, what):
        async def read():
            while len(self.lines) < n:
                line = await self.stream.readline()
                if not line:
                    raise Failure(f"tail_follow exited while waiting for {what}: "
                                  f"{len(self.lines)} of {n} lines")
                self.lines.append(line.decode())
        try:
            await asyncio.wait_for(read(), STEP_TIMEOUT)
        except asyncio.TimeoutError:
            raise Failure(f"timed out waiting for {what}: {len(self.lines)} of {n} lines; "
                          f"the last: {self.lines[-3:]!r}")


def append(path, text):
    with open(path, "a", encoding="ascii") as f:
        f.write(text)


async def test(args, rng):
    (program,) = args
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "app.log")
        expected = []
        counter = iter(range(1_000_000))

        def lines(k, tag):
            out = [f"{tag} {next(counter)} " + "x" * rng.randint(0, 200) + "\n" for _ in range(k)]
            expected.extend(out)
            return out

        append(log, "".join(lines(3, "initial")))
        proc = await asyncio.create_subprocess_exec(
            program, "--from-start", "--interval", "20", log, stdout=asyncio.subprocess.PIPE)
        out = Output(proc.stdout)
        try:
            await out.wait_for(len(expected), "the initial lines")

            # Batches, some lines split in two writes with a poll's time in between.
            for _ in range(10):
                batch = lines(rng.randint(1, 30), "before")
                text = "".join(batch)
                cut = rng.randint(0, len(text))
                append(log, text[:cut])
                await asyncio.sleep(0.03)
                append(log, text[cut:])
            await out.wait_for(len(expected), "the appended lines")

            # logrotate: renamed away; the logger still writes to the old file for a moment;
            # then a new file at the path. The follower is stopped meanwhile (SIGSTOP): a
            # line written to the old file after the follower moved to the new one is lost,
            # as with tail -F, so the test must not let a poll fall in between.
            proc.send_signal(signal.SIGSTOP)
            os.rename(log, log + ".1")
            append(log + ".1", "".join(lines(5, "late")))
            append(log, "".join(lines(7, "rotated")))
            proc.send_signal(signal.SIGCONT)
            await out.wait_for(len(expected), "the lines around the rotation")
            for _ in range(5):
                append(log, "".join(lines(rng.randint(1, 20), "after")))
                await asyncio.sleep(0.01)
            await out.wait_for(len(expected), "the new file's lines")

            # copytruncate: emptied in place, then written again (less than it held).
            with open(log, "r+") as f:
                f.truncate(0)
            append(log, "".join(lines(2, "truncated")))
            await out.wait_for(len(expected), "the lines after the truncation")

            check(out.lines == expected,
                  "the lines differ: " + next(
                      (f"line {i}: expected {e!r}, got {g!r}"
                       for i, (e, g) in enumerate(zip(expected, out.lines)) if e != g),
                      f"{len(expected)} expected, {len(out.lines)} got"))
            proc.send_signal(signal.SIGINT)
            rest = await asyncio.wait_for(proc.stdout.read(), STEP_TIMEOUT)
            check(rest == b"", f"output after the last line: {rest!r}")
            rc = await asyncio.wait_for(proc.wait(), STEP_TIMEOUT)
            check(rc == 0, f"tail_follow exited with {rc} after SIGINT")
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    print(f"{len(expected)} lines followed across a rotation and a truncation, each once, "
          "in order; SIGINT stopped it with status 0")


if __name__ == "__main__":
    main(test)
