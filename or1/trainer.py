"""The MAGIC loop: stages -> steps -> rollout -> reward -> filter -> advantages ->
policy update -> entropy control -> log / checkpoint.

Departures from the paper, each a setting whose default is the paper's value:
``algo.truncation`` (mask = ablation), ``algo.online_filter``, ``algo.kl_beta``,
``algo.entropy.*`` (released-code values), ``algo.reuse_epochs`` and the stage's
``mini_batch_size`` (N_SGD > 1 = off-policy ablations). Beyond the paper (docs/controller.md):
``stages.N.advance_at_truncation``, ``algo.entropy.target: auto``, ``algo.refill``.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import torch

from or1.algo import group_accuracy, zero_truncated_rewards
from or1.batch import build_batch, optimizer_step_rows
from or1.build import (
    check_lengths,
    encode_prompt,
    fit_prompts,
    load_model,
    load_problems,
    make_engines,
    make_entropy_controller,
    seed_everything,
)
from or1.checkpoint import Checkpoint, global_rng_state, save_checkpoint, training_state_writer
from or1.config import Config, StageConfig
from or1.data.problem import Problem
from or1.data.sampler import PromptSampler
from or1.engine.rollout import SamplingParams
from or1.entropy_watch import EntropyWatch, entropy_target
from or1.errors import DataError
from or1.evaluate import (
    EvalResult,
    EvalSet,
    benchmark_sets,
    eval_sampling_params,
    evaluate_sets,
    load_benchmarks,
)
from or1.objective import magic_loss
from or1.progress import progress_bar, step_fields
from or1.refill import Scored, sample_with_refill
from or1.resume import open_run, restore
from or1.rewards import rewards_from_config, score_rollouts
from or1.rewards.scoring import require_sandbox, step_breakdown
from or1.run_outputs import write_samples, write_summary
from or1.rundir import config_text, ensure_run_dir
from or1.schedule import StageSchedule, stage_metrics
from or1.stages import online_filter
from or1.step_metrics import EntropySource, mean_neg_logp, rollout_metrics, update_metrics
from or1.tracking import device_metrics
from or1.types import RolloutBatch

log = logging.getLogger("or1.trainer")


STEP_PARTS = ("rollout_seconds", "reward_seconds", "update_seconds")  # sum: step_seconds
# Metrics read off the wall clock: they differ between two otherwise identical runs.
TIMING_METRICS = frozenset({*STEP_PARTS, "step_seconds", "tokens_per_second", "wall_seconds"})


def _fault_injection(step: int) -> None:
    """``OR1_KILL_AFTER_STEP=N`` SIGKILLs the process after step N (crash/resume tests)."""
    if os.environ.get("OR1_KILL_AFTER_STEP") == str(step):
        os.kill(os.getpid(), signal.SIGKILL)


class Trainer:
    """Owns the data flow of one run; engines do the heavy lifting."""

    def __init__(self, cfg: Config, run_dir: Path, *, show_progress: bool = True) -> None:
        created = time.perf_counter()
        self.cfg, self.run_dir, self.show = cfg, Path(run_dir), show_progress
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        seed_everything(cfg.train.seed)
        self.rewards = rewards_from_config(cfg.rewards)  # imports rewards.by_ability first
        train, test = load_problems(cfg)
        if not train:
            raise DataError(
                "the training set is empty.", hint="check data.train (or the task's n_train)."
            )
        benchmarks = load_benchmarks(cfg)  # before the model: a missing file fails fast
        scored = [*train, *test, *(p for ps in benchmarks.values() for p in ps)]
        self.sandbox = require_sandbox(self.rewards, scored)  # code that cannot run: stop
        loaded = load_model(cfg, train, show=show_progress)
        self.model, self.tokenizer, self.model_info = loaded.model, loaded.tokenizer, loaded.info
        encode = functools.partial(encode_prompt, self.tokenizer)
        limit = cfg.rollout.max_prompt_length
        self.train_problems, self._prompt_cache = fit_prompts(train, encode, limit, split="train")
        self.test_problems, test_ids = fit_prompts(test, encode, limit, split="test")
        # What every evaluation (base, every N steps, final) scores: the test split, then
        # each of eval.benchmarks (loaded now, so a missing file fails before training).
        self.eval_sets = [EvalSet(self.test_problems, test_ids)] if self.test_problems else []
        self.eval_sets += benchmark_sets(benchmarks, encode, limit)
        prompts = [*self._prompt_cache.values()]
        prompts += [ids for s in self.eval_sets for ids in s.prompt_ids.values()]
        check_lengths(cfg, self.model.config, map(len, prompts))
        self.by_uid: dict[str, Problem] = {p.uid: p for p in self.train_problems}
        engines = make_engines(cfg, self.model, self.tokenizer)
        self.policy, self.engine, self.sync_weights = (
            engines.policy,
            engines.rollout,
            engines.sync_weights,
        )
        self.controller = make_entropy_controller(cfg)
        self.schedule = StageSchedule(cfg.stages)  # stage controller (or1/schedule.py)
        self.entropy_watch = EntropyWatch(cfg)  # the entropy-collapse alarm
        self.sampler = PromptSampler(list(self.by_uid), seed=cfg.train.seed)
        self.step = 0
        self.stage_index = 0
        self.stage_accuracy: dict[str, float] = {}
        self.elapsed = 0.0
        self.base_eval: list[dict[str, Any]] = []  # summaries of the base evaluation
        self.setup_seconds = time.perf_counter() - created  # data, model, warm-up
        ensure_run_dir(self.run_dir)  # last: a failed start leaves no empty run directory

    def close(self) -> None:
        """Stop the worker processes of rollout.hf.processes > 1 (idempotent; they are
        daemons and stop at exit anyway)."""
        self.engine.close()

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- helpers -----------------------------------------------------------------
    def prompt_ids(self, problem: Problem) -> list[int]:
        """The chat prompt's token ids (every training problem is encoded at start)."""
        return self._prompt_cache[problem.uid]

    def decode(self, responses: list[list[int]]) -> list[str]:
        return self.tokenizer.batch_decode(responses, skip_special_tokens=True)

    def evaluate(self, label: str) -> list[EvalResult]:
        """Evaluate the current policy on every evaluation set (see ``eval_sets``)."""
        # Evaluations must not shift the training sampler's random stream: a run resumed
        # from a checkpoint taken before an eval must continue exactly.
        rng = self.engine.rng_state()
        results = evaluate_sets(
            self.engine,
            self.eval_sets,
            label=label,
            params=eval_sampling_params(self.cfg),
            decode=self.decode,
            rewards=self.rewards,
            max_problems=self.cfg.eval.max_problems,
            out_dir=self.run_dir / "eval",
            show=self.show,
        )
        self.engine.set_rng_state(rng)
        return results

    # ---- one step ----------------------------------------------------------------
    def _draw(self, stage: StageConfig, n: int) -> Scored:
        """Sample ``n`` fresh prompts, roll them out and score them."""
        t0 = time.perf_counter()
        problems = [self.by_uid[u] for u in self.sampler.next_batch(n)]
        params = SamplingParams(
            n=stage.group_size,
            temperature=self.cfg.rollout.temperature,
            top_p=self.cfg.rollout.top_p,
            max_tokens=stage.max_response_length,
        )
        rollouts = self.engine.generate([self.prompt_ids(p) for p in problems], params)
        t1 = time.perf_counter()
        texts = self.decode(rollouts.response_ids)
        verdicts = score_rollouts(problems, rollouts.group_ids, texts, rewards=self.rewards)
        graded = torch.tensor([v.reward for v in verdicts], dtype=torch.float32)
        rewards = graded
        if self.cfg.algo.truncated_reward == "zero":
            rewards = zero_truncated_rewards(graded, torch.tensor(rollouts.truncated))
        seconds = {"rollout_seconds": t1 - t0, "reward_seconds": time.perf_counter() - t1}
        return Scored(problems, rollouts, texts, verdicts, graded, rewards, seconds)

    def train_step(self, stage: StageConfig) -> dict[str, float]:
        cfg = self.cfg
        # One round of batch_size prompts; algo.refill=oversample adds rounds (or1/refill.py).
        scored, update, refill = sample_with_refill(
            functools.partial(self._draw, stage),
            batch_size=stage.batch_size,
            mode=cfg.algo.refill,
            max_rounds=cfg.algo.refill_max_rounds,
        )
        problems, rollouts, texts = scored.problems, scored.rollouts, scored.texts
        verdicts, graded, rewards = scored.verdicts, scored.graded, scored.rewards
        truncated = torch.tensor(rollouts.truncated, dtype=torch.bool)
        t2 = time.perf_counter()
        group_ids = torch.tensor(rollouts.group_ids)
        ids, accuracy = group_accuracy(rewards, group_ids)
        for g, acc in zip(ids.tolist(), accuracy.tolist(), strict=True):
            self.stage_accuracy[problems[g].uid] = acc
        lengths = torch.tensor([len(r) for r in rollouts.response_ids], dtype=torch.float32)
        metrics = rollout_metrics(rewards, graded, truncated, lengths, stage=stage)
        metrics.update(
            active_prompts=len(self.sampler.active),
            **scored.seconds,
            tokens_per_second=rollouts.num_tokens / max(scored.seconds["rollout_seconds"], 1e-9),
        )
        # accuracy/<ability>, accuracy/src/<source>, ... and code_reward_hack_attempts
        answered = [problems[g] for g in rollouts.group_ids]
        lists = (rewards.tolist(), lengths.tolist(), rollouts.truncated)
        metrics.update(step_breakdown(answered, verdicts, *lists))
        write_samples(
            self.run_dir,
            step=self.step,
            groups=cfg.train.save_samples,
            problems=problems,
            rollouts=rollouts,
            texts=texts,
            rewards=rewards.tolist(),
        )
        pad = self.tokenizer.pad_token_id
        batch, info = build_batch(update.rollouts, update.rewards, pad_id=pad, cfg=cfg)
        metrics.update(info)
        if cfg.algo.refill != "none":
            metrics.update(refill)  # rounds, prompts, kept fraction over every round
        if batch is None:
            log.warning("step %d: every group had uniform rewards; skipping the update", self.step)
            metrics["update_seconds"] = 0.0
            return metrics
        metrics.update(self.update(batch, stage))
        metrics["update_seconds"] = time.perf_counter() - t2
        return metrics

    def update(self, batch: RolloutBatch, stage: StageConfig) -> dict[str, float]:
        cfg = self.cfg
        source = EntropySource(cfg.algo.entropy.source, cfg.algo.entropy.gate)
        # Entropy e_k of the rollout buffer: mean negative log-prob of the sampled tokens.
        sampled_entropy = mean_neg_logp(batch.rollout_logp, batch.response_mask)
        seed = cfg.train.seed * 100_003 + self.step
        self.engine.release_memory()  # vLLM's GPU share, back at sync_weights below
        rows = optimizer_step_rows(batch.group_ids, stage=stage, cfg=cfg, seed=seed)
        temperature = cfg.rollout.temperature
        # The trainer's log-probs before the update: the behaviour policy when N_SGD > 1,
        # and e_k itself when the gate needs the trainer's entropy before the update.
        if len(rows) > 1 or source.needs_old_logp:
            batch.old_logp = self.policy.logprobs(batch, temperature=temperature)
        if cfg.algo.kl_beta > 0:
            batch.ref_logp = self.policy.logprobs(batch, temperature=temperature, reference=True)
        alpha = self.controller.begin_step(source.before_update(batch, sampled_entropy))
        mini_rows = stage.mini_batch_size * stage.group_size
        loss_fn = magic_loss(cfg.algo, entropy_coef=alpha, mini_batch_rows=mini_rows)
        steps = self.policy.update(batch, loss_fn, mini_batches=rows, temperature=temperature)
        self.sync_weights()
        out = update_metrics(steps)
        self.controller.end_step(source.after_update(batch, steps, sampled_entropy, out))
        out.update(
            entropy_sampled=sampled_entropy,
            entropy_coef=alpha,
            entropy_coef_next=getattr(self.controller, "value", alpha),
            **entropy_target(self.controller),
            n_sgd=len(rows),
            kept_sequences=len(batch),
        )
        return out

    # ---- stages, checkpoints, the run ----------------------------------------------
    def enter_stage(self, index: int) -> None:
        """Online filter: drop prompts solved with accuracy 1 in the previous stage."""
        if index == self.stage_index:
            return
        if self.cfg.algo.online_filter:
            online_filter(self.sampler, self.stage_accuracy, stage_number=index + 1)
        self.stage_index = index
        self.stage_accuracy = {}

    def state(self) -> dict[str, Any]:
        return {
            "stage_index": self.stage_index,
            "stage_accuracy": self.stage_accuracy,
            "sampler": self.sampler.state_dict(),
            "controller": self.controller.state_dict(),
            "schedule": self.schedule.state_dict(),
            "entropy_watch": self.entropy_watch.state_dict(),
            "elapsed": self.elapsed,
            "base_eval": self.base_eval,
            "model_info": self.model_info,
        }

    def save(self) -> Path:
        """Write ``ckpt/step_<step>`` (TrainingError, and nothing written, on NaN/inf)."""
        return save_checkpoint(
            self.run_dir / "ckpt",
            step=self.step,
            model=self.policy.export_model(),  # sharded: gathered now (fp32 masters)
            tokenizer=self.tokenizer,
            write_training_state=training_state_writer(self.policy, step=self.step),
            rng={"global": global_rng_state(), "engine": self.engine.rng_state()},
            state=self.state(),
            config_text=config_text(self.cfg),
            keep=self.cfg.train.keep_checkpoints,
        )

    def load_state(self, s: dict[str, Any]) -> None:
        """Inverse of ``state`` (``step`` from the checkpoint's state.json)."""
        self.step, self.stage_index = int(s["step"]), int(s["stage_index"])
        self.stage_accuracy = dict(s["stage_accuracy"])
        self.sampler.load_state_dict(s["sampler"])
        self.controller.load_state_dict(s["controller"])
        if "schedule" in s:
            self.schedule.load_state_dict(s["schedule"])
        else:  # a checkpoint from before the stage controller: a fixed schedule
            self.schedule = StageSchedule.at_step(self.cfg.stages, self.step)
        if "entropy_watch" in s:
            self.entropy_watch.load_state_dict(s["entropy_watch"])
        self.elapsed = float(s["elapsed"])
        base = s.get("base_eval") or []
        self.base_eval = [base] if isinstance(base, dict) else list(base)  # dict: before 11-26

    def restore(self, path: Path, *, fallback: bool = False) -> Checkpoint:
        """Load a verified checkpoint (see ``or1.resume.restore``); writes nothing."""
        return restore(self, path, fallback=fallback)[0]

    def run(self, *, resume: Path | None = None, fallback: bool = False) -> dict[str, Any]:
        """Train to ``cfg.total_steps`` (from the checkpoint at ``resume``: a run dir, its
        ckpt/latest or a ckpt/step_N; ``fallback``: from the newest verified one if that
        is damaged), evaluate, and write summary.json."""
        cfg = self.cfg
        logger = open_run(self, resume, fallback=fallback)
        # Wall time counts from process start (data, model, warm-up included) and, on
        # resume, continues from the checkpoint's.
        start = time.perf_counter() - self.setup_seconds
        if self.step > 0:
            start -= self.elapsed
        elif cfg.eval.before:
            self.base_eval = [r.summary() for r in self.evaluate("base")]
            for summary in self.base_eval:
                logger.log_eval(0, summary)
        total = cfg.total_steps
        steps_bar = progress_bar(
            "RL steps", total, show=self.show, line_every=0, completed=self.step
        )
        with logger, steps_bar as bar:
            while self.step < total and not self.schedule.finished:
                self.step += 1
                index = self.schedule.index
                self.enter_stage(index)  # the online filter runs here on a new stage
                metrics = self.train_step(cfg.stages[index])
                metrics["stage"] = index
                switch = self.schedule.record(self.step, metrics["truncation_ratio"])
                metrics.update(stage_metrics(self.schedule, switch))
                metrics.update(self.entropy_watch.observe(self.step, metrics))
                metrics["step_seconds"] = sum(metrics.get(k, 0.0) for k in STEP_PARTS)
                self.elapsed = time.perf_counter() - start
                metrics["wall_seconds"] = self.elapsed
                metrics.setdefault("lr", cfg.optim.lr)  # constant: or1 has no lr schedule
                metrics.update(device_metrics())
                logger.log(self.step, metrics)
                bar.advance(1, **step_fields(metrics, stages=len(cfg.stages)))
                if switch is not None:  # checkpointed: a resume switches alike
                    log.info(switch.message())
                end = self.step == total or self.schedule.finished
                if self.step % cfg.train.checkpoint_every == 0 or switch or end:
                    self.save()
                if cfg.eval.every and self.step % cfg.eval.every == 0 and not end:
                    for result in self.evaluate(f"step_{self.step}"):
                        logger.log_eval(self.step, result.summary())
                _fault_injection(self.step)
            final = self.evaluate("final") if cfg.eval.after else []
            for result in final:
                logger.log_eval(self.step, result.summary())
        self.elapsed = time.perf_counter() - start
        return self._summary(final)

    def _summary(self, final: list[EvalResult]) -> dict[str, Any]:
        """Write and return summary.json (see ``or1.run_outputs.write_summary``)."""
        fields = {
            "preset": self.cfg.preset,
            "seed": self.cfg.train.seed,
            "k": self.cfg.eval.samples,
            "steps": self.step,
            "stage_starts": self.schedule.stage_starts(),
            "entropy_collapse": self.entropy_watch.summary(),
            "wall_seconds": self.elapsed,
            "setup_seconds": self.setup_seconds,
            "model": self.model_info,
            "run_dir": str(self.run_dir),
        }
        return write_summary(
            self.run_dir,
            base_eval=self.base_eval,
            final=[r.summary() for r in final],
            benchmarks=[s.benchmark for s in self.eval_sets if s.benchmark],
            fields=fields,
        )
