"""Offline difficulty filter: HFRolloutEngine + score_batch on a tiny random model, pass
rates into extra_info.model_difficulty, reuse of shipped values, and kill/resume."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from or1.build import encode_prompt
from or1.build.models import build_tiny_model, build_tiny_tokenizer
from or1.cli import main
from or1.config import OfflineFilterConfig, TinyModelConfig
from or1.data.offline_filter import (
    PROGRESS,
    Sampler,
    offline_filter,
    stored_pass_rate,
    with_pass_rate,
)
from or1.data.problem import Problem
from or1.data.sources import load_problems
from or1.engine.hf_rollout import HFRolloutEngine
from or1.engine.rollout import stop_token_ids
from or1.errors import ConfigError
from or1.rewards import REWARDS, register_reward

EVAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "eval"
KEY = "tiny-model"


def never(problem: Problem, response: str) -> float:
    return 0.0


def always(problem: Problem, response: str) -> float:
    return 1.0


def coin(problem: Problem, response: str) -> float:
    """Random models give random text: its length parity is a fair-ish coin."""
    return float(len(response) % 2 == 0)


@pytest.fixture(autouse=True)
def test_rewards() -> Iterator[None]:
    for fn in (never, always, coin):
        register_reward(f"test-{fn.__name__}", fn, replace=True)
    yield
    for fn in (never, always, coin):
        REWARDS.pop(f"test-{fn.__name__}", None)


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any]:
    torch.manual_seed(0)
    tok = build_tiny_tokenizer(["Problem number 12: say something. abc xyz"] * 10, vocab_size=300)
    model = build_tiny_model(
        TinyModelConfig(hidden_size=32, num_layers=1, intermediate_size=64), tok
    )
    return model, tok


class CountingEngine(HFRolloutEngine):
    calls = 0

    def generate(self, prompts: list[list[int]], params: Any, progress: Any = None) -> Any:
        CountingEngine.calls += len(prompts)
        return super().generate(prompts, params, progress)


def sampler(tiny: tuple[Any, Any]) -> Sampler:
    model, tok = tiny
    engine = CountingEngine(model, pad_id=tok.pad_token_id, stop_ids=stop_token_ids(tok, model))
    return Sampler(
        engine,
        encode=lambda p: encode_prompt(tok, p),
        decode=lambda r: tok.batch_decode(r, skip_special_tokens=True),
    )


def problem(i: int, ability: str, extra: dict[str, Any] | None = None) -> Problem:
    text = f"Problem number {i}: say something."
    return Problem(f"q{i}", [{"role": "user", "content": text}], "x", ability, "t", extra or {})


SETTINGS = OfflineFilterConfig(
    samples={"test-coin": 4, "test-never": 2}, default_samples=3, shard_size=4
)
PROBLEMS = [
    problem(i, ability)
    for i, ability in enumerate(["test-coin"] * 8 + ["test-never"] * 2 + ["test-always"] * 2)
]


def run(tiny: tuple[Any, Any], tmp: Path, problems: list[Problem] = PROBLEMS, **kw: Any) -> Any:
    return offline_filter(
        problems,
        sampler(tiny),
        kw.pop("cfg", SETTINGS),
        key=KEY,
        max_tokens=5,
        out_path=tmp / "kept.parquet",
        work_dir=tmp / "work",
        seed=7,
        show=False,
        **kw,
    )


def records(tmp: Path) -> dict[str, dict[str, Any]]:
    lines = (tmp / "work" / PROGRESS).read_text().splitlines()
    return {r["uid"]: r for r in map(json.loads, lines)}


def test_stored_pass_rates_read_counts_rates_and_mappings() -> None:
    assert stored_pass_rate({"model_difficulty": {KEY: 4, "other": 16}}, key=KEY) == 0.25
    assert stored_pass_rate({"model_difficulty": {"other": 16}}, key=KEY) is None
    assert stored_pass_rate({"model_difficulty": 0.75}, key=KEY) == 0.75
    assert stored_pass_rate({"model_difficulty": 12.0}, key=KEY) == 0.75  # an upcast count
    assert stored_pass_rate({"model_difficulty": 20}, key=KEY) is None  # not a count of 16
    assert stored_pass_rate({}, key=KEY) is None
    assert stored_pass_rate({"model_difficulty": {KEY: 3}}, key=KEY, scale=8) == 0.375


def test_pass_rates_are_written_beside_other_models_values() -> None:
    skywork = {"index": 3, "model_difficulty": {"DeepSeek-R1-Distill-Qwen-7B": 9}}
    assert with_pass_rate(skywork, key=KEY, rate=0.5)["model_difficulty"] == {
        "DeepSeek-R1-Distill-Qwen-7B": 9,
        KEY: 0.5,
    }
    assert with_pass_rate({}, key=KEY, rate=0.25) == {"model_difficulty": {KEY: 0.25}}
    assert with_pass_rate({"model_difficulty": 3}, key=KEY, rate=0.5)["model_difficulty"] == {
        KEY: 0.5
    }


def test_filter_samples_n_per_ability_and_drops_0_of_n_and_n_of_n(
    tiny: tuple[Any, Any], tmp_path: Path
) -> None:
    summary = run(tiny, tmp_path)
    got = records(tmp_path)
    assert [got[p.uid]["n"] for p in PROBLEMS] == [4] * 8 + [2] * 2 + [3] * 2
    assert all(got[f"q{i}"]["correct"] == 0 for i in (8, 9))
    assert all(got[f"q{i}"]["correct"] == 3 for i in (10, 11))
    mixed = {u for u, r in got.items() if 0 < r["correct"] < r["n"]}
    assert mixed and mixed <= {f"q{i}" for i in range(8)}
    kept = load_problems(tmp_path / "kept.parquet")
    assert {p.uid for p in kept} == mixed
    for p in kept:
        assert p.extra_info["model_difficulty"] == {KEY: got[p.uid]["pass_rate"]}
    assert (summary.total, summary.kept, summary.sampled) == (12, len(mixed), 12)
    assert summary.dropped_solved >= 2 and summary.dropped_unsolved >= 2
    assert summary.dropped_solved + summary.dropped_unsolved + summary.kept == 12


def test_shipped_difficulty_is_reused_without_sampling(
    tiny: tuple[Any, Any], tmp_path: Path
) -> None:
    problems = [
        problem(0, "test-never", {"model_difficulty": {KEY: 8, "other": 1}}),  # 8/16: keep
        problem(1, "test-never", {"model_difficulty": {KEY: 16}}),  # 16/16: drop
        problem(2, "test-never", {"model_difficulty": {"other": 8}}),  # not ours: sample
        problem(3, "test-never", {"model_difficulty": 0.25}),  # a bare rate
    ]
    CountingEngine.calls = 0
    summary = run(tiny, tmp_path, problems)
    assert CountingEngine.calls == 1 and summary.reused == 3 and summary.sampled == 1
    kept = load_problems(tmp_path / "kept.parquet")
    assert [p.uid for p in kept] == ["q0", "q3"]
    assert kept[0].extra_info["model_difficulty"] == {KEY: 0.5, "other": 1}
    assert kept[1].extra_info["model_difficulty"] == {KEY: 0.25}
    CountingEngine.calls = 0
    no_reuse = OfflineFilterConfig(**{**SETTINGS.model_dump(), "reuse": False})
    summary = run(tiny, tmp_path / "fresh", problems, cfg=no_reuse)
    assert CountingEngine.calls == 4 and summary.kept == 0  # test-never solves nothing


def test_a_killed_run_resumes_where_it_stopped_with_the_same_result(
    tiny: tuple[Any, Any], tmp_path: Path
) -> None:
    straight = tmp_path / "straight"
    run(tiny, straight)

    class Killed(Exception):
        pass

    def kill_after_first_shard(shard: int) -> None:
        raise Killed

    resumed = tmp_path / "resumed"
    with pytest.raises(Killed):
        run(tiny, resumed, on_shard=kill_after_first_shard)
    assert len(records(resumed)) == SETTINGS.shard_size
    assert not (resumed / "kept.parquet").exists()
    with open(resumed / "work" / PROGRESS, "a") as fh:
        fh.write('{"uid": "q4", "corr')  # killed in the middle of a write
    CountingEngine.calls = 0
    summary = run(tiny, resumed)
    assert summary.resumed == 4 and summary.sampled == 8
    assert CountingEngine.calls == 8  # only the prompts of the two unfinished shards
    assert records(resumed) == records(straight)
    kept_a = load_problems(straight / "kept.parquet")
    kept_b = load_problems(resumed / "kept.parquet")
    assert [(p.uid, p.extra_info) for p in kept_a] == [(p.uid, p.extra_info) for p in kept_b]
    CountingEngine.calls = 0
    assert run(tiny, resumed).sampled == 0 and CountingEngine.calls == 0  # all done


def test_progress_of_another_run_is_refused_unless_restarted(
    tiny: tuple[Any, Any], tmp_path: Path
) -> None:
    run(tiny, tmp_path, PROBLEMS[:4])
    other = OfflineFilterConfig(**{**SETTINGS.model_dump(), "temperature": 0.6})
    with pytest.raises(ConfigError, match=r"different filter run.*settings.*--restart"):
        run(tiny, tmp_path, PROBLEMS[:4], cfg=other)
    summary = run(tiny, tmp_path, PROBLEMS[:4], cfg=other, restart=True)
    assert summary.sampled == 4 and summary.resumed == 0


def test_cli_filter_on_aime_with_a_local_model_dir(
    tiny: tuple[Any, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, tok = tiny
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    out = tmp_path / "aime-filtered.parquet"
    argv = [
        "data",
        "filter",
        "--preset",
        "skywork-or1-7b",
        "--input",
        str(EVAL_DIR / "aime24.parquet"),
        "--limit",
        "3",
        "--out",
        str(out),
        "--quiet",
        f"model.path={model_dir}",
        "rollout.engine=hf",  # the preset's vLLM is not installed here
        "data.filter.samples.math=2",
        "data.filter.max_tokens=3",
    ]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    # A random model solves no AIME problem: all three are 0/N and dropped.
    assert summary["total"] == 3 and summary["dropped_unsolved"] == 3 and summary["kept"] == 0
    assert load_problems(out) == []
    progress = (tmp_path / "aime-filtered.parquet.work" / PROGRESS).read_text().splitlines()
    assert [json.loads(line)["n"] for line in progress] == [2, 2, 2]
    assert main(argv) == 0 and json.loads(capsys.readouterr().out)["resumed"] == 3
