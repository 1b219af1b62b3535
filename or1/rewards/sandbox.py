"""Run untrusted Python programs (model-written code) in an isolated child process.

`run_python(source, ...)` writes the program into a fresh, empty temporary directory and
runs it with the current interpreter in isolated mode (`-I -S -B`; the caller's
site-packages are on sys.path, .pth files are not run), through a small bootstrap
(`_boot.py`) that applies the limits below before any untrusted code runs.
`OR1_SANDBOX_PYTHON=/path/to/python` runs programs with another interpreter instead
(stdlib only); a world-readable one lets the rlimit backend use a throwaway uid when the
caller's Python lives in a private directory such as /root/.pyenv.
One of two backends is chosen once per process by a probe (it runs a tiny program);
the choice is logged once on the "or1.rewards" logger (INFO for bubblewrap, WARNING for
the fallback). `OR1_SANDBOX_BACKEND=bwrap|rlimit` forces one.

Guaranteed by both backends (kernel-enforced):
- own session and process group; wall-clock limit enforced by the caller, which then
  SIGKILLs the whole group and reaps the direct child;
- hard rlimits set before any untrusted code runs: CPU seconds, address space (memory),
  size of any written file (an oversized write fails with EFBIG), open files, no core
  dumps, processes (RLIMIT_NPROC; the kernel does not apply it to uid 0, see below);
- a fresh temporary working directory, deleted afterwards (also on timeout);
- a scrubbed environment: only PATH, HOME/TMPDIR (= the working directory), LANG/LC_ALL
  and a random per-run token; nothing is inherited from the caller (no API keys);
- captured stdout is capped (the program is killed beyond the cap), stderr is truncated;
- if the caller dies, the program is killed (PR_SET_PDEATHSIG / --die-with-parent).

bwrap backend (bubblewrap present and working): new mount, pid, network, ipc and uts
namespaces; the root filesystem is an empty tmpfs with read-only binds of /usr and of the
Python installation (stdlib, venv site-packages) only, a private /dev, /proc and a
size-capped /tmp; the working directory is the only writable host path, so ~/.ssh, the
working tree and other processes' /proc entries do not exist for the program. No network
(only an unconfigured loopback). Killing bubblewrap tears down the pid namespace, so
daemons cannot outlive the run, and the program cannot see or signal the caller. As
root, bubblewrap runs without a user namespace and the bootstrap drops to a throwaway
uid (so RLIMIT_NPROC contains fork bombs); only if that mode fails does root use a user
namespace, where RLIMIT_NPROC does not apply (fork bombs then last until the wall limit).

rlimit backend (fallback; logged as a warning): the program runs on the host
filesystem. What it adds:
- as root, when the interpreter is readable by other users (the probe checks; see
  OR1_SANDBOX_PYTHON): a throwaway uid per run (allocated with lock files), so file
  permissions protect root-owned files such as ~/.ssh, signals to the caller fail with
  EPERM, RLIMIT_NPROC stops fork bombs, and every leftover process of that uid is killed
  after the run;
- as root, when the kernel allows it: a private network namespace (unshare(2)), so no
  network at all;
- otherwise processes that escape the process group (setsid daemons) are found by
  session id or by the per-run token in their environment and killed; a program that
  both calls setsid() and clears its environment can outlive the run.
Without bubblewrap and without a throwaway uid, nothing at the kernel level stops the
program from reading or writing files the caller can, from killing the caller's
processes or (without a network namespace) from opening sockets, and as root nothing
limits its process count: only the guard does. Disk use outside the size-capped files
is bounded only by the time limits. Use bubblewrap for untrusted code at scale.

The guard (both backends, `guard=True`, the default): an audit hook installed by the
bootstrap: no sockets, no subprocess/fork/exec/posix_spawn, no ctypes calls, no signals
to other processes, writes only inside the working directory, reads only from the
Python installation, /usr and a few device and /proc files. It is a Python-level
tripwire against accidents and naive misuse, NOT a security boundary: C extensions or
interpreter tricks can bypass it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import shutil
import site
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from or1.errors import RewardError
from or1.rewards.sandbox_host import (
    count_tasks,
    now_ticks,
    pump,
    reap,
    uid_slot,
    workspace,
    write_file,
)

logger = logging.getLogger("or1.rewards")

SETUP_FAILED = 125  # exit status of the bootstrap when it cannot set up the sandbox
BOOT_NAME = "_or1_boot.py"
MAIN_NAME = "main.py"
SANDBOX_DIR = "/sandbox"  # the working directory as seen inside bubblewrap
TMPFS_BYTES = 64 * 2**20  # size of the private /tmp inside bubblewrap
_SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives")
_EXTRA_READABLE = (
    "/usr/lib",
    "/usr/lib64",
    "/usr/share",
    "/etc/localtime",
    "/dev/urandom",
    "/dev/random",
    "/dev/zero",
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/sys/devices/system/cpu",
)
_PROBE_SOURCE = "import fractions, heapq, os\nprint('ok', os.getuid())\n"


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed run.

    Attributes:
        wall_s: wall-clock seconds before the whole process group is killed.
        cpu_s: CPU seconds (RLIMIT_CPU, rounded up).
        memory_mb: address-space limit (RLIMIT_AS), MiB.
        file_size_mb: largest file the program may write (RLIMIT_FSIZE), MiB.
        nproc: processes/threads the program may create (RLIMIT_NPROC).
        nofile: open file descriptors (RLIMIT_NOFILE).
        stdout_bytes: captured stdout beyond this kills the program.
        stderr_bytes: stderr is truncated to this many bytes.
    """

    wall_s: float = 10.0
    cpu_s: float = 10.0
    memory_mb: int = 2048
    file_size_mb: int = 64
    nproc: int = 64
    nofile: int = 256
    stdout_bytes: int = 64 * 2**20
    stderr_bytes: int = 64 * 2**10


