"""Test harness that runs inside the sandbox (standard library only, no or1 imports).

Reads `job.json` from the working directory (and deletes it), runs the solution against
the test inputs, and writes one JSON line per test to the original stdout, tagged with a
per-run nonce so that output the program itself prints cannot pass for a result. The
program's own stdout/stderr go to files (stdout is captured per test for stdio mode).
Expected outputs never enter the sandbox: the caller compares (see code.py), except in
assert mode where the asserts are the tests.

job.json: {"mode": "stdio" | "call" | "assert", "code": str, "tests": list, "offset": int,
           "timeout_s": float, "fn_name": str | null, "nonce": str}
  stdio:  tests are stdin strings; a record carries the captured stdout ("out").
  call:   tests are {"args": list, "kwargs": dict}; a record carries the return value.
  assert: tests are code chunks run after the solution; passing = no exception.
Records: {"i": index, "status": "ok" | "error" | "timeout", ...}; index -1 means the
solution itself failed to load (every test fails); "exit": true means the harness stops
after this record (the program swallowed the timeout), so the caller resumes at i + 1.
"""

import builtins
import io
import json
import os
import signal
import sys

GRACE_S = 0.5  # after a timeout, if the program swallows the exception, exit hard
_STATE = {"timed_out": False, "index": -1, "emit": None}
_STDIN = os.path.join(os.getcwd(), ".stdin")  # absolute: the program may chdir
_STDOUT = os.path.join(os.getcwd(), ".stdout")


class _Timeout(BaseException):
    pass


def _on_alarm(signum, frame):
    if _STATE["timed_out"]:  # the program caught the first one: give up on this run
        _STATE["emit"]({"i": _STATE["index"], "status": "timeout", "exit": True})
        os._exit(0)
    _STATE["timed_out"] = True
    signal.setitimer(signal.ITIMER_REAL, GRACE_S)
    raise _Timeout()


def _execute(fn, timeout_s):
    """Run fn() under the per-test timer. Returns (status, error name)."""
    _STATE["timed_out"] = False
    status, error = "ok", ""
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        fn()
    except SystemExit as exc:  # sys.exit() / exit(0) ends a stdio program normally
        if exc.code not in (None, 0):
            status, error = "error", "SystemExit"
    except _Timeout:
        status = "timeout"
    except BaseException as exc:
        status, error = "error", type(exc).__name__
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if _STATE["timed_out"]:
        status = "timeout"
    return status, error


def _redirect(stdin_text):
    """Point fds 0/1 (and sys.stdin/stdout) at fresh files, as if in a new process."""
    with open(_STDIN, "w", encoding="utf-8", errors="surrogatepass") as f:
        f.write(stdin_text)
    for fd, name, flags in ((0, _STDIN, os.O_RDONLY), (1, _STDOUT, os.O_WRONLY)):
        new = os.open(name, flags | (os.O_CREAT | os.O_TRUNC if fd else 0), 0o600)
        if new != fd:  # the program may have closed fd 0/1 (e.g. open(0) then GC)
            os.dup2(new, fd)
            os.close(new)
    sys.stdin = io.TextIOWrapper(
        io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8", errors="replace"
    )
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(1, "w", closefd=False)), encoding="utf-8", errors="replace"
    )


def _collect_stdout():
    for stream in (sys.stdout, sys.__stdout__):
        try:
            stream.flush()
        except BaseException:  # the program may have replaced or broken sys.stdout
            continue
    with open(_STDOUT, encoding="utf-8", errors="replace") as f:
        return f.read()


def _jsonable(value, depth=0):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if depth > 50:
        return {"__repr__": "<too deep>"}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [_jsonable(v, depth + 1) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _jsonable(value.tolist(), depth + 1)
    return {"__repr__": type(value).__name__}


def _run_stdio(job, emit):
    try:
        code = compile(job["code"], "<solution>", "exec")
    except BaseException as exc:
        emit({"i": -1, "status": "error", "error": type(exc).__name__})
        return
    for k, stdin_text in enumerate(job["tests"]):
        _STATE["index"] = i = job["offset"] + k
        _redirect(stdin_text)
        env = {"__name__": "__main__", "__builtins__": builtins}
        status, error = _execute(lambda env=env: exec(code, env), job["timeout_s"])
        try:
            out = _collect_stdout()
        except OSError:
            status, out = "error", ""
        emit({"i": i, "status": status, "error": error, "out": out})


def _load_solution(job, emit):
    _redirect("")
    env = {"__name__": "solution", "__builtins__": builtins}
    status, error = _execute(
        lambda: exec(compile(job["code"], "<solution>", "exec"), env), job["timeout_s"]
    )
    if status != "ok":
        emit({"i": -1, "status": status, "error": error})
        return None
    return env


def _resolve(env, fn_name):
    cls = env.get("Solution")
    if isinstance(cls, type) and hasattr(cls, fn_name):
        return lambda: getattr(cls(), fn_name)
    if callable(env.get(fn_name)):
        return lambda: env[fn_name]
    return None


def _run_call(job, emit):
    env = _load_solution(job, emit)
    if env is None:
        return
    get_fn = _resolve(env, job["fn_name"])
    if get_fn is None:
        emit({"i": -1, "status": "error", "error": "MissingFunction"})
        return
    for k, test in enumerate(job["tests"]):
        _STATE["index"] = i = job["offset"] + k
        _redirect("")  # fresh (size-capped) capture file for what the solution prints
        box = []
        status, error = _execute(
            lambda t=test, b=box: b.append(get_fn()(*t["args"], **t["kwargs"])), job["timeout_s"]
        )
        record = {"i": i, "status": status, "error": error}
        if status == "ok":
            record["value"] = _jsonable(box[0])
        emit(record)


def _run_assert(job, emit):
    env = _load_solution(job, emit)
    if env is None:
        return
    for k, chunk in enumerate(job["tests"]):
        _STATE["index"] = i = job["offset"] + k
        _redirect("")
        scope = dict(env)
        status, error = _execute(
            lambda c=chunk, s=scope: exec(compile(c, "<test>", "exec"), s), job["timeout_s"]
        )
        emit({"i": i, "status": status, "error": error})


def main():
    with open("job.json", encoding="utf-8") as f:
        job = json.load(f)
    os.remove("job.json")
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8", errors="replace")
    nonce = job.pop("nonce")

    def emit(record):
        record["nonce"] = nonce
        try:
            line = json.dumps(record)
        except (ValueError, TypeError, RecursionError):  # e.g. an int over 4300 digits
            record.pop("value", None)
            record.update(status="error", error="Unserializable")
            line = json.dumps(record)
        channel.write(line + "\n")
        channel.flush()

    _STATE["emit"] = emit
    signal.signal(signal.SIGALRM, _on_alarm)
    runners = {"stdio": _run_stdio, "call": _run_call, "assert": _run_assert}
    runners[job["mode"]](job, emit)
    os._exit(0)  # skip interpreter teardown: atexit handlers of the program are not ours


if __name__ == "__main__":
    main()
