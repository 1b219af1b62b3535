"""Math reward: Math-Verify against the ground truth wrapped in \\boxed{}.

Recipe (Skywork-OR1, RECIPE.md "Rewards" and the released `hf_math_verify.py`):
1. take the text after `</think>` (the whole text if absent);
2. parse it with Math-Verify (default extraction: LaTeX, boxed first, then plain
   expressions; parse timeout 5 s);
3. fast path: a string match with the ground truth;
4. else `verify(parse("\\boxed{" + gt + "}"), parsed, timeout 5 s)`; wrapping the gold
   answer in \\boxed{} matters. Reward 1.0 or 0.0; 0.0 for anything unparsable.

Choices and departures, stated once:
- "After `</think>`" means after the LAST `</think>` (the released code splits on the
  first one and keeps the piece up to a second one: ``first_think_answer``, selected by
  ``rewards.answer_after: first-think``).
- Only the last `MAX_ANSWER_CHARS` characters of that text are parsed, so a 1 MB
  response costs no more than a long one; an answer earlier than that is not seen.
- Fast path: the content of the last \\boxed{...} (or \\fbox{...}), stripped, equals the
  stripped ground truth, or Math-Verify's extracted answer string equals it. So with
  several boxed answers the last one counts on the fast path, while Math-Verify itself
  reads "\\boxed{3} ... \\boxed{4}" as the set {3, 4}. When that boxed content and the
  ground truth are both plain integers ("-042"), they are compared as integers without
  Math-Verify: the same verdict, ~50x faster (tiny-arith's answers are integers).
- Math-Verify's timeouts use SIGALRM, which only works in the main thread. Called from
  any other thread, `math_reward` sends the item to the reward process pool (one worker,
  created lazily; see or1/rewards/pool.py), where the timeouts work and a worker that
  hangs is killed. If no pool can be started there (e.g. inside a daemonic
  multiprocessing worker), it parses without a timeout on the bounded text and says so
  once in the log: that path can hang on adversarial LaTeX.
- Timeouts are per operation: parsing the response (5 s), parsing the gold (5 s) and the
  comparison (5 s, all of `verify`), so a pathological answer costs ~15 s at worst. They
  are ours (`_time_limit`), not Math-Verify's: its one-shot SIGALRM raises once, and an
  exception raised while a gc callback or `__del__` runs is swallowed by Python ("Exception
  ignored in ..."), e.g. inside hypothesis's gc timer, which then let parsing run on
  unbounded. Ours re-fires every `_RETRY_S` until the operation has stopped.
- Math-Verify logs every timeout with the full text at WARNING; its logger is set to
  ERROR here so 1 MB responses do not flood the training log.
- Several acceptable answers: a ground truth that is a JSON list of strings
  (`'["3", "4"]'`, the form of Skywork-OR1-RL-Data, which the released preprocessing
  `json.loads`) scores 1.0 when the response matches any of them (the released reward's
  semantics). Only lists of strings are decoded: `"[1, 2]"` stays the interval it is.
- A missing/empty ground truth is the caller's fault: `RewardError`. No exception from
  parsing or verification escapes: they give 0.0.
- `math_verdict` gives the reward with its reason ("" for a pass, "wrong answer", "no
  answer found", "verification error"); `math_reward` is its reward.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import signal
import threading
from collections.abc import Iterator

from or1.errors import RewardError
from or1.rewards.verdict import Verdict

logger = logging.getLogger("or1.rewards")
logging.getLogger("math_verify").setLevel(logging.ERROR)

PARSE_TIMEOUT_S = 5  # Math-Verify parsing timeout (the recipe's value); whole seconds
VERIFY_TIMEOUT_S = 5  # Math-Verify comparison timeout (the recipe's value)
MAX_ANSWER_CHARS = 50_000  # parse only this much of the answer text (the tail)
POOL_TIMEOUT_S = 60.0  # hard deadline per item in the process pool (worker killed)
_RETRY_S = 0.05  # a swallowed timeout is raised again this often
THINK_END = "</think>"
_BOX_COMMANDS = ("\\boxed", "\\fbox")
_INTEGER = re.compile(r"[+-]?\d+")
_warned_no_timeout = False
CORRECT, WRONG, NO_ANSWER = "", "wrong answer", "no answer found"  # "" for a pass (verdict.py)
ERROR = "verification error"


def math_reward(response: str, ground_truth: str) -> float:
    """Reward of a math response: 1.0 if its final answer equals the ground truth.

    Args:
        response: the model's full response (reasoning, `</think>`, answer).
        ground_truth: the reference answer as LaTeX, without \\boxed{} (e.g. "\\frac{1}{2}"),
            or a JSON list of acceptable answers (e.g. '["3", "4"]': any of them scores).

    Returns:
        1.0 or 0.0.

    Raises:
        RewardError: the ground truth is missing or empty (the caller's fault).

    Example:
        >>> math_reward("... so the answer is $\\boxed{0.5}$.", "\\frac{1}{2}")
        1.0
    """
    return math_verdict(response, ground_truth).reward


def math_verdict(response: str, ground_truth: str) -> Verdict:
    """``math_reward`` with its reason: "" for a pass, else "wrong answer", "no answer
    found" (nothing Math-Verify could parse) or "verification error" (parsing or
    comparing raised).

    Off the main thread the item is scored in the reward pool, which returns the reward
    only: the reason of a 0 is then "wrong answer".

    Example:
        >>> math_verdict("\\boxed{4}", '["3", "4"]')
        Verdict(reward=1.0, reason='', hack=False)
    """
    golds = math_answers(ground_truth)
    if not isinstance(response, str):
        return Verdict(0.0, NO_ANSWER)
    if threading.current_thread() is not threading.main_thread():
        reward = _score_off_main_thread(response, ground_truth, golds)
        return Verdict(reward, CORRECT if reward else WRONG)
    reward, reason = _score(response, golds, timeout=True)
    return Verdict(reward, reason)


def math_answers(ground_truth: object) -> list[str]:
    """The acceptable answers of a ground truth: the strings of a JSON list of strings,
    else the ground truth itself (stripped).

    Raises:
        RewardError: missing, empty, an empty list or an empty answer in it.

    Example:
        >>> math_answers('["1,000", "1000"]'), math_answers("[1, 2]")
        (['1,000', '1000'], ['[1, 2]'])
    """
    gold = _ground_truth(ground_truth)
    if not gold.startswith("["):
        return [gold]
    try:
        decoded = json.loads(gold)
    except (ValueError, RecursionError):
        return [gold]  # LaTeX such as "[1, 2)" that is not JSON
    if not isinstance(decoded, list) or not all(isinstance(x, str) for x in decoded):
        return [gold]  # e.g. the interval "[1, 2]"
    answers = [x.strip() for x in decoded]
    if not answers or not all(answers):
        raise RewardError(
            f"math ground truth {gold!r:.80} is a JSON list with no answer or an empty one",
            hint="give at least one non-empty answer, e.g. '[\"3\"]'.",
        )
    return answers


def answer_text(response: str, *, limit: int | None = MAX_ANSWER_CHARS) -> str:
    """The text after the last `</think>` (all of it if absent), its last `limit` chars."""
    cut = response.rfind(THINK_END)
    text = response if cut < 0 else response[cut + len(THINK_END) :]
    return text if limit is None else text[-limit:]


def first_think_answer(response: str) -> str:
    """The released reward's answer text: between the first `</think>` and a second one
    (all of the text if there is none). It holds no `</think>`, so ``answer_text`` then
    keeps all of it.

    Example:
        >>> first_think_answer("a</think>b</think>c"), answer_text("a</think>b</think>c")
        ('b', 'c')
    """
    return response.split(THINK_END)[1] if THINK_END in response else response


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} / \\fbox{...} with balanced braces, or None."""
    starts = [text.rfind(cmd + "{") for cmd in _BOX_COMMANDS]
    start = max(starts)
    if start < 0:
        return None
    open_at = text.index("{", start)
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i]
    return None  # unbalanced: cut off


