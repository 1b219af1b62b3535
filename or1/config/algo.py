"""``algo``, ``optim`` and ``stages``: the MAGIC recipe's settings (paper defaults)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from or1.config.base import Section


class EntropyAlarmConfig(Section):
    """The entropy-collapse alarm (or1/algo/entropy_diagnosis.py; not in the paper): a
    warning, the ``entropy_collapse`` metric and a report panel naming the likely causes
    when the sampled entropy falls below ``fraction`` of its start within ``within`` steps.
    It only watches: training is the same with it on or off."""

    enabled: bool = Field(True, description="watch for an entropy collapse")
    fraction: float = Field(
        0.5, gt=0, lt=1, description="alarm when entropy falls below this share of its start"
    )
    within: int | None = Field(
        100, gt=0, description="... within this many first steps (null: the whole run)"
    )
    window: int = Field(5, gt=0, description="steps averaged for the start and current entropy")


class EntropyConfig(Section):
    """Entropy term. ``adaptive`` is the paper's controller; ``fixed`` and ``off`` ablate it."""

    mode: Literal["adaptive", "fixed", "off"] = Field(
        "adaptive", description="adaptive: the paper's controller; fixed: coef; off: none"
    )
    # "auto" (or1/algo/entropy_diagnosis.py, not in the paper): target = auto_fraction x
    # the mean entropy of the first auto_steps updates, since a fixed 0.2 never triggers
    # on some models and always on others.
    target: float | Literal["auto"] = Field(
        0.2, description="target entropy (nats per token), or auto: measured (auto_*)"
    )
    auto_fraction: float = Field(
        0.5, gt=0, le=1, description="target: auto sets the target to this share of e_start"
    )
    auto_steps: int = Field(
        5, gt=0, description="target: auto measures e_start over this many first updates"
    )
    delta: float = Field(
        0.005, ge=0, description="controller step per update (released code: 1e-4)"
    )
    coef_min: float = Field(0.0, ge=0, description="lower clip of the coefficient")
    coef_max: float | None = Field(
        None, description="upper clip of the coefficient; null: none (released code: 0.005)"
    )
    coef: float = Field(0.0, ge=0, description="the coefficient when mode is fixed")
    gate: Literal["current", "previous"] = Field(
        "current",
        description="current: alpha_k gated by e_k (paper); previous: by e_{k-1}, the "
        "controller updated after the actor step (released code)",
    )
    source: Literal["rollout", "trainer"] = Field(
        "rollout",
        description="e_k from the rollout engine's sampling log-probs (paper) or the "
        "trainer's recomputed ones before the update (released code)",
    )
    alarm: EntropyAlarmConfig = Field(
        default_factory=lambda: EntropyAlarmConfig(),
        description="the entropy-collapse alarm (a warning and metrics; training unchanged)",
    )

    @field_validator("target")
    @classmethod
    def _target_not_negative(cls, target: float | str) -> float | str:
        if isinstance(target, float | int) and target < 0:
            raise ValueError(f"the target entropy must be >= 0 or auto, got {target}")
        return target


# Where the released training code departs from the paper (RECIPE.md); applied by
# ``algo.variant=released-code`` to the settings a preset or override leaves unset.
# docs/recipe.md lists each with the paper's value and how to select it.
RELEASED_CODE_ALGO: dict[str, Any] = {
    "online_filter": False,
    "aggregation": "micro-token-mean",
    "mini_batching": "fixed-size",
    "truncated_reward": "graded",
}
RELEASED_CODE_ENTROPY: dict[str, Any] = {
    "delta": 1e-4,
    "coef_max": 0.005,
    "coef_min": 0.0,
    "gate": "previous",
    "source": "trainer",
}


