"""The judge (stdlib only; see _harness.py): runs a problem's tests with the candidate's
functions as remote stubs and writes one record per test to the host."""

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
from _test_plan import free_names, prefetch_plan


def run(job, proc, workdir, writable, readable):
    """Entry point of a judge process (never returns)."""
    import sys

    sys.set_int_max_str_digits(0)
    judge(job, (writable, readable) if proc.get("guard") else None)
    finish(0)


class _Link:
    """The judge's side of the link: calls with a deadline, and what went wrong."""

    def __init__(self, sock):
        self.sock = sock
        self.deadline = None
        self.hack = ""
        self.next_handle = 0
        self.received = 0  # replies to prefetched calls read so far
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
        try:
            self.sock.settimeout(remaining)
            send(self.sock, msg)
        except (TimeoutError, Timeout):
            self.broken = Timeout
            raise Timeout() from None
        except OSError:
            self.broken = CandidateGone
            raise CandidateGone() from None
        return self.read()

    def ask_nowait(self, msg):
        """Send without waiting for a reply (the batch of prefetched calls)."""
        try:
            self.sock.settimeout(30.0)
            send(self.sock, msg)
        except OSError:
            self.broken = CandidateGone

    def take(self, seq):
        """The reply to the seq-th prefetched call (earlier unused replies are dropped)."""
        while True:
            reply = self.read()
            self.received += 1
            if self.received - 1 == seq:
                return reply

    def read(self):
        """The next reply, within the deadline."""
        if self.broken is not None:
            raise self.broken()
        remaining = 1e9 if self.deadline is None else self.deadline - _now()
        if remaining <= 0:
            self.broken = Timeout
            raise Timeout()
        try:
            self.sock.settimeout(remaining)
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
        return self.result(reply, args)

    def result(self, reply, args):
        """The value of a call's reply (raises what the candidate raised)."""
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


class Prefetched(Remote):
    """A stub whose calls were all sent ahead in one batch (`_test_plan.prefetch_plan`):
    each call takes the next reply of the stream instead of a round trip, which matters on
    a busy machine where every wake-up of the other process waits for a time slice."""

    def __init__(self, link, classes, calls):
        super().__init__(link, classes, {})
        self.calls = list(calls)  # [(sequence number, encoded args, encoded kwargs)]

    def __call__(self, *args, **kwargs):
        encoded = (_wire.encode(list(args)), _wire.encode(kwargs))
        while self.calls:
            seq, *planned = self.calls.pop(0)
            if tuple(planned) == encoded:
                return self.result(self.link.take(seq), args)
        raise CandidateError("a call that was not planned")  # (the plan is exact)


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


def judge(job, guard, *, link=None, channel=None):
    """Judge one run: records to the host, the candidate on descriptor 3.

    link, channel: a judge server's socket on descriptor 3 and record stream, kept from
    run to run (_judges.py: once the guard is on, no new socket may be made); None makes
    them from descriptors 3 and 1 (a judge process of its own)."""
    if link is None:
        link = socket.socket(fileno=3)
        channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)  # what the test code prints does not reach the host
        os.close(null)
        fresh_streams()
    _judge(job, guard, _Link(link), channel)


def _judge(job, guard, link, channel):

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
    plan = prefetch_plan(job, scope)
    if plan is not None:
        calls = [
            {"h": k, "x": job["entry"], "a": a, "k": kw}
            for k, chunk_calls in enumerate(plan)
            for _, a, kw in chunk_calls
        ]
        link.ask_nowait({"op": "batch", "calls": calls})
    for k, chunk in enumerate(job["tests"]):
        i = job["offset"] + k
        link.hack = ""
        local = dict(scope)
        for name in free_names(chunk + "\n" + job["helpers"], local):
            local[name] = Remote(link, classes, {"n": name})
        if job.get("entry"):
            if plan is not None:
                stub = Prefetched(link, classes, plan[k])
            else:
                stub = Remote(link, classes, {"h": k, "x": job["entry"]})
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
