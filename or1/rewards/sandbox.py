"""Run untrusted Python programs (model-written code) behind a kernel boundary.

Every program is hostile. `run_python(source, ...)` runs one in a fork of a sandbox init
(`_boot.py`; host side in sandbox_host.py), so no interpreter start is paid per program.
The backend is chosen once per process by a probe that checks what a program actually
gets, and logged on the "or1.rewards" logger; `OR1_SANDBOX_BACKEND=bwrap|unshare|rlimit`
forces one.

Strong backends ("bwrap": bubblewrap builds the init's box; "unshare": the init builds
the same box itself with unshare(2), mount(2) and pivot_root(2); both need root, as CI and
the dev container run). Every program, kernel-enforced:
- runs as an unprivileged throwaway uid/gid (no capabilities, bounding set empty,
  no_new_privs), distinct from the caller's and from concurrent programs' uids;
- in fresh pid, mount, network, ipc and uts namespaces of its own: it sees only its own
  processes in /proc, has no network (not even the host's loopback or abstract unix
  sockets), no SysV IPC of others; when it ends or is killed, the kernel kills every
  process it started (daemons cannot outlive it);
- sees a read-only view of only /usr, /bin-/lib, the Python installation and offered
  site-packages, three /etc files and the sandbox's code; writable only its own fresh
  tmpfs working directory (/sandbox) and /tmp (size-capped); no host /tmp, $HOME,
  /root, /run, checkout or host /proc;
- under a seccomp filter (libseccomp via pyseccomp): no execve (so no /bin/sh, however
  it is started), ptrace, process_vm_*, pidfd_*, mount, namespaces, keyrings, bpf, perf,
  io_uring, module or clock changes (sandbox_view.DENY_SYSCALLS); other architectures'
  syscalls kill it;
- with hard rlimits (CPU, address space, file size, processes, open files, no core), a
  wall-clock limit, capped stdout/stderr, and a scrubbed environment (PATH, HOME, TMPDIR,
  LANG, LC_ALL only: nothing of the caller's, no API keys);
- and it dies with the caller (bubblewrap --die-with-parent / parent-death signals).

Weak mode ("rlimit"; refused unless OR1_SANDBOX_INSECURE=1, for a trusted single-user
machine): the same init and harness on the host itself, with the rlimits, wall limit,
output caps, scrubbed environment and a fresh temporary working directory, and nothing
else: the program runs as the caller (as root: root), reads and writes what the caller
can, can signal the caller's processes, reach the network and leave daemons behind.

Where no strong backend works and the weak mode is not allowed, `get_backend` raises one
RewardError that says why for each backend; code rewards refuse to run.

The guard (`guard=True`, the default; _guard.py) is an audit hook installed right before
the program runs: a tripwire that makes naive misuse fail loudly. Nothing depends on it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from or1.errors import RewardError
from or1.rewards import sandbox_host as host
from or1.rewards import sandbox_uids as uids
from or1.rewards import sandbox_view as view
from or1.rewards.sandbox_host import Outcome, Proc, ZygoteError

logger = logging.getLogger("or1.rewards")

SETUP_FAILED = 125  # exit status of a program whose sandbox could not be set up
INSECURE_ENV = "OR1_SANDBOX_INSECURE"  # "1" allows the weak rlimit mode
USERNS_HINT = (
    "as a non-root user the unshare backend needs unprivileged user namespaces: "
    "sysctl user.max_user_namespaces > 0, kernel.unprivileged_userns_clone=1 (Debian "
    "kernels that have it), kernel.apparmor_restrict_unprivileged_userns=0 (Ubuntu 23.10+)"
)
STRONG = ("bwrap", "unshare")
_PROBE_SOURCE = """
import json, os
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
print(json.dumps({
    "uid": os.getuid(),
    "seccomp": status["Seccomp"].strip(),
    "nnp": status["NoNewPrivs"].strip(),
    "caps": [int(status[k], 16) for k in ("CapEff", "CapPrm", "CapBnd", "CapAmb")],
    "pids": [p for p in os.listdir("/proc") if p.isdigit()],
    "tmp": os.listdir("/tmp"),
}))
"""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed program.

    Attributes:
        wall_s: wall-clock seconds before the program (and all it started) is killed.
        cpu_s: CPU seconds (RLIMIT_CPU, rounded up).
        memory_mb: address-space limit (RLIMIT_AS), MiB.
        file_size_mb: largest file the program may write (RLIMIT_FSIZE), MiB.
        nproc: processes/threads the program's uid may have (RLIMIT_NPROC).
        nofile: open file descriptors (RLIMIT_NOFILE).
        stdout_bytes: captured stdout beyond this kills the program.
        stderr_bytes: stderr is truncated to this many bytes.
        tmpfs_mb: size of each of its writable tmpfs (working directory, /tmp), MiB.
    """

    wall_s: float = 10.0
    cpu_s: float = 10.0
    memory_mb: int = 2048
    file_size_mb: int = 64
    nproc: int = 64
    nofile: int = 256
    stdout_bytes: int = 64 * 2**20
    stderr_bytes: int = 64 * 2**10
    tmpfs_mb: int = 64