def _integer_key(token: str) -> tuple[bool, str]:
    digits = token.lstrip("+-").lstrip("0") or "0"  # no int(): no 4300-digit limit
    return (token.startswith("-") and digits != "0", digits)


def _ground_truth(ground_truth: object) -> str:
    if isinstance(ground_truth, (int, float)) and not isinstance(ground_truth, bool):
        ground_truth = str(ground_truth)
    if not isinstance(ground_truth, str) or not ground_truth.strip():
        raise RewardError(
            f"math ground truth must be a non-empty string, got {ground_truth!r:.80}",
            hint="check the dataset row's reward_model.ground_truth.",
        )
    return ground_truth.strip()


def _score(response: str, golds: list[str], *, timeout: bool) -> tuple[float, str]:
    """(reward, reason) of a response against any of ``golds``."""
    from math_verify import parse, verify
    from math_verify.errors import TimeoutException

    parse_s = PARSE_TIMEOUT_S if timeout else None
    verify_s = VERIFY_TIMEOUT_S if timeout else None
    text = answer_text(response)
    try:
        boxed = last_boxed(text)
        if boxed is not None and (fast := _fast_path(boxed.strip(), golds)) is not None:
            return fast, CORRECT if fast else WRONG
        with _time_limit(parse_s):
            parsed = parse(text, parsing_timeout=None)
        if not parsed:
            return 0.0, NO_ANSWER
        if len(parsed) > 1 and isinstance(parsed[1], str) and parsed[1].strip() in golds:
            return 1.0, CORRECT
        for gold in golds:
            with _time_limit(parse_s):
                gold_parsed = parse("\\boxed{" + gold + "}", parsing_timeout=None)
            with _time_limit(verify_s):
                if verify(gold_parsed, parsed, timeout_seconds=None):
                    return 1.0, CORRECT
        return 0.0, WRONG
    except (Exception, TimeoutException):  # RecursionError, MemoryError, sympy bugs, ...
        logger.debug("math reward: verification failed; reward 0", exc_info=True)
        return 0.0, ERROR


