"""The judge server (or1/rewards/_judges.py): one judge process serves a sandbox init's
runs one at a time, while every candidate is a fresh sandbox. What one run's candidate
does must not reach the judging of the next; a judge that was killed is replaced."""

from __future__ import annotations

import os

import pytest

from or1.rewards import code_verdict, sandbox_host

from .conftest import uid_processes


def block(code: str) -> str:
    return f"```python\n{code}\n```"


# The prefix's list is passed to the candidate, whose in-place changes are written back
# into the judge's objects (the "sort nums in place" rule): a hostile candidate empties it.
SHARED = {
    "import_prefix": "DATA = [3, 1, 2]\nSEEN = []\n",
    "test_code": (
        "def check(candidate):\n    SEEN.append(1)\n    assert candidate(DATA) == 6\n"
        "    assert DATA == [3, 1, 2] and SEEN == [1]\n"
    ),
    "entry_point": "total",
}
HONEST = "def total(xs):\n    return sum(xs)"
HOSTILE = "def total(xs):\n    n = sum(xs)\n    xs.clear()\n    xs.append(6)\n    return n"


def judge_processes(isolation: str) -> dict[int, list[int]]:
    """Processes of each idle sandbox init's judge uid (root backends), for one backend."""
    with sandbox_host._LOCK:
        zygotes = [z for key, zs in sandbox_host._IDLE.items() if key[0] == isolation for z in zs]
    return {z.uids[0]: uid_processes({z.uids[0]}) for z in zygotes if z.uids[0]}


def test_one_candidate_cannot_change_the_next_ones_tests(backend):
    """The hostile candidate changes the test's data (and fails its own assert); the
    honest ones judged by the same judge process afterwards still see fresh data."""
    for _ in range(3):
        assert code_verdict(block(HOSTILE), SHARED).reason == "test failed"
        assert code_verdict(block(HONEST), SHARED).reward == 1.0


@pytest.mark.skipif(os.geteuid() != 0, reason="the judge uid is told apart as root only")
def test_the_judge_process_is_reused_and_replaced_after_a_kill(backend):
    if not backend.isolated:
        pytest.skip("the weak mode has no judge uid to find the judge by")
    # A server is replaced after MAX_RUNS runs: start from a fresh one, or the runs of the
    # tests before this one decide whether the replacement falls inside it.
    sandbox_host.shutdown()
    assert code_verdict(block(HONEST), SHARED).reward == 1.0
    (first,) = [pids for pids in judge_processes(backend.isolation).values() if pids]
    assert len(first) == 1  # one idle judge server, nothing else as the judge uid
    for _ in range(3):
        assert code_verdict(block(HONEST), SHARED).reward == 1.0
    assert [pids for pids in judge_processes(backend.isolation).values() if pids] == [
        first
    ]  # the same one
    # The run's wall clock ends a judge stuck in the test code: the server is killed.
    stuck = dict(SHARED, import_prefix="import time\ntime.sleep(60)\n" + SHARED["import_prefix"])
    verdict = code_verdict(block(HONEST), stuck, total_timeout_s=2.0)
    assert verdict.reward == 0.0 and verdict.reason == "timeout", verdict
    assert code_verdict(block(HONEST), SHARED).reward == 1.0  # a fresh judge server
    (now,) = [pids for pids in judge_processes(backend.isolation).values() if pids]
    assert len(now) == 1 and now != first
