"""The checker of a functional test: runs inside the sandbox, in two processes, and reports the
verdict on a channel that the code under test cannot write.

This file is not imported by LeakBench: `leakbench.functional` copies its source into every
functional program, so it must run on the bare interpreter the sandbox starts (``python -S``:
standard library only, no site-packages, maybe ``-O``).

Why two processes. A completion runs with the checks in one interpreter, and code in one
interpreter can undo anything else there: exit with status 0 before the asserts, replace
``AssertionError`` or ``builtins``, trace frames and jump over asserts, re-execute the program
with ``-O`` so that the asserts are compiled away, read the program's source to learn a marker.
So the process that runs the checks (the *checker*) never runs model code:

- it forks a *subject* process first, which closes the verdict and nonce channels, executes the
  prompt with the completion, and then only answers calls: arguments in, a return value or the
  name and message of an exception out, both as ``marshal`` data (built-in values only: an
  object whose ``__eq__`` always answers True cannot cross, and ``marshal`` runs no code);
- the checker makes itself non-dumpable before the fork, so the subject (same uid) can neither
  ptrace it nor open its ``/proc/<pid>/fd`` or memory;
- it compiles the prompt and the checks itself with ``optimize=0``: the asserts run whatever
  flags or environment the interpreter got;
- it reads the nonce only after the fork (the subject never holds it) and writes
  ``<nonce> <status> <reason>`` to the verdict channel, a pipe whose other end the sandbox holds.
  It exits with status 0 only after a "passed" verdict.

What the subject can still do is end itself or the checker (killed, stopped, out of memory),
which gives a failure or a timeout, never a pass.
"""

import builtins
import ctypes
import marshal
import os
import signal
import struct
import time

_PR_SET_DUMPABLE = 4
_HEADER = struct.Struct(">Q")
_MAX_MESSAGE = 64 << 20
_PLAIN = (bool, int, float, complex, str, bytes, type(None))
_CONTAINERS = (list, tuple, set, frozenset)


class SubjectEnded(Exception):
    """The subject process ended or broke the protocol before it answered."""


class SubjectOutOfTime(SubjectEnded):
    """The subject process was ended by its CPU time limit."""


class SubjectRaised(Exception):
    """The function under test raised an exception that is not a built-in one."""


def main(setup, subject, checks, entry_point, verdict_fd, nonce_fd):
    """Check `entry_point`, defined by `subject` (untrusted: prompt + completion), with `checks`
    (trusted code that calls it), after `setup` (trusted: the prompt, for the helpers the checks
    use). Never returns."""
    if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        os._exit(3)  # without it the subject could reach the channel: no verdict at all
    calls_read, calls_write = os.pipe()
    answers_read, answers_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        for fd in (verdict_fd, nonce_fd, calls_write, answers_read):
            os.close(fd)
        _serve(subject, entry_point, calls_read, answers_write)
        os._exit(0)
    for fd in (calls_read, answers_write):
        os.close(fd)
    nonce = _read_exactly(nonce_fd, 32).decode("ascii")
    os.close(nonce_fd)
    status, reason = _judge(setup, checks, entry_point, pid, calls_write, answers_read)
    _write_all(verdict_fd, f"{nonce} {status} {reason}".encode("utf-8", "replace")[:4096])
    os.close(verdict_fd)
    os._exit(0 if status == "passed" else 1)


# --- The subject: untrusted code, answering calls ----------------------------------------------


def _serve(subject, entry_point, calls, answers):
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    try:
        exec(compile(subject, "<completion>", "exec", dont_inherit=True), namespace)
        function = namespace[entry_point]
    except BaseException as exc:  # noqa: B036 - any way the definition fails is its verdict
        _send(answers, ("raised", type(exc).__name__, str(exc)))
        return
    _send(answers, ("ready",))
    while (call := _receive(calls)) is not None:
        args, kwargs = call
        try:
            value = function(*args, **kwargs)
        except BaseException as exc:  # noqa: B036 - SystemExit too: it is the function's answer
            answer = marshal.dumps(("raised", type(exc).__name__, str(exc)))
        else:
            try:
                answer = marshal.dumps(("returned", value))
            except ValueError:  # not made of built-in values only
                answer = marshal.dumps(("raised", "TypeError", "returned an object that is not a "
                                        "built-in value (only plain values cross to the checks)"))
        _write_all(answers, _HEADER.pack(len(answer)) + answer)


