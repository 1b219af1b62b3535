from __future__ import annotations

import logging
from pathlib import Path

import pytest

from or1.build import fit_prompts
from or1.config import Config
from or1.data.problem import Problem
from or1.errors import DataError
from or1.trainer import Trainer


def problem(uid: str, text: str) -> Problem:
    return Problem(uid=uid, prompt=[{"role": "user", "content": text}], ground_truth="1")


def encode_chars(p: Problem) -> list[int]:
    return [ord(c) for c in p.prompt[0]["content"]]


def test_fit_prompts_drops_overlong_prompts_and_says_which(
    caplog: pytest.LogCaptureFixture,
) -> None:
    problems = [problem("a", "x" * 3), problem("b", "x" * 5), problem("c", "x" * 4)]
    with caplog.at_level(logging.WARNING, logger="or1.build"):
        kept, ids = fit_prompts(problems, encode_chars, 4, split="train")
    assert [p.uid for p in kept] == ["a", "c"]
    assert ids == {"a": [120] * 3, "c": [120] * 4}
    assert "dropped 1 of 3" in caplog.text and "b: 5 tokens" in caplog.text


def test_fit_prompts_keeps_everything_silently_when_all_fit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    problems = [problem("a", "xy")]
    with caplog.at_level(logging.WARNING, logger="or1.build"):
        kept, _ = fit_prompts(problems, encode_chars, 2, split="test")
    assert kept == problems and caplog.text == ""
    assert fit_prompts([], encode_chars, 2, split="test") == ([], {})


def test_fit_prompts_raises_when_nothing_fits() -> None:
    with pytest.raises(DataError, match=r"every prompt is longer.*max_prompt_length=2"):
        fit_prompts([problem("a", "xyz")], encode_chars, 2, split="train")


def test_trainer_samples_only_prompts_that_fit(small_config: Config, tmp_path: Path) -> None:
    full = Trainer(small_config, tmp_path / "full", show_progress=False)
    lengths = sorted(len(full.prompt_ids(p)) for p in full.train_problems)
    assert lengths[0] < lengths[-1]  # the task's prompts differ in length
    limit = lengths[-1] - 1
    cfg = small_config.model_copy(deep=True)
    cfg.rollout.max_prompt_length = limit
    trainer = Trainer(cfg, tmp_path / "cut", show_progress=False)
    kept = trainer.train_problems
    assert 0 < len(kept) < len(full.train_problems)
    assert len(kept) == sum(n <= limit for n in lengths)
    assert all(len(trainer.prompt_ids(p)) <= limit for p in kept)
    assert set(trainer.sampler.active) == {p.uid for p in kept}
    cfg.rollout.max_prompt_length = 1
    with pytest.raises(DataError, match="max_prompt_length=1"):
        Trainer(cfg, tmp_path / "none", show_progress=False)
