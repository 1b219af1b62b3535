"""What a sandboxed process runs (stdlib only; imported by the sandbox init, _boot.py).

Three kinds of process, each in its own sandbox (own namespaces and throwaway uid):

- "main": a plain program (`run_python`, and each stdin/stdout test: one process per
  test, so a test sees nothing of another; the host compares the output).
- "candidate": loads the model's solution and serves calls to it over descriptor 3. It
  never sees a test's expected value and has no way to talk to the host: whatever it
  sends is plain data (see _wire.py) that the judge rebuilds with its own types.
- "judge" (_judge.py): runs the tests (call-based inputs, or the dataset's assert code)
  with the candidate's functions as remote stubs, and writes one JSON record per test to
  the host on its stdout. Expected values and asserts live only here and on the host; comparisons
  happen here (assert tests, on values the judge rebuilt) or on the host (call tests).

The link between judge and candidate carries length-prefixed JSON frames: calls
({"op": "call", "h": handle, "x": entry expression, "a": args, "k": kwargs}, or a
"batch" of them sent ahead) and replies ({"v": value, "a": args after the call} or
{"e": exception name, "hack": reason}), values in the _wire format.

Judge records: {"i": test index, "status": "ok" | "error" | "timeout", "error": name,
"hack": reason or "", "v": wire value (call tests), "exit": true if the judge stops after
this record}; index -1 means the solution failed to load (every test fails). A test
passes only if its record says "ok" and the candidate neither exited, nor sent something
malformed or an always-equal object during it, even if the test code swallowed that.
"""

import atexit
import builtins
import contextlib
import io
import json
import os
import socket
import struct
import sys
import types

import _guard
import _wire

HACK_EXIT = "exit before tests finished"
HACK_EQUAL = "always-equal object"
HACK_FORGED = "forged harness message"
_FRAME = struct.Struct(">I")


class Timeout(BaseException):
    pass


class CandidateGone(BaseException):
    """The candidate exited or broke the protocol: the judge cannot go on."""


class CandidateError(Exception):
    """The candidate raised an exception that is not a builtin one."""


def run(job, proc, workdir, writable, readable):
    """Entry point of a "main" or "candidate" process (never returns; the judge's is
    _judge.run)."""
    sys.set_int_max_str_digits(0)
    guard = (writable, readable) if proc.get("guard") else None
    if proc["kind"] == "main":
        _main(job, workdir, guard)
    else:
        _candidate(job, guard)
    finish(0)


def finish(code):
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    os._exit(code & 0xFF)


def fresh_streams():
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r")))
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w")))
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(2, "w")), errors="backslashreplace", line_buffering=True
    )


def _exit_code(exc):
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _main(job, workdir, guard):
    path = os.path.join(workdir, "main.py")
    with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
        f.write(job["source"])
    fresh_streams()
    module = types.ModuleType("__main__")
    module.__file__ = path
    sys.modules["__main__"] = module
    sys.argv = [path]
    sys.path.insert(0, workdir)
    try:
        code = compile(job["source"], path, "exec")
        if guard:
            _guard.install(*guard)
        exec(code, module.__dict__)
    except SystemExit as exc:
        finish(_exit_code(exc))
    except BaseException:
        import traceback

        traceback.print_exc()
        finish(1)
    finish(0)


# --------------------------------------------------------------------------- the link


def send(link, obj):
    data = json.dumps(obj).encode()
    link.sendall(_FRAME.pack(len(data)) + data)


def __recv_exact(link, n):
    chunks, got = [], 0
    while got < n:
        chunk = link.recv(min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv(link):
    head = __recv_exact(link, 4)
    if head is None:
        return None
    (size,) = _FRAME.unpack(head)
    if size > _wire.MAX_CHARS + 4096:
        raise _wire.WireError("frame too large")
    body = __recv_exact(link, size)
    return None if body is None else json.loads(body)


# --------------------------------------------------------------------------- candidate


def _candidate(job, guard):
    link = socket.socket(fileno=3)  # before the guard: wrapping a socket is an audit event
    fresh_streams()
    scope = {"__name__": "solution", "__builtins__": builtins}
    if guard:
        _guard.install(*guard)
    try:
        exec(compile(job["code"], "<solution>", "exec"), scope)
        hello = {"ok": 1}
    except SystemExit:
        hello = {"e": "SystemExit", "hack": HACK_EXIT}
    except BaseException as exc:
        hello = {"e": type(exc).__name__}
    send(link, hello)
    if "e" in hello:
        return
    handles = {}
    while (msg := recv(link)) is not None:
        if type(msg) is dict and msg.get("op") == "batch":  # calls known in advance
            for call in msg["calls"]:
                send(link, _serve_one(dict(call, op="call"), scope, handles))
        else:
            send(link, _serve_one(msg, scope, handles))


def _serve_one(msg, scope, handles):
    try:
        op = msg["op"]
        if "h" in msg and msg["h"] not in handles:  # a new handle: its entry comes along
            handles[msg["h"]] = _entry(scope, msg)
        if op == "entry":
            return {"ok": 1}
        target = handles[msg["h"]]() if "h" in msg else scope[msg["n"]]
        classes = classes_of(scope, "solution")
        args = _wire.decode(msg["a"], classes)
        kwargs = _wire.decode(msg["k"], classes)
        value = target(*args, **kwargs)
    except SystemExit:
        return {"e": "SystemExit", "hack": HACK_EXIT}
    except BaseException as exc:
        return {"e": type(exc).__name__}
    if not _wire.plain(value) and _wire.always_equal(value):
        return {"e": "Unserializable", "hack": HACK_EQUAL}
    try:
        reply = {"v": _wire.encode(value)}
    except _wire.WireError:
        return {"e": "Unserializable"}
    with contextlib.suppress(_wire.WireError):
        reply["a"] = _wire.encode(args)
    return reply


def _entry(scope, msg):
    """A function returning the callable to test: an expression, or LeetCode's rule."""
    if "x" in msg:
        fn = eval(msg["x"], scope)
        return lambda: fn
    name = msg["n"]
    cls = scope.get("Solution")
    if isinstance(cls, type) and hasattr(cls, name):
        return lambda: getattr(cls(), name)  # a fresh instance per test, like LeetCode
    if callable(scope.get(name)):
        return lambda: scope[name]
    raise NameError(name)


def classes_of(scope, module):
    return {
        k: v
        for k, v in scope.items()
        if isinstance(v, type) and getattr(v, "__module__", "") == module
    }
