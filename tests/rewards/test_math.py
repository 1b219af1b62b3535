"""math_reward: verdicts on a table of answers, `</think>` handling, robustness."""

from __future__ import annotations

import random
import threading
import time

import pytest

from or1.errors import RewardError
from or1.rewards import math as math_module
from or1.rewards import math_reward
from or1.rewards.math import answer_text, last_boxed

PMAT = "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}"

# (response, ground truth, expected reward)
CASES = [
    # fractions
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}", 1.0),
    ("The answer is \\boxed{0.5}.", "\\frac{1}{2}", 1.0),
    ("\\boxed{\\dfrac{3}{4}}", "0.75", 1.0),
    ("\\boxed{\\frac{2}{4}}", "\\frac12", 1.0),
    ("\\boxed{1/2}", "\\frac{1}{2}", 1.0),
    ("\\boxed{\\frac{1}{3}}", "0.33", 0.0),
    # decimals
    ("\\boxed{3.14}", "3.14", 1.0),
    ("\\boxed{3.140}", "3.14", 1.0),
    ("\\boxed{3}", "3.0", 1.0),
    ("\\boxed{3.15}", "3.14", 0.0),
    # percentages
    ("\\boxed{50\\%}", "50", 1.0),
    ("\\boxed{50\\%}", "0.5", 1.0),
    ("\\boxed{25\\%}", "50", 0.0),
    # intervals
    ("\\boxed{(1, 2]}", "(1,2]", 1.0),
    ("\\boxed{[1,2)}", "[1,2)", 1.0),
    ("\\boxed{(-\\infty, 0) \\cup (1, \\infty)}", "(-\\infty,0)\\cup(1,\\infty)", 1.0),
    ("\\boxed{(1,2)}", "[1,2]", 0.0),
    # sets and tuples of answers
    ("\\boxed{\\{1,2,3\\}}", "\\{3,2,1\\}", 1.0),
    ("\\boxed{1,2}", "2,1", 1.0),
    ("\\boxed{\\{1,2\\}}", "\\{1,2,3\\}", 0.0),
    # matrices
    ("\\boxed{" + PMAT + "}", PMAT, 1.0),
    ("\\boxed{\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}}", PMAT, 1.0),
    ("\\boxed{\\begin{pmatrix}1&2\\\\3&5\\end{pmatrix}}", PMAT, 0.0),
    # units
    ("\\boxed{5 \\text{ cm}}", "5", 1.0),
    ("\\boxed{12^\\circ}", "12", 1.0),
    ("\\boxed{\\$5}", "5", 1.0),
    ("\\boxed{5\\text{ meters}}", "6", 0.0),
    # \text{}
    ("\\boxed{\\text{(B)}}", "B", 1.0),
    ("\\boxed{\\text{yes}}", "\\text{yes}", 1.0),
    ("\\boxed{\\text{no}}", "\\text{yes}", 0.0),
    # several boxed answers: the last one counts on the fast path; Math-Verify reads a set
    ("first \\boxed{3} then \\boxed{4}", "4", 1.0),
    ("first \\boxed{3} then \\boxed{4}", "3", 0.0),
    ("\\boxed{3} and \\boxed{4}", "3, 4", 1.0),
    # no boxed answer: Math-Verify's plain-expression extraction
    ("The answer is 42.", "42", 1.0),
    ("The final answer is $\\frac{1}{2}$.", "0.5", 1.0),
    ("no numbers here", "42", 0.0),
    # nested braces
    ("\\boxed{{{{{3}}}}}", "3", 1.0),
    ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt3}2", 1.0),
    ("\\boxed{\\frac{1}{\\frac{1}{2}}}", "2", 1.0),
    ("\\boxed{3", "3", 0.0),  # unbalanced (cut off)
    # </think>: only the text after the last one counts; whole text without it
    ("I think \\boxed{5}</think>The answer is \\boxed{7}", "7", 1.0),
    ("I think \\boxed{5}</think>The answer is \\boxed{7}", "5", 0.0),
    ("\\boxed{5}</think>draft</think>final \\boxed{6}", "6", 1.0),
    ("\\boxed{5}</think>", "5", 0.0),
    ("<think>so it is \\boxed{9}", "9", 1.0),
    # algebra, forms, wrong answers
    ("\\boxed{x^2+2x+1}", "(x+1)^2", 1.0),
    ("\\boxed{2\\sqrt{2}}", "\\sqrt{8}", 1.0),
    ("\\boxed{x=3}", "3", 1.0),
    ("\\boxed{1,000}", "1000", 1.0),
    ("\\boxed{10^{3}}", "1000", 1.0),
    ("\\boxed{\\frac{\\pi}{2}}", "\\pi/2", 1.0),
    ("\\fbox{8}", "8", 1.0),
    ("\\boxed{ 42 }", " 42 ", 1.0),
    ("\\boxed{-3}", "3", 0.0),
    ("\\boxed{\\pi}", "3.14159", 0.0),
    ("$\\boxed{\\sqrt{2}}$", "1.414", 0.0),
    ("", "1", 0.0),
    ("\\boxed{}", "1", 0.0),
]


