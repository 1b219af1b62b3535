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
  in-process. The init reaps it and reports its exit status.

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
import ctypes
import errno
import json
import os
import select
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I: not on the path
import _judges
from _box import (
    CLONE_NEWCGROUP,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    LAST_CAP,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_REC,
    NEW_NAMESPACES,
    PR_CAPBSET_DROP,
    PR_SET_DUMPABLE,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    check,
    enter_box,
    enter_program_userns,
    libc,
    mount,
    prctl,
    unshare,
)

SETUP_FAILED = 125  # exit status of a child whose sandbox could not be set up
# When a run's first proc ends, the others get this long to end by themselves before
# they are killed, so that their own exit status (e.g. a candidate's os._exit(0)) is seen.
GRACE_S = 0.1
WORK = "/sandbox"
_STATE = {"ctl": None, "wake": None, "filter": None, "cfg": None}


# --------------------------------------------------------------------------- a program


def _seccomp_filter():
    import pyseccomp as sc

    deny = sc.ERRNO(errno.EPERM)
    f = sc.SyscallFilter(sc.ALLOW)
    for name in _STATE["cfg"]["deny_syscalls"]:
        try:
            f.add_rule(deny, name)
        except (OSError, RuntimeError, ValueError):
            continue  # not a syscall of this architecture / libseccomp version
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # libc falls back to clone(2)
    for bit in range(32):
        flag = 1 << bit
        if flag & (NEW_NAMESPACES | CLONE_NEWUSER | CLONE_NEWCGROUP):
            f.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(deny, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, 0x5412))  # TIOCSTI
    return f


def _report(fd, err):
    """Say why a sandbox could not be set up (on the program's stderr, else fd 2)."""
    text = f"or1 sandbox setup failed: {type(err).__name__}: {err}\n".encode()
    for target in (fd, 2):
        try:
            os.write(target, text)
            return
        except OSError:
            continue


