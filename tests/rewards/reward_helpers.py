"""Reward functions for pool tests; imported as a top-level module so workers can load them."""

from __future__ import annotations

import os
import time


def sleepy_reward(response: str, ground_truth: str) -> float:
    """Sleeps `ground_truth` seconds (a hung reward), then scores 1."""
    time.sleep(float(ground_truth))
    return 1.0


def crashing_reward(response: str, ground_truth: str) -> float:
    """Kills its own process (a reward that crashes the worker)."""
    os._exit(3)


def raising_reward(response: str, ground_truth: str) -> float:
    """An ordinary bug in a reward function."""
    raise ZeroDivisionError("bug")


def length_reward(response: str, ground_truth: str) -> float:
    """1 if the response has the given length."""
    return float(len(response) == int(ground_truth))
