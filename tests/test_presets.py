"""The skywork-or1-* presets against RECIPE.md: stage table, optimizer, sampling, eval,
and the released-code variant; they load without model.path/data.train and `or1 train`
then fails with one clear paragraph."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from or1.cli import main
from or1.config import Config, load_config, preset_names

RECIPE = Path(__file__).resolve().parents[2] / "shared" / "RECIPE.md"
PRESETS = {"Math-7B": "skywork-or1-math-7b", "7B": "skywork-or1-7b", "32B": "skywork-or1-32b"}
Stage = tuple[int, int, int, int, int]  # steps (stage length), T, batch, mini-batch, group

# RECIPE.md "Multi-stage schedule", transcribed (used when shared/ is not beside the repo;
# when it is, the test also checks this transcription against the parsed table).
TRANSCRIBED: dict[str, list[Stage]] = {
    "Math-7B": [
        (740, 8192, 256, 128, 16),
        (1000, 16384, 256, 128, 16),
        (340, 32768, 256, 128, 16),
        (80, 32768, 128, 64, 64),
    ],
    "7B": [(660, 16384, 256, 256, 16), (660, 32768, 160, 160, 32)],
    "32B": [(760, 16384, 256, 256, 16), (370, 24576, 160, 160, 32)],
}


def parse_stage_table(markdown: str) -> dict[str, list[Stage]]:
    """The RECIPE.md table: "0-740/-1740" step ranges become stage lengths, "8K" 8192."""
    table: dict[str, list[Stage]] = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 7 or cells[0] not in PRESETS:
            continue
        columns = [c.split("/") for c in cells[2:]]
        ends = [int(s.split("-")[-1]) for s in columns[0]]
        lengths = [b - a for a, b in zip([0, *ends], ends, strict=False)]
        tokens = [int(t.rstrip("K")) * 1024 for t in columns[1]]
        rest = [[int(x) for x in col] for col in columns[2:]]
        table[cells[0]] = [
            (lengths[i], tokens[i], rest[0][i], rest[1][i], rest[2][i]) for i in range(len(ends))
        ]
    return table


def recipe_table() -> dict[str, list[Stage]]:
    if not RECIPE.is_file():
        return TRANSCRIBED
    parsed = parse_stage_table(RECIPE.read_text())
    assert parsed == TRANSCRIBED, "RECIPE.md's stage table changed: update the presets"
    return parsed


def stages_of(cfg: Config) -> list[Stage]:
    return [
        (s.steps, s.max_response_length, s.batch_size, s.mini_batch_size, s.group_size)
        for s in cfg.stages
    ]


def test_the_parser_reads_a_recipe_style_table() -> None:
    text = (
        "| model | stage | steps | T | batch | mini-batch | group |\n"
        "|---|---|---|---|---|---|---|\n"
        "| 7B | 1/2 | 0-10/-25 | 8K/16K | 4/2 | 4/1 | 8/16 |\n"
    )
    assert parse_stage_table(text) == {"7B": [(10, 8192, 4, 4, 8), (15, 16384, 2, 1, 16)]}


@pytest.mark.parametrize("model", sorted(PRESETS))
def test_preset_stages_match_the_recipe_table(model: str) -> None:
    cfg = load_config(PRESETS[model])
    assert PRESETS[model] in preset_names()
    assert stages_of(cfg) == recipe_table()[model]
    assert cfg.total_steps == sum(s[0] for s in recipe_table()[model])


@pytest.mark.parametrize("preset", sorted(PRESETS.values()))
def test_preset_optimizer_sampling_loss_and_eval_are_the_papers(preset: str) -> None:
    cfg = load_config(preset)
    assert cfg.preset == preset
    assert (cfg.optim.lr, cfg.optim.betas, cfg.optim.weight_decay, cfg.optim.grad_clip) == (
        1e-6,
        (0.9, 0.999),
        0.01,
        1.0,
    )
    assert (cfg.rollout.temperature, cfg.rollout.top_p, cfg.rollout.max_prompt_length) == (
        1.0,
        1.0,
        2048,
    )
    a = cfg.algo
    assert (a.variant, a.clip_low, a.clip_high, a.kl_beta, a.truncation) == (
        "paper",
        0.2,
        0.2,
        0.0,
        "keep",
    )
    assert (a.aggregation, a.adv_eps, a.reject_uniform_groups, a.online_filter) == (
        "token-mean",
        1e-6,
        True,
        True,
    )
    e = a.entropy
    assert (e.mode, e.target, e.delta, e.coef_min, e.coef_max) == ("adaptive", 0.2, 0.005, 0, None)
    ev = cfg.eval
    assert (ev.samples, ev.temperature, ev.top_p, ev.max_tokens) == (32, 1.0, 1.0, 32768)
    assert ev.benchmarks == ["aime24", "aime25"]
    assert cfg.model.path is None and cfg.data.train is None and cfg.data.task is None
    assert not cfg.warmup.enabled


def released_code_values() -> tuple[float, float]:
    """(delta, c_max) of the released code, from RECIPE.md when it is beside the repo."""
    if not RECIPE.is_file():
        return 1e-4, 0.005
    text = " ".join(RECIPE.read_text().split())
    found = re.search(r"Released code: delta ([0-9.e-]+), c_max ([0-9.]+)", text)
    assert found, "RECIPE.md no longer states the released code's entropy values"
    return float(found.group(1)), float(found.group(2))


@pytest.mark.parametrize("preset", sorted(PRESETS.values()))
def test_released_code_variant_takes_the_codes_values(preset: str) -> None:
    delta, cap = released_code_values()
    cfg = load_config(preset, ["algo.variant=released-code"])
    e = cfg.algo.entropy
    assert (e.delta, e.coef_max, e.coef_min, e.target) == (delta, cap, 0.0, 0.2)
    assert cfg.algo.online_filter is False  # "paper; not in the released code"
    explicit = load_config(preset, ["algo.variant=released-code", "algo.entropy.delta=0.002"])
    assert explicit.algo.entropy.delta == 0.002 and explicit.algo.entropy.coef_max == cap
    assert stages_of(cfg) == stages_of(load_config(preset))  # the schedule is the same


@pytest.mark.parametrize("preset", sorted(PRESETS.values()))
def test_train_without_model_path_fails_in_one_paragraph(
    preset: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["train", "--preset", preset, f"runs_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith(f"or1: error: preset {preset} has no model.path")
    assert "data.train" in err and "Hint:" in err
    assert main(["train", "--preset", preset, f"runs_dir={tmp_path}", "data.train=x.parquet"]) == 2
    err = capsys.readouterr().err
    assert "model.path" in err and "no data.train" not in err
    assert not any(tmp_path.iterdir())  # nothing was created


@pytest.mark.parametrize("preset", sorted(PRESETS.values()))
def test_presets_roll_out_with_vllm_on_ray(preset: str) -> None:
    cfg = load_config(preset)
    assert cfg.rollout.engine == "vllm"
    assert cfg.distributed.backend == "ray" and cfg.distributed.workers >= 8
    # The 7B presets leave the policy 55% of an 80 GB GPU (or1 plan: the 32K stage fits).
    assert cfg.rollout.vllm.gpu_memory_utilization == (0.5 if "32b" in preset else 0.45)


@pytest.mark.parametrize("preset", sorted(PRESETS.values()))
def test_train_without_vllm_fails_in_one_paragraph_before_loading(
    preset: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # vLLM not installed (it is not, here)
    argv = ["train", "--preset", preset, f"runs_dir={tmp_path}"]
    argv += ["model.path=/nonexistent/model", "data.train=/nonexistent/x.parquet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith("or1: error: rollout.engine=vllm")
    assert "pip install 'or1[vllm]'" in err and "rollout.engine=hf" in err
    assert not any(tmp_path.iterdir())  # nothing was created, the data not read


def test_a_real_model_run_prints_its_memory_plan_first(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`or1 train` with model.path: the plan comes out before data and model load (here
    the data file is missing, so the run stops right after it)."""
    model = tmp_path / "model"
    model.mkdir()
    small = {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128}
    small |= {"num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 512}
    (model / "config.json").write_text(json.dumps(small))
    argv = ["train", "--preset", "skywork-or1-7b", f"runs_dir={tmp_path / 'runs'}"]
    argv += [f"model.path={model}", "data.train=/nonexistent/x.parquet", "rollout.engine=hf"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert "or1 plan: memory per GPU" in out and "2 layers, hidden 64" in out
    assert "x.parquet" in err


# ---- tiny-mix: math and code in one run, on a CPU ---------------------------------------
def test_tiny_mix_trains_math_and_code_with_the_papers_loop() -> None:
    """tiny-mix differs from the paper only in scale (and tiny-arith's lr and entropy
    target); both abilities are in its data; it builds and warms up its own model."""
    cfg = load_config("tiny-mix")
    assert "tiny-mix" in preset_names() and cfg.preset == "tiny-mix"
    assert cfg.data.task == "tiny-mix" and cfg.model.path is None and cfg.warmup.enabled
    assert cfg.data.arith.n_train > 0 and cfg.data.code.n_train > 0
    assert 0 < cfg.data.arith.teacher_error_rate < 1 and 0 < cfg.data.code.teacher_error_rate < 1
    arith = load_config("tiny-arith")
    assert (cfg.optim.lr, cfg.algo.entropy.target) == (arith.optim.lr, arith.algo.entropy.target)
    a, paper = cfg.algo, load_config("skywork-or1-7b").algo
    assert a.model_dump(exclude={"entropy"}) == paper.model_dump(exclude={"entropy"})
    assert a.entropy.model_dump(exclude={"target"}) == paper.entropy.model_dump(exclude={"target"})
    # the sandboxed code reward (the skywork presets add reward processes, GPU nodes' cores)
    skywork = load_config("skywork-or1-7b").rewards
    assert cfg.rewards == skywork.model_copy(update={"workers": 0})
    assert cfg.rollout.engine == "hf" and cfg.distributed.backend == "local"
    assert all(s.max_response_length >= 64 for s in cfg.stages)  # a teacher answer fits


def test_tiny_mix_dry_run_finds_both_abilities_and_the_sandbox(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["train", "--preset", "tiny-mix", "--dry-run", f"runs_dir={tmp_path}"]
    assert main([*argv, f"cache_dir={tmp_path / 'cache'}"]) == 0
    out = capsys.readouterr().out
    assert "train 2000 problems, test 200 (task tiny-mix)" in out
    sandbox_line = next(line for line in out.splitlines() if line.startswith("sandbox"))
    assert "bwrap" in sandbox_line or "unshare" in sandbox_line, sandbox_line
    assert "seccomp per program" in sandbox_line
    assert not any(tmp_path.iterdir())  # a dry run writes nothing