def test_table_is_big_enough():
    assert len(CASES) >= 40
    assert {v for _, _, v in CASES} == {0.0, 1.0}


@pytest.fixture
def patient(monkeypatch):
    """Verdicts, not timing: on a loaded 2-core machine a cold sympy comparison can take
    seconds, and a Math-Verify timeout would turn a right answer into 0.0."""
    monkeypatch.setattr(math_module, "PARSE_TIMEOUT_S", 60)
    monkeypatch.setattr(math_module, "VERIFY_TIMEOUT_S", 60)


@pytest.mark.parametrize(("response", "gold", "expected"), CASES)
def test_verdicts(response, gold, expected, patient):
    assert math_reward(response, gold) == expected


@pytest.mark.parametrize(
    ("boxed", "gold"),
    [
        ("7", "7"),
        ("007", "7"),
        ("-3", "3"),
        ("+5", "5"),
        ("-0", "0"),
        ("12", "21"),
        ("3", "3.0"),
        ("123456789012345678901234567890", "123456789012345678901234567890"),
    ],
)
def test_integer_shortcut_agrees_with_math_verify(boxed, gold, patient):
    from math_verify import parse, verify

    response = f"The answer is $\\boxed{{{boxed}}}$."
    reference = verify(parse("\\boxed{" + gold + "}"), parse(response))
    assert math_reward(response, gold) == float(reference)


def test_answer_text_takes_the_tail_after_the_last_think():
    assert answer_text("a</think>b</think>c") == "c"
    assert answer_text("no think") == "no think"
    assert answer_text("x" * 10 + "</think>" + "y" * 100, limit=7) == "y" * 7


