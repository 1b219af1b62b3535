"""`or1 plan` on the command line, and the plan printed at the start of `or1 train`."""

from __future__ import annotations

import io
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from or1.cli import main
from or1.config import load_config
from or1.errors import ConfigError
from or1.plan import preflight


def test_or1_plan_prints_the_table_and_says_whether_it_fits(
    q7b: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")  # rich wraps at the terminal's width
    argv = ["plan", "--preset", "skywork-or1-7b", f"model.path={q7b}", "--gpu-memory", "60"]
    kept = [*argv[:4], "rollout.vllm.sleep_level=0", *argv[4:]]  # no sleep mode
    code = main([*kept, "--workers", "8"])
    out = capsys.readouterr().out
    assert "or1 plan: memory per GPU" in out and "7.62B parameters" in out
    assert "8 FSDP rank(s)" in out and "stage 1: 2048 + 32768 tokens" in out
    assert "master weights" in out and "3.55" in out  # 7,615,616,512 x 4 / 8 bytes
    # A 60 GiB GPU: 27 GiB (the preset's 0.45) held by vLLM, the rest cannot hold the update.
    assert code == 1 and "does NOT fit" in out and "to lower: " in out
    assert "rollout.vllm.sleep_level=2 frees it" in out
    # (27 GiB - 14.2 weights - 2 GiB - 8,192 tokens x 2 x 71,168 - 256 x V x 8) / 1.86 GiB:
    assert "vLLM: 5 sequences of 34,816 tokens at once" in out
    # With sleep mode (the default) vLLM frees its 27 GiB for every update: it fits.
    assert main([*argv, "--workers", "8"]) == 0
    out = capsys.readouterr().out
    assert "fits:" in out and "u x G (asleep in updates)" in out
    assert "vLLM: 5 sequences of 34,816 tokens at once" in out
    # Half the response length (stage 0) on 2 ranks of 640 GiB: fits.
    assert main([*argv[:-1], "640", "--workers", "2", "--stage", "0"]) == 0
    out = capsys.readouterr().out
    assert "fits:" in out and "2 FSDP rank(s)" in out and "stage 0: 2048 + 16384" in out


def test_or1_plan_needs_a_model_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "--preset", "skywork-or1-7b"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("or1: error: or1 plan: preset skywork-or1-7b has no model.path")
    assert main(["plan", "--preset", "skywork-or1-7b", f"model.path={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "has no config.json" in err and "\n" not in err


def test_preflight_prints_the_plan_of_a_model_path_run(q7b: Path) -> None:
    cfg = load_config("skywork-or1-7b", [f"model.path={q7b}", "rollout.engine=hf"])
    buffer = io.StringIO()
    plan = preflight(cfg, Console(file=buffer, width=120))
    assert plan is not None and plan.settings.engine == "hf"
    text = buffer.getvalue()
    assert "or1 plan: memory per GPU" in text and "KV cache (hf)" in text
    # No GPU here, Ray backend: the GPUs are elsewhere, 80 GiB assumed.
    assert plan.gpu_bytes == 80 * 2**30
    assert preflight(load_config("tiny-arith")) is None  # a built model: no plan
    gguf = load_config("skywork-or1-7b", ["model.path=smollm2", "rollout.engine=hf"])
    assert preflight(gguf) is None  # not a directory with config.json: the loader reports


def test_preflight_refuses_vllm_where_it_cannot_run(
    q7b: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # not installed
    cfg = load_config("skywork-or1-7b", [f"model.path={q7b}"])
    with pytest.raises(ConfigError, match=r"needs vLLM.*or1\[vllm\]"):
        preflight(cfg)


def test_advice_names_the_largest_consumers_first(q7b: Path) -> None:
    from or1.plan import make_plan, model_shape, settings_of
    from or1.plan.report import advice

    over = [f"model.path={q7b}", "model.gradient_checkpointing=false"]
    over += ["rollout.vllm.gpu_memory_utilization=0.2", "train.micro_batch_size=4"]
    cfg = load_config("skywork-or1-7b", over)
    x = replace(settings_of(cfg, stage=0), logits_chunk=None)  # the unchunked head
    plan = make_plan(model_shape(q7b), x, gpu_gib=80)
    assert plan.vllm_sequences == 0 and not plan.fits  # 16 GiB < 14.2 weights + 4.5 runtime
    lines = advice(plan)
    assert lines[0].startswith("vLLM's share leaves no KV cache")
    # Without checkpointing, 4 rows x 18K tokens of activations come first.
    assert lines[1].startswith("activations (") and "gradient_checkpointing=true" in lines[1]
    assert lines[2].startswith("LM head, log-probs (") and "set train.logits_chunk" in lines[2]
    assert len(lines) == 4
    chunked = advice(make_plan(model_shape(q7b), replace(x, logits_chunk=4096), gpu_gib=80))
    assert not any("set train.logits_chunk" in line for line in chunked)
    fits = make_plan(model_shape(q7b), x, gpu_gib=100_000)
    assert fits.peak <= fits.gpu_bytes and fits.vllm_sequences > 0 and advice(fits) == []
