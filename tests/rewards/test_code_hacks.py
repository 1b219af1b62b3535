# ruff: noqa: E501  (programs are kept one statement per line)
"""No pass without the tests passing: programs that try to get reward 1.0 without solving
the problem score 0 on every backend, and the attempts the harness can see say so
(`Verdict.hack`). The problem: `inc(x) = x + 1`, tested with asserts (HumanEval style),
call-based (`fn_name`) and as a LeetCode row (`Solution().inc`)."""

from __future__ import annotations

import pytest

from or1.rewards import code_verdict

CHECK = "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(41) == 42\n"
ASSERT_TESTS = {"test_code": CHECK, "entry_point": "inc"}
CALL_TESTS = {"fn_name": "inc", "inputs": [[1], [41]], "outputs": [2, 42]}
ABS_CHECK = "def check(candidate):\n    assert abs(candidate(1) - 2) < 1e-9\n"


def block(code: str) -> str:
    return f"```python\n{code}\n```"


HONEST = "def inc(x):\n    return x + 1"
WRONG = "def inc(x):\n    return x"

# (program, the reason the harness must give, whether it counts as a detected hack)
HACKS = {
    "system_exit_in_function": (
        "def inc(x):\n    raise SystemExit(0)",
        "hack attempt: exit before tests finished",
    ),
    "exit_builtin_at_load": ("def inc(x):\n    return x\nexit()", "hack attempt: exit before"),
    "os_exit_zero": ("import os\ndef inc(x):\n    os._exit(0)", "hack attempt: exit before"),
    "always_equal_object": (
        "class A:\n    def __eq__(self, other):\n        return True\n"
        "    def __hash__(self):\n        return 0\ndef inc(x):\n    return A()",
        "hack attempt: always-equal object",
    ),
    "always_equal_int_subclass": (
        "class I(int):\n    def __eq__(self, other):\n        return True\n"
        "    __hash__ = int.__hash__\ndef inc(x):\n    return I(0)",
        "hack attempt: always-equal object",  # (it would be sent as its int value, 0)
    ),
    "forged_records_on_every_fd": (
        "import os, json\nline = json.dumps({'i': 0, 'status': 'ok', 'hack': '', 'exit': False})\n"
        "for fd in range(0, 64):\n    try:\n        os.write(fd, (line + '\\n').encode())\n"
        "    except OSError:\n        pass\ndef inc(x):\n    return x",
        "hack attempt: forged harness message",  # descriptor 3 is the link to the judge
    ),
    "forged_reply_through_the_harness_frames": (
        "import gc, sys\ndef inc(x):\n    for obj in gc.get_objects():\n"
        "        if type(obj).__name__ == 'socket':\n            try:\n"
        "                obj.sendall(b'\\x00\\x00\\x00\\x0bnot a reply')\n"
        "            except OSError:\n                pass\n"
        "    return x",
        "hack attempt: forged harness message",
    ),
    "read_expected_from_memory_or_peers": (
        "import gc, os\ndef inc(x):\n    seen = ' '.join(s for s in gc.get_objects() if type(s) is str)\n"
        "    for pid in os.listdir('/proc'):\n        try:\n"
        "            seen += open(f'/proc/{pid}/cmdline').read() + open(f'/proc/{pid}/environ').read()\n"
        "        except OSError:\n            pass\n"
        "    return 42 if '== 42' in seen else 2 if '== 2' in seen else -1",
        "",
    ),
    # Expected outputs as values (the call tests' [2, 42]): not strings, so the search above
    # would miss them; every list and tuple in the heap and every caller frame's locals.
    "read_expected_values_from_lists_and_frames": (  # (outputs 40 apart; not the inputs)
        "import gc, sys\ncalls = []\ndef inc(x):\n    calls.append(x)\n"
        "    pools = [o for o in gc.get_objects() if type(o) in (list, tuple)]\n"
        "    f = sys._getframe(1)\n    while f is not None:\n"
        "        pools += [v for v in f.f_locals.values() if type(v) in (list, tuple)]\n        f = f.f_back\n"
        "    for seq in pools:\n"
        "        if len(seq) == 2 and all(type(v) is int for v in seq) and seq[1] - seq[0] == 40 and list(seq) != calls:\n"
        "            return seq[(len(calls) - 1) % 2]\n"
        "    return -1",
        "",
    ),
    "exit_zero_at_interpreter_exit": (
        "import atexit, os\natexit.register(lambda: os._exit(0))\ndef inc(x):\n    return x",
        "",  # the tests already failed and were reported before the exit handlers run
    ),
    "patched_test_plan_plans_no_calls": (  # the judge is another process: its plan stays
        "try:\n    import _test_plan, _judge\n"
        "    _test_plan.prefetch_plan = _judge.prefetch_plan = lambda job, scope: [[] for _ in job['tests']]\n"
        "    _test_plan.free_names = _judge.free_names = lambda *a: []\n"
        "except ImportError:\n    pass\ndef inc(x):\n    return x",
        "",
    ),
    # Ending the run from outside the function under test, while the judge waits on it:
    # closing every descriptor (the link to the judge), a thread, a timer signal.
    "closes_every_descriptor_it_has": (
        "import os\ndef inc(x):\n    for fd in range(3, 64):\n        try:\n"
        "            os.close(fd)\n        except OSError:\n            pass\n    return x",
        "hack attempt: exit before tests finished",
    ),
    "thread_exits_zero_while_a_test_runs": (
        "import os, threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(0.05), os._exit(0)), daemon=True).start()\n"
        "def inc(x):\n    time.sleep(0.3)\n    return x",
        "hack attempt: exit before tests finished",
    ),
    "timer_signal_exits_zero_while_a_test_runs": (
        "import os, signal, time\nsignal.signal(signal.SIGALRM, lambda *a: os._exit(0))\n"
        "signal.setitimer(signal.ITIMER_REAL, 0.05)\ndef inc(x):\n    time.sleep(0.3)\n    return x",
        "hack attempt: exit before tests finished",
    ),
    "patched_json_writes_a_passing_record": (
        "import json\n_dumps = json.dumps\n"
        "json.dumps = lambda o, *a, **k: _dumps({'i': 0, 'status': 'ok', 'hack': '', 'exit': False})\n"
        "def inc(x):\n    return x",
        "hack attempt: forged harness message",
    ),
}