@dataclass(frozen=True)
class SandboxResult:
    """Outcome of `run_python`.

    Attributes:
        returncode: exit status (negative: killed by that signal; under bubblewrap an
            exit status 129-192 is read as a signal too); None if we killed it.
        stdout: captured standard output (complete unless status is not "exited").
        stderr: the first `Limits.stderr_bytes` of standard error.
        status: "exited", "timeout" (wall limit), "output_limit" (stdout cap) or
            "stopped" (the `on_line` callback asked to stop).
        wall_s: elapsed wall time.
        backend: the backend that ran it, e.g. "bwrap" or "rlimit".
    """

    returncode: int | None
    stdout: bytes
    stderr: bytes
    status: str
    wall_s: float
    backend: str

    @property
    def ok(self) -> bool:
        """True if the program ran to completion and exited with status 0."""
        return self.status == "exited" and self.returncode == 0


@dataclass(frozen=True)
class Backend:
    """How programs are isolated (chosen by `get_backend`).

    Attributes:
        name: "bwrap" or "rlimit".
        userns: bwrap only: create a user namespace (always when not root).
        drop_uid: run the program as a throwaway uid (only when the caller is root).
        unshare_net: rlimit only: private network namespace via unshare(2) (root).
    """

    name: str
    userns: bool = False
    drop_uid: bool = False
    unshare_net: bool = False

    def describe(self) -> str:
        """One line for the log."""
        parts = [self.name]
        if self.name == "bwrap":
            parts.append("user namespace" if self.userns else "no user namespace")
        if self.drop_uid:
            parts.append("throwaway uid")
        if self.name == "rlimit":
            parts.append("private network namespace" if self.unshare_net else "shared network")
        return ", ".join(parts)


_BACKENDS: dict[tuple[str, str], Backend] = {}
_PROBE_LOCK = threading.Lock()


def run_python(
    source: str,
    *,
    stdin: bytes = b"",
    files: Mapping[str, str | bytes] | None = None,
    limits: Limits | None = None,
    guard: bool = True,
    backend: str | Backend | None = None,
    on_line: Callable[[bytes], bool] | None = None,
) -> SandboxResult:
    """Run a Python program in the sandbox and capture its output.

    Args:
        source: the program (runs as `__main__` from `main.py` in the working directory).
        stdin: bytes fed to standard input.
        files: extra files to create in the working directory (name -> content).
        limits: resource limits (default `Limits()`).
        guard: install the audit-hook guard (see the module docstring).
        backend: "bwrap", "rlimit", a `Backend`, or None for the probed default.
        on_line: called with each complete stdout line (without the newline) as it
            arrives; returning False kills the program (status "stopped").

    Returns:
        A `SandboxResult`. Never raises for anything the program does.

    Example:
        >>> run_python("print(6 * 7)").stdout
        b'42\\n'
    """
    be = backend if isinstance(backend, Backend) else get_backend(backend)
    return _run(
        be,
        source,
        stdin=stdin,
        files=files or {},
        limits=limits or Limits(),
        guard=guard,
        on_line=on_line,
    )


