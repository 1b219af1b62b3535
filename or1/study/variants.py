"""The study's settings, its stated thresholds, and the variants it trains."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace

ENTROPY_COLUMN = "entropy_full"
# The final (initial) window: the last (first) 20% of the steps that updated.
TAIL_FRACTION = 0.2
# "Does not change the entropy dynamics": the ratio's whole interval inside this band.
SAME_BAND = (0.8, 1 / 0.8)
# The entropy target "set for the task": this base starts near 0.11 nats/token and drifts
# to ~0.075 in 40 uncontrolled steps (seed-0 probe), so the target holds it where it starts.
TARGET = 0.1
# Fixed coefficients, chosen from a seed-0 probe of 0.05 / 0.3 / 1.0 (0.3: a slow rise to
# 0.16 in 40 steps): at this model's scale 0.05 barely moves entropy, 1.0 blows it up.
FIXED_SMALL = 0.05
FIXED_LARGE = 1.0
DONE_FILE = "study_run.json"
# Steps of a full-study run (16 prompts x 8). At 100 (seed 1) N_SGD 4 by mini-batches
# looked flat (held-out +0.004 over steps 75-100) while on-policy still gained +0.03 and
# had caught up, so the runs go on to 200 (where N_SGD 4 was ahead again: docs/study.md).
FULL_STEPS = 200
# The clip-higher finding trains at lr 1e-4, twice the study presets' 5e-5, where N_SGD > 1
# moves the policy away from the one that sampled: at 5e-5 the ratio hardly leaves 1
# (0.07% of tokens clipped even at N_SGD 8) and eps_high could not act (the three-seed
# study of docs/study.md "Results", lr 5e-5). Seed-0 probes of 60 steps at N_SGD 8
# (docs/study.md "Clip-higher at lr 1e-4: the probes"): 1e-4 clips 0.24% of tokens on
# the high side and collapses entropy to 0.64x of its start while held-out accuracy still
# rises (0.47 -> 0.53); 1.5e-4, 2e-4 and 5e-4 wreck accuracy (<= 0.13).
HOT_LR = 1e-4
# The off-policy finding's runs are LONG times the study's (400 steps in the full study),
# at the study presets' lr: over 200 steps N_SGD 4 lowered the entropy (final window x0.83
# by mini-batches, x0.72 by reuse) but accuracy had not stalled yet; at lr 1e-4 accuracy
# stalled but the entropy did not fall below on-policy's (docs/study.md "Operating points
# tried before this design").
LONG = 2
# Clip-higher's base is more off-policy than the off-policy finding's N_SGD 4: the more
# updates per batch, the more ratios reach the bound.
CLIP_N_SGD = 8
# The truncation finding needs what makes long-CoT responses grow under RL, absent from
# the study's task (there the truncation ratio stayed flat, ~0.1, with and without the
# mask): a longer answer that is a more accurate one. Its base is warmed up on a teacher
# that writes a step and the next on one line with this probability (data.arith.
# teacher_merge_rate): as accurate either way, but the one-line form is harder for the
# model (its 4-term chains: 0.12 right merged, 0.22 not, seed-0 base), and mostly only it
# keeps a 4-term chain inside truncation_length. Chosen from seed-0 probes of 0.25 / 0.5
# at 28 / 30 tokens (docs/study.md "Truncation", "The probes").
MERGE_RATE = 0.5
MERGES = (f"data.arith.teacher_merge_rate={MERGE_RATE}",)


# -- settings and variants ----------------------------------------------------------------


@dataclass(frozen=True)
class StudySettings:
    """Sizes of the study's runs (shared by every variant) and the task they train on.

    The full study trains ``study-arith`` (3-4 terms: on-policy accuracy has further to
    rise, docs/study.md "The task"); ``--quick`` keeps the easy ``tiny-arith`` task,
    whose 2-3 term solutions fit in 32 tokens, to stay < 15 min.
    """

    preset: str = "study-arith"
    steps: int = FULL_STEPS
    batch_size: int = 16
    group_size: int = 8
    max_response_length: int = 40
    # The truncation finding's stage: cuts 80% of the 4-term chains written one step per
    # line, 2% of those with two steps on one line (docs/study.md "Truncation").
    truncation_length: int = 28
    eval_every: int = FULL_STEPS // 4  # held-out evals at 0, 50, 100, 150, 200
    eval_samples: int = 4
    eval_problems: int | None = 200
    seeds: tuple[int, ...] = (0, 1, 2)
    threads: int = 1
    mode: str = "full"

    @classmethod
    def quick(cls) -> StudySettings:
        """Sized so that the whole study runs in < 15 minutes on 2 idle CPU cores."""
        return cls(
            preset="tiny-arith",
            steps=30,
            batch_size=16,
            group_size=8,
            max_response_length=32,
            truncation_length=22,
            eval_every=15,
            eval_samples=4,
            eval_problems=100,
            seeds=(0, 1),
            mode="quick",
        )

    def stage(self, **changes: int) -> str:
        """The ``stages=[...]`` override of a one-stage run, with ``changes`` applied."""
        stage = {
            "steps": self.steps,
            "max_response_length": self.max_response_length,
            "batch_size": self.batch_size,
            "mini_batch_size": self.batch_size,
            "group_size": self.group_size,
            **changes,
        }
        return f"stages=[{json.dumps(stage)}]"

    def base_overrides(self) -> list[str]:
        return [
            self.stage(),
            "algo.entropy.mode=off",
            f"eval.samples={self.eval_samples}",
            f"eval.max_problems={self.eval_problems or 'null'}",
            f"eval.max_tokens={self.max_response_length}",
            "eval.before=true",
            "eval.after=true",
            f"train.threads={self.threads}",
            f"train.checkpoint_every={max(1, min(self.eval_every, 10))}",
            "train.keep_checkpoints=1",
            "train.save_samples=0",
            "logging.tensorboard=false",
            "logging.progress=false",
        ]

    def segment_ends(self) -> list[int]:
        """Steps after which the held-out set is evaluated (the last one is ``steps``)."""
        every = max(1, self.eval_every)
        return sorted({*range(every, self.steps, every), self.steps})


@dataclass(frozen=True)
class Variant:
    """One training configuration: overrides on top of the study base."""

    key: str
    overrides: Callable[[StudySettings], list[str]]
    cost: float = 1.0  # relative compute, to schedule the long runs first
    length: int = 1  # the run's steps and eval interval, in multiples of the study's
    # Overrides of the task or its warm-up: the variant trains from its own base.
    warmup: tuple[str, ...] = ()

    def settings(self, s: StudySettings) -> StudySettings:
        """The study's settings as this variant runs them (``length`` times the steps)."""
        if self.length == 1:
            return s
        return replace(s, steps=s.steps * self.length, eval_every=s.eval_every * self.length)


