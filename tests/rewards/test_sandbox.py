"""The sandbox itself, on each backend: limits, cleanup, isolation, the guard.

Tests with `guard=False` check what the kernel enforces; where a backend does not
promise a property without the guard (see or1/rewards/sandbox.py), that case is skipped
with the reason and the guard's version of the test covers it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from or1.errors import RewardError
from or1.rewards import sandbox
from or1.rewards.sandbox import Limits, run_python

from .conftest import STRAY_MARKER, stray_processes

FAST = Limits(wall_s=5.0, cpu_s=5.0)


def kernel_isolated(be: sandbox.Backend) -> bool:
    """Does the kernel (not just the guard) keep the program from the caller's files,
    processes and signals? bwrap always; the rlimit backend only with a throwaway uid."""
    return be.name == "bwrap" or be.drop_uid


def test_runs_a_program_and_captures_output(backend):
    res = run_python(
        "import sys\nprint(input()[::-1])\nprint('err', file=sys.stderr)\nsys.exit(3)",
        stdin=b"olleh\n",
        backend=backend,
        limits=FAST,
    )
    assert (res.status, res.returncode, res.stdout, res.stderr) == (
        "exited",
        3,
        b"hello\n",
        b"err\n",
    )
    assert res.backend == backend.name and not res.ok


def test_environment_is_scrubbed(backend, monkeypatch):
    monkeypatch.setenv("OR1_FAKE_SECRET", "hunter2-api-key")
    res = run_python(
        "import os, json\nprint(json.dumps(dict(os.environ)))",
        backend=backend,
        guard=False,
        limits=FAST,
    )
    env = json.loads(res.stdout)
    assert "hunter2" not in res.stdout.decode()
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "OR1_SANDBOX_TOKEN", "PWD"}


@pytest.fixture
def temp_root(monkeypatch):
    """A private TMPDIR for the sandbox's directories (traversable by a throwaway uid)."""
    root = Path(tempfile.mkdtemp(prefix="or1-test-"))
    os.chmod(root, 0o711)
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    yield root
    shutil.rmtree(root)


def test_working_directory_is_fresh_and_deleted(backend, temp_root):
    program = "import os\nprint(sorted(os.listdir('.')))\nopen('junk.txt', 'w').write('x' * 1000)"
    for _ in range(2):
        res = run_python(program, files={"data.txt": "hi"}, backend=backend, limits=FAST)
        assert res.ok, res.stderr
        assert res.stdout.decode().strip() == "['_or1_boot.py', 'data.txt', 'main.py']"
    leftovers = [p.name for p in temp_root.iterdir() if p.name.startswith("or1-sbx-")]
    assert leftovers == []


def test_wall_time_limit_kills_the_group(backend):
    start = time.monotonic()
    res = run_python("import time\ntime.sleep(60)", backend=backend, limits=Limits(wall_s=1.0))
    assert res.status == "timeout" and res.returncode is None
    assert time.monotonic() - start < 4


def test_cpu_time_limit(backend):
    res = run_python("while True: pass", backend=backend, limits=Limits(wall_s=20, cpu_s=1))
    assert res.status == "exited" and res.returncode in (-9, -24)  # SIGKILL / SIGXCPU
    assert res.wall_s < 6


def test_memory_limit(backend):
    res = run_python(
        "x = bytearray(10 * 2**30)\nprint('allocated')", backend=backend, guard=False, limits=FAST
    )
    assert res.returncode == 1 and b"MemoryError" in res.stderr and res.stdout == b""


def test_file_size_limit(backend):
    program = "with open('big', 'wb') as f:\n    f.write(b'x' * (8 * 2**20))\nprint('wrote')"
    res = run_python(program, backend=backend, guard=False, limits=Limits(wall_s=5, file_size_mb=1))
    assert res.returncode == 1 and b"File too large" in res.stderr


def test_stdout_cap_stops_a_flood(backend):
    start = time.monotonic()
    res = run_python(
        "import sys\nwhile True: sys.stdout.write('x' * 65536)",
        backend=backend,
        limits=Limits(wall_s=20, stdout_bytes=2**20),
    )
    assert res.status == "output_limit" and len(res.stdout) <= 2**20 + 2**16
    assert time.monotonic() - start < 5