class AlgoConfig(Section):
    """The MAGIC loss and filters. Defaults are the paper's.

    ``variant: released-code`` takes the released code's values where it differs from the
    paper, unless set explicitly: ``RELEASED_CODE_ALGO`` and ``RELEASED_CODE_ENTROPY``
    here, ``RELEASED_CODE_REWARDS`` (or1/config/rewards.py, applied by ``Config``).
    """

    variant: Literal["paper", "released-code"] = Field(
        "paper", description="released-code: the released code's values where unset"
    )
    # A name in or1.algo.POLICY_LOSSES: "ppo-clip" (the paper's) or "gspo" (sequence-level
    # ratio, GSPO; its paper pairs it with seq-mean-token-mean and clips ~3e-4 / 4e-4).
    loss: str = Field("ppo-clip", description="policy loss, a registered name: ppo-clip, gspo")
    clip_low: float = Field(0.2, ge=0, lt=1, description="ratio clipped below at 1 - clip_low")
    clip_high: float = Field(
        0.2, ge=0, description="ratio clipped above at 1 + clip_high (clip-higher: 0.25-0.265)"
    )
    aggregation: Literal[
        "token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "micro-token-mean"
    ] = Field(
        "token-mean",
        description="token-mean: sum over the mini-batch's tokens / their count (paper); "
        "micro-token-mean: each micro-batch's token mean x its share of the configured "
        "mini-batch's sequences (released code; depends on the micro-batching)",
    )
    kl_beta: float = Field(
        0.0, ge=0, description="KL penalty to the initial policy (ablation; paper: 0)"
    )
    kl_kind: Literal["k1", "k2", "k3"] = Field("k3", description="KL estimator (kl_beta > 0)")
    adv_eps: float = Field(1e-6, gt=0, description="added to the group std of the advantage")
    normalize_std: bool = Field(True, description="divide advantages by the group std (GRPO)")
    reject_uniform_groups: bool = Field(
        True, description="drop groups whose rewards are all equal (zero advantage)"
    )
    truncation: Literal["keep", "mask"] = Field(
        "keep", description="mask: truncated responses get no loss (ablation; paper: keep)"
    )
    # RECIPE step 2: a truncated response keeps reward 0 ("zero"). "graded" grades its
    # cut-off text like any other (a lucky last number then earns reward 1).
    truncated_reward: Literal["zero", "graded"] = Field(
        "zero", description="zero: a truncated response scores 0; graded: scored as any other"
    )
    # Refill after rejection (or1/refill.py; DAPO's dynamic sampling, not in the paper):
    # oversample draws fresh prompts until batch_size groups are not uniform.
    refill: Literal["none", "oversample"] = Field(
        "none", description="none: the batch shrinks (paper); oversample: refill it"
    )
    refill_max_rounds: int = Field(
        4, ge=1, description="refill: oversample draws at most this many extra rounds"
    )
    online_filter: bool = Field(
        True, description="each stage drops prompts solved every time in the previous one"
    )
    mini_batching: Literal["split", "fixed-size"] = Field(
        "split",
        description="split: the kept rows in batch/mini_batch parts, N_SGD fixed (paper); "
        "fixed-size: cut into mini_batch x group rows, fewer steps after rejection "
        "(released code)",
    )
    reuse_epochs: int = Field(
        1, ge=1, description="passes over each rollout batch (N_SGD multiplier; paper: 1)"
    )
    # Truncated importance sampling (off by default): weight each token's loss by
    # min(exp(old_logp - rollout_logp), tis_cap), correcting a rollout engine (e.g. vLLM)
    # whose sampling log-probs differ from the trainer's.
    tis_cap: float | None = Field(
        None, gt=0, description="truncated importance sampling cap; null: off"
    )
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


class OptimConfig(Section):
    """AdamW, constant learning rate (paper: 1e-6, no warm-up)."""

    lr: float = Field(1e-6, gt=0, description="AdamW learning rate, constant")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas")
    weight_decay: float = Field(0.01, ge=0, description="AdamW decoupled weight decay")
    grad_clip: float = Field(1.0, gt=0, description="gradient-norm clip")


class StageConfig(Section):
    """One stage of the multi-stage schedule (RECIPE.md table)."""

    steps: int = Field(gt=0, description="training steps in this stage")
    max_response_length: int = Field(gt=0, description="T: tokens a response may have")
    batch_size: int = Field(gt=0, description="prompts per step (D_R)")
    mini_batch_size: int = Field(gt=0, description="prompts per optimizer step")
    group_size: int = Field(ge=2, description="responses sampled per prompt")
    # The stage controller (or1/schedule.py), not in the paper (fixed steps, the default):
    # move to the next stage as soon as the truncation ratio averaged over the stage's
    # last advance_window steps reaches this; ``steps`` is then a maximum.
    advance_at_truncation: float | None = Field(
        None, gt=0, le=1, description="advance when the windowed truncation ratio reaches this"
    )
    advance_window: int = Field(5, gt=0, description="steps averaged by advance_at_truncation")

    @model_validator(mode="after")
    def _divides(self) -> StageConfig:
        if self.batch_size % self.mini_batch_size:
            raise ValueError(
                f"mini_batch_size {self.mini_batch_size} must divide batch_size {self.batch_size}"
            )
        if self.advance_at_truncation is not None and self.advance_window > self.steps:
            raise ValueError(
                f"advance_window {self.advance_window} is longer than the stage's "
                f"{self.steps} steps, so advance_at_truncation could never trigger; lower "
                "advance_window or raise steps"
            )
        return self
