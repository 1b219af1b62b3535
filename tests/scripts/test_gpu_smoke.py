"""scripts/gpu_smoke.py on this CPU: its helpers, and (slow) the whole smoke in its
``--device cpu --tiny`` mode, the code path a GPU runs (Ray, the FSDP policy, a
checkpoint per step, resume) with a tiny model and the hf engine (no vLLM here)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from or1.config import load_config

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_smoke.py"
spec = importlib.util.spec_from_file_location("gpu_smoke", SCRIPT)
assert spec is not None and spec.loader is not None
smoke = importlib.util.module_from_spec(spec)
spec.loader.exec_module(smoke)


def test_the_full_model_is_about_100m_parameters_with_qwens_vocabulary() -> None:
    h, layers, f, kv = 512, 8, 1536, 2 * 64  # FULL: 8 heads of 64, 2 KV heads
    layer = (h * h + h) + 2 * (h * kv + kv) + h * h + 3 * h * f + 2 * h
    total = smoke.QWEN_VOCAB * h + layers * layer + h  # tied embeddings, final norm
    assert total == 101_923_328  # ~100M (the module docstring: 102M)
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=smoke.QWEN_VOCAB, tie_word_embeddings=True, **smoke.FULL)
    with torch.device("meta"):
        model = Qwen2ForCausalLM(config)
    assert sum(p.numel() for p in model.parameters()) == total


def test_overrides_make_a_valid_single_stage_ray_config(tmp_path: Path) -> None:
    args = smoke.parse_args(["--device", "cpu", "--tiny", "--steps", "2", "--engine", "hf"])
    cfg = load_config("tiny-arith", smoke.smoke_overrides(tmp_path / "m", tmp_path, args))
    assert (cfg.distributed.backend, cfg.distributed.workers, cfg.rollout.engine) == (
        "ray",
        1,
        "hf",
    )
    assert len(cfg.stages) == 1 and cfg.total_steps == 2 and cfg.train.checkpoint_every == 1
    assert not cfg.algo.reject_uniform_groups and cfg.algo.entropy.mode == "fixed"
    with pytest.raises(SystemExit):
        smoke.parse_args(["--steps", "1"])  # nothing to resume from


def test_changed_fraction_and_metric_gap(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    w = torch.zeros(10)
    save_file({"w": w, "v": torch.ones(6)}, str(tmp_path / "a" / "model.safetensors"))
    w2 = w.clone()
    w2[:4] = 1.0
    save_file({"w": w2, "v": torch.ones(6)}, str(tmp_path / "b" / "model.safetensors"))
    assert smoke.changed_fraction(tmp_path / "a", tmp_path / "b") == 4 / 16
    a = {"step": 3, "reward_mean": 0.5, "rollout_seconds": 1.0, "note": "x"}
    b = {"step": 3, "reward_mean": 0.25, "rollout_seconds": 9.0, "note": "y"}
    assert smoke.metric_gap(a, b) == 0.25  # wall-clock metrics are not compared


@pytest.mark.slow
def test_the_smoke_runs_end_to_end_on_cpu(tmp_path: Path) -> None:
    argv = ["--device", "cpu", "--tiny", "--steps", "2", "--engine", "hf", "--out", str(tmp_path)]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, env=env, timeout=850
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(result) == {
        "device",
        "engine",
        "params",
        "steps",
        "tokens_per_second",
        "peak_gpu_memory_gib",
        "rollout_logp_diff",
        "params_changed",
        "checkpoint_resume_ok",
        "resume_metric_gap",
        "seconds",
    }
    assert (result["device"], result["engine"], result["steps"]) == ("cpu", "hf", 2)
    assert result["peak_gpu_memory_gib"] is None and result["tokens_per_second"] > 0
    assert result["rollout_logp_diff"] < 1e-4  # the rollout workers got every update
    assert result["params_changed"] > 0.9  # the entropy bonus moved (nearly) every weight
    assert result["checkpoint_resume_ok"] and result["resume_metric_gap"] < 1e-4