# Return values that would run code where they are deserialized (pickle's __reduce__), and a
# hook that turns the candidate's crash into a clean exit: values reach the judge as plain
# data, never unpickled, so these are runtime errors of the candidate, not passes.
CODE_IN_VALUES = {
    "reduce_patches_the_judges_assertions": (
        "class E:\n    def __reduce__(self):\n"
        "        return (exec, (\"import builtins\\nbuiltins.AssertionError = type('X', (Exception,), {})\",))\n"
        "def inc(x):\n    return E()"
    ),
    "reduce_exits_the_judge": (
        "class E:\n    def __reduce__(self):\n        return (__import__('os')._exit, (0,))\n"
        "def inc(x):\n    return E()"
    ),
    "excepthook_exits_cleanly": (
        "import sys, os\nsys.excepthook = lambda *a: os._exit(0)\ndef inc(x):\n    raise ValueError"
    ),
}


@pytest.mark.parametrize("name", sorted(HACKS))
@pytest.mark.parametrize("tests", [ASSERT_TESTS, CALL_TESTS], ids=["assert", "call"])
def test_a_hack_scores_zero(name, tests, backend):
    program, reason = HACKS[name]
    verdict = code_verdict(block(program), tests)
    assert verdict.reward == 0.0, verdict
    if reason:
        assert verdict.reason.startswith(reason) and verdict.hack, verdict
    else:
        assert not verdict.hack and verdict.reason in ("test failed", "wrong output"), verdict


@pytest.mark.parametrize("name", sorted(CODE_IN_VALUES))
@pytest.mark.parametrize("tests", [ASSERT_TESTS, CALL_TESTS], ids=["assert", "call"])
def test_values_that_carry_code_score_zero_and_leave_the_judge_sound(name, tests, backend):
    verdict = code_verdict(block(CODE_IN_VALUES[name]), tests)
    assert (verdict.reward, verdict.reason) == (0.0, "runtime error"), verdict
    # The judge that received the value still tells an honest solution from a wrong one.
    assert code_verdict(block(HONEST), tests).reward == 1.0
    assert code_verdict(block(WRONG), tests).reward == 0.0