@dataclass(frozen=True)
class SandboxResult:
    """Outcome of `run_python`.

    Attributes:
        returncode: exit status (negative: killed by that signal); None if we killed it.
        stdout: captured standard output (complete unless status is not "exited").
        stderr: the first `Limits.stderr_bytes` of standard error.
        status: "exited", "timeout" (wall limit), "output_limit" (stdout cap) or
            "stopped" (the `on_line` callback asked to stop).
        wall_s: elapsed wall time.
        backend: the backend that ran it: "bwrap", "unshare" or "rlimit".
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
        name: "bwrap", "unshare" (strong) or "rlimit" (weak, insecure).
        isolated: kernel isolation as in the module docstring (False: the weak mode).
    """

    name: str
    isolated: bool = True

    @property
    def isolation(self) -> str:
        """The init's isolation mode (see _boot.py)."""
        return self.name if self.isolated else "none"

    def describe(self) -> str:
        """One line for the log."""
        if self.isolated:
            how = "bubblewrap" if self.name == "bwrap" else "unshare(2) + pivot_root(2)"
            return f"{self.name} ({how}; fresh namespaces, throwaway uid, seccomp per program)"
        return "rlimit (INSECURE weak mode: rlimits only, no isolation from the host)"


_BACKENDS: dict[tuple[str, str, bool], Backend] = {}
_PROBE_LOCK = threading.Lock()


def get_backend(name: str | None = None) -> Backend:
    """The backend for `name` ("auto", "bwrap", "unshare", "rlimit"; None reads
    OR1_SANDBOX_BACKEND). "auto" prefers bwrap, then unshare. Probed once per process.

    Raises:
        RewardError: unknown name; a forced backend does not work; no strong backend
            works and the weak mode is not allowed (OR1_SANDBOX_INSECURE=1).
    """
    name = name or os.environ.get("OR1_SANDBOX_BACKEND") or "auto"
    if name not in ("auto", *STRONG, "rlimit"):
        raise RewardError(
            f"unknown sandbox backend {name!r}", hint="use 'auto', 'bwrap', 'unshare' or 'rlimit'."
        )
    insecure = os.environ.get(INSECURE_ENV) == "1"
    key = (name, view.interpreter(), insecure)
    with _PROBE_LOCK:
        if key not in _BACKENDS:
            _BACKENDS[key] = _choose(name, insecure=insecure)
        return _BACKENDS[key]


def _choose(name: str, *, insecure: bool) -> Backend:
    reasons = []
    for cand in STRONG if name == "auto" else (name,) if name in STRONG else ():
        reason = _probe(Backend(cand))
        if not reason:
            logger.info("code sandbox: %s", Backend(cand).describe())
            return Backend(cand)
        reasons.append(f"{cand}: {reason}")
    why = "; ".join(reasons) or "the weak rlimit mode was asked for"
    if not insecure:
        raise RewardError(
            f"no sandbox backend can isolate programs here ({why}), so code rewards refuse to run",
            hint="run as root with bubblewrap installed (apt-get install bubblewrap "
            f"libseccomp2), or {USERNS_HINT}; on a trusted single-user machine only, "
            f"{INSECURE_ENV}=1 allows the weak rlimit mode (no isolation from the host).",
        )
    weak = Backend("rlimit", isolated=False)
    reason = _probe(weak)
    if reason:
        raise RewardError(f"even the weak sandbox mode does not work: {reason}")
    logger.warning("code sandbox: %s (%s; %s=1)", weak.describe(), why, INSECURE_ENV)
    return weak


def _probe(be: Backend) -> str:
    """Why programs do not get what `be` promises ("" if they do)."""
    if be.name == "bwrap" and shutil.which("bwrap") is None:
        return "bwrap not found on PATH"
    if be.name == "bwrap" and os.geteuid() != 0:
        return "needs root (the programs' throwaway uids are created as root)"
    reason = _probe_run(be)
    if reason and be.name == "unshare" and os.geteuid() != 0:
        return f"{reason} ({USERNS_HINT})"
    return reason


