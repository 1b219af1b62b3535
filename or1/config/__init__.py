"""Typed configuration: pydantic sections, YAML presets, dotted command-line overrides.

One tree (``Config``), validated at load; the defaults are the paper's values
(RECIPE.md) wherever the paper gives one. Sections live by concern:

- ``base``: the ``Section`` base class, ``RECIPE_PROMPT_SUFFIX``;
- ``model``: ``model``, ``warmup``;
- ``data``: ``data`` (tasks, files, offline filter, dedup);
- ``algo``: ``algo``, ``optim``, ``stages`` (the recipe);
- ``rewards``: ``rewards`` (the reward of each ability, code-reward limits);
- ``run``: the root ``Config`` and ``rollout``, ``train``, ``eval``, ``distributed``,
  ``logging``;
- ``loading``: presets, overrides, validation into a Config, saving.

Config is plain data: validating reads nothing but its input and writes no file.
"""

from or1.config.algo import (
    RELEASED_CODE_ALGO,
    RELEASED_CODE_ENTROPY,
    AlgoConfig,
    EntropyConfig,
    OptimConfig,
    StageConfig,
)
from or1.config.base import RECIPE_PROMPT_SUFFIX, Section
from or1.config.data import (
    ArithConfig,
    CodeConfig,
    DataConfig,
    DedupConfig,
    OfflineFilterConfig,
    ReasoningGymConfig,
)
from or1.config.loading import (
    PRESETS_PACKAGE,
    apply_override,
    build_config,
    load_config,
    load_saved_config,
    preset_names,
    read_preset,
    save_config,
)
from or1.config.model import ModelConfig, TinyModelConfig, WarmupConfig
from or1.config.rewards import CodeRewardConfig, RewardsConfig
from or1.config.run import (
    Config,
    DistributedConfig,
    EvalConfig,
    HFRolloutConfig,
    LoggingConfig,
    MlflowConfig,
    RolloutConfig,
    TrainConfig,
    VLLMRolloutConfig,
    WandbConfig,
    check_trainable,
)

__all__ = [
    "PRESETS_PACKAGE",
    "RECIPE_PROMPT_SUFFIX",
    "RELEASED_CODE_ALGO",
    "RELEASED_CODE_ENTROPY",
    "AlgoConfig",
    "ArithConfig",
    "CodeConfig",
    "CodeRewardConfig",
    "Config",
    "DataConfig",
    "DedupConfig",
    "DistributedConfig",
    "EntropyConfig",
    "EvalConfig",
    "HFRolloutConfig",
    "LoggingConfig",
    "MlflowConfig",
    "ModelConfig",
    "OfflineFilterConfig",
    "OptimConfig",
    "ReasoningGymConfig",
    "RewardsConfig",
    "RolloutConfig",
    "Section",
    "StageConfig",
    "TinyModelConfig",
    "TrainConfig",
    "VLLMRolloutConfig",
    "WandbConfig",
    "WarmupConfig",
    "apply_override",
    "build_config",
    "check_trainable",
    "load_config",
    "load_saved_config",
    "preset_names",
    "read_preset",
    "save_config",
]
