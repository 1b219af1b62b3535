"""Per-step metrics: ``metrics.jsonl`` always, tensorboard, wandb and MLflow on request.

A run directory gets one JSON line per training step in ``metrics.jsonl`` and one per
evaluation in ``eval.jsonl``, with flat keys (``step``, ``stage``, ``reward_mean``, ...:
scripts and the report read them). Every line is flushed and fsynced as it is written, so
a killed run keeps everything it logged; at worst the last line is cut short, which
:func:`read_jsonl` skips and :class:`MetricsLogger` removes before appending again.

Trackers (tensorboard, and the wandb/MLflow runs of ``or1.trackers``) get the same
scalars under namespaced names, grouped the way verl and TRL users read them: one table,
``TRACKER_NAMES`` (``actor/``, ``rollout/``, ``reward/``, ``timing/`` in seconds,
``perf/``); a per-group ``<key>/<group>`` follows its key. A key without an entry goes
under ``other/<key>``; any other key that already holds a ``/`` is sent as it is.
Evaluations go under ``eval/<benchmark>/`` (the run's own test split: ``eval/test/``).

Values that JSON cannot carry (None, NaN, +-inf) are written as ``null`` and are not
sent to trackers. ``inf`` is nulled as well as NaN because ``json.dumps`` would
otherwise write the non-standard token ``Infinity`` that other readers reject.

Resuming from a checkpoint at step ``s``: call :meth:`MetricsLogger.truncate_after`
with ``s`` before logging step ``s + 1``. It drops later rows from both JSONL files and
reopens tensorboard with ``purge_step=s + 1``, so tensorboard hides the stale events of
the killed run. wandb and MLflow cannot rewrite history: the trackers continue the run
they logged to before, and the steps that run already sent (up to the last row of the
old ``metrics.jsonl``) are not sent twice.

Example:
    >>> with MetricsLogger(Path("runs/demo"), tensorboard=False) as logger:  # doctest: +SKIP
    ...     logger.log(1, {"reward_mean": 0.25, "accuracy": 0.25})
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from or1.jsonl import clean_tree, clean_value, drop_partial_tail, read_jsonl, rewrite_keeping
from or1.trackers import Tracker

log = logging.getLogger("or1.tracking")

METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.jsonl"
TB_DIR = "tb"

# metrics.jsonl key -> the name trackers show. Keep one entry per metric the loop logs
# (tests/test_tracking.py runs the loop and checks that none falls through to other/).
TRACKER_NAMES: dict[str, str] = {
    # actor/: the policy update
    "pg_loss": "actor/pg_loss",
    "clip_frac": "actor/clip_frac",
    "clip_frac_high": "actor/clip_frac_high",  # clipped at 1 + clip_high (A > 0)
    "clip_frac_low": "actor/clip_frac_low",  # clipped at 1 - clip_low (A < 0)
    "approx_kl": "actor/approx_kl",  # to the behaviour (old) policy
    "kl_ref": "actor/kl_ref",  # to the reference policy (algo.kl_beta > 0)
    "ratio_mean": "actor/ratio_mean",
    "ratio_max": "actor/ratio_max",
    "entropy_full": "actor/entropy",  # full-vocabulary token entropy
    "entropy_sampled": "actor/entropy_sampled",  # the controller's e_k
    "entropy_coef": "actor/entropy_coef",  # alpha_k used this step
    "entropy_coef_next": "actor/entropy_coef_next",  # the controller's c after the step
    "entropy_target": "actor/entropy_target",  # the adaptive target (auto: once measured)
    "entropy_vs_start": "actor/entropy_vs_start",  # collapse alarm: entropy / its start
    "entropy_collapse": "actor/entropy_collapse",  # 1 from the step the alarm fired
    "grad_norm": "actor/grad_norm",
    "lr": "actor/lr",
    "rollout_logp_diff": "actor/rollout_logp_diff",
    "n_sgd": "actor/n_sgd",
    "kept_sequences": "actor/kept_sequences",
    # rollout/: what was sampled
    "response_length_mean": "rollout/response_length_mean",
    "response_length_max": "rollout/response_length_max",
    "max_response_length": "rollout/max_response_length",
    "truncation_ratio": "rollout/truncation_ratio",
    "truncated_correct_ratio": "rollout/truncated_correct_ratio",
    "tokens_per_second": "rollout/tokens_per_second",
    "active_prompts": "rollout/active_prompts",
    "stage": "rollout/stage",
    "truncation_ratio_window": "rollout/truncation_ratio_window",  # stage controller
    "stage_advanced_early": "rollout/stage_advanced_early",
    "refill_rounds": "rollout/refill_rounds",  # algo.refill=oversample
    "sampled_prompts": "rollout/sampled_prompts",
    "update_groups": "rollout/update_groups",
    "batch_fill": "rollout/batch_fill",
    # reward/: how it scored
    "reward_mean": "reward/mean",
    "accuracy": "reward/accuracy",
    "kept_group_fraction": "reward/kept_group_fraction",
    "code_reward_hack_attempts": "reward/code_hack_attempts",
    "reward_reasons": "reward/reasons",  # reward_reasons/<reason>: reward/reasons/<reason>
    # timing/: seconds
    "rollout_seconds": "timing/rollout",
    "reward_seconds": "timing/reward",
    "update_seconds": "timing/update",
    "step_seconds": "timing/step",
    "wall_seconds": "timing/wall",
    # perf/: the device
    "max_memory_allocated_gb": "perf/max_memory_allocated_gb",
}
OTHER_PREFIX = "other/"
TEST_SPLIT = "test"  # eval/<TEST_SPLIT>/...: the run's own test split


def tracker_name(key: str) -> str:
    """The name trackers show for a ``metrics.jsonl`` key (see ``TRACKER_NAMES``).

    A per-group metric ``<key>/<group>`` (e.g. ``accuracy/math``, ``accuracy/src/gsm8k``
    from ``or1.rewards.scoring``) follows its key: ``reward/accuracy/math``.

    Example:
        >>> tracker_name("grad_norm"), tracker_name("mystery"), tracker_name("a/b")
        ('actor/grad_norm', 'other/mystery', 'a/b')
        >>> tracker_name("reward_mean/src/gsm8k")
        'reward/mean/src/gsm8k'
    """
    if key in TRACKER_NAMES:
        return TRACKER_NAMES[key]
    base, slash, group = key.partition("/")
    if slash and base in TRACKER_NAMES:
        return f"{TRACKER_NAMES[base]}/{group}"
    return key if slash else OTHER_PREFIX + key


def device_metrics() -> dict[str, float]:
    """``max_memory_allocated_gb``: this process's peak CUDA memory since the previous
    call (GiB of 2**30 bytes, as verl reports it), then the peak is reset, so each step
    shows its own; {} without CUDA. On Ray, the workers' memory is not in it."""
    import torch

    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    peak = torch.cuda.max_memory_allocated() / 2**30
    torch.cuda.reset_peak_memory_stats()
    return {"max_memory_allocated_gb": peak}