def _mini_batches(s: StudySettings, n_sgd: int) -> str:
    """The stage override of ``n_sgd`` optimizer steps per batch, by mini-batches."""
    return s.stage(mini_batch_size=max(1, s.batch_size // n_sgd))


def _clip(eps_high: float) -> Callable[[StudySettings], list[str]]:
    """The clip-higher family: N_SGD ``CLIP_N_SGD`` by mini-batches at ``HOT_LR``."""
    return lambda s: [
        _mini_batches(s, CLIP_N_SGD),
        f"optim.lr={HOT_LR}",
        f"algo.clip_high={eps_high}",
    ]


VARIANTS: dict[str, Variant] = {
    v.key: v
    for v in (
        Variant("on-policy", lambda s: []),
        Variant("on-policy-long", lambda s: [], length=LONG),
        Variant("off-mini-long", lambda s: [_mini_batches(s, 4)], cost=1.4, length=LONG),
        Variant("off-reuse-long", lambda s: ["algo.reuse_epochs=4"], cost=2.5, length=LONG),
        Variant("temp-0.6", lambda s: ["rollout.temperature=0.6"]),
        Variant(
            "adaptive",
            lambda s: ["algo.entropy.mode=adaptive", f"algo.entropy.target={TARGET}"],
        ),
        Variant(
            "fixed-small",
            lambda s: ["algo.entropy.mode=fixed", f"algo.entropy.coef={FIXED_SMALL}"],
        ),
        Variant(
            "fixed-large",
            lambda s: ["algo.entropy.mode=fixed", f"algo.entropy.coef={FIXED_LARGE}"],
        ),
        Variant("clip-0.2", _clip(0.2), cost=1.6),
        Variant("clip-0.265", _clip(0.265), cost=1.6),
        Variant("clip-0.28", _clip(0.28), cost=1.6),
        Variant("kl-1e-3", lambda s: ["algo.kl_beta=0.001"], cost=1.3),
        Variant(
            "trunc-keep",
            lambda s: [s.stage(max_response_length=s.truncation_length)],
            warmup=MERGES,
        ),
        Variant(
            "trunc-mask",
            lambda s: [s.stage(max_response_length=s.truncation_length), "algo.truncation=mask"],
            warmup=MERGES,
        ),
        Variant(
            "batch-2x",
            lambda s: [s.stage(batch_size=2 * s.batch_size, mini_batch_size=2 * s.batch_size)],
            cost=2.0,
        ),
        Variant("group-2x", lambda s: [s.stage(group_size=2 * s.group_size)], cost=2.0),
    )
}
