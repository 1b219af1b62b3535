"""The memory budget against numbers computed by hand from the module docstring's
formulas, for a Qwen2.5-7B-shaped and a Qwen2.5-32B-shaped config.json written here (no
download, no weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import Qwen2Config

from or1.config import load_config
from or1.errors import ConfigError
from or1.plan.budget import GIB, Settings, make_plan, settings_of
from or1.plan.shape import ModelShape, model_shape

from .conftest import Q7B

# Parameters by hand (Qwen2: q/k/v with bias, o without, SwiGLU MLP, two RMSNorms per
# layer, untied embedding and LM head, a final norm).
# 7B layer: q 3584*3584+3584, k and v 3584*512+512 each, o 3584*3584, MLP 3*3584*18944,
# norms 2*3584.
P7_LAYER = (3584 * 3584 + 3584) + 2 * (3584 * 512 + 512) + 3584 * 3584 + 3 * 3584 * 18944 + 2 * 3584
P7_ROOT = 2 * 152064 * 3584 + 3584
P7_OUT = 152064 * 3584  # the embeddings, and the LM head: FSDP2 units of their own
P7 = 28 * P7_LAYER + P7_ROOT
P32_LAYER = (
    (5120 * 5120 + 5120) + 2 * (5120 * 1024 + 1024) + 5120 * 5120 + 3 * 5120 * 27648 + 2 * 5120
)
P32_ROOT = 2 * 152064 * 5120 + 5120
P32 = 64 * P32_LAYER + P32_ROOT


@pytest.fixture(scope="module")
def shape7(q7b: Path) -> ModelShape:
    return model_shape(q7b)


def test_parameter_counts_from_config_json_alone(q7b: Path, q32b: Path) -> None:
    # The published sizes: Qwen2.5-7B 7,615,616,512; Qwen2.5-32B 32,763,876,352.
    assert (P7, P32) == (7_615_616_512, 32_763_876_352)
    s = model_shape(q7b / "config.json")
    assert (s.params, s.layer_params, s.root_params) == (P7, P7_LAYER, P7_ROOT)
    assert (s.split_params, s.rest_params) == (P7_OUT, 3584)  # untied: the final norm is left
    assert (s.layers, s.hidden, s.intermediate, s.kv_heads, s.head_dim, s.vocab) == (
        28,
        3584,
        18944,
        4,
        128,
        152064,
    )
    s32 = model_shape(q32b)
    assert (s32.params, s32.layer_params, s32.root_params) == (P32, P32_LAYER, P32_ROOT)
    assert (s32.kv_heads, s32.head_dim) == (8, 128)
    tied = ModelShape.from_config(Qwen2Config(**{**Q7B, "tie_word_embeddings": True}))
    assert (tied.split_params, tied.rest_params) == (0, 0)  # one matrix: the root holds it


def test_7b_on_8_gpus_at_32k_with_vllm(shape7: ModelShape) -> None:
    x = Settings(
        workers=8,
        distributed=True,
        master_bytes=4,
        compute_bytes=2,
        checkpointing=True,
        prompt_length=2048,
        response_length=32768,
        micro_rows=1,
        logits_chunk=None,
        engine="vllm",
        group_size=32,
        max_num_seqs=256,
        gpu_utilization=0.5,
        tensor_parallel=1,
        vllm_sleeps=False,
        stage=1,
        sequences=160 * 32,
    )
    plan = make_plan(shape7, x, gpu_gib=80)
    got = {i.name: i.bytes for i in plan.items}
    s = 2048 + 32768  # tokens of the micro-batch: one full-length row
    a = 8 * 3584 + 2 * (5 * 3584 + 3 * 512 + 4 * 18944)  # saved bytes per token, one layer
    share = 40 * GIB
    runtime = 2 * GIB + 16384 * 2 * (3 * 18944 + 4 * 3584) + 256 * 152064 * 8
    kv = share - P7 * 2 - runtime
    assert got == {
        "master weights": P7 * 4 // 8,
        "AdamW state": 2 * P7 * 4 // 8,
        "CUDA context": GIB,
        "vLLM's share": share,
        "gradients": P7 * 4 // 8,
        # the head (or the embeddings) and a prefetched layer, beside the root's final norm
        "unsharded weights": (3584 + P7_OUT + P7_LAYER) * 2,
        "unsharded gradients": 3584 * 2 + P7_OUT * 6,
        "activations": 28 * s * 3584 * 2 + s * a + s * 2 * (2 * 18944 + 2 * 3584),
        "LM head, log-probs": 32768 * 152064 * (2 + 12),
        "vLLM weights": P7 * 2,
        "vLLM runtime": runtime,
        "vLLM KV cache": kv,
    }
    # 34,816 tokens (2,176 blocks of 16) x 28 layers x 2 x 4 heads x 128 x 2 bytes each.
    assert plan.vllm_sequences == kv // (34816 * 28 * 2 * 4 * 128 * 2) == 11
    held = P7 * 4 // 8 * 3 + GIB + share
    update = got["gradients"] + got["unsharded weights"] + got["unsharded gradients"]
    update += got["activations"] + got["LM head, log-probs"]
    assert (plan.total("held"), plan.total("update"), plan.total("rollout")) == (held, update, 0)
    assert plan.peak == held + update and not plan.fits  # the unchunked LM head: 65 GiB
    chunked = make_plan(shape7, Settings(**{**vars(x), "logits_chunk": 2048}), gpu_gib=80)
    assert chunked.item("LM head, log-probs").bytes == 2048 * 152064 * 8  # two fp32 [K, V]
    # Sleep mode: vLLM's share is freed for the update, so it counts at rollout time only.
    asleep = make_plan(shape7, Settings(**{**vars(x), "vllm_sleeps": True}), gpu_gib=80)
    assert asleep.item("vLLM's share").phase == "rollout"
    assert asleep.total("held") == held - share and asleep.total("rollout") == share
    assert asleep.peak == held - share + max(update, share)
    assert asleep.vllm_sequences == plan.vllm_sequences  # the same share while it samples
    assert chunked.peak == plan.peak - 32768 * 152064 * 14 + 2048 * 152064 * 8
    assert chunked.fits == (chunked.peak <= 80 * GIB)


def test_32b_on_one_gpu_with_the_hf_engine(q32b: Path) -> None:
    """W = 1 (local backend), no checkpointing, a chunked LM head, the hf engine: the
    other branch of every formula."""
    shape = model_shape(q32b)
    x = Settings(
        workers=1,
        distributed=False,
        master_bytes=4,
        compute_bytes=2,
        checkpointing=False,
        prompt_length=2048,
        response_length=24576,
        micro_rows=1,
        logits_chunk=4096,
        engine="hf",
        group_size=32,
        max_num_seqs=64,
        gpu_utilization=0.5,
        tensor_parallel=1,
        vllm_sleeps=False,
        stage=1,
        sequences=160 * 32,
    )
    plan = make_plan(shape, x, gpu_gib=80)
    got = {i.name: i.bytes for i in plan.items}
    s = 2048 + 24576
    a = 8 * 5120 + 2 * (5 * 5120 + 3 * 1024 + 4 * 27648)
    assert got == {
        "master weights": P32 * 4,
        "AdamW state": 2 * P32 * 4,
        "CUDA context": GIB,
        "gradients": P32 * 4,
        "compute copies": P32 * 2,  # autocast's bf16 copies of the fp32 masters
        "unsharded gradients": 0,
        "activations": 64 * s * a + s * 2 * (2 * 27648 + 2 * 5120),
        "LM head, log-probs": 4096 * 152064 * 8,
        "rollout weights": 0,  # the hf engine decodes with the policy's model
        "KV cache (hf)": 64 * s * 64 * 2 * 1024 * 2,  # 2 groups of 32 rows
        "sampling": 64 * 152064 * (2 + 16),
    }
    assert plan.vllm_sequences is None and not plan.fits
    assert plan.peak == 12 * P32 + GIB + max(
        plan.total("update"), got["KV cache (hf)"] + got["sampling"]
    )
    fp32 = make_plan(shape, Settings(**{**vars(x), "compute_bytes": 4}), gpu_gib=80)
    assert fp32.item("compute copies").bytes == 0  # computing in the master dtype


def test_settings_from_the_preset_and_overrides(q7b: Path) -> None:
    cfg = load_config("skywork-or1-7b", [f"model.path={q7b}"])
    x = settings_of(cfg)  # the longest stage: 32K
    assert (x.workers, x.distributed, x.engine, x.stage) == (8, True, "vllm", 1)
    assert (x.prompt_length, x.response_length, x.group_size, x.sequences) == (
        2048,
        32768,
        32,
        5120,
    )
    assert (x.master_bytes, x.compute_bytes, x.checkpointing) == (4, 2, True)
    assert (x.micro_rows, x.micro_tokens, x.response_tokens) == (1, 34816, 32768)
    assert (x.gpu_utilization, x.tensor_parallel, x.max_num_seqs) == (0.45, 1, 256)
    first = settings_of(cfg, stage=0)
    assert (first.response_length, first.group_size, first.sequences) == (16384, 16, 4096)
    local = settings_of(load_config("skywork-or1-7b", ["distributed.backend=local"]))
    assert local.workers == 1 and not local.distributed
    # A rank's share of the mini-batch: 160 prompts x 32 samples / 16 ranks = 320 rows.
    for micro, rows in ((64, 64), (512, 320)):
        over = [f"train.micro_batch_size={micro}", "distributed.workers=16"]
        assert settings_of(load_config("skywork-or1-7b", over)).micro_rows == rows
    with pytest.raises(ConfigError, match="stages 0-1"):
        settings_of(cfg, stage=2)
    assert x.logits_chunk == cfg.train.logits_chunk_tokens == 512  # the chunked default
    # A token budget caps the rows: 3 rows of 34,816 fit 110,000 tokens; a budget below
    # one row plans one row (the trainer refuses it).
    budget = ["train.micro_batch_size=8", "train.micro_batch_tokens=110000"]
    assert settings_of(load_config("skywork-or1-7b", budget)).micro_rows == 3
    small = ["train.micro_batch_size=8", "train.micro_batch_tokens=1000"]
    assert settings_of(load_config("skywork-or1-7b", small)).micro_rows == 1
    over = ["model.master_dtype=bfloat16", "model.dtype=float32", "train.logits_chunk_tokens=null"]
    y = settings_of(load_config("skywork-or1-7b", over))
    assert (y.master_bytes, y.compute_bytes, y.logits_chunk) == (2, 4, None)