_EVAL_SCALARS = ("avg_at_k", "mean_response_length", "truncation_ratio", "seconds")


def eval_scalars(row: Mapping[str, Any]) -> dict[str, float]:
    """An ``eval.jsonl`` row's scalars under ``eval/<benchmark>/`` (``eval/test/``)."""
    prefix = f"eval/{row.get('benchmark') or TEST_SPLIT}/"
    scalars: dict[str, float] = {}
    for key, value in row.items():
        # The totals and their breakdowns (avg_at_k/<ability>, avg_at_k/src/<source>,
        # truncation_ratio/<ability>, ...: EvalResult.breakdown), so a mixed run's curves
        # per ability are on the tracker too, not only in eval.jsonl.
        if key.split("/")[0] not in _EVAL_SCALARS:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            scalars[prefix + key] = value
    pass_at_k = row.get("pass_at_k")
    if isinstance(pass_at_k, dict):
        for k, v in pass_at_k.items():
            if isinstance(v, int | float):
                scalars[f"{prefix}pass_at_{k}"] = v
    return scalars


class MetricsLogger:
    """Append-only, crash-safe metrics for one run directory, fanned out to trackers.

    Args:
        run_dir: The run directory; created if missing.
        tensorboard: Also write scalars to ``run_dir/tb`` (writer created on first use).
        trackers: wandb/MLflow trackers (``or1.trackers.make_trackers``), started by
            :meth:`start_trackers` or at the first row; resumed when
            :meth:`truncate_after` came first.

    Example:
        >>> logger = MetricsLogger(Path("runs/demo"))  # doctest: +SKIP
        >>> logger.log(3, {"reward_mean": 0.5, "entropy_full": float("nan")})  # doctest: +SKIP
        >>> logger.close()  # doctest: +SKIP
    """

    def __init__(
        self, run_dir: Path, *, tensorboard: bool = True, trackers: Sequence[Tracker] = ()
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.tensorboard = tensorboard
        self._files: dict[str, IO[str]] = {}
        self._tb: Any = None  # torch SummaryWriter, created on first use
        self._purge_step: int | None = None
        self._trackers = list(trackers)
        self._started = False
        self._resuming = False
        self._sent_through: int | None = None  # the resumed run's trackers had these steps
        self._skip: dict[str, int] = {}  # tracker name -> steps up to this were sent before
        self._failures: dict[str, int] = {}

    # -- public API -------------------------------------------------------------------

    def log(self, step: int, metrics: Mapping[str, float | int | None]) -> None:
        """Record one training step.

        Args:
            step: The global step (the x axis of every plot).
            metrics: Scalar metrics by flat name. None, NaN and inf are written as null.

        Raises:
            ValueError: ``metrics`` has a key ``"step"``.
            TypeError: A value is not a number or None.
        """
        if "step" in metrics:
            raise ValueError("metrics must not contain 'step'; pass it as the step argument")
        clean = {k: clean_value(k, v) for k, v in metrics.items()}
        self._append(METRICS_FILE, {"step": int(step), **clean})
        self._send(step, {tracker_name(k): v for k, v in clean.items() if v is not None})

    def log_eval(self, step: int, result: Mapping[str, Any]) -> None:
        """Record one evaluation (e.g. the base model at step 0, the final policy).

        Args:
            step: The training step the evaluated weights come from.
            result: E.g. ``{"label": "base", "avg_at_k": 0.31, "k": 8,
                "pass_at_k": {"1": 0.31, "8": 0.7}}``; nested values are allowed. Its
                scalars go to trackers under ``eval/<benchmark>/`` (see ``eval_scalars``).
        """
        row = {"step": int(step), **clean_tree(dict(result))}
        self._append(EVAL_FILE, row)
        self._send(step, eval_scalars(row))

    def truncate_after(self, step: int) -> None:
        """Forget everything logged after ``step`` (resuming from a checkpoint at ``step``).

        Rewrites ``metrics.jsonl`` and ``eval.jsonl`` atomically (temp file, then
        ``os.replace``) keeping rows with ``row["step"] <= step``, and reopens tensorboard
        with ``purge_step=step + 1`` so that its readers drop the stale events. Trackers
        started after this continue their earlier runs.

        Args:
            step: The last step to keep.
        """
        self._close_files()
        logged = [r["step"] for r in read_jsonl(self.run_dir / METRICS_FILE) if "step" in r]
        self._resuming, self._sent_through = True, max([step, *logged])
        for name in (METRICS_FILE, EVAL_FILE):
            rewrite_keeping(self.run_dir / name, step)
        if self.tensorboard:
            if self._tb is not None:
                self._tb.close()
                self._tb = None
            self._purge_step = step + 1
            self._writer()  # now, so the purge marker exists even if nothing follows

    def start_trackers(self) -> None:
        """Open the tracker runs now rather than at the first row, so that a tracker that
        cannot start stops the run before any training. Resumes them when
        :meth:`truncate_after` came first. Safe to call twice.

        Raises:
            ConfigError: A tracker could not start (the ones already started are closed).
        """
        if self._started:
            return
        opened = []
        try:
            for tracker in self._trackers:
                continued = tracker.start(resume=self._resuming)
                opened.append(tracker)
                if continued and self._sent_through is not None:
                    self._skip[tracker.name] = self._sent_through
        except BaseException:
            for tracker in opened:
                tracker.close(failed=True)
            raise
        self._started = True

    def close(self, *, failed: bool = False) -> None:
        """Flush and close every file and backend (``failed``: the run raised). Safe to
        call twice."""
        self._close_files()
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._started:
            for tracker in self._trackers:
                tracker.close(failed=failed)
            self._started = False

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(failed=exc_type is not None)

    # -- internals --------------------------------------------------------------------

    def _send(self, step: int, scalars: Mapping[str, float]) -> None:
        """Scalars (namespaced) to tensorboard and the trackers."""
        if not scalars:
            return
        self._write_tb(step, scalars)
        self.start_trackers()
        for tracker in self._trackers:
            if step <= self._skip.get(tracker.name, -1):
                continue  # the run being resumed sent this step already
            try:
                tracker.log(int(step), scalars)
            except Exception as err:  # a tracker hiccup must not stop training
                n = self._failures[tracker.name] = self._failures.get(tracker.name, 0) + 1
                if n == 1:
                    log.warning(
                        "%s could not log step %d (%s); training goes on, "
                        "metrics.jsonl has every step",
                        tracker.name,
                        step,
                        err,
                    )

    def _append(self, name: str, row: dict[str, Any]) -> None:
        f = self._files.get(name)
        if f is None:
            path = self.run_dir / name
            drop_partial_tail(path)
            f = self._files[name] = path.open("a", encoding="utf-8")
        f.write(json.dumps(row, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())

    def _writer(self) -> Any:
        """The SummaryWriter; None (and tensorboard off) when the package is missing."""
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter  # slow import, only if used
            except ImportError:  # tensorboard is the optional extra or1[tensorboard]
                log.warning(
                    "logging.tensorboard: the tensorboard package is not installed "
                    "(pip install 'or1[tensorboard]'); metrics go to metrics.jsonl only"
                )
                self.tensorboard = False
                return None
            self._tb = SummaryWriter(str(self.run_dir / TB_DIR), purge_step=self._purge_step)
            self._purge_step = None
        return self._tb

    def _write_tb(self, step: int, scalars: Mapping[str, float]) -> None:
        if not self.tensorboard:
            return
        writer = self._writer()
        if writer is None:
            return
        for tag, value in scalars.items():
            writer.add_scalar(tag, value, global_step=int(step))
        writer.flush()

    def _close_files(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