# --- The checker: trusted code only ------------------------------------------------------------


def _judge(setup, checks, entry_point, pid, calls, answers):
    """(status, one-line reason): run the checks against the subject's function."""

    def ended():
        """Why the subject stopped answering, as the exception to raise."""
        deadline = time.monotonic() + 1.0
        while (reaped := os.waitpid(pid, os.WNOHANG))[0] == 0:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return SubjectEnded("the code under test closed its channel to the checks")
            time.sleep(0.01)
        status = reaped[1]
        if os.WIFSIGNALED(status):
            if os.WTERMSIG(status) == signal.SIGXCPU:
                return SubjectOutOfTime("cpu time limit")
            return SubjectEnded(f"the code under test was killed by signal {os.WTERMSIG(status)}")
        return SubjectEnded(f"the code under test exited with status {os.WEXITSTATUS(status)} "
                            "before it answered")

    def answer():
        try:
            message = _receive(answers)
        except (OSError, ValueError, EOFError, TypeError) as exc:
            raise SubjectEnded(f"unreadable answer from the code under test: {exc!r}") from None
        if message is None:
            raise ended()
        return message

    def candidate(*args, **kwargs):
        try:
            _send(calls, (args, kwargs))
        except BrokenPipeError:
            raise ended() from None
        reply = answer()
        if type(reply) is tuple and len(reply) == 2 and reply[0] == "returned":
            _require_plain(reply[1])
            return reply[1]
        raise _rebuilt(reply)

    try:
        first = answer()
        if first != ("ready",):
            raise _rebuilt(first)
        namespace = {"__name__": "__main__", "__builtins__": builtins}
        exec(compile(setup, "<prompt>", "exec", dont_inherit=True, optimize=0), namespace)
        namespace[entry_point] = candidate
        exec(compile(checks, "<checks>", "exec", dont_inherit=True, optimize=0), namespace)
    except MemoryError as exc:
        return "memory", _reason(exc)
    except SubjectOutOfTime as exc:
        return "timeout", str(exc)
    except BaseException as exc:  # noqa: B036 - every way the checks end is a failure
        return "failed", _reason(exc)
    return "passed", ""


def _rebuilt(reply):
    """The exception the subject reported, as a built-in exception where one has its name (a
    check may expect a ValueError), else `SubjectRaised`; a malformed reply is `SubjectEnded`."""
    if not (type(reply) is tuple and len(reply) == 3 and reply[0] == "raised"
            and type(reply[1]) is str and type(reply[2]) is str):
        return SubjectEnded("the code under test broke the protocol")
    _, name, message = reply
    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception):
        try:
            return kind(message)
        except Exception:  # a constructor that takes other arguments
            pass
    return SubjectRaised(f"{name}: {message}" if message else name)


def _require_plain(value):
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            _require_plain(key)
            _require_plain(item)
    elif kind in _CONTAINERS:
        for item in value:
            _require_plain(item)
    elif kind not in _PLAIN:
        raise TypeError(f"returned an object of type {kind.__name__!r}, not a built-in value")


def _reason(exc):
    name = type(exc).__name__
    text = str(exc)
    if isinstance(exc, SubjectRaised | SubjectEnded):
        return text
    return " ".join(f"{name}: {text}".split()) if text else name


# --- Framing: a length, then marshal data ------------------------------------------------------


def _send(fd, value):
    data = marshal.dumps(value)
    _write_all(fd, _HEADER.pack(len(data)) + data)


def _receive(fd):
    """The next value, or None at the end of the stream."""
    header = _read_exactly(fd, _HEADER.size)
    if not header:
        return None
    if len(header) != _HEADER.size:
        raise EOFError("a message cut short")
    (size,) = _HEADER.unpack(header)
    if size > _MAX_MESSAGE:
        raise ValueError(f"a message of {size} bytes")
    data = _read_exactly(fd, size)
    if len(data) != size:
        raise EOFError("a message cut short")
    return marshal.loads(data)


def _read_exactly(fd, size):
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
