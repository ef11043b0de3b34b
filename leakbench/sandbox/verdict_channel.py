"""The channel on which a program that judges itself (`leakbench.checker`) reports its verdict,
so that the sandbox trusts a "passed" only from the checks of this run."""

from __future__ import annotations

import contextlib
import os
import secrets

from leakbench.sandbox.result import one_line


class VerdictChannel:
    """Where a program that judges itself (`leakbench.checker`) reports: two pipes whose numbers
    it gets in its argv. It reads a fresh nonce from the first, once, and writes
    ``<nonce> <status> <reason>`` to the second. The sandbox holds the other ends, so the
    verdict is trusted only when it carries this run's nonce; the checker keeps both channels
    away from the code under test."""

    _STATUSES = ("passed", "failed", "memory", "timeout")
    _MAX_BYTES = 8192

    def __init__(self) -> None:
        self.nonce = secrets.token_hex(16)
        self._nonce_read, nonce_write = os.pipe()
        os.write(nonce_write, self.nonce.encode("ascii"))
        os.close(nonce_write)
        self._verdict_read, self._verdict_write = os.pipe()
        os.set_blocking(self._verdict_read, False)
        self._open = [self._nonce_read, self._verdict_read, self._verdict_write]

    @property
    def child_fds(self) -> tuple[int, int]:
        """(verdict fd, nonce fd), in the order the checker takes them from its argv."""
        return self._verdict_write, self._nonce_read

    def started(self) -> None:
        """Close the child's ends here, so that the verdict pipe ends when the child's does."""
        for fd in self.child_fds:
            os.close(fd)
            self._open.remove(fd)

    def decide(self, status: str, reason: str, returncode: int) -> tuple[str, str]:
        """The status of a program that had to report its verdict, from its exit alone
        (`status`, `reason`) and what arrived on the channel: "passed" needs both."""
        reported = self._reported()
        if reported is None:
            if status == "passed":
                return "failed", "ended without its checks reporting a verdict"
            return status, reason
        verdict, detail = reported
        if verdict == "passed" and returncode != 0:
            return "failed", f"its checks passed, then it ended with exit status {returncode}"
        return verdict, one_line(detail)

    def _reported(self) -> tuple[str, str] | None:
        data = bytearray()
        with contextlib.suppress(BlockingIOError):
            while len(data) < self._MAX_BYTES and (chunk := os.read(self._verdict_read, 4096)):
                data += chunk
        nonce, _, rest = bytes(data).partition(b" ")
        verdict, _, detail = rest.decode("utf-8", "replace").partition(" ")
        if not secrets.compare_digest(nonce, self.nonce.encode()) or verdict not in self._STATUSES:
            return None
        return verdict, detail

    def close(self) -> None:
        for fd in self._open:
            os.close(fd)
        self._open.clear()
