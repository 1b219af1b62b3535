"""Sandbox bootstrap: the first code that runs inside every sandboxed Python program.

Copied into the sandbox's working directory by `or1.rewards.sandbox` and started as
`python -I -S -B _or1_boot.py CONFIG_JSON`. Standard library only, no or1 imports.
Before any untrusted code runs it, in order:

1. enters a private network namespace (rlimit backend as root, when the probe found it
   works),
2. drops to a throwaway uid/gid (root only, when the backend says so),
3. asks the kernel to SIGKILL it if its parent (the caller) dies (rlimit backend;
   bubblewrap does this with --die-with-parent),
4. sets hard rlimits (CPU, address space, file size, processes, open files, no core),
5. puts the allowed site-packages on sys.path (-S skips .pth processing on purpose),
6. installs the audit-hook guard (optional; a Python-level tripwire, not a boundary),
7. runs the target file as `__main__`.

Exit status 125 means the bootstrap itself failed (the sandbox could not be set up).
"""

import json
import os
import resource
import signal
import sys

SETUP_FAILED = 125
_CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG = 1

_BLOCKED_EVENTS = frozenset(
    {
        "socket.__new__",
        "socket.connect",
        "socket.bind",
        "socket.getaddrinfo",
        "subprocess.Popen",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.fork",
        "os.forkpty",
        "os.killpg",
        "pty.spawn",
        "ctypes.dlsym",
        "ctypes.dlsym/handle",
        "ctypes.call_function",
        "ctypes.cdata",
    }
)
# Events whose path arguments must all lie inside the working directory.
_PATH_EVENTS = {
    "os.remove": 1,
    "os.rmdir": 1,
    "os.rename": 2,
    "os.link": 2,
    "os.symlink": 2,
    "os.truncate": 1,
    "os.chmod": 1,
    "os.chown": 1,
    "os.mkdir": 1,
    "os.utime": 1,
    "os.setxattr": 1,
    "os.removexattr": 1,
    "shutil.rmtree": 1,
    "shutil.copyfile": 2,
    "shutil.copytree": 2,
    "shutil.move": 2,
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _fail(message):
    sys.stderr.write(f"or1 sandbox setup failed: {message}\n")
    sys.stderr.flush()
    os._exit(SETUP_FAILED)


def _libc():
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _isolate(cfg):
    if cfg["unshare_net"] and _libc().unshare(_CLONE_NEWNET) != 0:
        _fail("unshare(CLONE_NEWNET)")
    if cfg["uid"] is not None:
        try:
            os.setgroups([])
            os.setgid(cfg["gid"])
            os.setuid(cfg["uid"])
        except OSError as err:
            _fail(f"drop to uid {cfg['uid']}: {err}")
    # After the uid change: changing credentials clears the parent-death signal.
    if cfg["pdeathsig"]:
        _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != cfg["ppid"]:
            os._exit(SETUP_FAILED)  # the caller is already gone


def _set_limits(limits):
    def hard(which, value):
        resource.setrlimit(which, (value, value))

    hard(resource.RLIMIT_CORE, 0)
    # Soft limit -> SIGXCPU (kills: default action), hard limit one second later -> SIGKILL.
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu"], limits["cpu"] + 1))
    hard(resource.RLIMIT_AS, limits["as"])
    hard(resource.RLIMIT_FSIZE, limits["fsize"])
    hard(resource.RLIMIT_NPROC, limits["nproc"])
    hard(resource.RLIMIT_NOFILE, limits["nofile"])
    # Oversized writes fail with EFBIG (an exception in the program) instead of killing it.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _under(path, roots):
    return any(path == r.rstrip("/") or path.startswith(r) for r in roots)


def _real(path):
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    return os.path.realpath(path)


class _Guard:
    """Audit hook: no sockets, no new processes, no writes outside the working directory,
    reads only from an allow-list, no signals to other processes. Best effort only."""

    def __init__(self, cfg):
        self.work = (os.path.realpath(cfg["workdir"]) + "/",)
        self.readable = self.work + tuple(p.rstrip("/") + "/" for p in cfg["readable"])
        self.me = os.getpid()
        self.proc_self = ("/proc/self/", f"/proc/{self.me}/", "/proc/thread-self/")

    def __call__(self, event, args):
        if event in _BLOCKED_EVENTS:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            self.check_open(*args[:3])
        elif event == "os.kill" and args[0] != self.me:
            raise PermissionError("sandbox: os.kill of another process is not allowed")
        elif event in _PATH_EVENTS:
            self.check_paths(event, args[: _PATH_EVENTS[event]])

    def check_open(self, path, mode, flags):
        if not isinstance(path, (str, bytes)):
            return  # an already-open file descriptor
        real = _real(path)
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(
            isinstance(flags, int) and flags & _WRITE_FLAGS
        )
        if writing:
            if not (_under(real, self.work) or real == "/dev/null"):
                raise PermissionError(f"sandbox: writing {path!r} is not allowed")
        elif not (_under(real, self.readable) or _under(real, self.proc_self)):
            raise PermissionError(f"sandbox: reading {path!r} is not allowed")

    def check_paths(self, event, paths):
        for path in paths:
            if isinstance(path, (str, bytes)) and not _under(_real(path), self.work):
                raise PermissionError(f"sandbox: {event} outside the working directory")


def _no_fork_exec(*args, **kwargs):
    raise PermissionError("sandbox: process creation is not allowed")


def _install_guard(cfg):
    sys.addaudithook(_Guard(cfg))
    # _posixsubprocess.fork_exec has no audit event: remove it (multiprocessing uses it).
    try:
        import _posixsubprocess
    except ImportError:
        return
    _posixsubprocess.fork_exec = _no_fork_exec


def main():
    cfg = json.loads(sys.argv[1])
    _isolate(cfg)
    try:
        _set_limits(cfg["limits"])
    except (OSError, ValueError) as err:
        _fail(f"rlimits: {err}")
    sys.path[:] = [p for p in sys.path if p] + list(cfg["site_dirs"])
    target = cfg["main"]
    with open(target, encoding="utf-8") as f:
        source = f.read()
    if cfg["guard"]:
        _install_guard(cfg)
    del cfg
    sys.argv = [target]
    code = compile(source, target, "exec")
    exec(code, {"__name__": "__main__", "__file__": target, "__builtins__": __builtins__})


if __name__ == "__main__":
    main()