def get_backend(name: str | None = None) -> Backend:
    """The backend for `name` ("auto", "bwrap", "rlimit"; None reads OR1_SANDBOX_BACKEND).

    Probed once per process, name and interpreter (OR1_SANDBOX_PYTHON); "auto" prefers
    bubblewrap and falls back to the rlimit backend with a warning. Raises RewardError
    for an unknown name or when "bwrap" is forced but does not work.
    """
    name = name or os.environ.get("OR1_SANDBOX_BACKEND") or "auto"
    if name not in ("auto", "bwrap", "rlimit"):
        raise RewardError(
            f"unknown sandbox backend {name!r}", hint="use 'auto', 'bwrap' or 'rlimit'."
        )
    key = (name, _interpreter())  # e.g. a throwaway uid needs a world-readable Python
    with _PROBE_LOCK:
        if key not in _BACKENDS:
            _BACKENDS[key] = _choose(name)
        return _BACKENDS[key]


def _choose(name: str) -> Backend:
    if name in ("auto", "bwrap"):
        found, reason = _first_working(_bwrap_candidates())
        if found is not None:
            logger.info("code sandbox: %s", found.describe())
            return found
        if name == "bwrap":
            raise RewardError(
                f"the bubblewrap sandbox was requested but does not work: {reason}",
                hint="install bubblewrap (apt-get install bubblewrap) and allow user "
                "namespaces, or unset OR1_SANDBOX_BACKEND.",
            )
    found, _ = _first_working(_rlimit_candidates())
    chosen = found or Backend("rlimit")
    if name == "auto":
        logger.warning(
            "code sandbox: bubblewrap is not usable here (%s); falling back to the rlimit "
            "sandbox (%s): no filesystem isolation, see or1/rewards/sandbox.py",
            reason,
            chosen.describe(),
        )
    else:
        logger.info("code sandbox: %s", chosen.describe())
    return chosen


def _bwrap_candidates() -> list[Backend]:
    if shutil.which("bwrap") is None:
        return []
    if os.geteuid() == 0:
        return [Backend("bwrap", drop_uid=True), Backend("bwrap", userns=True)]
    return [Backend("bwrap", userns=True)]


def _rlimit_candidates() -> list[Backend]:
    if os.geteuid() != 0:
        return [Backend("rlimit")]
    return [
        Backend("rlimit", drop_uid=True, unshare_net=True),
        Backend("rlimit", drop_uid=True),
        Backend("rlimit", unshare_net=True),
        Backend("rlimit"),
    ]


def _first_working(candidates: list[Backend]) -> tuple[Backend | None, str]:
    reason = "bwrap not found on PATH"
    for cand in candidates:
        try:
            res = _run(
                cand,
                _PROBE_SOURCE,
                stdin=b"",
                files={},
                limits=Limits(wall_s=20.0),
                guard=True,
                on_line=None,
            )
        except (OSError, RuntimeError) as err:
            reason = f"{cand.describe()}: {err}"
            continue
        words = res.stdout.split()
        if (
            res.ok
            and len(words) == 2
            and words[0] == b"ok"
            and not (cand.drop_uid and words[1] == b"0")
        ):
            return cand, ""
        detail = res.stderr.decode(errors="replace").strip().splitlines()[-1:] or [res.status]
        reason = f"{cand.describe()}: {detail[0]}"
    return None, reason


# --------------------------------------------------------------------------- one run


