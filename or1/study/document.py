"""``findings.json``: the study's settings, its statistics and tests, and the findings."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from or1.study.bootstrap import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CONFIDENCE
from or1.study.findings import evaluate_findings
from or1.study.runner import Study
from or1.study.stats import RunData
from or1.study.variants import (
    CLIP_N_SGD,
    ENTROPY_COLUMN,
    FIXED_LARGE,
    FIXED_SMALL,
    HOT_LR,
    LONG,
    MERGE_RATE,
    SAME_BAND,
    TAIL_FRACTION,
    TARGET,
)


def resolved_settings(study: Study) -> dict[str, Any]:
    """The base config values a reader needs to interpret the numbers."""
    from or1.config import load_config

    cfg = load_config(study.runs[0].preset, list(study.runs[0].overrides))
    return {
        "optim.lr": cfg.optim.lr,
        "stage": cfg.stages[0].model_dump(),
        "eval": {"samples": cfg.eval.samples, "max_problems": cfg.eval.max_problems},
        "warmup": cfg.warmup.model_dump(),
        "model.tiny": cfg.model.tiny.model_dump(),
    }


def write_findings(
    study: Study, runs: dict[str, dict[int, RunData]], *, wall_seconds: float
) -> dict[str, Any]:
    """Build and write ``findings.json``; returns the document."""
    doc = {
        "study": "entropy",
        "mode": study.settings.mode,
        "preset": study.preset,
        "settings": {**asdict(study.settings), "user_overrides": list(study.overrides)},
        "resolved": resolved_settings(study),
        "statistics": {
            "entropy_column": ENTROPY_COLUMN,
            "window_fraction": TAIL_FRACTION,
            "final_entropy": f"mean entropy over the last {TAIL_FRACTION:.0%} of steps",
            "initial_entropy": f"mean entropy over the first {TAIL_FRACTION:.0%} of steps",
            "entropy_auc": "mean entropy over all steps (area under the curve per step)",
            "peak_entropy": "max of the moving average of entropy (window: the tail's)",
            "final_accuracy": "held-out avg@k at the last step",
            "accuracy_gain": "final_accuracy - base_accuracy (held-out avg@k at step 0)",
            "final_truncation": "mean truncation ratio of the rollouts over the tail",
            "mean_entropy_coef": "mean entropy coefficient alpha_k over the steps",
        },
        "tests": {
            "heldout": "per held-out problem: final avg@k of the variant minus the "
            "reference's (same seed: same base, same problems), pooled over seeds",
            "entropy / truncation": "per step of the final (or initial) window, paired by "
            "step (same seed: same prompts); 'change': a run's final window against its "
            "own initial window",
            "bootstrap": "seeds drawn with replacement (when several), then the units "
            "(problems or steps) of each drawn seed with replacement; percentile interval",
            "resamples": BOOTSTRAP_RESAMPLES,
            "rng": "numpy default_rng([seed, crc32(test name)])",
            "seed": BOOTSTRAP_SEED,
            "confidence": CONFIDENCE,
            "verdict": "reproduced: the interval excludes no effect (diff 0, ratio 1) in "
            "the paper's direction, or lies inside the band of a no-change claim; "
            "opposite: it excludes it the other way; else inconclusive",
        },
        "constants": {
            "target": TARGET,
            "fixed_small": FIXED_SMALL,
            "fixed_large": FIXED_LARGE,
            "same_band": list(SAME_BAND),
            "off_policy_length": LONG,  # x the study's steps
            "clip_lr": HOT_LR,
            "clip_n_sgd": CLIP_N_SGD,
            "truncation_merge_rate": MERGE_RATE,  # the truncation finding's teacher
        },
        "findings": evaluate_findings(study.findings, runs),
        "runs": {
            f"{spec.variant}-s{spec.seed}": {"dir": spec.run_dir, "overrides": list(spec.overrides)}
            for spec in study.runs
        },
        "wall_seconds": wall_seconds,
        # A finding whose runs are not all done is decided on the seeds done ("not
        # measured" with none): e.g. a report-only look at a study still running.
        "runs_planned": len(study.runs),
        "runs_done": sum(len(seeds) for seeds in runs.values()),
    }
    for key in doc["findings"]:
        doc["findings"][key]["plot"] = f"plots/{key}.png"
    path = study.out / "findings.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(path)
    return doc