def _check_parent(life):
    """Die with the init; `life` reads EOF once the init is gone (a program cannot use
    getppid(): as pid 1 of its namespace it reads 0)."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if select.select([life], [], [], 0)[0]:
        os._exit(SETUP_FAILED)  # the init is gone: nobody would stop this program


def _init(proc, fds, link, server=None):
    """The child forked for a proc (root; pid 1 of its fresh pid namespace): the other
    fresh namespaces and mounts, then it becomes the program itself (`_program`). When it
    ends or is killed, the kernel kills whatever else it started in that namespace.
    (As pid 1 it ignores signals sent from inside its namespace for which it has no
    handler; the CPU limit is a SIGKILL: soft = hard, see _set_limits.)"""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.close(_STATE["life_w"])  # only the init holds it: EOF means the init is gone
    _check_parent(_STATE["life"])
    with os.fdopen(fds[0], "rb") as f:
        job = json.loads(f.read())
    if _STATE["cfg"]["isolation"] != "none":
        unshare(NEW_NAMESPACES & ~CLONE_NEWPID)
        # (userns mode: the tmpfs belongs to the init's uid 0, the program's PROGRAM_UID)
        owner = 0 if _STATE["cfg"].get("userns") else proc["uid"]
        _fresh_mounts(owner, proc["limits"])
        for cap in range(LAST_CAP + 1):
            if libc().prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0) != 0:
                break
    _program(proc, job, fds, link, server)


def _program(proc, job, fds, link, server=None):
    """Become the program: drop everything, then run it (never returns)."""
    cfg, limits = _STATE["cfg"], proc["limits"]
    os.setsid()
    workdir = WORK if cfg["isolation"] != "none" else job["workdir"]
    _stdio(job, fds)
    _drop_privileges(proc["uid"])  # (before descriptor 3 is taken: `life` may be it)
    if link is not None:
        os.dup2(link.fileno(), 3, inheritable=False)
    if server is not None:  # a judge server's control socket (_judges.py)
        os.dup2(server.fileno(), _judges.CTL_FD, inheritable=False)
    os.chdir(workdir)  # after the uid change: the directory is the program's, mode 0700
    for obj in (_STATE["ctl"], link, server, *_STATE["servers"].sockets()):
        if obj is not None:
            obj.detach()  # the objects must not close descriptors the program reuses
    os.closerange(_judges.CTL_FD + 1 if server else 4 if link is not None else 3, 1 << 16)
    _set_limits(limits)
    _write_files(job)
    _fresh_interpreter_state(workdir)
    if _STATE["filter"] is not None:
        _STATE["filter"].load()
    writable = [workdir, "/tmp"] if cfg["isolation"] != "none" else [workdir]
    if server is not None:
        _judges.serve(job, proc, workdir, writable, cfg["readable"])
    runner = __import__("_judge" if proc["kind"] == "judge" else "_harness")
    runner.run(job, proc, workdir, writable, cfg["readable"])


def _fresh_mounts(uid, limits):
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    size = limits["tmpfs_mb"]
    opts = f"size={size}m,mode=0700,uid={uid},gid={uid}" if uid is not None else f"size={size}m"
    mount("tmpfs", WORK, "tmpfs", MS_NOSUID | MS_NODEV, opts)
    # (/dev/shm stays the view's root-owned, read-only directory: nothing to share there.)
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={size}m,mode=1777")
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    check(libc().sethostname(b"sandbox", 7), "sethostname")


def _stdio(job, fds):
    data = bytes.fromhex(job.get("stdin", ""))
    memfd = os.memfd_create("stdin", 0)
    os.write(memfd, data)
    os.lseek(memfd, 0, os.SEEK_SET)
    for src, dst in ((memfd, 0), (fds[1], 1), (fds[2], 2)):
        os.dup2(src, dst)
        os.close(src)


def _drop_privileges(uid):
    if _STATE["cfg"].get("userns"):
        enter_program_userns()
    elif uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    # Set again after the uid change (changing credentials clears it), and make sure
    # the init did not die before it was set.
    _check_parent(_STATE["life"])
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    prctl(PR_SET_DUMPABLE, 0)


def _set_limits(limits):
    import resource

    def hard(which, value):
        resource.setrlimit(which, (value, value))

    hard(resource.RLIMIT_CORE, 0)
    # SIGKILL at the limit (soft = hard): pid 1 of a namespace ignores the soft SIGXCPU.
    hard(resource.RLIMIT_CPU, limits["cpu"])
    hard(resource.RLIMIT_AS, limits["as"])
    hard(resource.RLIMIT_FSIZE, limits["fsize"])
    hard(resource.RLIMIT_NPROC, limits["nproc"])
    hard(resource.RLIMIT_NOFILE, limits["nofile"])


def _write_files(job):
    for name, hexdata in job.get("files", {}).items():
        with open(name, "wb") as f:
            f.write(bytes.fromhex(hexdata))


def _fresh_interpreter_state(workdir):
    """What a new interpreter would have: own environment, random seed, signal handlers."""
    import random

    os.environ.clear()
    os.environ.update(_STATE["cfg"]["env"])
    if _STATE["cfg"]["isolation"] == "none":  # no private /tmp in the weak mode
        os.environ.update(HOME=workdir, TMPDIR=workdir)
    random.seed()
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    # Oversized writes fail with EFBIG (an exception in the program) instead of killing it.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.set_wakeup_fd(-1)


# --------------------------------------------------------------------------- serving


def _start(msg, fds):
    """Start a run: fork one child per proc, each into a fresh pid namespace, except a
    judge that an idle judge server takes (_judges.py); returns their pids."""
    procs = msg["procs"]
    links = socket.socketpair() if len(procs) == 2 else None
    pids = []
    servers = _STATE["servers"]
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
        _init(proc, mine, link, server[1] if server is not None else None)
    except BaseException as err:
        _report(mine[2], err)
    finally:
        os._exit(SETUP_FAILED)


def _fork_into_new_pid_namespace():
    """os.fork(), the child being pid 1 of a new pid namespace (isolated backends).

    unshare(CLONE_NEWPID) sets where this process's next child goes; it may only be
    called while that is still this process's own namespace, hence the setns first."""
    if _STATE["cfg"]["isolation"] == "none":
        return os.fork()
    check(libc().setns(_STATE["own_pid_ns"], CLONE_NEWPID), "setns")
    unshare(CLONE_NEWPID)
    try:
        return os.fork()
    finally:
        if os.getpid() != 1:  # (the parent) later forks go back to its own namespace
            check(libc().setns(_STATE["own_pid_ns"], CLONE_NEWPID), "setns")


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
    _STATE["wake"] = wake_r
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    while True:
        waiting = any(r[2] for r in runs.values())
        watched = [ctl, wake_r, *_STATE["servers"].sockets()]
        readable, _, _ = select.select(watched, [], [], GRACE_S / 4 if waiting else None)
        for sock in readable:
            if sock not in (ctl, wake_r):
                _judge_done(runs, _STATE["servers"].answer(sock))
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
        _STATE["servers"].forget(pid)
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
    _STATE["cfg"] = cfg
    ctl = socket.socket(fileno=cfg["ctl_fd"])
    _STATE["ctl"] = ctl
    _STATE["servers"] = _judges.Servers()
    # Every program checks `life` (EOF once this process is gone); the write end is never used.
    _STATE["life"], _STATE["life_w"] = os.pipe()
    try:
        if cfg["isolation"] == "unshare":
            enter_box(cfg)
        if cfg["isolation"] != "none":
            _STATE["own_pid_ns"] = os.open("/proc/self/ns/pid", os.O_RDONLY)
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
            _STATE["filter"] = _seccomp_filter()
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