def _probe_run(be: Backend) -> str:
    """Run the probe program on `be`: what is wrong with what it got ("" if nothing)."""
    try:
        limits = Limits(wall_s=30.0)
        res = _run(be, [_main_proc(be, _PROBE_SOURCE, b"", {}, limits, guard=False)], limits)
    except (OSError, RuntimeError) as err:
        return str(err)
    out = res.outputs[0]
    try:
        got = json.loads(out[0])
    except ValueError:
        tail = out[1].decode(errors="replace").strip().splitlines()[-1:] or [res.status]
        return tail[0]
    if not be.isolated:
        return ""
    problems = [
        "runs as root" if got["uid"] == 0 else "",
        "no seccomp filter" if got["seccomp"] != "2" else "",
        "no no_new_privs" if got["nnp"] != "1" else "",
        "keeps capabilities" if any(got["caps"]) else "",
        "sees other processes" if len(got["pids"]) > 1 else "",
        "sees a shared /tmp" if got["tmp"] else "",
    ]
    return ", ".join(p for p in problems if p)


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
        source: the program (runs as `__main__` from `main.py` in its working directory).
        stdin: bytes fed to standard input.
        files: extra files to create in the working directory (name -> content).
        limits: resource limits (default `Limits()`).
        guard: install the audit-hook tripwire (see the module docstring).
        backend: a backend name, a `Backend`, or None for the probed default.
        on_line: called with each complete stdout line (without the newline) as it
            arrives; returning False kills the program (status "stopped").

    Returns:
        A `SandboxResult`. Never raises for anything the program does.

    Raises:
        RewardError: no backend may run programs here (see `get_backend`).
        RuntimeError: the sandbox itself failed (not the program).

    Example:
        >>> run_python("print(6 * 7)").stdout
        b'42\\n'
    """
    be = backend if isinstance(backend, Backend) else get_backend(backend)
    limits = limits or Limits()
    res = _run(
        be, [_main_proc(be, source, stdin, files or {}, limits, guard=guard)], limits, on_line
    )
    (code, sig), (out, err) = res.exits[0], res.outputs[0]
    returncode = (code if sig is None else -sig) if res.status == "exited" else None
    if returncode == SETUP_FAILED and err.startswith(b"or1 sandbox"):
        logger.error("sandbox: %s", err[:300].decode(errors="replace").strip())
    return SandboxResult(returncode, out, err, res.status, res.wall_s, be.name)


def run_procs(
    procs: Sequence[Proc],
    *,
    limits: Limits,
    backend: Backend | None = None,
    on_line: Callable[[bytes], bool] | None = None,
) -> Outcome:
    """Run a judge + candidate pair (or any procs) in one run; see sandbox_host.Zygote.run."""
    return _run(backend or get_backend(), procs, limits, on_line)


def proc_limits(limits: Limits, backend: Backend | None = None) -> dict[str, int]:
    """The rlimits a proc gets, as the init reads them (backend None: the default one)."""
    nproc = limits.nproc
    if os.geteuid() != 0 and not (backend or get_backend()).isolated:
        # the weak mode as a normal user: RLIMIT_NPROC counts all our tasks (the strong
        # ones count per throwaway uid, or per user namespace)
        nproc += uids.count_tasks(os.getuid())
    return {
        "cpu": max(1, int(-(-limits.cpu_s // 1))),
        "as": limits.memory_mb * 2**20,
        "fsize": limits.file_size_mb * 2**20,
        "nproc": nproc,
        "nofile": limits.nofile,
        "tmpfs_mb": limits.tmpfs_mb,
    }


def _main_proc(
    be: Backend,
    source: str,
    stdin: bytes,
    files: Mapping[str, str | bytes],
    limits: Limits,
    *,
    guard: bool,
) -> Proc:
    encoded = {}
    for name, content in files.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        encoded[_safe_name(name)] = data.hex()
    job = {"source": source, "stdin": stdin.hex(), "files": encoded}
    return Proc("main", job, proc_limits(limits, be), guard=guard)


def _run(
    be: Backend,
    procs: Sequence[Proc],
    limits: Limits,
    on_line: Callable[[bytes], bool] | None = None,
) -> Outcome:
    zygote = host.acquire(be.isolation, seccomp=be.isolated)
    try:
        return zygote.run(
            procs,
            wall_s=limits.wall_s,
            stdout_bytes=limits.stdout_bytes,
            stderr_bytes=limits.stderr_bytes,
            on_line=on_line,
        )
    except ZygoteError:
        zygote.close()
        raise
    finally:
        host.release(zygote)


def _safe_name(name: str) -> str:
    if not name or "/" in name or name.startswith(".") or name == "main.py":
        raise RewardError(f"bad sandbox file name {name!r}", hint="use a plain file name.")
    return name
