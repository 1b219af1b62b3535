"""The forked child of the sandbox init becomes the program (stdlib only, plus pyseccomp
when seccomp is on; no or1 imports; imported by the init, _boot.py).

`run_child` runs in the child the init forked for one proc, as root and pid 1 of a
fresh pid namespace: it enters fresh mount, network, ipc and uts namespaces, mounts a
fresh tmpfs working directory, /tmp and a /proc of its own namespace, drops the
capability bounding set, then becomes the program: the run's throwaway uid/gid (which
clears every capability), no_new_privs, the parent-death signal, hard rlimits, a scrubbed
environment, the seccomp filter, every other descriptor closed, and only then the
program itself, in-process (_harness.py or _judge.py). It never returns.
"""

import ctypes
import errno
import json
import os
import select
import signal

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
    enter_program_userns,
    libc,
    mount,
    prctl,
    unshare,
)

SETUP_FAILED = 125  # exit status of a child whose sandbox could not be set up
WORK = "/sandbox"
# The init's state (set by _boot.main; a forked child reads its copy): the control
# socket, the config, the seccomp filter, the judge servers, the `life` pipe, ...
STATE = {"ctl": None, "wake": None, "filter": None, "cfg": None}


def seccomp_filter():
    """The filter every program loads last (built once, in the init)."""
    import pyseccomp as sc

    deny = sc.ERRNO(errno.EPERM)
    f = sc.SyscallFilter(sc.ALLOW)
    for name in STATE["cfg"]["deny_syscalls"]:
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


def report_setup_failure(fd, err):
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


def run_child(proc, fds, link, server=None):
    """The child forked for a proc (root; pid 1 of its fresh pid namespace): the other
    fresh namespaces and mounts, then it becomes the program itself (`_program`). When it
    ends or is killed, the kernel kills whatever else it started in that namespace.
    (As pid 1 it ignores signals sent from inside its namespace for which it has no
    handler; the CPU limit is a SIGKILL: soft = hard, see _set_limits.)"""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.close(STATE["life_w"])  # only the init holds it: EOF means the init is gone
    _check_parent(STATE["life"])
    with os.fdopen(fds[0], "rb") as f:
        job = json.loads(f.read())
    if STATE["cfg"]["isolation"] != "none":
        unshare(NEW_NAMESPACES & ~CLONE_NEWPID)
        # (userns mode: the tmpfs belongs to the init's uid 0, the program's PROGRAM_UID)
        owner = 0 if STATE["cfg"].get("userns") else proc["uid"]
        _fresh_mounts(owner, proc["limits"])
        for cap in range(LAST_CAP + 1):
            if libc().prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0) != 0:
                break
    _program(proc, job, fds, link, server)


def _program(proc, job, fds, link, server=None):
    """Become the program: drop everything, then run it (never returns)."""
    cfg, limits = STATE["cfg"], proc["limits"]
    os.setsid()
    workdir = WORK if cfg["isolation"] != "none" else job["workdir"]
    _stdio(job, fds)
    _drop_privileges(proc["uid"])  # (before descriptor 3 is taken: `life` may be it)
    if link is not None:
        os.dup2(link.fileno(), 3, inheritable=False)
    if server is not None:  # a judge server's control socket (_judges.py)
        os.dup2(server.fileno(), _judges.CTL_FD, inheritable=False)
    os.chdir(workdir)  # after the uid change: the directory is the program's, mode 0700
    for obj in (STATE["ctl"], link, server, *STATE["servers"].sockets()):
        if obj is not None:
            obj.detach()  # the objects must not close descriptors the program reuses
    os.closerange(_judges.CTL_FD + 1 if server else 4 if link is not None else 3, 1 << 16)
    _set_limits(limits)
    _write_files(job)
    _fresh_interpreter_state(workdir)
    if STATE["filter"] is not None:
        STATE["filter"].load()
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
    if STATE["cfg"].get("userns"):
        enter_program_userns()
    elif uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    # Set again after the uid change (changing credentials clears it), and make sure
    # the init did not die before it was set.
    _check_parent(STATE["life"])
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
    os.environ.update(STATE["cfg"]["env"])
    if STATE["cfg"]["isolation"] == "none":  # no private /tmp in the weak mode
        os.environ.update(HOME=workdir, TMPDIR=workdir)
    random.seed()
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    # Oversized writes fail with EFBIG (an exception in the program) instead of killing it.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.set_wakeup_fd(-1)
