"""Attacks on the sandbox boundary, on each backend, with the guard off (what the kernel
enforces) unless the attack is to switch the guard off. On the weak mode each of these is
a strict expected failure: the attack works there, as README says."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import or1
from or1.rewards.sandbox import Limits, run_python

from .conftest import needs_isolation

FAST = Limits(wall_s=5.0, cpu_s=5.0)
PROC_STATUS = "st = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())\n"


@pytest.fixture
def victim():
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def test_runs_as_an_unprivileged_throwaway_uid(request, backend):
    needs_isolation(request, backend)
    program = PROC_STATUS + (
        "import os\nprint(os.getuid(), os.getgid(), os.getgroups(), st['NoNewPrivs'].strip(),\n"
        "      st['Seccomp'].strip(), [int(st[k], 16) for k in ('CapEff', 'CapPrm', 'CapBnd')])"
    )
    res = run_python(program, backend=backend, guard=False, limits=FAST)
    uid, gid, groups, nnp, seccomp, caps = res.stdout.decode().split(" ", 5)
    assert int(uid) not in (0, os.getuid()) and int(gid) != 0 and groups == "[]"
    assert (nnp, seccomp, caps.strip()) == ("1", "2", "[0, 0, 0]")


def test_sees_only_its_own_processes(request, backend):
    needs_isolation(request, backend)
    program = (
        "import os\npids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
        "cmds = [open(f'/proc/{p}/cmdline', 'rb').read() for p in pids]\n"
        "print(sorted(pids), os.getpid(), any(b'pytest' in c for c in cmds))"
    )
    res = run_python(program, backend=backend, guard=False, limits=FAST)
    # the program is pid 1 of its own pid namespace, alone in it
    assert res.stdout == b"['1'] 1 False\n", res.stderr


def test_the_view_holds_nothing_of_the_host(request, backend, tmp_path):
    needs_isolation(request, backend)
    marker = Path("/tmp") / f"or1-host-marker-{secrets.token_hex(4)}"
    marker.write_text("host")
    checkout = Path(or1.__file__).resolve().parents[1]
    try:
        program = (
            "import os\nfound = []\n"
            f"for path in ['/tmp/{marker.name}', '/run', '/etc/passwd', '/etc/hostname',\n"
            f"             {str(checkout / 'pyproject.toml')!r}, {str(tmp_path)!r},\n"
            "             '/root/.ssh', '/root/.bashrc', '/home', '/var', '/srv']:\n"
            "    if os.path.exists(path):\n        found.append(path)\n"
            "print(found, sorted(os.listdir('/tmp')), os.environ['HOME'])"
        )
        res = run_python(program, backend=backend, guard=False, limits=FAST)
        assert res.stdout == b"[] [] /sandbox\n", res.stdout + res.stderr
    finally:
        marker.unlink()


def test_cannot_read_host_files_or_the_callers_environment(request, backend, tmp_path, monkeypatch):
    needs_isolation(request, backend)
    monkeypatch.setenv("OR1_FAKE_SECRET", "hunter2")
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE-KEY-MATERIAL")
    program = f"""
import os
found = []
for path in ({str(secret)!r}, "/proc/{os.getpid()}/environ", "/proc/1/environ",
             "/proc/{os.getppid()}/environ"):
    try:
        found.append(open(path).read())
    except OSError:
        pass
print("PRIVATE-KEY" in "".join(found) or "hunter2" in "".join(found))
"""
    res = run_python(program, backend=backend, guard=False, limits=FAST)
    assert res.stdout == b"False\n", res.stderr


def test_cannot_write_or_delete_host_files(request, backend, tmp_path):
    needs_isolation(request, backend)
    tree = tmp_path / "tree"
    tree.mkdir()
    canary = tree / "keep.txt"
    canary.write_text("keep")
    program = f"""
import os, shutil
for action in (lambda: open({str(tree / "new.txt")!r}, "w").write("pwned"),
               lambda: os.remove({str(canary)!r}),
               lambda: shutil.rmtree({str(tree)!r}),
               lambda: open("/usr/or1-pwned", "w"),
               lambda: open("/or1/_boot.py", "a")):
    try:
        action()
    except OSError as err:
        print(type(err).__name__)
"""
    try:
        res = run_python(program, backend=backend, guard=False, limits=FAST)
        assert not Path("/usr/or1-pwned").exists()
    finally:  # (the weak mode, as root, can write there)
        Path("/usr/or1-pwned").unlink(missing_ok=True)
    assert canary.read_text() == "keep"
    assert sorted(p.name for p in tree.iterdir()) == ["keep.txt"]
    assert res.stdout.count(b"Error") == 5


def test_cannot_signal_host_processes(request, backend, victim):
    needs_isolation(request, backend, unsafe=True)  # kill(-1) as root on the host
    program = f"""
import os, signal
for attack in (lambda: os.kill({victim.pid}, 9), lambda: os.kill({os.getpid()}, 9),
               lambda: os.kill(-1, 9),
               lambda: signal.pidfd_send_signal(os.pidfd_open({victim.pid}), 9)):
    try:
        attack()
    except OSError as err:
        print(type(err).__name__)
