"""The spec templates of tiny-code: what each function must do, its reference body, and
the teacher's slips, as one readable table (``TABLE``) parsed at import.

A template's header line is ``name | kind | params | text | plan``: ``kind`` is the
argument's type (``list`` of ints, ``int`` with an optional input range ``int LOW HIGH``,
``str``); ``params`` is ``-`` (none), ``K LOW HIGH`` (an integer K), ``K L`` (a range
[K, L], L - K in 2..6) or ``C`` (a letter); ``text`` is the spec after "that returns";
``plan`` the teacher's one-line reasoning. The indented line under it is the reference
body, each ``!`` line a slip: a wrong body of the kind a distilled model writes (an
off-by-one, a wrong comparison, a wrong operator, a missing case). ``\\n`` separates
body lines. Placeholders: ``{a}`` the argument's name, ``{K}``/``{L}`` with
``{Kp}``/``{Km}`` for K+1/K-1, ``{C}`` with ``{Cn}`` the next letter. Every slip must fail
at least one hidden test: the generator picks tests so that it does, and
tests/data/test_tiny_code.py checks it through the real code reward.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

Params = dict[str, int | str]
ParamSampler = Callable[[random.Random], Params]
LETTERS = "abcdefgh"  # letter parameters (count/remove/starts-with) and test strings

TABLE = r"""
sum-even | list | - | the sum of the even numbers in {a} | add up the even numbers
    return sum(x for x in {a} if x % 2 == 0)
    ! return sum(x for x in {a} if x % 2 == 1)
    ! return sum({a})
sum-odd | list | - | the sum of the odd numbers in {a} | add up the odd numbers
    return sum(x for x in {a} if x % 2 == 1)
    ! return sum(x for x in {a} if x % 2 == 0)
    ! return sum({a})
count-even | list | - | how many even numbers are in {a} | count the even numbers
    return sum(1 for x in {a} if x % 2 == 0)
    ! return sum(1 for x in {a} if x % 2 == 1)
    ! return len({a})
count-gt | list | K 0 9 | how many numbers in {a} are greater than {K} | count the numbers above {K}
    return sum(1 for x in {a} if x > {K})
    ! return sum(1 for x in {a} if x >= {K})
    ! return sum(1 for x in {a} if x < {K})
count-lt | list | K 0 9 | how many numbers in {a} are less than {K} | count the numbers below {K}
    return sum(1 for x in {a} if x < {K})
    ! return sum(1 for x in {a} if x <= {K})
    ! return sum(1 for x in {a} if x > {K})
count-eq | list | K 0 9 | how many times {K} occurs in {a} | count the {K}s
    return {a}.count({K})
    ! return {a}.count({Kp})
    ! return len({a})
sum-gt | list | K 1 9 | the sum of the numbers in {a} greater than {K} | add up those above {K}
    return sum(x for x in {a} if x > {K})
    ! return sum(x for x in {a} if x >= {K})
    ! return sum({a})
count-between | list | K L | how many numbers in {a} are from {K} to {L} | count {K} to {L}
    return sum(1 for x in {a} if {K} <= x <= {L})
    ! return sum(1 for x in {a} if {K} < x <= {L})
    ! return sum(1 for x in {a} if {K} <= x < {L})
count-pos | list | - | how many numbers in {a} are positive | count the numbers above 0
    return sum(1 for x in {a} if x > 0)
    ! return sum(1 for x in {a} if x >= 0)
    ! return sum(1 for x in {a} if x < 0)
distinct | list | - | how many different numbers are in {a} | count the distinct numbers
    return len(set({a}))
    ! return len({a})
    ! return len(set({a})) - 1
max | list | - | the largest number in {a}, or 0 if {a} is empty | take the maximum, 0 when empty
    return max({a}) if {a} else 0
    ! return min({a}) if {a} else 0
    ! return max({a})
min | list | - | the smallest number in {a}, or 0 if {a} is empty | take the minimum, 0 when empty
    return min({a}) if {a} else 0
    ! return max({a}) if {a} else 0
    ! return min({a})
product | list | - | the product of the numbers in {a} | multiply them all
    p = 1\nfor x in {a}:\n    p *= x\nreturn p
    ! p = 0\nfor x in {a}:\n    p *= x\nreturn p
    ! p = 1\nfor x in {a}:\n    p += x\nreturn p
index-of | list | K 0 9 | the index of the first {K} in {a}, or -1 if none | scan for {K}, else -1
    for i, x in enumerate({a}):\n    if x == {K}:\n        return i\nreturn -1
    ! for i, x in enumerate({a}):\n    if x == {K}:\n        return i + 1\nreturn -1
    ! return {a}.index({K})
scale | list | K 2 9 | {a} with every number multiplied by {K} | multiply each by {K}
    return [x * {K} for x in {a}]
    ! return [x + {K} for x in {a}]
    ! return [x * {Kp} for x in {a}]
