"""Sandbox init ("zygote"): the only process that starts sandboxed programs (stdlib only,
plus pyseccomp when seccomp is on; no or1 imports). It never runs untrusted code itself.

Started by or1/rewards/sandbox_host.py as `python -I -S -B _boot.py CONFIG_JSON` with a
SOCK_SEQPACKET control socket, either inside bubblewrap (isolation "bwrap": bubblewrap
built the read-only view), or directly (isolation "unshare": it builds the same view
itself in fresh mount/pid/net/ipc/uts namespaces and pivots into it), or on the host
(isolation "none": the weak mode). It imports the modules programs commonly need once,
then for every program forks:

- a child (root) into a fresh pid namespace, where it is pid 1: it enters fresh mount,
  network, ipc and uts namespaces, mounts a fresh tmpfs working directory and /tmp and
  a /proc that shows only its own namespace, drops the capability bounding set, then
  becomes the program: switches to the run's throwaway uid/gid (which clears every
  capability), sets no_new_privs, the parent-death signal and hard rlimits, scrubs the
  environment, loads the seccomp filter (no exec, ptrace, pidfd, mount, namespaces,
  keyrings, bpf, ...), closes every other descriptor and only then runs the program
  in-process (that child is _become.py). The init reaps it and reports its exit status.

When the program (pid 1 of its namespace) exits or is killed, the kernel kills
everything else in that namespace, so a program leaves nothing behind; it dies with the
init (parent-death signal). As pid 1 it ignores signals sent from inside its namespace
that it has no handler for (a program cannot kill itself with, say, SIGTERM; it can
exit), and the CPU limit kills it with SIGKILL (soft limit = hard limit). Since
the program runs in a fork of this process, its imports are already done: that is what
makes a run cost milliseconds, not an interpreter start. Nothing of other programs is in
this process's memory: jobs arrive as file descriptors that only the forked child reads.

Control messages (JSON; descriptors travel with SCM_RIGHTS):
  host -> init: {"op": "run", "id": n, "procs": [{"kind", "uid", "limits", "guard"}]}
                with 3 descriptors per proc (job, stdout, stderr); two procs are joined
                by a socketpair (descriptor 3 in each); {"op": "kill", "id": n}; {"op": "quit"}
  init -> host: {"op": "ready"}, {"op": "exit", "id": n, "status": [[code, signal], ...]}
A run ends when its first proc ends; the others are then killed. A judge + candidate
run's judge is usually not forked: an idle judge server takes it (_judges.py), and
"ends" means that server's "done".
"""

import contextlib
import json
import os
import select
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I: not on the path
import _judges
from _become import SETUP_FAILED, STATE, report_setup_failure, run_child, seccomp_filter
from _box import CLONE_NEWPID, PR_SET_PDEATHSIG, check, enter_box, libc, prctl, unshare

# When a run's first proc ends, the others get this long to end by themselves before
# they are killed, so that their own exit status (e.g. a candidate's os._exit(0)) is seen.
GRACE_S = 0.1


# --------------------------------------------------------------------------- serving


def _start(msg, fds):
    """Start a run: fork one child per proc, each into a fresh pid namespace, except a
    judge that an idle judge server takes (_judges.py); returns their pids."""
    procs = msg["procs"]
    links = socket.socketpair() if len(procs) == 2 else None
    pids = []
    servers = STATE["servers"]
    for k, proc in enumerate(procs):
        mine = fds[3 * k : 3 * k + 3]
        server = None
        if k == 0 and proc["kind"] == "judge" and links is not None:
            pid = servers.take(proc, msg["id"], mine, links[0].fileno())
            if pid is not None:
                pids.append(pid)
                continue
            server = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            limits = dict(proc["limits"], cpu=_judges.SERVER_CPU_S)
            proc = dict(proc, run_id=msg["id"], limits=limits)
        pids.append(_fork_proc(proc, fds, k, links, server))
        if server is not None:
            server[1].close()
            servers.add(proc, pids[-1], server[0], msg["id"])
    for fd in fds:
        os.close(fd)
    if links is not None:
        for s in links:
            s.close()
    return pids


def _fork_proc(proc, fds, k, links, server):
    """Fork the child of the run's k-th proc (never returns in the child)."""
    mine = fds[3 * k : 3 * k + 3]
    pid = _fork_into_new_pid_namespace()
    if pid != 0:
        return pid
    try:
        for fd in fds:
            if fd not in mine:
                os.close(fd)
        link = None
        if links is not None:
            link = links[k]
            links[1 - k].close()
        if server is not None:
            server[0].close()
        run_child(proc, mine, link, server[1] if server is not None else None)
    except BaseException as err:
        report_setup_failure(mine[2], err)
    finally:
        os._exit(SETUP_FAILED)


