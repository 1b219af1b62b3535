"""The sandbox's plumbing on each backend: output, limits, working directory, environment,
the guard as a tripwire, backend choice and the refusal where nothing isolates programs.
Isolation attacks are in test_sandbox_isolation.py."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time

import pytest

from or1.errors import RewardError
from or1.rewards import sandbox, sandbox_host, sandbox_view
from or1.rewards.sandbox import Limits, run_python

from .conftest import needs_isolation, uid_processes

FAST = Limits(wall_s=5.0, cpu_s=5.0)


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


def test_uncaught_exception_is_status_1_with_traceback(backend):
    res = run_python("def f():\n    raise KeyError('k')\nf()", backend=backend, limits=FAST)
    assert res.returncode == 1 and b"KeyError: 'k'" in res.stderr and b"main.py" in res.stderr


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
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL"}


def test_working_directory_is_fresh_for_every_program(backend):
    program = "import os\nprint(sorted(os.listdir('.')))\nopen('junk.txt', 'w').write('x' * 1000)"
    for _ in range(2):
        res = run_python(program, files={"data.txt": "hi"}, backend=backend, limits=FAST)
        assert res.ok, res.stderr
        assert res.stdout.decode().strip() == "['data.txt', 'main.py']"


def test_random_differs_between_programs(backend):
    """Programs are forks of one init: each must still get its own random state."""
    outs = {
        run_python("import random\nprint(random.random())", backend=backend).stdout for _ in "ab"
    }
    assert len(outs) == 2


def test_wall_time_limit_kills_the_program(backend):
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


def test_working_directory_size_is_capped(request, backend):
    needs_isolation(request, backend)  # the weak mode writes to the host's disk
    program = (
        "chunk = b'x' * 2**20\nn = 0\ntry:\n    for k in range(64):\n"
        "        with open(f'f{k}', 'wb') as f:\n            f.write(chunk)\n        n += 1\n"
        "except OSError as err:\n    print(type(err).__name__, n)"
    )
    res = run_python(program, backend=backend, guard=False, limits=Limits(wall_s=5, tmpfs_mb=8))
    assert res.stdout.split()[0] == b"OSError" and int(res.stdout.split()[1]) < 9


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


def test_fork_bomb_is_contained(request, backend):
    needs_isolation(request, backend, unsafe=True)  # RLIMIT_NPROC does not apply to root
    program = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    )
    start = time.monotonic()
    res = run_python(program, backend=backend, guard=False, limits=Limits(wall_s=1.5, nproc=32))
    assert res.status == "timeout" and time.monotonic() - start < 8
    assert subprocess.run(["true"], check=False).returncode == 0  # the host can still fork


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
        ("import os\nos.link('/etc/ld.so.cache', 'h')", b"outside the working directory"),
        ("import socket\nsocket.socket()", b"socket.__new__"),
    ],
)
def test_guard_still_trips_on_naive_misuse(backend, program, needle):
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
    res = run_python(
        "import numpy as np\nprint(int(np.arange(5).sum()))", backend=backend, limits=Limits(20)
    )
    assert res.stdout == b"10\n", res.stderr


def test_daemon_does_not_outlive_the_run(request, backend):
    needs_isolation(request, backend)
    program = (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        print(os.getpid(), flush=True)\n        time.sleep(30)\n    os._exit(0)\n"
        "time.sleep(0.3)\nprint('spawned')"
    )
    res = run_python(program, backend=backend, guard=False, limits=FAST)
    assert b"spawned" in res.stdout, res.stderr
    survivors = []
    if backend.isolated:
        # the programs' uids (index 1; index 0 is the judges', whose server may stay)
        program_uids = {z.uids[1] for zs in sandbox_host._IDLE.values() for z in zs if z.uids[1]}
        survivors = uid_processes(program_uids)
    else:  # the weak mode: the daemon's pid is a host pid
        daemon = int(res.stdout.split()[0])
        if os.path.exists(f"/proc/{daemon}"):
            survivors = [daemon]
            os.kill(daemon, 9)
    assert survivors == []


# --------------------------------------------------------------------------- backends


def test_backend_names():
    with pytest.raises(RewardError, match="unknown sandbox backend"):
        sandbox.get_backend("docker")


def test_weak_mode_is_refused_without_the_insecure_setting(monkeypatch):
    monkeypatch.setattr(sandbox, "_BACKENDS", {})
    monkeypatch.delenv(sandbox.INSECURE_ENV, raising=False)
    with pytest.raises(RewardError, match=r"refuse to run.*OR1_SANDBOX_INSECURE=1"):
        sandbox.get_backend("rlimit")


def test_weak_mode_when_allowed_says_so_loudly(monkeypatch, caplog):
    monkeypatch.setattr(sandbox, "_BACKENDS", {})
    monkeypatch.setenv(sandbox.INSECURE_ENV, "1")
    with caplog.at_level(logging.INFO, logger="or1.rewards"):
        weak = sandbox.get_backend("rlimit")
    assert not weak.isolated and weak.name == "rlimit"
    assert any(
        "INSECURE" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records
    )


def test_auto_prefers_bubblewrap_and_logs_once(monkeypatch, caplog):
    monkeypatch.setattr(sandbox, "_BACKENDS", {})
    monkeypatch.delenv("OR1_SANDBOX_BACKEND", raising=False)
    with caplog.at_level(logging.INFO, logger="or1.rewards"):
        first = sandbox.get_backend()
        assert sandbox.get_backend() is first
    # bubblewrap needs root; a normal user gets unshare in a user namespace
    assert first.name == ("bwrap" if os.geteuid() == 0 else "unshare") and first.isolated
    chosen = [r for r in caplog.records if "code sandbox" in r.getMessage()]
    assert len(chosen) == 1 and chosen[0].levelno == logging.INFO


def test_probe_rejects_a_backend_that_does_not_isolate(monkeypatch):
    """The probe checks what a program gets: a backend whose programs keep root fails."""
    monkeypatch.setattr(sandbox, "_BACKENDS", {})
    weak_as_strong = sandbox.Backend("unshare")
    monkeypatch.setattr(sandbox.Backend, "isolation", property(lambda self: "none"))
    reason = sandbox._probe(weak_as_strong)
    kept = "runs as root" if os.geteuid() == 0 else "keeps capabilities"  # (its bounding set)
    assert kept in reason and "sees other processes" in reason


def test_the_python_we_run_is_the_current_interpreter():
    assert os.path.realpath(os.sys.executable) == sandbox_view.interpreter()