"""
    res = run_python(program, backend=backend, guard=False, limits=FAST)
    time.sleep(0.1)
    assert victim.poll() is None, res.stdout  # the victim and this test process are alive


def test_cannot_trace_host_processes(request, backend, victim):
    needs_isolation(request, backend)
    program = f"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print(libc.ptrace(16, {victim.pid}, 0, 0), ctypes.get_errno() != 0)  # PTRACE_ATTACH
"""
    res = run_python(program, backend=backend, guard=False, limits=FAST)
    assert res.stdout == b"-1 True\n", res.stderr
    assert Path(f"/proc/{victim.pid}/status").read_text().count("TracerPid:\t0") == 1


def test_fork_exec_of_a_shell_fails(request, backend, tmp_path):
    """_posixsubprocess.fork_exec has no audit event: only the kernel (no execve) stops it."""
    needs_isolation(request, backend)
    target = tmp_path / "shell-was-here"
    program = f"""
import _posixsubprocess, os, subprocess
try:
    subprocess.run(["/bin/sh", "-c", "id -u > {target}"], check=False)
    print("ran")
except OSError as err:
    print(type(err).__name__)
"""
    res = run_python(program, backend=backend, guard=False, limits=FAST)
    assert res.stdout == b"PermissionError\n", res.stdout + res.stderr
    assert not target.exists()


def test_switching_the_guard_off_gains_nothing(request, backend, tmp_path, victim):
    needs_isolation(request, backend)
    outside = tmp_path / "outside.txt"
    program = f"""
import gc, os, sys, time
for obj in gc.get_objects():
    if type(obj).__name__ == "Guard":
        type(obj).__call__ = lambda self, event, args: None  # the tripwire is off
import _posixsubprocess
for attack in (lambda: open({str(outside)!r}, "w").write("pwned"),
               lambda: os.kill({victim.pid}, 9),
               lambda: os.execv("/bin/sh", ["sh", "-c", "true"])):
    try:
        attack()
    except OSError as err:
        print(type(err).__name__)
if os.fork() == 0:
    os.setsid()
    time.sleep(30)
print("done")
"""
    res = run_python(program, backend=backend, guard=True, limits=FAST)
    assert res.stdout.endswith(b"done\n"), res.stderr
    time.sleep(0.1)
    assert not outside.exists() and victim.poll() is None
    # the forked daemon is checked by the autouse no_leftover_processes fixture


def _tcp_server() -> tuple[socket.socket, threading.Thread]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(8)

    def serve() -> None:
        try:
            conn, _ = server.accept()
            conn.sendall(b"leaked\n")
            conn.close()
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


def test_no_network_and_no_host_unix_sockets(request, backend, tmp_path):
    needs_isolation(request, backend)
    server, _ = _tcp_server()
    unix_path = str(tmp_path / "host.sock")
    abstract = f"\0or1-test-{secrets.token_hex(4)}"
    listeners = []
    for address in (unix_path, abstract):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(address)
        s.listen()
        listeners.append(s)
    program = f"""
import socket
got = []
for family, address in ((socket.AF_INET, ("127.0.0.1", {server.getsockname()[1]})),
                        (socket.AF_UNIX, {unix_path!r}), (socket.AF_UNIX, {abstract!r})):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(address)
        got.append("connected")
    except OSError as err:
        got.append(type(err).__name__)
print(got)
"""
    try:
        res = run_python(program, backend=backend, guard=False, limits=FAST)
    finally:
        server.close()
        for s in listeners:
            s.close()
    assert b"connected" not in res.stdout and res.stdout.count(b"Error") == 3, res.stdout


def test_programs_cannot_reach_each_other(request, backend):
    """A program running at the same time (or just before) leaves nothing another sees."""
    needs_isolation(request, backend)
    name = f"or1-peer-{secrets.token_hex(4)}"
    holder = f"""
import socket, time
import os
open("/tmp/{name}", "w").write("x")
try:
    open("/dev/shm/{name}", "w").write("x")
except OSError:
    pass  # read-only for programs on the strong backends
s = socket.socket(socket.AF_UNIX)
s.bind("\\0{name}")
s.listen()
print("ready", flush=True)
time.sleep(3)
"""
    seeker = f"""
import os, socket
s = socket.socket(socket.AF_UNIX)
try:
    s.connect("\\0{name}")
    reached = "socket"
except OSError:
    reached = ""
print(reached, os.path.exists("/tmp/{name}"), os.path.exists("/dev/shm/{name}"))
"""
    ready = threading.Event()
    thread = threading.Thread(
        target=run_python,
        args=(holder,),
        kwargs={"backend": backend, "guard": False, "on_line": lambda _: ready.set() or True},
    )
    thread.start()
    ready.wait(10)
    during = run_python(seeker, backend=backend, guard=False, limits=FAST)
    thread.join()
    after = run_python(seeker, backend=backend, guard=False, limits=FAST)
    assert during.stdout == b" False False\n" and after.stdout == b" False False\n"


def test_a_program_that_kills_everything_it_sees_harms_nothing(request, backend, victim):
    needs_isolation(request, backend, unsafe=True)
    program = (
        "import os\nfor pid in range(1, 4194304 // 1024):\n    try:\n"
        "        os.kill(pid, 9) if pid != os.getpid() else None\n    except OSError:\n"
        "        pass\nprint('done')"
    )
    res = run_python(program, backend=backend, guard=False, limits=FAST)
    assert res.stdout == b"done\n" and victim.poll() is None
    os.kill(os.getpid(), 0)  # this process is alive too
