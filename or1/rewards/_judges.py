"""A judge that serves many runs (stdlib only; imported by the sandbox init, _boot.py).

The judge (_judge.py) is or1's code plus the dataset's test code; it never runs the
model's code, which only ever reaches it as plain data (_wire.py). So instead of a fresh
sandboxed judge per run, the init keeps one judge process per kind of limits: sandboxed
once like any program (own pid, mount, network, ipc and uts namespaces, the throwaway
judge uid, no capabilities, seccomp, rlimits), it runs one run's tests at a time and
then waits for the next. Every candidate is still a fresh sandbox of its own, and each
run's test code is executed in a fresh scope, so nothing of one run's values reaches
another. This saves one of the two forks per program (the largest cost of a run).

A judge server is replaced (a fresh one is forked for the next run) after MAX_RUNS
runs, after any run it did not finish by itself (a kill by the wall clock, a crash), or
when the limits differ. Its CPU rlimit is SERVER_CPU_S in total (each run is bounded by
its wall clock, and the judge's own per-test alarms).

Descriptors of a judge server: 0 /dev/null, 1 /dev/null (what test code prints), 2 the
run's stderr, 3 the link to the run's candidate, 4 its control socket to the init, 5 the
run's record channel (the run's stdout). Per run
the init sends {"op": "run", "id": n} with the run's job, stdout, stderr and link
descriptors; the server answers {"op": "done", "id": n, "code": c} once it has closed
all of them (c != 0: it exits after answering).
"""

import contextlib
import json
import os
import socket
import sys

MAX_RUNS = 64
SERVER_CPU_S = 3600
CTL_FD = 4
CHANNEL_FD = 5


class JobDone(BaseException):
    """A run's judge is finished (what `finish` would have done: exit)."""


def _stop(code):
    raise JobDone(code)


def serve(job, proc, workdir, writable, readable):
    """Entry point of a judge server (never returns): judge `job`, then the next ones."""
    import _judge

    sys.set_int_max_str_digits(0)
    guard = (writable, readable) if proc.get("guard") else None
    from _harness import fresh_streams

    ctl = socket.socket(fileno=CTL_FD)
    # Made once, before the guard is on (it forbids new sockets): the objects stay, the
    # descriptors under them change from run to run.
    link = socket.socket(fileno=3)
    os.dup2(1, CHANNEL_FD)
    channel = open(CHANNEL_FD, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
    fresh_streams()
    _judge.finish = _stop  # a record with "exit" ends the run, not the process
    run_id = proc["run_id"]
    for k in range(MAX_RUNS):
        code = 0
        try:
            _judge.judge(job, guard if k == 0 else None, link=link, channel=channel)
        except JobDone:
            pass
        except BaseException:
            import traceback

            traceback.print_exc()  # on the run's stderr
            code = 1
        _end_run(channel)
        ctl.send(json.dumps({"op": "done", "id": run_id, "code": code}).encode())
        if code or k == MAX_RUNS - 1:
            break
        job, run_id = _next_run(ctl)
        if job is None:
            break
    os._exit(0)


def _end_run(channel):
    """Flush what the run wrote and let go of its descriptors (the host and the
    candidate see their ends close)."""
    for stream in (channel, sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):  # a broken stream must not stop the server
            stream.flush()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (2, 3, CHANNEL_FD):
        os.dup2(null, fd)
    os.close(null)


def _next_run(ctl):
    """(the next run's job with its descriptors in place, its id), or (None, None) if
    the init is gone."""
    try:
        data, fds, _, _ = socket.recv_fds(ctl, 1 << 16, 8)
    except OSError:
        return None, None
    if not data or len(fds) != 4:
        return None, None
    with os.fdopen(fds[0], "rb") as f:
        job = json.loads(f.read())
    for src, dst in zip(fds[1:], (CHANNEL_FD, 2, 3), strict=True):
        os.dup2(src, dst)
        os.close(src)
    return job, json.loads(data)["id"]


# --------------------------------------------------------------------------- init side


class Servers:
    """The init's judge servers: at most one per kind of limits, idle or in a run."""

    def __init__(self):
        self.by_key = {}  # key -> [pid, socket, runs so far]
        self.busy = {}  # pid -> run id

    @staticmethod
    def key(proc):
        limits = {k: v for k, v in proc["limits"].items() if k != "cpu"}
        return json.dumps([proc["uid"], proc.get("guard"), limits], sort_keys=True)

    def take(self, proc, run_id, fds, link):
        """Hand the run to an idle server of this kind; its pid, or None (start one)."""
        entry = self.by_key.get(self.key(proc))
        if entry is None or entry[0] in self.busy or entry[2] >= MAX_RUNS:
            self.retire(proc)
            return None
        pid, sock, _ = entry
        try:
            socket.send_fds(sock, [json.dumps({"op": "run", "id": run_id}).encode()], [*fds, link])
        except OSError:
            self.retire(proc)
            return None
        entry[2] += 1
        self.busy[pid] = run_id
        return pid

    def add(self, proc, pid, sock, run_id):
        """A server just started for the run `run_id` (it judges that run first)."""
        self.by_key[self.key(proc)] = [pid, sock, 1]
        self.busy[pid] = run_id

    def retire(self, proc):
        """Stop using the server of this kind (it exits when its socket closes)."""
        entry = self.by_key.pop(self.key(proc), None)
        if entry is not None:
            entry[1].close()
            self.busy.pop(entry[0], None)

    def forget(self, pid):
        """A server process ended (reaped): never use it again."""
        for key, entry in list(self.by_key.items()):
            if entry[0] == pid:
                entry[1].close()
                del self.by_key[key]
        self.busy.pop(pid, None)

    def sockets(self):
        return [entry[1] for entry in self.by_key.values()]

    def answer(self, sock):
        """(pid, run id, exit code) of a server's "done", or None."""
        entry = next((e for e in self.by_key.values() if e[1] is sock), None)
        if entry is None:
            return None
        try:
            data = sock.recv(1 << 12)
        except OSError:
            data = b""
        if not data:  # the server is gone (reaping reports it)
            self.forget(entry[0])
            return None
        msg = json.loads(data)
        self.busy.pop(entry[0], None)
        if msg.get("code"):
            self.forget(entry[0])
        return entry[0], msg.get("id"), [msg.get("code", 1), None]