def _fork_into_new_pid_namespace():
    """os.fork(), the child being pid 1 of a new pid namespace (isolated backends).

    unshare(CLONE_NEWPID) sets where this process's next child goes; it may only be
    called while that is still this process's own namespace, hence the setns first."""
    if STATE["cfg"]["isolation"] == "none":
        return os.fork()
    check(libc().setns(STATE["own_pid_ns"], CLONE_NEWPID), "setns")
    unshare(CLONE_NEWPID)
    try:
        return os.fork()
    finally:
        if os.getpid() != 1:  # (the parent) later forks go back to its own namespace
            check(libc().setns(STATE["own_pid_ns"], CLONE_NEWPID), "setns")


def _status(status):
    if os.WIFSIGNALED(status):
        return [None, os.WTERMSIG(status)]
    return [os.waitstatus_to_exitcode(status), None]


def _kill(pids, done):
    for pid in pids:
        if pid not in done:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def serve(ctl):
    """Answer control messages until the host says quit or goes away."""
    runs = {}  # id -> (pids, {pid: status}, [when the first proc ended])
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    STATE["wake"] = wake_r
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    while True:
        waiting = any(r[2] for r in runs.values())
        watched = [ctl, wake_r, *STATE["servers"].sockets()]
        readable, _, _ = select.select(watched, [], [], GRACE_S / 4 if waiting else None)
        for sock in readable:
            if sock not in (ctl, wake_r):
                _judge_done(runs, STATE["servers"].answer(sock))
        if wake_r in readable:
            while True:
                try:
                    os.read(wake_r, 512)
                except BlockingIOError:
                    break
        if ctl in readable:
            data, fds, _, _ = socket.recv_fds(ctl, 1 << 16, 64)
            if not data:
                return
            msg = json.loads(data)
            if msg["op"] == "quit":
                return
            if msg["op"] == "run":
                runs[msg["id"]] = (_start(msg, fds), {}, [])
            elif msg["op"] == "kill" and msg["id"] in runs:
                _kill(*runs[msg["id"]][:2])
        _reap(ctl, runs)


def _judge_done(runs, answer):
    """A judge server finished a run: that run's first proc ended."""
    if answer is None:
        return
    pid, run_id, status = answer
    run = runs.get(run_id)
    if run is not None and run[0][0] == pid and pid not in run[1]:
        run[1][pid] = status
        run[2].append(time.monotonic())


def _reap(ctl, runs):
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        STATE["servers"].forget(pid)
        for pids, done, ended in runs.values():
            if pid in pids and pid not in done:
                done[pid] = _status(status)
                if pid == pids[0]:
                    ended.append(time.monotonic())
    for run_id, (pids, done, ended) in list(runs.items()):
        if ended and time.monotonic() - ended[0] >= GRACE_S:
            _kill(pids, done)  # the first proc ended: the run is over
        if len(done) == len(pids):
            del runs[run_id]
            reply = {"op": "exit", "id": run_id, "status": [done[p] for p in pids]}
            ctl.send(json.dumps(reply).encode())


def main():
    cfg = json.loads(sys.argv[1])
    STATE["cfg"] = cfg
    ctl = socket.socket(fileno=cfg["ctl_fd"])
    STATE["ctl"] = ctl
    STATE["servers"] = _judges.Servers()
    # Every program checks `life` (EOF once this process is gone); the write end is never used.
    STATE["life"], STATE["life_w"] = os.pipe()
    try:
        if cfg["isolation"] == "unshare":
            enter_box(cfg)
        if cfg["isolation"] != "none":
            STATE["own_pid_ns"] = os.open("/proc/self/ns/pid", os.O_RDONLY)
        elif cfg["isolation"] == "none":
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        sys.path[:] = [cfg["code_dir"]] + [p for p in sys.path if p] + list(cfg["site_dirs"])
        for name in cfg["preload"]:
            with contextlib.suppress(ImportError):
                __import__(name)
        import site

        import _harness  # noqa: F401
        import _judge  # noqa: F401

        site.setquit()  # exit() and quit(), which -S leaves out

        if cfg["seccomp"]:
            STATE["filter"] = seccomp_filter()
    except BaseException as err:
        ctl.send(json.dumps({"op": "error", "message": f"{type(err).__name__}: {err}"}).encode())
        os._exit(SETUP_FAILED)
    import gc

    # Everything imported so far is shared by every program: keep the collector off it,
    # or the first collection in each fork touches (and so copies) all of its pages.
    gc.freeze()
    ctl.send(b'{"op": "ready"}')
    serve(ctl)
    os._exit(0)


if __name__ == "__main__":
    main()