def test_last_boxed_balances_braces():
    assert last_boxed("\\boxed{1} \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert last_boxed("\\boxed{a{b}c} \\fbox{d}") == "d"
    assert last_boxed("\\boxed{open") is None
    assert last_boxed("nothing") is None


@pytest.mark.parametrize("gold", ["", "   ", None, ["1"]])
def test_bad_ground_truth_is_the_callers_error(gold):
    with pytest.raises(RewardError, match="ground truth"):
        math_reward("\\boxed{1}", gold)


def test_numeric_ground_truth_is_accepted():
    assert math_reward("\\boxed{7}", 7) == 1.0


@pytest.mark.parametrize("response", [None, 42, b"\\boxed{1}"])
def test_non_string_response_scores_zero(response):
    assert math_reward(response, "1") == 0.0


def test_one_megabyte_response_is_fast():
    start = time.monotonic()
    assert math_reward("a" * 1_000_000 + " so \\boxed{3}", "3") == 1.0
    assert math_reward("1 " * 500_000 + "\\boxed{4}", "3") == 0.0
    assert math_reward("\\boxed{" + "{" * 1_000_000, "3") == 0.0
    assert time.monotonic() - start < 5


def test_answer_before_the_parsed_tail_is_not_seen():
    # Documented: only the last MAX_ANSWER_CHARS characters are parsed.
    assert math_reward("\\boxed{3}" + " filler" * 200_000, "3") == 0.0


def test_unicode_junk_and_control_characters():
    rng = random.Random(0)
    junk = "".join(chr(rng.randint(0x80, 0x2FFFF)) for _ in range(100_000))
    assert math_reward(junk, "3") == 0.0
    assert math_reward("\x00\\boxed{3}\x00", "3") == 1.0
    assert math_reward("\ud800\\boxed{3}\udfff", "3") == 1.0
    assert math_reward("\\boxed{\ud800}", "3") == 0.0


def test_works_off_the_main_thread():
    out: list[float] = []
    errors: list[BaseException] = []

    def work():
        try:
            out.extend([math_reward("\\boxed{0.5}", "\\frac12"), math_reward("\\boxed{2}", "3")])
        except BaseException as err:  # pragma: no cover - the assertion reports it
            errors.append(err)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(60)
    assert not errors and out == [1.0, 0.0]


@pytest.mark.slow
@pytest.mark.parametrize(
    "response",
    [
        "\\boxed{10^{10^{10^{10}}}}",  # sympy power tower: the comparison times out
        "\\boxed{" + "\\sqrt{" * 2000 + "2" + "}" * 2001,  # parsing times out
    ],
)
def test_pathological_latex_times_out_to_zero(response, monkeypatch):
    # 1 s instead of the recipe's 5 s keeps the test short; the mechanism is the same
    # (test_batch runs one with the real values in a pool worker).
    monkeypatch.setattr(math_module, "PARSE_TIMEOUT_S", 1)
    monkeypatch.setattr(math_module, "VERIFY_TIMEOUT_S", 1)
    start = time.monotonic()
    assert math_reward(response, "1") == 0.0
    # Parse 1 s + gold parse + verify 1 s at worst on an idle machine; the bound leaves
    # room for a loaded one (4 s failed at load 15) and still catches a missing deadline,
    # without which these run for minutes.
    assert time.monotonic() - start < 15


def test_a_swallowed_timeout_is_raised_again():
    # Python swallows an exception raised by a signal handler while a gc callback or a
    # finalizer runs (hypothesis installs such a callback), so a one-shot alarm can be
    # lost and parsing then runs unbounded; the deadline must fire again.
    from math_verify.errors import TimeoutException

    raised = 0
    start = time.monotonic()
    with pytest.raises(TimeoutException), math_module._time_limit(0.2):
        while time.monotonic() - start < 5:
            try:
                while time.monotonic() - start < 5:
                    pass
            except TimeoutException:
                raised += 1
                if raised == 2:
                    raise
    assert raised == 2
    assert time.monotonic() - start < 2


# JSON-list ground truths (Skywork-OR1-RL-Data): any answer of the list scores.
LIST_CASES = [
    ("\\boxed{3}", '["3", "4"]', 1.0),
    ("\\boxed{4}", '["3","4"]', 1.0),
    ("\\boxed{5}", '["3", "4"]', 0.0),
    ("\\boxed{1000}", '["1,000"]', 1.0),
    ("\\boxed{1,000}", '["1,000"]', 1.0),
    ("\\boxed{999}", '["1,000"]', 0.0),
    ("\\boxed{0.5}", '["\\\\frac{1}{2}"]', 1.0),  # escaped LaTeX, decoded by JSON
    ("\\boxed{\\frac{1}{3}}", '["\\\\frac{1}{2}"]', 0.0),
    ("\\boxed{\\sqrt{2}}", '["x", "\\\\sqrt{2}"]', 1.0),  # a non-integer list: Math-Verify
    ("\\boxed{[1, 2]}", '["[1, 2]"]', 1.0),  # an interval inside the list
    # Not a list of strings: the text is the answer (an interval), never split into {1, 2}.
    ("\\boxed{2}", "[1, 2]", 0.0),
    ("\\boxed{[1,2]}", "[1, 2]", 1.0),
    ("\\boxed{[1,2)}", "[1,2)", 1.0),  # not JSON at all
]


@pytest.mark.parametrize(("response", "gold", "expected"), LIST_CASES)
def test_json_list_ground_truths_score_any_of(response, gold, expected):
    assert math_reward(response, gold) == expected


@pytest.mark.parametrize("gold", ["[]", '["3", ""]', '["  "]'])
def test_an_empty_answer_list_is_the_callers_error(gold):
    with pytest.raises(RewardError, match="JSON list"):
        math_reward("\\boxed{3}", gold)


def test_verdict_reasons():
    from or1.rewards.math import math_verdict

    assert math_verdict("\\boxed{3}", '["3"]').reason == ""  # a pass has no reason
    assert math_verdict("\\boxed{4}", "3").reason == "wrong answer"
    assert math_verdict("no answer in here", "3").reason == "no answer found"
    assert math_verdict("\\boxed{4}", "3").reward == 0.0 and not math_verdict("x", "3").hack
