"""The judge (stdlib only; see _harness.py): runs a problem's tests with the candidate's
functions as remote stubs and writes one record per test to the host."""

import ast
import builtins
import json
import os
import signal
import socket

import _guard
import _wire
from _harness import (
    HACK_FORGED,
    CandidateError,
    CandidateGone,
    Timeout,
    classes_of,
    finish,
    fresh_streams,
    recv,
    send,
)


def run(job, proc, workdir, writable, readable):
    """Entry point of a judge process (never returns)."""
    import sys

    sys.set_int_max_str_digits(0)
    _judge(job, (writable, readable) if proc.get("guard") else None)
    finish(0)


class _Link:
    """The judge's side of the link: calls with a deadline, and what went wrong."""

    def __init__(self, sock):
        self.sock = sock
        self.deadline = None
        self.hack = ""
        self.next_handle = 0
        # Once a call timed out or the candidate is gone, the link is out of step (a late
        # reply would answer the next call): every later call fails the same way, even
        # if the test code swallowed the first exception.
        self.broken = None

    def ask(self, msg):
        if self.broken is not None:
            raise self.broken()
        remaining = 1e9 if self.deadline is None else self.deadline - _now()
        if remaining <= 0:
            self.broken = Timeout
            raise Timeout()
        self.sock.settimeout(remaining)
        try:
            send(self.sock, msg)
            reply = recv(self.sock)
        except (TimeoutError, Timeout):
            self.broken = Timeout
            raise Timeout() from None
        except OSError:
            reply = None
        except ValueError:  # not a frame of JSON: the candidate wrote on the link itself
            reply = False
        if type(reply) is not dict:
            self.hack = self.hack or (HACK_FORGED if reply is not None else "")
            self.broken = CandidateGone
            raise CandidateGone()
        if reply.get("hack"):
            self.hack = self.hack or str(reply["hack"])
        return reply


def _now():
    import time

    return time.monotonic()


def _raise_for(name):
    exc = getattr(builtins, name, None) if type(name) is str else None
    if isinstance(exc, type) and issubclass(exc, Exception):
        raise exc("raised by the candidate")
    raise CandidateError(str(name))


class Remote:
    """A stub for a function of the candidate: arguments and results cross as plain data."""

    def __init__(self, link, classes, msg):
        self.link, self.classes, self.msg = link, classes, msg

    def __call__(self, *args, **kwargs):
        reply = self.link.ask(
            dict(self.msg, op="call", a=_wire.encode(list(args)), k=_wire.encode(kwargs))
        )
        if "e" in reply:
            if reply["e"] == "SystemExit" or reply.get("hack"):
                self.link.broken = CandidateGone
                raise CandidateGone()
            _raise_for(reply["e"])
        try:
            value = _wire.decode(reply["v"], self.classes)
            after = _wire.decode(reply["a"], self.classes) if "a" in reply else None
        except _wire.UnknownClass:
            raise CandidateError("Unserializable") from None  # e.g. its own class
        except (_wire.WireError, KeyError, TypeError):
            self.link.hack = self.link.hack or HACK_FORGED
            self.link.broken = CandidateGone
            raise CandidateGone() from None
        _write_back(list(args), after)
        return value


def _write_back(args, after):
    """In-place changes of list/dict/set arguments (e.g. "sort nums in place")."""
    if type(after) is not list or len(after) != len(args):
        return
    for old, new in zip(args, after, strict=False):
        if type(old) is list and type(new) is list:
            old[:] = new
        elif type(old) in (dict, set) and type(new) is type(old):
            old.clear()
            old.update(new)


def _execute(fn, timeout_s, link):
    """Run one test under its deadline. Returns (status, error name)."""
    link.deadline = _now() + timeout_s
    signal.setitimer(signal.ITIMER_REAL, timeout_s + 0.05)
    try:
        fn()
        if link.broken is not None:  # the test code swallowed a timeout or a gone candidate
            raise link.broken()
        return "ok", ""
    except Timeout:
        return "timeout", ""
    except CandidateGone:
        return "error", "CandidateGone"
    except BaseException as exc:
        return "error", type(exc).__name__
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        link.deadline = None


