"""tiny-code: problem generation, hidden tests through the real code reward, the teacher."""

from __future__ import annotations

import ast
import json
import random
import re

import pytest

from or1.config import CodeConfig
from or1.data.tasks import coding
from or1.data.tasks.coding_specs import (
    ARG_NAMES,
    FUNCTION_NAMES,
    SPECS,
    SPECS_BY_NAME,
    parse_table,
)
from or1.rewards import code_reward, score_batch
from or1.rewards.code import extract_code

SMALL = CodeConfig(n_train=300, n_test=60)


def _one_per_spec(seed: int = 0) -> list:
    """One problem of every template, parameters and names drawn from ``seed``."""
    rng = random.Random(seed)
    return [
        coding.make_problem(
            spec,
            spec.params(rng),
            rng.choice(FUNCTION_NAMES),
            rng.choice(ARG_NAMES[spec.kind]),
            n_tests=8,
        )
        for spec in SPECS
    ]


def test_splits_are_disjoint_sized_seeded_and_code() -> None:
    train, test = coding.generate_splits(SMALL, seed=0)
    assert len(train) == 300 and len(test) == 60
    assert len({p.uid for p in train}) == 300
    assert not {p.uid for p in train} & {p.uid for p in test}
    again = coding.generate_splits(SMALL, seed=0)
    assert [(p.uid, p.ground_truth) for p in again[0] + again[1]] == [
        (p.uid, p.ground_truth) for p in train + test
    ]
    assert [p.uid for p in coding.generate_splits(SMALL, seed=1)[1]] != [p.uid for p in test]
    assert {p.ability for p in train + test} == {"code"}
    assert {p.data_source for p in train + test} == {"tiny-code"}
    # Both splits draw on most templates (a uniform split, not the last-drawn leftovers).
    assert len({p.extra_info["spec"] for p in test}) >= 25
    for p in train + test:
        assert p.question.endswith("Answer with the function in a ```python block.")
        assert f"function {p.extra_info['fn']}({p.extra_info['arg']})" in p.question


def test_too_many_problems_asked_is_a_config_error() -> None:
    from or1.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data\.code"):
        coding.generate_splits(CodeConfig(n_train=20_000, n_test=10), seed=0)


def test_hidden_tests_are_call_based_and_defeat_constants_and_echoes() -> None:
    train, test = coding.generate_splits(SMALL, seed=0)
    for p in train + test:
        tests = json.loads(p.ground_truth)
        assert tests["fn_name"] == p.extra_info["fn"]
        assert len(tests["inputs"]) == len(tests["outputs"]) >= 8
        assert all(isinstance(x, list) and len(x) == 1 for x in tests["inputs"])
        # No constant answer passes: at least two different expected outputs ...
        assert len({json.dumps(y) for y in tests["outputs"]}) >= 2, p.uid
        # ... and returning the argument unchanged fails at least one test.
        assert any(x[0] != y for x, y in zip(tests["inputs"], tests["outputs"], strict=True))


def test_every_reference_passes_and_every_slip_fails_in_the_sandbox() -> None:
    problems = _one_per_spec(0)
    items, want = [], []
    for p in problems:
        spec = SPECS_BY_NAME[p.extra_info["spec"]]
        items.append(("code", coding.solution(p, spec.body), p.ground_truth))
        want.append(1.0)
        for slip in spec.slips:
            items.append(("code", coding.solution(p, slip), p.ground_truth))
            want.append(0.0)
    got = score_batch(items)  # the training reward path: sandboxed code_reward per item
    wrong = [(items[i][1], want[i]) for i in range(len(items)) if got[i] != want[i]]
    assert not wrong, wrong[:3]


def test_split_references_pass_and_trivial_programs_fail_in_the_sandbox() -> None:
    _, test = coding.generate_splits(SMALL, seed=0)
    for p in test[:10]:
        spec = SPECS_BY_NAME[p.extra_info["spec"]]
        assert code_reward(coding.solution(p, spec.body), p.ground_truth) == 1.0, p.uid
    for p in test[:4]:
        fn, arg = p.extra_info["fn"], p.extra_info["arg"]
        for body in ("return 0", f"return {arg}", "return True", "return []", "return ''"):
            program = f"```python\ndef {fn}({arg}):\n    {body}\n```"
            assert code_reward(program, p.ground_truth) == 0.0, (p.uid, body)


def test_teacher_solutions_have_the_r1_format_and_slip_at_the_rate() -> None:
    train, _ = coding.generate_splits(SMALL, seed=0)
    pattern = re.compile(
        r"<think>\n[^\n]+\n</think>\n```python\ndef (\w+)\((\w+)\):\n(    .+\n)+```"
    )
    pairs = list(coding.warmup_examples(train, 600, error_rate=0.5, seed=0))
    assert len(pairs) == 600 and {p.uid for p, _ in pairs} <= {p.uid for p in train}
    slipped = 0
    for problem, text in pairs:
        match = pattern.fullmatch(text)
        assert match, text
        assert match.groups()[:2] == (problem.extra_info["fn"], problem.extra_info["arg"])
        code = extract_code(text)
        assert code is not None and ast.parse(code)
        spec = SPECS_BY_NAME[problem.extra_info["spec"]]
        slipped += text != coding.solution(problem, spec.body)
    assert 0.42 * 600 < slipped < 0.58 * 600
    rng = random.Random(0)
    for p in train[:50]:
        spec = SPECS_BY_NAME[p.extra_info["spec"]]
        assert coding.teacher_solution(p, rng, 0.0) == coding.solution(p, spec.body)


def test_tokenizer_corpus_covers_prompts_and_solutions() -> None:
    corpus = coding.tokenizer_corpus(SMALL)
    assert "<think>" in corpus and "</think>" in corpus
    text = "\n".join(corpus)
    for spec in SPECS:
        assert spec.plan.split("{")[0].strip() in text, spec.name


def test_spec_table_is_consistent_and_bad_tables_are_rejected() -> None:
    assert len(SPECS) >= 40 and len(SPECS_BY_NAME) == len(SPECS)
    assert {s.kind for s in SPECS} == {"list", "int", "str"}
    assert all(len(s.slips) >= 2 and s.body not in s.slips for s in SPECS)
    with pytest.raises(ValueError, match="needs a body"):
        parse_table("x | list | - | the thing | plan\n    ! return 1\n")
    with pytest.raises(ValueError, match="unknown params"):
        parse_table("x | list | Q 1 | the thing | plan\n    return 1\n    ! return 2\n")