shift | list | K 1 9 | {a} with {K} added to every number | add {K} to each
    return [x + {K} for x in {a}]
    ! return [x - {K} for x in {a}]
    ! return [x + {Kp} for x in {a}]
keep-div | list | K 2 5 | the numbers in {a} that are divisible by {K} | keep the multiples of {K}
    return [x for x in {a} if x % {K} == 0]
    ! return [x for x in {a} if x % {K} != 0]
    ! return [x for x in {a} if x % {Kp} == 0]
squares | list | - | {a} with every number squared | square each number
    return [x * x for x in {a}]
    ! return [x * 2 for x in {a}]
    ! return [x * x for x in {a}[1:]]
reverse | list | - | {a} in reverse order | reverse the list
    return {a}[::-1]
    ! return {a}[:0:-1]
    ! return {a}
first-k | list | K 1 5 | the first {K} numbers of {a} | slice the first {K}
    return {a}[:{K}]
    ! return {a}[:{Kp}]
    ! return {a}[:{Km}]
last-k | list | K 1 5 | the last {K} numbers of {a} | slice the last {K}
    return {a}[-{K}:]
    ! return {a}[-{Kp}:]
    ! return {a}[{K}:]
sum-first-k | list | K 1 5 | the sum of the first {K} numbers of {a} | add up the first {K}
    return sum({a}[:{K}])
    ! return sum({a}[:{Kp}])
    ! return sum({a}[{K}:])
sum-even-idx | list | - | the sum of the numbers at even indexes of {a} | add up indexes 0, 2, 4
    return sum({a}[::2])
    ! return sum({a}[1::2])
    ! return sum({a})
prefix-sums | list | - | the running sums of {a} | keep a running total
    s = 0\nout = []\nfor x in {a}:\n    s += x\n    out.append(s)\nreturn out
    ! s = 0\nout = []\nfor x in {a}:\n    s += x\n    out.append(x)\nreturn out
    ! s = 1\nout = []\nfor x in {a}:\n    s += x\n    out.append(s)\nreturn out
sort-asc | list | - | {a} sorted from smallest to largest | sort ascending
    return sorted({a})
    ! return sorted({a}, reverse=True)
    ! return {a}
sort-desc | list | - | {a} sorted from largest to smallest | sort descending
    return sorted({a}, reverse=True)
    ! return sorted({a})
    ! return {a}
is-sorted | list | - | True if {a} never decreases, else False | compare each pair of neighbours
    return all({a}[i] <= {a}[i + 1] for i in range(len({a}) - 1))
    ! return all({a}[i] < {a}[i + 1] for i in range(len({a}) - 1))
    ! return all({a}[i] <= {a}[i + 1] for i in range(len({a}) - 2))
triangle | int 0 30 | - | the sum of the integers from 1 to {a} | add 1 up to {a}
    return sum(range(1, {a} + 1))
    ! return sum(range(1, {a}))
    ! return sum(range(1, {a} + 2))
factorial | int 0 10 | - | the product of the integers from 1 to {a} | multiply 1 up to {a}
    p = 1\nfor i in range(2, {a} + 1):\n    p *= i\nreturn p
    ! p = 1\nfor i in range(2, {a}):\n    p *= i\nreturn p
    ! p = 0\nfor i in range(2, {a} + 1):\n    p *= i\nreturn p
divisible | int 0 60 | K 2 9 | True if {a} is divisible by {K}, else False | check {a} % {K}
    return {a} % {K} == 0
    ! return {a} % {K} != 0
    ! return {a} % {Kp} == 0
digit-sum | int 0 9999 | - | the sum of the digits of {a} | add the digits
    return sum(int(c) for c in str({a}))
    ! return len(str({a}))
    ! return {a} % 10
square-plus | int | K 1 9 | {a} squared plus {K} | square, then add {K}
    return {a} * {a} + {K}
    ! return {a} * 2 + {K}
    ! return {a} * {a} + {Kp}
multiples | int 0 60 | K 2 9 | how many multiples of {K} are between 1 and {a} | divide {a} by {K}
    return {a} // {K}
    ! return {a} // {K} + 1
    ! return {a} % {K}
clamp | int | K 2 9 | {a} limited to the range 0 to {K} | clip to 0 and {K}
    return max(0, min({a}, {K}))
    ! return max(0, min({a}, {Km}))
    ! return min({a}, {K})
distance | int | K 0 9 | the distance between {a} and {K} | absolute difference
    return abs({a} - {K})
    ! return {a} - {K}
    ! return abs({a} - {Kp})
vowels | str | - | how many vowels (a, e, i, o, u) are in {a} | count the vowels
    return sum(1 for c in {a} if c in 'aeiou')
    ! return sum(1 for c in {a} if c not in 'aeiou')
    ! return sum(1 for c in {a} if c in 'aeio')
