"""What the TLS interoperability tests share: certificates made for the test alone, OpenSSL's
own s_server run as a peer, and programs run to their end with a time limit.

The certificates come from tests/make_certs.sh into a fresh directory per test (no key
material is committed; a test never shares its directory with one running beside it):
ca.pem (the CA that signs the others), server.pem (localhost and 127.0.0.1),
untrusted.pem (self-signed), wronghost.pem (other.example), expired.pem, each with its .key."""

import asyncio
import pathlib
import re
import tempfile

from interop import STEP_TIMEOUT, Failure, check

MAKE_CERTS = pathlib.Path(__file__).resolve().parent.parent / "make_certs.sh"
ACCEPT = re.compile(rb"ACCEPT [^\s]*:(\d+)")
SANITIZER = re.compile(rb"ERROR: (Address|Leak|Thread|UndefinedBehavior)Sanitizer|runtime error: ")


async def make_certs():
    """A new directory holding the test certificates (removed when the process exits)."""
    holder = tempfile.TemporaryDirectory(prefix="ioloop-tls-")
    make_certs.keep.append(holder)
    proc = await asyncio.create_subprocess_exec(
        "sh", str(MAKE_CERTS), holder.name,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), STEP_TIMEOUT)
    check(proc.returncode == 0, f"make_certs.sh failed: {out.decode(errors='replace')}")
    return pathlib.Path(holder.name)


make_certs.keep = []


async def run(cmd, stdin=b"", timeout=STEP_TIMEOUT):
    """Runs cmd to its end: (exit code, stdout, stderr). A program that outlives the time
    limit is killed, and the test fails saying so; so does one whose sanitizer reported
    (an exit code of 1 could pass for the failure a test expects)."""
    proc = await asyncio.create_subprocess_exec(
        *[str(a) for a in cmd], stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise Failure(f"{pathlib.Path(str(cmd[0])).name} did not finish within {timeout} s: {cmd}")
    check(not SANITIZER.search(err), f"{cmd[0]}: a sanitizer reported:\n{text(err)}")
    return proc.returncode, out, err


class OpenSSLServer:
    """`openssl s_server` on a free port of 127.0.0.1, with the given options; its output is
    kept (s_server says what it negotiated). Stopped by kill: it serves until then."""

    def __init__(self, *options, cwd=None):
        self.cmd = ["openssl", "s_server", "-accept", "127.0.0.1:0", *map(str, options)]
        self.cwd = cwd
        self.proc = None
        self.port = None
        self.output = bytearray()
        self._drain = None

    async def __aenter__(self):
        self.proc = await asyncio.create_subprocess_exec(
            *self.cmd, cwd=self.cwd, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            while self.port is None:
                line = await asyncio.wait_for(self.proc.stdout.readline(), STEP_TIMEOUT)
                self.output += line
                check(line, f"s_server exited before accepting: {bytes(self.output)!r}")
                if m := ACCEPT.search(line):
                    self.port = int(m.group(1))
        except BaseException:
            await self.stop()
            raise
        self._drain = asyncio.create_task(self._read_rest())
        return self

    async def _read_rest(self):
        while chunk := await self.proc.stdout.read(65536):
            self.output += chunk

    async def stop(self):
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
        if self._drain:
            await self._drain

    async def __aexit__(self, *exc):
        await self.stop()

    def text(self):
        return self.output.decode(errors="replace")


def text(data):
    return data.decode(errors="replace")


def expect_in(what, needle, haystack):
    check(needle in haystack, f"{what}: {needle!r} not in:\n{haystack}")
