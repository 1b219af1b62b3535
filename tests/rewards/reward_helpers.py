"""Reward functions for pool tests; imported as a top-level module so workers can load them."""

from __future__ import annotations

import os
import time

from or1.data.problem import Problem
from or1.rewards.verdict import Verdict


def sleepy_reward(problem: Problem, response: str) -> float:
    """Sleeps `ground_truth` seconds (a hung reward), then scores 1."""
    time.sleep(float(problem.ground_truth))
    return 1.0


def crashing_reward(problem: Problem, response: str) -> float:
    """Kills its own process (a reward that crashes the worker)."""
    os._exit(3)


def raising_reward(problem: Problem, response: str) -> float:
    """An ordinary bug in a reward function."""
    raise ZeroDivisionError("bug")


def length_reward(problem: Problem, response: str) -> float:
    """1 if the response has the given length."""
    return float(len(response) == int(problem.ground_truth))


def judge(problem: Problem, response: str) -> Verdict:
    """A stand-in for an LLM judge: it reads the question, not only the ground truth.
    Correct when the response repeats the question's last word and the ground truth."""
    word = problem.question.split()[-1]
    ok = word in response and problem.ground_truth in response
    return Verdict(1.0 if ok else 0.0, "judged correct" if ok else "judged wrong")


def hacking_reward(problem: Problem, response: str) -> Verdict:
    """Flags responses containing 'exit(' as hack attempts (like the code harness)."""
    hack = "exit(" in response
    return Verdict(0.0 if hack else 1.0, "hack" if hack else "", hack=hack)


CALLS: list[tuple[str, str]] = []  # (question, response) of every call to recording_reward


def recording_reward(problem: Problem, response: str) -> float:
    """Records what it was shown; 1 for an even-length response (random text: a coin)."""
    CALLS.append((problem.question, response))
    return float(len(response) % 2 == 0)


def pid_reward(problem: Problem, response: str) -> Verdict:
    """Scores 1 and says which process scored it (its reason is the pid)."""
    return Verdict(1.0, str(os.getpid()))