reverse-str | str | - | {a} reversed | reverse the string
    return {a}[::-1]
    ! return {a}[:0:-1]
    ! return {a}
count-char | str | C | how many times the letter {C} occurs in {a} | count the {C}s
    return {a}.count('{C}')
    ! return {a}.count('{Cn}')
    ! return len({a})
repeat | str | K 2 5 | {a} repeated {K} times | repeat it {K} times
    return {a} * {K}
    ! return {a} * {Kp}
    ! return {a} * {Km}
upper | str | - | {a} in capital letters | uppercase it
    return {a}.upper()
    ! return {a}.lower()
    ! return {a}.capitalize()
first-chars | str | K 1 5 | the first {K} characters of {a} | slice the first {K}
    return {a}[:{K}]
    ! return {a}[:{Kp}]
    ! return {a}[{K}:]
palindrome | str | - | True if {a} reads the same backwards, else False | compare with the reverse
    return {a} == {a}[::-1]
    ! return {a} != {a}[::-1]
    ! return {a}[0] == {a}[-1]
remove-char | str | C | {a} with every {C} removed | replace {C} by nothing
    return {a}.replace('{C}', '')
    ! return {a}.replace('{C}', '', 1)
    ! return {a}.replace('{Cn}', '')
starts-with | str | C | True if {a} starts with the letter {C}, else False | check the first letter
    return {a}.startswith('{C}')
    ! return {a}.endswith('{C}')
    ! return {a}[0] == '{C}'
"""


def no_params(rng: random.Random) -> Params:
    return {}


def k_in(low: int, high: int) -> ParamSampler:
    """K uniform in [low, high]."""
    return lambda rng: {"K": rng.randint(low, high)}


def k_and_l(rng: random.Random) -> Params:
    """A range [K, L] with L - K in 2..6."""
    k = rng.randint(0, 5)
    return {"K": k, "L": k + rng.randint(2, 6)}


def letter(rng: random.Random) -> Params:
    return {"C": rng.choice(LETTERS[:-1])}  # not the last: {Cn} is the next letter


@dataclass(frozen=True)
class Spec:
    """One function template (see the module docstring for the fields' syntax).

    Attributes:
        name: stable id (part of a problem's uid).
        kind: the argument's type: "list" (of ints), "int" or "str".
        text: what the function returns, e.g. "the sum of the even numbers in {a}".
        plan: the teacher's one-line reasoning (inside ``<think>``).
        body: the reference body (lines separated by "\\n", unindented).
        slips: wrong bodies the teacher writes when it slips.
        params: draws the template's parameters.
        int_range: inclusive range of random integer inputs (kind "int").
    """

    name: str
    kind: str
    text: str
    plan: str
    body: str
    slips: tuple[str, ...]
    params: ParamSampler = field(default=no_params, compare=False)
    int_range: tuple[int, int] = (-10, 30)


def _sampler(field_text: str) -> ParamSampler:
    words = field_text.split()
    if words == ["-"]:
        return no_params
    if words == ["K", "L"]:
        return k_and_l
    if words == ["C"]:
        return letter
    if len(words) == 3 and words[0] == "K":
        return k_in(int(words[1]), int(words[2]))
    raise ValueError(f"tiny-code spec table: unknown params {field_text!r}")


def _spec(header: str, bodies: list[str]) -> Spec:
    name, kind, params, text, plan = (part.strip() for part in header.split("|"))
    kind_words = kind.split()
    int_range = (int(kind_words[1]), int(kind_words[2])) if len(kind_words) == 3 else (-10, 30)
    body, *slips = (b.replace("\\n", "\n") for b in bodies)
    if not slips or not all(s.startswith("! ") for s in slips) or body.startswith("!"):
        raise ValueError(f"tiny-code spec table: {name} needs a body, then '! ' slips")
    return Spec(
        name,
        kind_words[0],
        text,
        plan,
        body,
        tuple(s[2:] for s in slips),
        _sampler(params),
        int_range,
    )


def parse_table(table: str) -> tuple[Spec, ...]:
    """The templates of ``table`` (the format of ``TABLE``), in order."""
    specs: list[Spec] = []
    header, bodies = None, []
    for line in table.strip("\n").split("\n"):
        if not line.startswith("    "):
            if header is not None:
                specs.append(_spec(header, bodies))
            header, bodies = line, []
        else:
            bodies.append(line[4:])
    if header is not None:
        specs.append(_spec(header, bodies))
    return tuple(specs)


SPECS: tuple[Spec, ...] = parse_table(TABLE)
SPECS_BY_NAME = {s.name: s for s in SPECS}
# Function and argument names a problem may use (part of what the model must read).
FUNCTION_NAMES = ("f", "g", "solve", "compute")
ARG_NAMES = {"list": ("xs", "nums", "values"), "int": ("n", "m", "x"), "str": ("s", "word", "text")}