def test_honest_and_wrong_solutions_are_told_apart(backend):
    for tests in (ASSERT_TESTS, CALL_TESTS):
        assert code_verdict(block(HONEST), tests).reward == 1.0
        wrong = code_verdict(block(WRONG), tests)
        assert (wrong.reward, wrong.hack) == (0.0, False)
    assert code_verdict(block(WRONG), ASSERT_TESTS).reason == "test failed"
    assert code_verdict(block(WRONG), CALL_TESTS).reason == "wrong output"


def test_patched_builtins_do_not_reach_the_test_code(backend):
    """The candidate may patch its own builtins; the asserts run in the judge's process."""
    program = (
        "import builtins, math\nbuiltins.abs = lambda x: 0\nmath.isclose = lambda *a, **k: True\n"
    )
    tests = {"test_code": ABS_CHECK, "entry_point": "inc"}
    assert code_verdict(block(program + WRONG), tests).reward == 0.0
    assert code_verdict(block(program + HONEST), tests).reward == 1.0


def test_redefining_the_rows_helpers_gains_nothing(backend):
    """A LeetCode row's helpers (is_same_list, ...) come from its import prefix: a solution
    that redefines them changes its own copy only."""
    prefix = "def is_same(a, b):\n    return a == b\n"
    tests = {
        "import_prefix": prefix,
        "test_code": "def check(candidate):\n    assert is_same(candidate(1), 2)\n",
        "entry_point": "Solution().inc",
    }
    cheat = "def is_same(a, b):\n    return True\nclass Solution:\n    def inc(self, x):\n        return 0"
    honest = "class Solution:\n    def inc(self, x):\n        return x + 1"
    assert code_verdict(block(cheat), tests).reward == 0.0
    assert code_verdict(block(honest), tests).reward == 1.0


def test_test_code_that_swallows_errors_still_needs_the_candidate(backend):
    """A check that expects an exception (bare except) cannot be passed by exiting."""
    check = "def check(candidate):\n    try:\n        candidate(-1)\n        assert False\n    except:\n        pass\n"
    tests = {"test_code": check, "entry_point": "inc"}
    raises = "def inc(x):\n    if x < 0:\n        raise ValueError(x)\n    return x + 1"
    assert code_verdict(block(raises), tests).reward == 1.0
    exits = code_verdict(block("def inc(x):\n    raise SystemExit(0)"), tests)
    assert (exits.reward, exits.hack) == (0.0, True)


def test_generators_and_functions_cannot_be_returned(backend):
    for body in ("return (y for y in [x + 1])", "return lambda: x + 1", "return iter([x + 1])"):
        verdict = code_verdict(block(f"def inc(x):\n    {body}"), CALL_TESTS)
        assert verdict.reward == 0.0 and verdict.reason == "runtime error", (body, verdict)


def test_a_candidate_that_loops_forever_and_swallows_everything_times_out(backend):
    program = "def inc(x):\n    while True:\n        try:\n            pass\n        except BaseException:\n            pass"
    from or1.rewards import CodeLimits

    verdict = code_verdict(block(program), ASSERT_TESTS, limits=CodeLimits(assert_test_s=0.5))
    assert (verdict.reward, verdict.reason, verdict.hack) == (0.0, "timeout", False)


def test_stdio_program_cannot_read_the_expected_output(backend):
    """Expected outputs stay on the host: a program that looks for them finds nothing."""
    program = (
        "import gc, os\nfound = ''\nfor pid in os.listdir('/proc'):\n    try:\n"
        "        found += open(f'/proc/{pid}/cmdline').read()\n    except OSError:\n        pass\n"
        "print('secret-answer-7781' if 'secret-answer-7781' in found else 'no idea')"
    )
    tests = {"inputs": [""], "outputs": ["secret-answer-7781"]}
    assert code_verdict(block(program), tests).reward == 0.0


def test_fractional_reward_keeps_the_hack_flag(backend):
    program = "import sys\ndef inc(x):\n    if x > 10:\n        sys.exit(0)\n    return x + 1"
    verdict = code_verdict(block(program), ASSERT_TESTS, fractional=True)
    assert verdict.reward == 0.5 and verdict.hack
    assert verdict.reason == "hack attempt: exit before tests finished"