def _judge(job, guard):
    link = _Link(socket.socket(fileno=3))
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)  # what the test code prints does not reach the host
    fresh_streams()

    def emit(record):
        record.setdefault("hack", link.hack)
        channel.write(json.dumps(record) + "\n")
        channel.flush()
        if record.get("exit"):
            finish(0)

    def on_alarm(signum, frame):
        raise Timeout()

    signal.signal(signal.SIGALRM, on_alarm)
    if guard:
        _guard.install(*guard)
    status, error = _execute(lambda: _hello(link), job["timeout_s"], link)
    if status != "ok":
        emit({"i": -1, "status": status, "error": error, "exit": True})
    if job["mode"] == "call":
        _judge_calls(job, link, emit)
    else:
        _judge_asserts(job, link, emit)


def _hello(link):
    """The candidate's first message: its solution loaded, or why not."""
    link.sock.settimeout(max(0.001, link.deadline - _now()))
    try:
        reply = recv(link.sock)
    except TimeoutError:
        raise Timeout() from None
    except OSError:
        reply = None
    except ValueError:
        reply = False
    if type(reply) is not dict:
        link.hack = HACK_FORGED if reply is not None else ""
        raise CandidateGone()
    if reply.get("hack"):
        link.hack = str(reply["hack"])
    if "e" in reply:
        raise CandidateError(str(reply["e"]))


def _judge_calls(job, link, emit):
    handle = _open_entry(link, {"n": job["fn_name"]}, emit)
    for k, test in enumerate(job["tests"]):
        i = job["offset"] + k
        link.hack = ""
        box: list = []
        stub = Remote(link, {}, {"h": handle})
        status, error = _execute(
            lambda t=test, b=box, f=stub: b.append(f(*t["args"], **t["kwargs"])),
            job["timeout_s"],
            link,
        )
        gone = error == "CandidateGone"
        record = {"i": i, "status": status, "error": error, "exit": status == "timeout" or gone}
        if status == "ok" and not link.hack:
            try:
                record["v"] = _wire.encode(box[0])
            except _wire.WireError:
                record.update(status="error", error="Unserializable")
        emit(record)


def _open_entry(link, spec, emit):
    handle = link.next_handle
    link.next_handle += 1
    status, error = _execute(
        lambda: _check_reply(link.ask(dict(spec, op="entry", h=handle))), 5.0, link
    )
    if status != "ok":
        emit({"i": -1, "status": status, "error": error or "MissingFunction", "exit": True})
    return handle


def _check_reply(reply):
    if "e" in reply:
        raise CandidateError(str(reply["e"]))


def _judge_asserts(job, link, emit):
    scope = {"__name__": "__test__", "__builtins__": builtins}
    status, error = _execute(lambda: exec(job["prefix"] + "\n" + job["helpers"], scope), 30, link)
    if status != "ok":  # the test code itself is broken
        emit({"i": -1, "status": "error", "error": "BadTestCode:" + error, "exit": True})
    classes = classes_of(scope, "__test__")
    for k, chunk in enumerate(job["tests"]):
        i = job["offset"] + k
        link.hack = ""
        local = dict(scope)
        for name in _free_names(chunk + "\n" + job["helpers"], local):
            local[name] = Remote(link, classes, {"n": name})
        if job.get("entry"):
            handle = _open_entry(link, {"x": job["entry"]}, emit)
            stub = Remote(link, classes, {"h": handle})
            status, error = _execute(
                lambda c=chunk, s=local, f=stub: _run_check(c, s, f), job["timeout_s"], link
            )
        else:
            status, error = _execute(lambda c=chunk, s=local: exec(c, s), job["timeout_s"], link)
        gone = error == "CandidateGone"
        if link.hack and status == "ok":
            status, error = "error", "Hack"
        emit({"i": i, "status": status, "error": error, "exit": status == "timeout" or gone})


def _run_check(chunk, scope, stub):
    exec(chunk, scope)
    scope["check"](stub)


def _free_names(source, scope):
    """Names the test code reads but does not define: they are the candidate's."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names = {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
    defined = {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return sorted(names - defined - set(scope) - set(dir(builtins)))