def _run(
    be: Backend,
    source: str,
    *,
    stdin: bytes,
    files: Mapping[str, str | bytes],
    limits: Limits,
    guard: bool,
    on_line: Callable[[bytes], bool] | None,
) -> SandboxResult:
    with uid_slot(be.drop_uid) as uid, workspace(uid) as (root, work):
        write_file(work / BOOT_NAME, _boot_source())
        write_file(work / MAIN_NAME, source)
        for name, content in files.items():
            write_file(work / _safe_name(name), content)
        write_file(root / "stdin", stdin)
        token = secrets.token_hex(12)
        argv, env, cwd = _command(be, root, work, limits, guard=guard, uid=uid, token=token)
        start = time.monotonic()
        start_ticks = now_ticks()
        with open(root / "stdin", "rb") as stdin_file:
            proc = subprocess.Popen(
                argv,
                stdin=stdin_file,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        try:
            out, err, status = pump(
                proc,
                start + limits.wall_s,
                stdout_bytes=limits.stdout_bytes,
                stderr_bytes=limits.stderr_bytes,
                on_line=on_line,
            )
        finally:
            reap(
                proc,
                uid=uid,
                token=token,
                start_ticks=start_ticks,
                hunt_escapees=be.name == "rlimit",
            )
        returncode = proc.returncode if status == "exited" else None
        if returncode in (SETUP_FAILED, 1) and err.startswith((b"or1 sandbox", b"bwrap: ")):
            # The sandbox, not the program, failed: every reward would silently be 0.
            logger.error("sandbox: %s", err[:300].decode(errors="replace").strip())
        if be.name == "bwrap" and returncode is not None and 128 < returncode <= 128 + 64:
            returncode = 128 - returncode  # bwrap reports death by signal N as 128 + N
        return SandboxResult(returncode, out, err, status, time.monotonic() - start, be.name)


def _command(
    be: Backend,
    root: Path,
    work: Path,
    limits: Limits,
    *,
    guard: bool,
    uid: int | None,
    token: str,
) -> tuple[list[str], dict[str, str], Path]:
    inside = SANDBOX_DIR if be.name == "bwrap" else str(work)
    nproc = limits.nproc
    if be.name == "rlimit" and uid is None and os.geteuid() != 0:
        nproc += count_tasks(os.getuid())  # RLIMIT_NPROC counts all tasks of this uid
    cfg = {
        "workdir": inside,
        "main": f"{inside}/{MAIN_NAME}",
        "limits": {
            "cpu": max(1, int(-(-limits.cpu_s // 1))),
            "as": limits.memory_mb * 2**20,
            "fsize": limits.file_size_mb * 2**20,
            "nproc": nproc,
            "nofile": limits.nofile,
        },
        "guard": guard,
        "site_dirs": _site_dirs(),
        "readable": sorted(set(_python_roots()) | set(_EXTRA_READABLE)),
        "uid": uid,
        "gid": uid,
        "unshare_net": be.unshare_net,
        "pdeathsig": be.name == "rlimit",
        "ppid": os.getpid(),
    }
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": inside,
        "TMPDIR": inside,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "OR1_SANDBOX_TOKEN": token,
    }
    argv = [_interpreter(), "-I", "-S", "-B", f"{inside}/{BOOT_NAME}", json.dumps(cfg)]
    if be.name == "rlimit":
        return argv, env, work
    return _bwrap_prefix(be, work, env) + argv, {"PATH": env["PATH"]}, root


def _bwrap_prefix(be: Backend, work: Path, env: Mapping[str, str]) -> list[str]:
    args = [
        "bwrap",
        "--die-with-parent",
        "--new-session",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
    ]
    if be.userns:
        args.append("--unshare-user")
    if be.drop_uid:  # the bootstrap needs these to switch to the throwaway uid
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    args += ["--ro-bind", "/usr", "/usr"]
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    # The private /tmp comes before the Python binds: an installation or venv under /tmp
    # (a CI checkout, say) is bound on top of it instead of being hidden by it.
    args += ["--perms", "1777", "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp"]
    roots = [r for r in _python_roots() if r != "/usr" and not r.startswith("/usr/")]
    # Parents of the binds must be traversable by the throwaway uid (bwrap makes them 0700).
    parents = {str(p) for r in roots for p in Path(r).parents if str(p) not in ("/", "/tmp")}
    for parent in sorted(parents):
        args += ["--perms", "0755", "--dir", parent]
    for path in roots:
        args += ["--ro-bind", path, path]
    for path in _ETC_FILES:
        args += ["--ro-bind-try", path, path]
    args += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--bind",
        str(work),
        SANDBOX_DIR,
        "--chdir",
        SANDBOX_DIR,
        "--clearenv",
    ]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return [*args, "--"]


def _safe_name(name: str) -> str:
    if not name or "/" in name or name.startswith(".") or name in (BOOT_NAME, MAIN_NAME):
        raise RewardError(f"bad sandbox file name {name!r}", hint="use a plain file name.")
    return name


@functools.lru_cache(maxsize=1)
def _boot_source() -> str:
    return Path(__file__).with_name("_boot.py").read_text(encoding="utf-8")


def _interpreter() -> str:
    """The Python that runs sandboxed programs: OR1_SANDBOX_PYTHON, else the current one."""
    return os.path.realpath(os.environ.get("OR1_SANDBOX_PYTHON") or sys.executable)


def _site_dirs() -> list[str]:
    """site-packages offered to programs: the caller's, if they run the same interpreter."""
    if _interpreter() != os.path.realpath(sys.executable):
        return []
    return _own_site_dirs()


@functools.lru_cache(maxsize=1)
def _own_site_dirs() -> list[str]:
    return [d for d in site.getsitepackages() if os.path.isdir(d)]


def _python_roots() -> list[str]:
    """Directories the program needs to read: the installation(s) and site-packages."""
    return _roots_of(_interpreter(), tuple(_site_dirs()))


@functools.lru_cache(maxsize=8)
def _roots_of(interpreter: str, site_dirs: tuple[str, ...]) -> list[str]:
    paths = {os.path.dirname(os.path.dirname(interpreter)), *site_dirs}
    if interpreter == os.path.realpath(sys.executable):
        paths |= {sys.prefix, sys.base_prefix}
    paths = {os.path.realpath(p) for p in paths if os.path.isdir(p)}
    return sorted(p for p in paths if not any(p.startswith(q + "/") for q in paths))
