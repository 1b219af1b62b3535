"""What a sandboxed program sees: the read-only view, its environment and the syscalls it
may not make (one spec, used by both strong backends: bubblewrap builds the view from
`bwrap_args`, the "unshare" backend's init builds it from `view_spec` itself).

The view: an empty root (read-only) with read-only binds of /usr, the /bin, /lib, ...
links or directories, three /etc files the loader needs, the Python installation and the
offered site-packages, and the sandbox's own code at /or1; a private /dev (null, zero,
full, random, urandom), /proc and /tmp; /sandbox, where each program gets a fresh tmpfs
(and a fresh /tmp and /proc).
Nothing else of the host exists there: no /tmp, $HOME, /root (beyond the path to a Python
installed under it), /run, /etc/passwd, the project's checkout or another process.
"""

from __future__ import annotations

import ast
import atexit
import functools
import os
import shutil
import site
import sys
import tempfile
from pathlib import Path

CODE_MOUNT = "/or1"  # the sandbox's own code, read-only
SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives")
EXTRA_READABLE = ("/usr/lib", "/usr/lib64", "/usr/share", "/etc/localtime", "/dev", "/proc/self")
CODE_FILES = (
    *("_boot.py", "_box.py", "_harness.py", "_judge.py", "_judges.py", "_test_plan.py"),
    *("_wire.py", "_guard.py", "_become.py"),
)
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
# Denied with EPERM (besides clone with namespace flags, clone3 -> ENOSYS, and TIOCSTI):
# no new programs, no tracing or signalling by pidfd, no mounts or namespaces, no kernel
# keyrings (they outlive processes of a uid), no bpf/perf/io_uring (large kernel attack
# surface; io_uring also bypasses seccomp), nothing that changes the machine.
DENY_SYSCALLS = (  # noqa: SIM905 (one long list reads better as words)
    "execve execveat ptrace process_vm_readv process_vm_writev kcmp pidfd_open "
    "pidfd_getfd pidfd_send_signal mount umount2 pivot_root chroot unshare setns move_mount "
    "open_tree fsopen fsmount fsconfig fspick mount_setattr keyctl add_key request_key bpf "
    "perf_event_open userfaultfd io_uring_setup io_uring_enter io_uring_register kexec_load "
    "kexec_file_load init_module finit_module delete_module reboot swapon swapoff syslog acct "
    "settimeofday clock_settime clock_adjtime adjtimex open_by_handle_at name_to_handle_at "
    "iopl ioperm quotactl lookup_dcookie fanotify_init vhangup sethostname setdomainname "
    "mbind migrate_pages move_pages set_mempolicy personality uselib"
).split()
# Modules a program commonly imports, imported once by the init (a program's import is
# then free); the import prefix of code_tests.py is covered.
PRELOAD = (  # noqa: SIM905
    "abc array atexit base64 bisect collections copy dataclasses datetime decimal enum "
    "fractions functools hashlib heapq io itertools json math numbers operator random re "
    "resource statistics string struct textwrap time traceback types typing"
).split()


def interpreter() -> str:
    """The Python that runs sandboxed programs: OR1_SANDBOX_PYTHON, else the current one."""
    return os.path.realpath(os.environ.get("OR1_SANDBOX_PYTHON") or sys.executable)


def site_dirs() -> list[str]:
    """site-packages offered to programs: the caller's, if they run the same interpreter."""
    if interpreter() != os.path.realpath(sys.executable):
        return []
    return _own_site_dirs()


@functools.lru_cache(maxsize=1)
def _own_site_dirs() -> list[str]:
    return [d for d in site.getsitepackages() if os.path.isdir(d)]


def python_roots() -> list[str]:
    """Directories the program needs to read: the installation(s) and site-packages."""
    return _roots_of(interpreter(), tuple(site_dirs()))


@functools.lru_cache(maxsize=8)
def _roots_of(python: str, sites: tuple[str, ...]) -> list[str]:
    paths = {os.path.dirname(os.path.dirname(python)), *sites}
    if python == os.path.realpath(sys.executable):
        paths.add(sys.base_prefix)
    paths = {os.path.realpath(p) for p in paths if os.path.isdir(p)}
    return sorted(p for p in paths if not any(p.startswith(q + "/") for q in paths))


def readable() -> list[str]:
    """What the guard lets a program read (it can see only that anyway on strong backends)."""
    return sorted({*python_roots(), *EXTRA_READABLE, CODE_MOUNT})


def view_spec(code_dir: str) -> list[tuple[str, str, str]]:
    """(kind, source, target) steps: kind in ro, symlink, dir, dev, proc, tmpfs."""
    spec = [("ro", "/usr", "")]
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            spec.append(("symlink", os.readlink(path), path))
        elif os.path.isdir(path):
            spec.append(("ro", path, ""))
    spec += [("tmpfs", "/tmp", ""), ("dir", "/sandbox", "")]
    roots = [r for r in python_roots() if r != "/usr" and not r.startswith("/usr/")]
    # Parents of the binds must be traversable by the throwaway uid (bwrap makes them 0700).
    parents = {str(p) for r in roots for p in Path(r).parents if str(p) not in ("/", "/tmp")}
    spec += [("dir", p, "") for p in sorted(parents)]
    spec += [("ro", r, "") for r in roots]
    spec += [("ro", p, "") for p in ETC_FILES if os.path.exists(p)]
    spec += [("ro", code_dir, CODE_MOUNT), ("dev", "/dev", ""), ("proc", "/proc", "")]
    return spec


def bwrap_args(code_dir: str) -> list[str]:
    """bubblewrap's command line for the init's box (namespaces, view, capabilities)."""
    args = ["bwrap", "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net"]
    args += ["--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--cap-drop", "ALL"]
    # The init needs these to give each program fresh namespaces, mounts and a uid; every
    # program loses all of them (uid change, bounding set dropped) before it runs.
    for cap in ("SYS_ADMIN", "SETUID", "SETGID", "SETPCAP", "KILL"):
        args += ["--cap-add", f"CAP_{cap}"]
    steps = {"tmpfs": "--tmpfs", "dev": "--dev", "proc": "--proc"}
    for kind, src, dst in view_spec(code_dir):
        if kind == "ro":
            args += ["--ro-bind", src, dst or src]
        elif kind == "symlink":
            args += ["--symlink", src, dst]
        elif kind == "dir":
            args += ["--perms", "0755", "--dir", src]
        elif kind == "tmpfs":
            args += ["--perms", "1777", "--size", str(2**20), "--tmpfs", src]
        else:
            args += [steps[kind], src]
    return [*args, "--remount-ro", "/", "--clearenv", "--setenv", "PATH", ENV["PATH"], "--"]


def preload_modules(prefix: str) -> list[str]:
    """PRELOAD plus every module the import prefix names."""
    names = set(PRELOAD)
    for node in ast.walk(ast.parse(prefix)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return sorted(names)


@functools.lru_cache(maxsize=1)
def code_dir() -> str:
    """A private directory with the sandbox's code (bound read-only at /or1)."""
    path = Path(tempfile.mkdtemp(prefix="or1-sbx-code-"))
    os.chmod(path, 0o755)
    here = Path(__file__).parent
    sources = [here / name for name in CODE_FILES]
    try:
        import pyseccomp

        sources.append(Path(pyseccomp.__file__))
    except (ImportError, RuntimeError):  # RuntimeError: libseccomp is not installed
        pass
    for src in sources:
        shutil.copyfile(src, path / src.name)
        os.chmod(path / src.name, 0o644)
    atexit.register(shutil.rmtree, path, True)
    return str(path)