def test_on_line_can_stop_the_program(backend):
    seen: list[bytes] = []

    def on_line(line: bytes) -> bool:
        seen.append(line)
        return len(seen) < 3

    res = run_python(
        "import itertools\nfor i in itertools.count(): print(i, flush=True)",
        backend=backend,
        limits=FAST,
        on_line=on_line,
    )
    assert res.status == "stopped" and seen == [b"0", b"1", b"2"]


def test_daemon_does_not_outlive_the_run(backend):
    program = f"""
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)",
                                  "{STRAY_MARKER}"])
    os._exit(0)
time.sleep(0.5)
print("spawned")
"""
    res = run_python(program, backend=backend, guard=False, limits=FAST)
    assert res.stdout == b"spawned\n", res.stderr
    deadline = time.monotonic() + 3
    while stray_processes(STRAY_MARKER) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stray_processes(STRAY_MARKER) == []


def test_fork_bomb_is_contained(backend):
    if os.geteuid() == 0 and not backend.drop_uid:
        pytest.skip(
            "RLIMIT_NPROC does not apply to uid 0: in this configuration only the "
            "guard stops fork bombs (see test_code.py)"
        )
    program = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    )
    start = time.monotonic()
    res = run_python(program, backend=backend, guard=False, limits=Limits(wall_s=1.5, nproc=32))
    assert res.status == "timeout" and time.monotonic() - start < 8
    assert subprocess.run(["true"], check=False).returncode == 0  # the host can still fork


def _serve_once(server: socket.socket) -> None:
    try:
        conn, _ = server.accept()
        conn.sendall(b"leaked\n")
        conn.close()
    except OSError:
        pass


