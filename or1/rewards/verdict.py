"""A reward with the reason for it, as the code reward produces it (`code_verdict`).

Reasons (``Verdict.reason``; "" for a pass):
- "no code block": no closed ```python block in the answer;
- "syntax error": there are python blocks, but none parses;
- "test failed": an assert test failed (AssertionError);
- "wrong output": a stdin/stdout or call-based test gave another output or value;
- "timeout": a test ran past its time limit, or the response past the global cap;
- "runtime error": the program raised, crashed or returned something that cannot be
  compared (an unknown object, a function, ...);
- "output limit": the program printed more than the cap;
- "bad test code": the problem's own test code fails to run (the dataset's fault);
- "sandbox refusal": the sandbox could not run the program (logged as an error);
- "hack attempt: exit before tests finished": the candidate exited (SystemExit, exit(),
  os._exit) while call/assert tests were running;
- "hack attempt: always-equal object": it returned an object that claims to equal
  anything;
- "hack attempt: forged harness message": it wrote something else than a reply on the
  harness's channel.
A "hack attempt: ..." reason comes with ``hack=True``: the harness saw an attempt to pass
without the tests passing (the reward is 0 for that test).

Any reward, scored through the process pool (pool.py): "timeout" also when the pool's hard
deadline killed the worker, "reward error: <exception>" when the reward function raised
or its worker died.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    """A reward and why: ``reason`` is "" for a pass, else a short phrase."""

    reward: float
    reason: str = ""
    hack: bool = False  # the harness saw an attempt to pass without the tests passing


def as_verdict(value: object) -> Verdict:
    """A reward function's result as a Verdict (a number is a reward without a reason).

    Raises:
        TypeError: neither a Verdict nor a number.
    """
    if isinstance(value, Verdict):
        return value
    if isinstance(value, bool | int | float) or hasattr(value, "__float__"):
        return Verdict(float(value))  # type: ignore[arg-type]
    raise TypeError(f"a reward must return a float or a Verdict, got {type(value).__name__}")
