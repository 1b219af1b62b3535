"""Audit-hook guard: a Python-level tripwire inside sandboxed programs (stdlib only).

Installed (optionally) right before untrusted code runs. It blocks sockets, process
creation, ctypes calls, signals to other processes, writes outside the working directory
and reads outside an allow-list, and turns them into PermissionError. It is NOT a
security boundary: a program can switch it off (it lives in the program's own process)
and C code bypasses it. The kernel-level isolation of or1/rewards/sandbox.py is the
boundary; the guard only makes accidents and naive misuse fail early and loudly.
"""

import os
import sys

BLOCKED_EVENTS = frozenset(
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
PATH_EVENTS = {
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


def _under(path, roots):
    return any(path == r.rstrip("/") or path.startswith(r) for r in roots)


def _real(path):
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    return os.path.realpath(path)


class Guard:
    """The audit hook: see the module docstring."""

    def __init__(self, writable, readable):
        self.work = tuple(os.path.realpath(p) + "/" for p in writable)
        self.readable = self.work + tuple(p.rstrip("/") + "/" for p in readable)
        self.me = os.getpid()
        self.proc_self = ("/proc/self/", f"/proc/{self.me}/", "/proc/thread-self/")

    def __call__(self, event, args):
        if event in BLOCKED_EVENTS:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            self.check_open(*args[:3])
        elif event == "os.kill" and args[0] not in (self.me, 0):
            raise PermissionError("sandbox: os.kill of another process is not allowed")
        elif event in PATH_EVENTS:
            self.check_paths(event, args[: PATH_EVENTS[event]])

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


def install(writable, readable):
    """Add the audit hook (irreversible for this process) and remove fork_exec.

    writable: directories the program may write in (its working directory first).
    readable: directories it may also read.
    """
    sys.addaudithook(Guard(writable, readable))
    # _posixsubprocess.fork_exec has no audit event: remove it (multiprocessing uses it).
    try:
        import _posixsubprocess
    except ImportError:
        return
    _posixsubprocess.fork_exec = _no_fork_exec