@pytest.fixture
def tcp_server():
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)
    threading.Thread(target=_serve_once, args=(server,), daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def _connect_program(port: int) -> str:
    return (
        "import socket\n"
        f"s = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "print(s.recv(100).decode().strip())"
    )


def test_no_network_at_kernel_level(backend, tcp_server):
    if not (backend.name == "bwrap" or backend.unshare_net):
        pytest.skip("no network namespace in this configuration: only the guard blocks sockets")
    res = run_python(_connect_program(tcp_server), backend=backend, guard=False, limits=FAST)
    assert res.returncode == 1 and b"leaked" not in res.stdout
    assert b"ConnectionRefused" in res.stderr or b"unreachable" in res.stderr


def test_guard_blocks_sockets(backend, tcp_server):
    res = run_python(_connect_program(tcp_server), backend=backend, limits=FAST)
    assert res.returncode == 1 and b"socket" in res.stderr and b"leaked" not in res.stdout


@pytest.fixture
def victim():
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("guard", [True, False])
def test_cannot_signal_the_caller_or_other_processes(backend, victim, guard):
    if not guard and not kernel_isolated(backend):
        pytest.skip("same uid, same pid namespace: only the guard stops os.kill here")
    program = f"""
import os, signal
for pid in (os.getppid(), {victim.pid}, {os.getpid()}):
    try:
        os.kill(pid, signal.SIGKILL)
        print("killed", pid)
    except OSError as err:
        print(type(err).__name__)
"""
    res = run_python(program, backend=backend, guard=guard, limits=FAST)
    assert res.ok, res.stderr
    assert b"killed %d" % victim.pid not in res.stdout
    assert victim.poll() is None  # the victim and this test process are alive


@pytest.mark.parametrize("guard", [True, False])
def test_cannot_read_host_files(backend, tmp_path, guard):
    if not guard and not kernel_isolated(backend):
        pytest.skip("the rlimit backend as root without a throwaway uid sees the host files")
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE-KEY-MATERIAL")
    os.chmod(secret, 0o600)
    os.chmod(tmp_path, 0o700)
    program = f"""
import os
found = []
for path in ({str(secret)!r}, os.path.expanduser("~/.ssh/id_rsa"), "/root/.ssh/id_rsa",
             "/proc/{os.getpid()}/environ"):
    try:
        found.append(open(path).read())
    except OSError:
        pass
print("PRIVATE-KEY" in "".join(found))
"""
    res = run_python(program, backend=backend, guard=guard, limits=FAST)
    assert res.stdout == b"False\n", res.stderr


@pytest.mark.parametrize("guard", [True, False])
def test_cannot_write_or_delete_outside_the_workdir(backend, tmp_path, guard):
    if not guard and not kernel_isolated(backend):
        pytest.skip("the rlimit backend as root without a throwaway uid can write host files")
    tree = tmp_path / "tree"
    tree.mkdir()
    canary = tree / "keep.txt"
    canary.write_text("keep")
    os.chmod(tmp_path, 0o700)
    program = f"""
import os, shutil
for action in (lambda: open({str(tree / "new.txt")!r}, "w").write("pwned"),
               lambda: os.remove({str(canary)!r}),
               lambda: shutil.rmtree({str(tree)!r}),
               lambda: os.symlink({str(canary)!r}, "link") or open("link", "w").write("x")):
    try:
        action()
    except OSError as err:
        print(type(err).__name__)
"""
    run_python(program, backend=backend, guard=guard, limits=FAST)
    assert canary.read_text() == "keep"
    assert sorted(p.name for p in tree.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize(
    ("program", "needle"),
    [
        ("import subprocess\nsubprocess.run(['true'])", b"subprocess.Popen"),
        ("import os\nos.system('true')", b"os.system"),
        ("import os\nos.fork()", b"os.fork"),
        (
            "import multiprocessing as m\nm.get_context('spawn').Process(target=print).start()",
            b"not allowed",
        ),
        ("import ctypes\nctypes.CDLL(None).getpid()", b"ctypes.dlsym"),
        ("import os\nos.link('/etc/hostname', 'h')", b"outside the working directory"),
    ],
)
def test_guard_blocks_process_creation_and_escapes(backend, program, needle):
    res = run_python(program, backend=backend, limits=FAST)
    assert res.returncode == 1 and needle in res.stderr, res.stderr


def test_guard_still_allows_ordinary_programs(backend):
    program = (
        "import json, math, heapq, fractions, decimal, re, itertools, collections, tempfile\n"
        "with tempfile.TemporaryFile() as f:\n    f.write(b'ok')\n"
        "import threading\nt = threading.Thread(target=print, args=('thread',))\n"
        "t.start(); t.join()\nprint(math.comb(10, 3))"
    )
    res = run_python(program, backend=backend, limits=FAST)
    assert res.ok and res.stdout == b"thread\n120\n", res.stderr


def test_numpy_is_importable(backend):
    pytest.importorskip("numpy")
    if os.environ.get("OR1_SANDBOX_PYTHON"):
        pytest.skip("another interpreter runs the programs: the caller's venv is not offered")
    res = run_python(
        "import numpy as np\nprint(int(np.arange(5).sum()))",
        backend=backend,
        limits=Limits(wall_s=20),
    )
    assert res.stdout == b"10\n", res.stderr


def test_backend_names():
    with pytest.raises(RewardError, match="unknown sandbox backend"):
        sandbox.get_backend("docker")
    assert sandbox.get_backend("rlimit").name == "rlimit"


def test_auto_prefers_bubblewrap_and_logs_once(monkeypatch, caplog):
    monkeypatch.setattr(sandbox, "_BACKENDS", {})
    monkeypatch.delenv("OR1_SANDBOX_BACKEND", raising=False)
    with caplog.at_level(logging.INFO, logger="or1.rewards"):
        first = sandbox.get_backend()
        assert sandbox.get_backend() is first
    try:
        bwrap_works = sandbox.get_backend("bwrap") is not None
    except RewardError:
        bwrap_works = False
    assert first.name == ("bwrap" if bwrap_works else "rlimit")
    chosen = [r for r in caplog.records if "code sandbox" in r.getMessage()]
    assert len(chosen) == 1
    assert chosen[0].levelno == (logging.INFO if bwrap_works else logging.WARNING)


def test_the_python_we_run_is_the_current_interpreter():
    assert os.path.realpath(sys.executable) == sandbox._interpreter()
