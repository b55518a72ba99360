"""The subprocess examples, run as real programs by Python's asyncio.

  subprocess_examples.py parallel_runner PARALLEL_RUNNER_PATH
    Commands on stdin, 3 at a time: every command's output appears once; a command that
    sleeps past the time limit is killed, with its own child; the exit status is xargs'
    (123 for a failed command, 125 for one timed out). Then an interrupted run: SIGINT
    kills the running commands (nothing of theirs is left) and the runner exits 130.
  subprocess_examples.py watchdog WATCHDOG_PATH
    A child that crashes is restarted until -n runs out (exit 1); a child that exits 0
    ends the watchdog (exit 0); SIGTERM stops the watchdog and its child (exit 0)."""

import asyncio
import os
import signal
import tempfile

from interop import Failure, STEP_TIMEOUT, check, main


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def read_pid(path):
    """The pid a command wrote to `path`, once it has written it."""
    for _ in range(int(STEP_TIMEOUT * 100)):
        try:
            with open(path) as f:
                text = f.read().strip()
            if text:
                return int(text)
        except FileNotFoundError:
            pass
        await asyncio.sleep(0.01)
    raise Failure(f"nothing wrote a pid to {path}")


async def parallel_runner(program):
    commands = [f"echo line-{i}" for i in range(9)]
    commands += ["exit 3", "sleep 30; echo never"]
    proc = await asyncio.create_subprocess_exec(
        program, "-P", "3", "-t", "1", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(
        proc.communicate(("\n".join(commands) + "\n").encode()), STEP_TIMEOUT)
    lines = sorted(out.decode().splitlines())
    check(lines == sorted(f"line-{i}" for i in range(9)), f"parallel_runner printed {lines}")
    check(b"timed out" in err, f"no timeout reported: {err!r}")
    check(proc.returncode == 125, f"parallel_runner exited {proc.returncode}, expected 125")

    with tempfile.TemporaryDirectory() as tmp:
        pids = [os.path.join(tmp, f"pid{i}") for i in range(2)]
        # Each command's own child (sleep) writes where the test can find it.
        commands = [f"sleep 30 & echo $! > {p}; wait" for p in pids]
        proc = await asyncio.create_subprocess_exec(
            program, "-P", "2", stdin=asyncio.subprocess.PIPE)
        proc.stdin.write(("\n".join(commands) + "\n").encode())
        proc.stdin.close()
        sleepers = [await read_pid(p) for p in pids]
        proc.send_signal(signal.SIGINT)
        rc = await asyncio.wait_for(proc.wait(), STEP_TIMEOUT)
        check(rc == 130, f"interrupted parallel_runner exited {rc}, expected 130")
        for _ in range(500):
            if not any(alive(p) for p in sleepers):
                break
            await asyncio.sleep(0.01)
        # A killed grandchild may stay a zombie of whoever adopted it; it must not run.
        running = [p for p in sleepers if alive(p) and not zombie(p)]
        check(not running, f"commands' children still running after SIGINT: {running}")
    print("parallel_runner: 9 outputs, a failure and a timeout (exit 125); SIGINT: 130, "
          "nothing left running")


def zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def watchdog(program):
    proc = await asyncio.create_subprocess_exec(
        program, "-n", "2", "sh", "-c", "echo run; exit 3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), STEP_TIMEOUT)
    check(out.decode().splitlines() == ["run"] * 3, f"crashing child ran: {out!r}")
    check(proc.returncode == 1, f"watchdog exited {proc.returncode} after giving up")
    check(b"restarting in 100 ms" in err and b"restarting in 200 ms" in err,
          f"no backoff reported: {err!r}")

    proc = await asyncio.create_subprocess_exec(program, "sh", "-c", "exit 0")
    rc = await asyncio.wait_for(proc.wait(), STEP_TIMEOUT)
    check(rc == 0, f"watchdog exited {rc} after a clean exit")

    with tempfile.TemporaryDirectory() as tmp:
        pid_file = os.path.join(tmp, "pid")
        proc = await asyncio.create_subprocess_exec(
            program, "sh", "-c", f"echo $$ > {pid_file}; exec sleep 30")
        child = await read_pid(pid_file)
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), STEP_TIMEOUT)
        check(rc == 0, f"watchdog exited {rc} after SIGTERM")
        check(not alive(child), "the watched child outlived the watchdog")
    print("watchdog: 3 runs then gave up (exit 1), a clean exit (0), SIGTERM (0, child gone)")


async def test(args, rng):
    which, program = args
    if which == "parallel_runner":
        await parallel_runner(program)
    elif which == "watchdog":
        await watchdog(program)
    else:
        raise Failure(f"unknown example {which}")


if __name__ == "__main__":
    main(test)