def _fast_path(boxed: str, golds: list[str]) -> float | None:
    """1.0 on a string match with any gold; the integer comparison when the boxed answer
    and every gold are plain integers; None when Math-Verify has to decide."""
    if boxed in golds:
        return 1.0
    if _INTEGER.fullmatch(boxed) and all(_INTEGER.fullmatch(g) for g in golds):
        key = _integer_key(boxed)
        return 1.0 if any(_integer_key(g) == key for g in golds) else 0.0
    return None


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise Math-Verify's TimeoutException in the block after `seconds` (main thread only).

    The alarm repeats every `_RETRY_S` until the block ends, so a raise that Python
    swallowed (signal handled inside a gc callback or a finalizer) is raised again.
    Math-Verify catches the exception inside `parse` (-> []) and `verify` (-> False).
    """
    if not seconds:
        yield
        return
    from math_verify.errors import TimeoutException

    def expire(signum: int, frame: object) -> None:
        raise TimeoutException("or1 math reward: operation timed out")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds, _RETRY_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _score_off_main_thread(response: str, ground_truth: str, golds: list[str]) -> float:
    from or1.rewards import pool

    try:
        job = (math_reward, response, ground_truth, POOL_TIMEOUT_S)
        return pool.score_in_pool([job], workers=None)[0].reward
    except (OSError, RuntimeError) as err:
        global _warned_no_timeout
        if not _warned_no_timeout:
            _warned_no_timeout = True
            logger.warning(
                "math reward off the main thread without a process pool (%s): parsing "
                "without a timeout",
                err,
            )
        return _score(response, golds, timeout=False)[0]
