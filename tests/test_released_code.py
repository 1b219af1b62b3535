"""``algo.variant=released-code`` and each difference it selects (docs/recipe.md): the
loss weighting, N_SGD after rejection, the entropy gate's timing and source, the reward's
answer text; hand-computed numbers, the variant sets them all, explicit overrides win,
the defaults are the paper's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from or1.batch import fixed_size_rows, optimizer_step_rows
from or1.config import AlgoConfig, Config, StageConfig, load_config
from or1.data.problem import Problem
from or1.distributed.sharding import shard_rows
from or1.objective import magic_loss
from or1.rewards import rewards_from_config
from or1.rewards.math import first_think_answer
from or1.step_metrics import EntropySource, trainer_entropy
from or1.types import BatchTotals, RolloutBatch, TokenScores

RELEASED = AlgoConfig(aggregation="micro-token-mean")


def _batch(lengths: list[int], advantages: list[float], width: int = 3) -> RolloutBatch:
    n = len(lengths)
    mask = torch.tensor([[1.0] * t + [0.0] * (width - t) for t in lengths])
    return RolloutBatch(
        input_ids=torch.zeros((n, 2 + width), dtype=torch.long),
        attention_mask=torch.cat([torch.ones(n, 2), mask], 1).long(),
        response_mask=mask,
        prompt_length=2,
        rewards=torch.zeros(n),
        advantages=torch.tensor(advantages),
        group_ids=torch.arange(n),
        truncated=torch.zeros(n, dtype=torch.bool),
        rollout_logp=torch.zeros(n, width),
    )


def _micro_losses(algo: AlgoConfig, mini: RolloutBatch, parts: list[list[int]], **kw) -> float:
    """Sum of the micro-batch losses of ``mini`` cut into ``parts`` (on-policy: ratio 1,
    per-token loss -A; entropy 1 per token)."""
    loss_fn = magic_loss(algo, **kw)
    totals = BatchTotals.of(mini)
    total = 0.0
    for part in parts:
        micro = mini.select(torch.tensor(part))
        logp = torch.zeros_like(micro.response_mask)
        loss, _ = loss_fn(TokenScores(logp, torch.ones_like(logp)), micro, totals)
        total += float(loss)
    return total


def test_micro_token_mean_weights_each_micro_batch_by_its_share_of_sequences() -> None:
    # 3 kept rows of a configured mini-batch of 4: A = 1 (3 tokens), -1 (1), 2 (2).
    mini = _batch([3, 1, 2], [1.0, -1.0, 2.0])
    parts = [[0, 1], [2]]
    # released: [(-3 + 1) / 4] x 2/4 + [-4 / 2] x 1/4 = -0.25 - 0.5
    released = _micro_losses(RELEASED, mini, parts, entropy_coef=0.0, mini_batch_rows=4)
    assert released == pytest.approx(-0.75)
    # paper: every token of the mini-batch weighs the same, (-3 + 1 - 4) / 6
    paper = _micro_losses(AlgoConfig(), mini, parts, entropy_coef=0.0, mini_batch_rows=4)
    assert paper == pytest.approx(-1.0)
    # the entropy bonus is weighted alike: 1 x 2/4 + 1 x 1/4
    with_bonus = _micro_losses(RELEASED, mini, parts, entropy_coef=0.1, mini_batch_rows=4)
    assert with_bonus == pytest.approx(-0.75 - 0.1 * 0.75)
    # it depends on the micro-batching (the paper's does not)
    one = _micro_losses(RELEASED, mini, [[0, 1, 2]], entropy_coef=0.0, mini_batch_rows=4)
    assert one == pytest.approx((-3 + 1 - 4) / 6 * 3 / 4)
    with pytest.raises(ValueError, match="mini_batch_rows"):
        _micro_losses(RELEASED, mini, parts, entropy_coef=0.0)


def test_micro_token_mean_summed_over_shards_is_the_released_mean_over_ranks() -> None:
    mini = _batch([3, 1, 2, 1], [1.0, -1.0, 2.0, -2.0])
    loss_fn = magic_loss(RELEASED, entropy_coef=0.0, mini_batch_rows=4)
    total = 0.0
    for shard in shard_rows(mini, torch.arange(4), world=2, micro_batch_size=8):
        for idx in shard.micro:
            micro = shard.batch.select(idx)
            logp = torch.zeros_like(micro.response_mask)
            total += float(loss_fn(TokenScores(logp, logp), micro, shard.totals)[0])
    # released, 2 ranks of 2 rows (per-rank mini-batch 4 / 2): rank 0 [(-3 + 1) / 4] x 2/2,
    # rank 1 [(-4 + 2) / 3] x 2/2; the mean over ranks
    assert total == pytest.approx((-0.5 + -2 / 3) / 2)


def test_fixed_size_mini_batches_mean_fewer_steps_after_rejection() -> None:
    group_ids = torch.tensor([0, 0, 1, 1, 2, 2])  # 3 kept groups of 2
    steps = fixed_size_rows(group_ids, rows_per_step=4, epochs=1, seed=0)
    assert [s.tolist() for s in steps] == [[0, 1, 2, 3], [4, 5]]
    assert len(fixed_size_rows(group_ids, rows_per_step=4, epochs=2, seed=0)) == 4
    # stage: 4 prompts x 2, mini-batch 2 prompts; rejection kept 2 of the 4 groups
    stage = StageConfig(
        steps=1, max_response_length=8, batch_size=4, mini_batch_size=2, group_size=2
    )
    kept = torch.tensor([0, 0, 3, 3])
    paper = load_config("tiny-arith")
    released = load_config("tiny-arith", ["algo.variant=released-code"])
    assert len(optimizer_step_rows(kept, stage=stage, cfg=paper, seed=0)) == 2  # N_SGD fixed
    rows = optimizer_step_rows(kept, stage=stage, cfg=released, seed=0)
    assert [r.tolist() for r in rows] == [[0, 1, 2, 3]]  # one step of 2 x 2 rows


def test_trainer_entropy_comes_from_the_trainers_log_probs() -> None:
    batch = _batch([2, 1], [1.0, -1.0])
    batch.rollout_logp = torch.full((2, 3), -9.0)  # the rollout engine's: not used
    assert trainer_entropy(batch, [{"neg_logp": 0.7}]) == 0.7  # N_SGD 1: the first step's
    assert trainer_entropy(batch, []) is None
    batch.old_logp = torch.tensor([[-0.5, -1.0, 0.0], [-0.3, 0.0, 0.0]])
    assert trainer_entropy(batch, [{"neg_logp": 0.7}]) == pytest.approx(1.8 / 3)


def test_entropy_source_says_where_e_k_comes_from_and_when() -> None:
    batch = _batch([2, 1], [1.0, -1.0])
    steps = [{"neg_logp": 0.7}]
    paper = EntropySource("rollout", "current")
    assert not paper.needs_old_logp
    assert paper.before_update(batch, 0.4) == 0.4  # the rollout engine's e_k
    metrics = {"neg_logp": 0.7}
    assert paper.after_update(batch, steps, 0.4, metrics) == 0.4  # the rollout engine's e_k
    assert metrics == {"neg_logp": 0.7}
    # The released code's gate "previous": e_k from the update's first step, no extra pass.
    previous = EntropySource("trainer", "previous")
    assert not previous.needs_old_logp
    assert previous.before_update(batch, 0.4) is None
    metrics = {"neg_logp": 0.7}
    assert previous.after_update(batch, steps, 0.4, metrics) == 0.7
    assert metrics == {"entropy_trainer": 0.7}  # neg_logp is e_k: logged once, named
    # Gate "current" with the trainer's entropy: old_logp recomputed before the update.
    current = EntropySource("trainer", "current")
    assert current.needs_old_logp
    batch.old_logp = torch.tensor([[-0.5, -1.0, 0.0], [-0.3, 0.0, 0.0]])
    assert current.before_update(batch, 0.4) == pytest.approx(1.8 / 3)
    metrics = {"neg_logp": 0.7, "grad_norm": 1.0}
    e_k = current.after_update(batch, steps, 0.4, metrics)
    assert e_k == pytest.approx(1.8 / 3) and metrics == {"entropy_trainer": e_k, "grad_norm": 1.0}


def test_neg_logp_statistic_only_when_the_source_is_the_trainer() -> None:
    micro = _batch([2, 1], [1.0, -1.0])
    logp = torch.tensor([[-0.5, -1.0, 0.0], [-0.3, 0.0, 0.0]])
    scores, totals = TokenScores(logp, torch.zeros_like(logp)), BatchTotals.of(micro)
    _, stats = magic_loss(AlgoConfig(), entropy_coef=0.0)(scores, micro, totals)
    assert "neg_logp" not in stats
    algo = AlgoConfig(entropy={"source": "trainer"})
    _, stats = magic_loss(algo, entropy_coef=0.0)(scores, micro, totals)
    assert float(stats["neg_logp"]) == pytest.approx(1.8 / 3)


def test_first_think_scores_the_text_between_the_first_two_think_ends() -> None:
    assert first_think_answer("a</think>b</think>c") == "b"
    assert first_think_answer("no tag") == "no tag"
    problem = Problem(uid="p", prompt=[{"role": "user", "content": "q"}], ground_truth="3")
    response = "think</think>so \\boxed{3}</think>then \\boxed{4}"
    last = rewards_from_config(load_config("tiny-arith").rewards).fns["math"]
    cfg = load_config("tiny-arith", ["rewards.answer_after=first-think"])
    first = rewards_from_config(cfg.rewards).fns["math"]
    assert float(last(problem, response).reward) == 0.0  # the answer after the last: 4
    assert float(first(problem, response).reward) == 1.0  # released: between: 3


# ---- the variant -----------------------------------------------------------------
EXPECTED = {
    "algo.online_filter": (True, False),
    "algo.aggregation": ("token-mean", "micro-token-mean"),
    "algo.mini_batching": ("split", "fixed-size"),
    "algo.truncated_reward": ("zero", "graded"),
    "algo.entropy.delta": (0.005, 1e-4),
    "algo.entropy.coef_max": (None, 0.005),
    "algo.entropy.gate": ("current", "previous"),
    "algo.entropy.source": ("rollout", "trainer"),
    "rewards.answer_after": ("last-think", "first-think"),
    "rewards.code.limits": ("paper", "released"),
}
OTHER = {  # a third value, or the paper's, to override the variant with
    "algo.online_filter": "true",
    "algo.aggregation": "seq-mean-token-mean",
    "algo.mini_batching": "split",
    "algo.truncated_reward": "zero",
    "algo.entropy.delta": "0.002",
    "algo.entropy.coef_max": "0.1",
    "algo.entropy.gate": "current",
    "algo.entropy.source": "rollout",
    "rewards.answer_after": "last-think",
    "rewards.code.limits": "paper",
}


def _get(cfg: Config, key: str) -> object:
    value: object = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


def test_the_defaults_are_the_papers_and_the_variant_sets_every_difference() -> None:
    paper, released = (
        load_config("tiny-arith"),
        load_config("tiny-arith", ["algo.variant=released-code"]),
    )
    for key, (paper_value, released_value) in EXPECTED.items():
        assert _get(paper, key) == paper_value, key
        assert _get(released, key) == released_value, key


@pytest.mark.parametrize("key", sorted(OTHER))
def test_an_explicit_setting_wins_over_the_variant(key: str) -> None:
    cfg = load_config("tiny-arith", ["algo.variant=released-code", f"{key}={OTHER[key]}"])
    want = {"true": True}.get(OTHER[key], OTHER[key])
    want = float(want) if key.endswith(("delta", "coef_max")) else want
    assert _get(cfg, key) == want
    for other, (_, released_value) in EXPECTED.items():  # the rest still the variant's
        if other != key:
            assert _get(cfg, other) == released_value, other


# ---- in the trainer: e_k from the trainer, the gate from e_{k-1} -----------------------
def _two_steps(cfg: Config, run: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Two training steps whose rollout log-probs are shifted by -20 (the rollout engine
    "sees" 20 nats more entropy than the trainer)."""
    import or1.trainer as trainer_module

    build = trainer_module.build_batch

    def shifted(*args, **kwargs):
        batch, info = build(*args, **kwargs)
        if batch is not None:
            batch.rollout_logp = batch.rollout_logp - 20.0 * batch.response_mask
        return batch, info

    monkeypatch.setattr(trainer_module, "build_batch", shifted)
    trainer = trainer_module.Trainer(cfg, run, show_progress=False)
    out = []
    with trainer:
        for step in (1, 2):
            trainer.step = step
            out.append(trainer.train_step(cfg.stages[0]))
    return out


@pytest.mark.parametrize("source", ["trainer", "rollout"])
def test_the_released_gate_uses_the_trainers_entropy_of_the_previous_step(
    small_args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    # every group kept (so both steps update); target 10 nats: any entropy of the tiny
    # model (vocabulary < e^10 tokens) is below it, the shifted rollout's (> 20) above.
    args = [*small_args, "algo.variant=released-code", "algo.reject_uniform_groups=false"]
    args += ["algo.entropy.target=10.0", f"algo.entropy.source={source}"]
    cfg = load_config("tiny-arith", args)
    first, second = _two_steps(cfg, tmp_path / source, monkeypatch)
    assert first["entropy_sampled"] > 20.0 and first["entropy_coef"] == 0.0  # c_0 = 0
    if source == "trainer":
        assert first["entropy_trainer"] < 10.0 < first["entropy_sampled"]
        assert second["entropy_coef"] == pytest.approx(1e-4)  # gate opened by e_1 < target
    else:
        assert "entropy_trainer" not in first
        assert second["entropy_coef"] == 0.0  # e_1 (rollout) above target: gate closed
