"""Kernel calls of the sandbox init (stdlib only): namespaces, mounts, prctl, and the
read-only view the "unshare" backend builds for itself (bubblewrap builds the same one
for the "bwrap" backend, from the same spec: or1/rewards/sandbox_view.py)."""

import ctypes
import errno
import os
import signal

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x4000000, 0x8000000
CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWUSER = 0x20000000, 0x40000000, 0x10000000
CLONE_NEWCGROUP = 0x2000000
NEW_NAMESPACES = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
LAST_CAP = 63
_LIBC = ctypes.CDLL(None, use_errno=True)


def check(ret, what):
    """Raise OSError (with errno) for a failed libc call."""
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(text):
    return None if text is None else os.fsencode(text)


def mount(src, dst, fstype, flags, data=None):
    check(
        _LIBC.mount(_b(src), _b(dst), _b(fstype), ctypes.c_ulong(flags), _b(data)), f"mount {dst}"
    )


def unshare(flags):
    check(_LIBC.unshare(ctypes.c_int(flags)), "unshare")


def prctl(option, value):
    check(_LIBC.prctl(option, ctypes.c_ulong(value), 0, 0, 0), f"prctl {option}")


# --------------------------------------------------------------------------- the view


def bind_ro(src, dst):
    if os.path.isdir(src):
        os.makedirs(dst, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        open(dst, "a").close()
    mount(src, dst, None, MS_BIND | MS_REC)
    mount(None, dst, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _build_view(cfg):
    """Isolation "unshare": what bubblewrap does for the other backend, from the same spec."""
    new = cfg["root_dir"]
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for kind, a, b in cfg["view"]:
        target = new + (b or a)
        if kind == "ro":
            bind_ro(a, target)
        elif kind == "symlink":
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(a, target)
        elif kind == "dir":
            os.makedirs(target, mode=0o755, exist_ok=True)
            os.chmod(target, 0o755)
        elif kind == "dev":
            _bind_dev(new + "/dev")
        elif kind == "proc":
            os.makedirs(target, exist_ok=True)
            mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        elif kind == "tmpfs":
            os.makedirs(target, exist_ok=True)
            mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=1777")
    os.chdir(new)
    nr = SYS_PIVOT_ROOT.get(os.uname().machine)
    if nr is None:
        raise OSError(errno.ENOSYS, f"pivot_root: unknown machine {os.uname().machine}")
    check(_LIBC.syscall(nr, b".", b"."), "pivot_root")
    check(_LIBC.umount2(b".", MNT_DETACH), "umount old root")
    os.chdir("/")
    mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _bind_dev(dev):
    os.makedirs(dev + "/shm", exist_ok=True)
    for name in ("null", "zero", "full", "random", "urandom"):
        open(f"{dev}/{name}", "a").close()
        mount(f"/dev/{name}", f"{dev}/{name}", None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0")):
        os.symlink(target, f"{dev}/{name}")
    os.symlink("/proc/self/fd/1", f"{dev}/stdout")
    os.symlink("/proc/self/fd/2", f"{dev}/stderr")


def enter_box(cfg):
    """Isolation "unshare": new namespaces, then this process's child becomes the init.

    Not as root (cfg["userns"]): a new user namespace first, in which the caller's uid and
    gid are 0 (the only ids an unprivileged user may map), so that the init may build the
    view and the programs' namespaces; each program then enters a user namespace of its
    own (`enter_program_userns`)."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if cfg.get("userns"):
        uid, gid = os.geteuid(), os.getegid()
        unshare(CLONE_NEWUSER | NEW_NAMESPACES | CLONE_NEWCGROUP)
        _write_id_maps(uid, gid, inside=0)
    else:
        unshare(NEW_NAMESPACES | CLONE_NEWCGROUP)
    pid = os.fork()
    if pid:
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _build_view(cfg)


def _write_id_maps(uid, gid, *, inside):
    """Map `inside` to this process's uid and gid of the parent user namespace (after
    unshare(CLONE_NEWUSER); setgroups is denied, as an unprivileged map requires)."""
    for name, text in (
        ("setgroups", "deny"),
        ("uid_map", f"{inside} {uid} 1"),
        ("gid_map", f"{inside} {gid} 1"),
    ):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


PROGRAM_UID = 1000  # a program's uid inside its own user namespace (userns mode)


def enter_program_userns():
    """Userns mode: a user namespace of this program's own, in which it is PROGRAM_UID
    (mapped to the init's 0, i.e. the caller outside) with no capabilities and an empty
    bounding set. RLIMIT_NPROC counts per user namespace, so its process limit is its own."""
    unshare(CLONE_NEWUSER)
    _write_id_maps(0, 0, inside=PROGRAM_UID)
    for cap in range(LAST_CAP + 1):
        if _LIBC.prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0) != 0:
            break
    os.setresgid(PROGRAM_UID, PROGRAM_UID, PROGRAM_UID)
    os.setresuid(PROGRAM_UID, PROGRAM_UID, PROGRAM_UID)
    # It was never uid 0 in this namespace, so the uid change cleared nothing: the
    # capabilities a namespace's creator holds in it are dropped here.
    clear_capabilities()


def clear_capabilities():
    """Empty effective, permitted and inheritable capability sets (capset(2))."""
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this task
    data = (ctypes.c_uint32 * 6)()  # two {effective, permitted, inheritable}, all zero
    check(_LIBC.capset(header, data), "capset")


def libc():
    """The C library (for calls os does not have)."""
    return _LIBC
