"""The sandbox for a non-root user: the "unshare" backend in unprivileged user namespaces.

Run as root (as CI and the dev container do), these tests become other users for real:
- the sandbox tests (test_sandbox.py, test_sandbox_isolation.py), the reward-hacking
  tests (test_code_hacks.py) and the judge server's (test_judge_server.py) run again as
  `nobody` (setpriv), with OR1_SANDBOX_BACKEND=unshare: every guarantee must hold there;
- a user whose kernel forbids user namespaces (user.max_user_namespaces = 0 in the user
  namespace it runs in) gets one refusal that names the sysctls to enable.
They need root to switch users; as a normal user the first is what the whole suite does
anyway (the unshare backend is then the only strong one).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not (shutil.which("setpriv") and shutil.which("unshare")),
    reason="switching to another user needs root, setpriv and unshare",
)

# In a private mount namespace: if the interpreter lives under a directory that `nobody`
# cannot enter (e.g. /root/.pyenv), a tmpfs over that directory with the one entry bound
# back makes it reachable there (nothing changes outside this process tree); then become
# nobody with no capabilities and run the command.
_AS_NOBODY = r"""
set -e
if [ -n "$HIDDEN" ]; then
    mkdir -p /tmp/.or1-stash-$$ && mount --bind "$HIDDEN/$ENTRY" /tmp/.or1-stash-$$
    mount -t tmpfs -o mode=0755,size=1m tmpfs "$HIDDEN" && mkdir "$HIDDEN/$ENTRY"
    mount --bind /tmp/.or1-stash-$$ "$HIDDEN/$ENTRY" && umount /tmp/.or1-stash-$$
fi
exec setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps=-all "$@"
"""


def _hidden_parent(path: str) -> tuple[str, str]:
    """(a directory nobody cannot enter on the way to `path`, the entry below it), or
    ("", "") if nobody can reach it."""
    parts = Path(path).parts
    for k in range(1, len(parts) - 1):
        directory = Path(*parts[: k + 1])
        if not os.stat(directory).st_mode & 0o001:
            return str(directory), parts[k + 1]
    return "", ""


def as_nobody(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    hidden, entry = _hidden_parent(os.path.realpath(sys.executable))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/tmp",
        "PYTHONPATH": str(REPO),
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "OR1_SANDBOX_BACKEND": "unshare",
        "HIDDEN": hidden,
        "ENTRY": entry,
    }
    cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", _AS_NOBODY, "sh", *argv]
    return subprocess.run(
        cmd, env=env, cwd="/tmp", capture_output=True, text=True, timeout=timeout, check=False
    )


@needs_root
def test_the_sandbox_tests_pass_as_a_non_root_user() -> None:
    here = Path(__file__).parent
    names = ("test_sandbox.py", "test_sandbox_isolation.py", "test_code_hacks.py")
    files = [str(here / name) for name in (*names, "test_judge_server.py")]
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files]
    who = as_nobody([sys.executable, "-c", "import os; print(os.geteuid())"], 60)
    assert who.stdout.strip() == str(NOBODY), who.stderr
    done = as_nobody(argv, 900)
    tail = done.stdout[-3000:] + done.stderr[-2000:]
    assert done.returncode == 0, tail
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, tail


@needs_root
def test_without_user_namespaces_the_refusal_names_the_sysctls() -> None:
    """A non-root user (uid 1000 in a user namespace of its own, no capabilities outside
    it) where no further user namespace may be created: user.max_user_namespaces is 0."""
    program = (
        "import os\nfrom or1.errors import RewardError\nfrom or1.rewards import sandbox\n"
        "assert os.geteuid() == 1000\n"
        "try:\n    sandbox.get_backend('auto')\nexcept RewardError as err:\n"
        "    print(str(err))\nelse:\n    print('no refusal')\n"
    )
    script = 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"'
    cmd = [
        *("unshare", "-U", "--map-user=1000", "--map-group=1000", "--keep-caps"),
        *("sh", "-c", script, "sh", sys.executable, "-c", program),
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("OR1_SANDBOX_BACKEND", None)
    env.pop("OR1_SANDBOX_INSECURE", None)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    out = done.stdout
    assert "refuse to run" in out, done.stdout + done.stderr
    assert "unshare: " in out and "user.max_user_namespaces > 0" in out
    assert "kernel.unprivileged_userns_clone=1" in out
    assert "kernel.apparmor_restrict_unprivileged_userns=0" in out
