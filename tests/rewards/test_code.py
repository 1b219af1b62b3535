"""code_reward: test formats, comparison rules, code extraction, and adversarial programs.

Every adversarial program below would print the expected output "ok" if its attack
worked; each must score 0.0 quickly on every sandbox backend, and the host (files,
processes, this test process) must be intact afterwards.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time

import pytest

from or1.errors import RewardError
from or1.rewards import CodeLimits, code_reward
from or1.rewards.code import extract_code
from or1.rewards.code_tests import outputs_match, parse_tests, values_match

from .conftest import needs_isolation, stray_processes

STRAY_MARKER = "or1-stray-marker"


def block(code: str) -> str:
    return f"Let me write it.\n```python\n{code}\n```\nDone."


DOUBLE = {"inputs": ["21\n", "1\n", "-4\n"], "outputs": ["42\n", "2\n", "-8\n"]}


# --------------------------------------------------------------------------- stdin/stdout


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        ("print(int(input()) * 2)", 1.0),
        ("import sys\nprint(int(sys.stdin.read()) * 2)", 1.0),
        ("n = int(open(0).read())\nprint(n * 2)\nimport sys\nsys.exit(0)", 1.0),
        ("def main():\n    print(2 * int(input()))\nif __name__ == '__main__':\n    main()", 1.0),
        ("print(int(input()) * 2 + 1)", 0.0),
        ("print(int(input()) * 2)\nraise SystemExit(1)", 0.0),
        ("print(undefined_name)", 0.0),
    ],
)
def test_stdio(program, expected):
    assert code_reward(block(program), DOUBLE) == expected


def test_stdio_accepts_json_string_and_fraction():
    half_right = "n = int(input())\nprint(n * 2 if n > 0 else 0)"
    assert code_reward(block(half_right), json.dumps(DOUBLE)) == 0.0
    assert code_reward(block(half_right), json.dumps(DOUBLE), fractional=True) == pytest.approx(
        2 / 3
    )


def test_stdio_state_does_not_leak_between_tests():
    program = (
        "import sys\nseen = globals().get('seen', 0)\nprint(int(input()) * 2 + seen)\nseen = 100"
    )
    assert code_reward(block(program), DOUBLE) == 1.0


def test_outputs_compare_tokenwise_with_float_tolerance():
    assert outputs_match("1 2\n3\n", "1\n2 3")
    assert outputs_match("0.3333333", "0.333333333")
    assert outputs_match("1e-9", "0")
    assert outputs_match("10.0", "10")
    assert not outputs_match("0.34", "0.33")
    assert not outputs_match("1 2", "1 2 3")
    assert not outputs_match("100000000000000000001", "100000000000000000000")
    assert outputs_match("9" * 10_000, "9" * 10_000) and not outputs_match("9" * 10_000, "8")
    assert outputs_match("-0 +7", "0 7") and not outputs_match("-5", "5")
    assert not outputs_match("YES", "Yes")


def test_list_valued_outputs_are_lines():
    tests = {"inputs": [["1 2", "3 4"]], "outputs": [["3", "7"]]}
    program = "import sys\nfor line in sys.stdin:\n    print(sum(map(int, line.split())))"
    assert code_reward(block(program), tests) == 1.0


# --------------------------------------------------------------------------- call-based


def test_call_based_leetcode_class():
    tests = {
        "fn_name": "twoSum",
        "inputs": [[[2, 7, 11, 15], 9], [[3, 2, 4], 6]],
        "outputs": [[[0, 1]], [[1, 2]]],
    }
    program = """
class Solution:
    def twoSum(self, nums: List[int], target: int) -> List[int]:
        seen = {}
        for i, x in enumerate(nums):
            if target - x in seen:
                return [seen[target - x], i]
            seen[x] = i
