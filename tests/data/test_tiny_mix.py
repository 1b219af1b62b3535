"""tiny-mix: math and code in one run (splits, warm-up share, one tokenizer)."""

from __future__ import annotations

from or1.build.models import build_tiny_tokenizer
from or1.config import ArithConfig, CodeConfig, DataConfig
from or1.data.tasks import TASKS, mix

DATA = DataConfig(arith=ArithConfig(n_train=60, n_test=10), code=CodeConfig(n_train=30, n_test=10))


def test_splits_are_both_tasks_shuffled_together() -> None:
    train, test = mix.generate_splits(DATA, 0)
    assert [p.ability for p in train].count("code") == 30 and len(train) == 90
    assert [p.ability for p in test].count("code") == 10 and len(test) == 20
    assert {p.data_source for p in train} == {"tiny-arith", "tiny-code"}
    # Shuffled: a capped evaluation (eval.max_problems) sees both abilities.
    assert {p.ability for p in test[:6]} == {"math", "code"}
    assert [p.uid for p in mix.generate_splits(DATA, 0)[0]] == [p.uid for p in train]


def test_warmup_examples_split_by_train_share_and_match_their_problem() -> None:
    train, _ = mix.generate_splits(DATA, 0)
    pairs = list(mix.warmup_examples(train, 90, DATA, 0))
    assert len(pairs) == 90
    assert sum(p.ability == "code" for p, _ in pairs) == 30
    for problem, text in pairs:
        assert text.startswith("<think>\n")
        if problem.ability == "code":
            assert "```python\ndef " in text and "\\boxed" not in text
        else:
            assert text.rstrip().endswith("}") and "\\boxed{" in text


def test_one_tokenizer_reads_and_writes_both_tasks_exactly() -> None:
    hooks = TASKS["tiny-mix"].tiny
    assert hooks is not None
    tok = build_tiny_tokenizer(
        hooks.tokenizer_corpus(DATA), vocab_size=hooks.vocab_size, extra_tokens=hooks.extra_tokens
    )
    train, _ = mix.generate_splits(DATA, 0)
    for problem, text in mix.warmup_examples(train, 40, DATA, 0):
        for s in (problem.question, text):  # indentation and newlines survive
            assert tok.decode(tok(s)["input_ids"]) == s
    for word in (" return", " for", " sum", "Compute"):  # code and math words are merged
        assert len(tok.tokenize(word)) == 1, word