"""
    assert code_reward(block(program), tests) == 1.0
    assert (
        code_reward(block(program.replace("return [seen[target - x], i]", "return [i]")), tests)
        == 0.0
    )


def test_call_based_top_level_function_and_lcb_strings():
    tests = {"fn_name": "f", "inputs": ["[1, 2, 3]\n2", "[]\n5"], "outputs": ["[2, 4, 6]", "[]"]}
    assert code_reward(block("def f(xs, k):\n    return tuple(x * k for x in xs)"), tests) == 1.0


def test_call_based_float_tolerance_and_kwargs():
    tests = {"fn_name": "div", "inputs": [{"a": 1, "b": 3}], "outputs": [0.3333333]}
    assert code_reward(block("def div(a, b):\n    return a / b"), tests) == 1.0


def test_call_based_solution_that_fails_to_load_scores_zero():
    tests = {"fn_name": "f", "inputs": [[1]], "outputs": [1]}
    assert code_reward(block("raise ValueError('boom')\ndef f(x):\n    return x"), tests) == 0.0
    assert code_reward(block("def g(x):\n    return x"), tests) == 0.0


def test_values_match():
    assert values_match([1, (2, 3.0000001)], [1, [2, 3]])
    assert values_match({"a": [0.5]}, {"a": [0.5000000001]})
    assert not values_match([1, 2], [1, 2, 3])
    assert not values_match(True, 2)
    assert not values_match("1", 1)


# --------------------------------------------------------------------------- assert-style

CHECK = "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(5) == 6\n"


def test_assert_style_test_code_with_entry_point():
    tests = json.dumps({"test_code": CHECK, "entry_point": "inc"})
    assert code_reward(block("def inc(x):\n    return x + 1"), tests) == 1.0
    half = block("def inc(x):\n    return 2")
    assert code_reward(half, tests) == 0.0
    assert code_reward(half, tests, fractional=True) == 0.5


def test_humaneval_check_with_a_loop_is_one_test():
    check = (
        "METADATA = {}\n\ndef check(candidate):\n"
        "    for i in range(3):\n        assert candidate(i) == i + 1\n"
    )
    spec = parse_tests({"test_code": check, "entry_point": "inc"})
    assert len(spec.inputs) == 1
    assert (
        code_reward(
            block("def inc(x):\n    return x + 1"), {"test_code": check, "entry_point": "inc"}
        )
        == 1.0
    )


def test_assert_case_list_and_import_prefix():
    tests = {"assert_case": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]}
    assert code_reward(block("def add(a, b):\n    return a + b"), tests) == 1.0
    prefixed = {"assert_case": ["assert f() == 6"], "import_prefix": "import math\n"}
    assert code_reward(block("def f():\n    return math.factorial(3)"), prefixed) == 1.0


def test_livecodebench_rows():
    rows = [{"input": "3\n", "output": "9\n", "testtype": "stdin"}]
    assert code_reward(block("print(int(input()) ** 2)"), rows) == 1.0
    functional = {
        "tests": [{"input": "4", "output": "16", "testtype": "functional"}],
        "fn_name": "sq",
    }
    assert (
        code_reward(
            block("class Solution:\n    def sq(self, x):\n        return x * x"), functional
        )
        == 1.0
    )


# --------------------------------------------------------------------------- extraction


def test_extracts_the_last_block_that_parses():
    text = "```python\nprint(1)\n```\n```python\nprint(2)\n```\n```python\nthis is not python(\n```"
    assert extract_code(text) == "print(2)\n"
    assert extract_code("```py\nx = 1\n```") == "x = 1\n"
    assert extract_code("```Python3\nx = 2\n```") == "x = 2\n"
    assert extract_code("```python\nx = 1\n") is None  # not closed: cut off
    assert extract_code("no code") is None
    assert extract_code("```python\nx=1\n```</think>no code after thinking") is None
    assert extract_code("```python\nx=1\n```</think>```python\ny=2\n```") == "y=2\n"


def test_huge_responses_are_handled_in_linear_time():
    start = time.monotonic()
    assert extract_code("```python\nprint(1)\n```" + "```python\n" * 200_000) == "print(1)\n"
    assert extract_code("x" * 2_000_000 + "```py\npass\n```") == "pass\n"
    assert code_reward("```python\n" + "(" * 100_000 + "\n```", DOUBLE) == 0.0
    assert time.monotonic() - start < 5


def test_no_code_scores_zero():
    assert code_reward("I cannot solve this.", DOUBLE) == 0.0
    assert code_reward("```python\ndef broken(:\n```", DOUBLE) == 0.0


@pytest.mark.parametrize(
    ("tests", "match"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "test list"),
        ({"inputs": ["1"], "outputs": []}, "1 inputs for 0 outputs"),
        ({"inputs": [], "outputs": []}, "0 inputs"),
        ({"inputs": "1", "outputs": "2"}, "must be lists"),
        ({"fn_name": "not an id", "inputs": [[1]], "outputs": [1]}, "not an identifier"),
        ({"test_code": "def check(:", "entry_point": "f"}, "does not parse"),
        ({"test_code": "def check(c):\n    pass", "entry_point": "f("}, "an expression"),
        ({"assert_case": []}, "non-empty list"),
        ({"hello": 1}, "unknown format"),
        (42, "expected a dict"),
    ],
)
def test_malformed_specs_are_the_callers_error(tests, match):
    with pytest.raises(RewardError, match=match):
        code_reward(block("print(1)"), tests)


def test_total_timeout_caps_the_whole_run():
    tests = {"inputs": ["1"] * 5, "outputs": ["1"] * 5}
    start = time.monotonic()
    limits = CodeLimits(stdin_test_s=2.0, total_base_s=2.0, total_max_s=2.0)
    score = code_reward(
        block("import time\ntime.sleep(0.8)\nprint(1)"), tests, fractional=True, limits=limits
    )
    assert score < 1.0 and time.monotonic() - start < 4


def test_crash_in_one_test_does_not_sink_the_others_when_fractional():
    tests = {"inputs": ["1", "2", "3"], "outputs": ["1", "2", "3"]}
    program = "import os\nn = input()\nif n == '2':\n    os._exit(0)\nprint(n)"
    assert code_reward(block(program), tests, fractional=True) == pytest.approx(2 / 3)
    assert code_reward(block(program), tests) == 0.0


def test_a_program_that_swallows_the_timeout_still_fails_and_the_rest_runs():
    tests = {"inputs": ["spin", "2", "3"], "outputs": ["1", "2", "3"]}
    program = (
        "import os\nn = input()\nwhile n == 'spin':\n    try:\n        while True:\n"
        "            pass\n    except BaseException:\n        pass\nos.chdir('/')\nprint(n)"
    )
    start = time.monotonic()
    limits = CodeLimits(stdin_test_s=0.5)
    assert code_reward(block(program), tests, fractional=True, limits=limits) == pytest.approx(
        2 / 3
    )
    assert time.monotonic() - start < 5


def test_forged_result_lines_are_ignored():
    program = (
        'import os\nline = b\'{"i": 0, "status": "ok", "out": "ok", "nonce": "x"}\\n\'\n'
        "for fd in range(1, 30):\n    try:\n        os.write(fd, line)\n    except OSError:\n"
        "        pass"
    )
    assert code_reward(block(program), {"inputs": [""], "outputs": ["ok"]}) == 0.0


# --------------------------------------------------------------------------- adversarial

ATTACKS = {
    "infinite_loop": "while True:\n    pass\nprint('ok')",
    "fork_bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except Exception:\n"
    "        pass\nprint('ok')",
    "alloc_10gb": "x = bytearray(10 * 2**30)\nprint('ok')",
    "stdout_1gb": "import sys\nchunk = 'x' * 2**20\nfor _ in range(1024):\n"
    "    sys.stdout.write(chunk)\nprint('ok')",
    "write_outside": "open({outside!r}, 'w').write('pwned')\nprint('ok')",
    "delete_tree": "import os, shutil\nos.remove({canary!r})\nshutil.rmtree({tree!r})\nprint('ok')",
    "read_secrets": "import os\nfound = os.environ.get('OR1_FAKE_SECRET', '')\n"
    "for path in [os.path.expanduser('~/.ssh/id_rsa'), {ssh_key!r}, '/proc/{caller}/environ',\n"
    "             '/proc/' + str(os.getppid()) + '/environ']:\n"
    "    try:\n        found += open(path).read()\n    except OSError:\n        pass\n"
    "print('ok' if 'hunter2' in found else 'no')",
    "network": "import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
    "print(s.recv(10).decode().strip())",
    "kill_parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
    "os.kill({victim}, signal.SIGKILL)\nos.kill({caller}, signal.SIGKILL)\nprint('ok')",
    "sleep_past_wall": "import time\ntime.sleep(100)\nprint('ok')",
    "daemon": "import os, sys\nif os.fork() == 0:\n    os.setsid()\n"
    "    os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)', "
    "'{marker}'])\nprint('ok')",
    "recursion_bomb": "import sys\nsys.setrecursionlimit(10**7)\n"
    "def f(n):\n    return f(n + 1) + 1\nf(0)\nprint('ok')",
    "recursion_error": "def f():\n    return f()\nf()\nprint('ok')",
    "exit_early": "import os\nprint('ok')\nos._exit(0)",
}


def _serve_ok(server: socket.socket) -> None:
    try:
        conn, _ = server.accept()
        conn.sendall(b"ok\n")
        conn.close()
    except OSError:
        pass


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A fake host: working tree (our cwd), secrets, a listening server, a victim process."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "canary.txt").write_text("keep me")
    monkeypatch.chdir(tree)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("hunter2 private key")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("OR1_FAKE_SECRET", "hunter2")
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(15)
    threading.Thread(target=_serve_ok, args=(server,), daemon=True).start()
    victim = subprocess.Popen(["sleep", "120"])
    values = {
        "tree": str(tree),
        "canary": str(tree / "canary.txt"),
        "outside": str(tmp_path / "outside.txt"),
        "ssh_key": str(home / ".ssh" / "id_rsa"),
        "port": server.getsockname()[1],
        "victim": victim.pid,
        "caller": os.getpid(),
        "marker": STRAY_MARKER,
    }
    yield values
    server.close()
    intact = victim.poll() is None
    victim.kill()
    victim.wait()
    assert intact, "the victim process was killed"
    assert (tree / "canary.txt").read_text() == "keep me"
    assert sorted(p.name for p in tree.iterdir()) == ["canary.txt"]
    assert not (tmp_path / "outside.txt").exists()


# On the weak mode only the guard (on by default) stops these naive attacks; the two that
# would harm the host if it failed are not run there (test_sandbox_isolation.py shows,
# with the guard off, what the weak mode gives up).
WEAK_UNSAFE = {"fork_bomb", "kill_parent"}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_adversarial_program_scores_zero_and_harms_nothing(request, attack, backend, host):
    if attack in WEAK_UNSAFE:
        needs_isolation(request, backend, unsafe=True)
    program = ATTACKS[attack].format(**host)
    start = time.monotonic()
    limits = CodeLimits(stdin_test_s=0.5, total_base_s=4.0, total_max_s=4.0)
    reward = code_reward(block(program), {"inputs": [""], "outputs": ["ok"]}, limits=limits)
    elapsed = time.monotonic() - start
    assert reward == 0.0
    assert elapsed < 4.5, f"{attack} took {elapsed:.1f}s"
    assert os.getpid() == host["caller"]  # still here
    os.kill(os.getpid(), 0)
    assert stray_processes(STRAY_MARKER) == []
