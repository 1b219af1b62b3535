"""Ray worker groups for real on this machine: a local Ray cluster, 2 CPU workers, gloo.

(a) one policy update on 2 FSDP2 shards == the single-process ``LocalPolicy`` update;
(b) ``or1 train ... distributed.backend=ray distributed.workers=2`` matches the local run;
(c) a worker killed mid-step stops the run with WorkerError, the last checkpoint (each
    rank's shard written with torch.distributed.checkpoint) is intact and ``--resume``
    continues with identical metrics; the sharded state also loads into 1 rank and into a
    local policy (resharding).
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import time
from pathlib import Path

import pytest
import ray
import torch

from or1.checkpoint import Checkpoint, restore_training_state
from or1.config import AlgoConfig, OptimConfig
from or1.distributed.fsdp import KILL_ENV
from or1.distributed.ray import Placement, start_policy, start_rollout
from or1.engine.factory import RolloutSpec, build_rollout_engine
from or1.engine.policy import LocalPolicy
from or1.engine.rollout import SamplingParams
from or1.errors import TrainingError
from or1.objective import magic_loss
from or1.trainer import TIMING_METRICS

from ..cli_runs import read_metrics, run_or1

pytestmark = pytest.mark.slow

# fp32 on CPU; the two paths differ only in summation order (gradients summed over
# ranks by reduce-scatter, norms over shards): a few ulps per parameter after one step.
PARAM_ATOL = 1e-6


@pytest.fixture(scope="module")
def ray_cluster():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no ~/.ray/auth_token in tests
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_fsdp_update_equals_local_update(
    ray_cluster: None, small_model, ragged_batch, tied: bool
) -> None:
    """``tied=False`` (as R1-Distill-Qwen-7B/32B): the embeddings and the LM head are FSDP2
    units of their own, the head gathered through its scores method, not the root's."""
    optim = OptimConfig(lr=1e-3, grad_clip=0.5)  # small clip: the clipping path is exercised
    loss_fn = magic_loss(AlgoConfig(clip_high=0.28), entropy_coef=0.01)
    local_model = small_model(tied=tied)
    batch = ragged_batch(local_model.config.vocab_size, n=7)
    ray_model = copy.deepcopy(local_model)
    local = LocalPolicy(local_model, optim, micro_batch_size=2, keep_reference=True)
    # Two optimizer steps (mini-batches of 4 and 3 rows) exercise the AdamW state too.
    minis = [torch.arange(4), torch.arange(4, 7)]
    placement = Placement.reserve(2, use_gpu=False)
    sharded = start_policy(
        placement, ray_model, optim, micro_batch_size=2, threads=1, keep_reference=True
    )
    try:
        units = set(sharded.group.call_all("fsdp_units")[0])
        split = {"model.model.embed_tokens", "model.lm_head"}
        assert {"", "model.model.layers.0", "model.model.layers.1"} <= units
        assert (units & split) == (set() if tied else split)
        before_local = local.logprobs(batch)
        before_ray = sharded.logprobs(batch)
        assert torch.allclose(before_local, before_ray, atol=1e-6)
        stats_local = local.update(batch, loss_fn, mini_batches=minis)
        stats_ray = sharded.update(batch, loss_fn, mini_batches=minis)
        for a, b in zip(stats_local, stats_ray, strict=True):
            assert set(a) <= set(b)
            for key in a:
                assert abs(a[key] - b[key]) <= 1e-5 * max(1.0, abs(a[key])), (key, a, b)
        assert stats_local[0]["grad_norm"] > optim.grad_clip  # clipping was active
        exported = sharded.export_model()
        diff = (_flat(local.model) - _flat(exported)).abs().max()
        print("max |param diff| after 2 steps:", float(diff))
        assert float(diff) <= PARAM_ATOL, float(diff)
        moved = _flat(exported) - _flat(small_model(tied=tied))
        assert float(moved.abs().max()) > 1e-4
        if not tied:  # the head's own gradient reached its shards (not only through h)
            head = (
                exported.lm_head.weight.detach() - small_model(tied=False).lm_head.weight.detach()
            )
            assert float(head.abs().max()) > 1e-4
        # The (sharded) reference model still scores with the start weights (KL ablation).
        assert torch.allclose(sharded.logprobs(batch, reference=True), before_local, atol=1e-6)
        # The optimizer state comes back in LocalPolicy's layout with the same values.
        opt_local, opt_ray = local.optimizer_state(), sharded.optimizer_state()
        assert opt_local["param_groups"][0]["params"] == opt_ray["param_groups"][0]["params"]
        for i, state in opt_local["state"].items():
            for key, value in state.items():
                assert torch.allclose(value, opt_ray["state"][i][key], atol=1e-6), (i, key)
        # ... and loads back: one more identical step on both keeps them together.
        sharded.load_optimizer_state(opt_local)
        sharded.load_weights(local.model.state_dict())
        local.update(batch, loss_fn, mini_batches=[torch.arange(7)])
        sharded.update(batch, loss_fn, mini_batches=[torch.arange(7)])
        diff = (_flat(local.model) - _flat(sharded.export_model())).abs().max()
        assert float(diff) <= PARAM_ATOL, float(diff)
    finally:
        sharded.group.kill()
        ray.util.remove_placement_group(placement.group)


def test_fsdp_mixed_precision_matches_local_within_bf16(
    ray_cluster: None, small_model, ragged_batch
) -> None:
    """model.dtype=bfloat16 with fp32 masters on both sides: FSDP2's MixedPrecisionPolicy
    (bf16 params in compute, fp32 reduce) against LocalPolicy's bf16 autocast, the FSDP
    side also cutting micro-batches by a token budget: log-probs agree within bf16
    rounding before and after two steps, the shards and the AdamW state stay fp32."""
    optim = OptimConfig(lr=1e-3)
    loss_fn = magic_loss(AlgoConfig(), entropy_coef=0.01)
    batch = ragged_batch(small_model().config.vocab_size, n=7)
    minis = [torch.arange(4), torch.arange(4, 7)]
    local = LocalPolicy(small_model(), optim, micro_batch_size=2, compute_dtype=torch.bfloat16)
    placement = Placement.reserve(2, use_gpu=False)
    sharded = start_policy(
        placement,
        small_model(),
        optim,
        micro_batch_size=8,
        micro_batch_tokens=24,  # 2 rows of 12 columns per pass
        threads=1,
        master_dtype=torch.float32,
        compute_dtype=torch.bfloat16,
    )
    try:
        mask = batch.response_mask.bool()
        fp32 = LocalPolicy(small_model(), optim).logprobs(batch)[mask]
        for _ in range(2):
            before_local, before_ray = local.logprobs(batch)[mask], sharded.logprobs(batch)[mask]
            assert not torch.equal(before_ray, fp32)  # the ranks really computed in bf16
            assert torch.allclose(before_local, before_ray, atol=0.05), (before_local, before_ray)
            local.update(batch, loss_fn, mini_batches=minis)
            sharded.update(batch, loss_fn, mini_batches=minis)
        moved = (sharded.logprobs(batch)[mask] - fp32).abs().max()
        assert float(moved) > 0.05  # two steps at lr 1e-3 move the log-probs past bf16 noise
        exported = sharded.export_model()
        assert all(p.dtype == torch.float32 for p in exported.parameters())
        # What the weight sync sends the rollout workers: the masters cast to bf16.
        sent = ray.get(sharded.full_state_ref(dtype=torch.bfloat16))
        masters = exported.state_dict()
        assert sent.keys() == masters.keys()
        for name, value in sent.items():
            assert value.dtype == torch.bfloat16, name
            assert torch.equal(value, masters[name].to(torch.bfloat16)), name
        state = sharded.optimizer_state()["state"]
        assert all(v.dtype == torch.float32 for s in state.values() for v in s.values() if v.dim())
    finally:
        sharded.group.kill()
        ray.util.remove_placement_group(placement.group)


def test_rollout_workers_split_by_group_sync_weights_and_replay(
    ray_cluster: None, small_model, torch_threads
) -> None:
    """2 HF rollout workers sample exactly what 2 local engines seeded like them sample
    (worker j: seed + j * WORKER_SEED_STRIDE, prompts split by whole groups)."""
    model = small_model().eval()
    spec = RolloutSpec(engine="hf", pad_id=0, stop_ids=(2,), max_num_seqs=64, seed=5)
    placement = Placement.reserve(2, use_gpu=False)
    rollout = start_rollout(placement, ray.put(model), spec, workers=2, threads=1)
    prompts = [[1, 7, 9], [1, 8], [1, 5, 5, 6]]
    params = SamplingParams(n=2, max_tokens=6)

    def expected(m: torch.nn.Module) -> tuple[list, list]:
        tokens, logps = [], []
        for j, part in enumerate([prompts[:2], prompts[2:]]):
            engine = build_rollout_engine(spec, m, worker_index=j)  # seed + j * STRIDE
            with torch_threads(1):  # as the workers (threads=1): the same fp32 sums
                out = engine.generate(part, params)
            tokens += out.response_ids
            logps += out.logprobs
        return tokens, logps

    try:
        state = rollout.rng_state()
        assert len(state["workers"]) == 2
        got = rollout.generate(prompts, params)
        assert got.group_ids == [0, 0, 1, 1, 2, 2] and got.prompt_ids[4] == prompts[2]
        tokens, logps = expected(copy.deepcopy(model))
        assert got.response_ids == tokens and got.logprobs == logps
        # New weights reach every worker (through one object-store copy).
        moved = copy.deepcopy(model)
        with torch.no_grad():
            for p in moved.parameters():
                p.mul_(1.5)
        rollout.load_weights(ray.put(moved.state_dict()))
        rollout.set_rng_state(state)  # replay the same random streams
        again = rollout.generate(prompts, params)
        tokens, logps = expected(moved)
        assert again.response_ids == tokens and again.response_ids != got.response_ids
        assert again.logprobs == logps
    finally:
        rollout.group.kill()
        ray.util.remove_placement_group(placement.group)


def test_closing_the_rollout_engine_releases_every_actor_and_the_bundles(
    ray_cluster: None, small_model
) -> None:
    """What Trainer.close does for distributed.backend=ray: the rollout engine that owns
    the placement group kills its workers and removes the group, which takes the policy
    ranks placed in it; the CPUs are free again for the next trainer in this process."""
    model = small_model()
    spec = RolloutSpec(engine="hf", pad_id=0, stop_ids=(2,), max_num_seqs=8, seed=0)
    # The cluster's CPUs, not what is free now: an earlier test's removed group may still
    # be returning its bundles (Ray releases them asynchronously).
    total = ray.cluster_resources()["CPU"]
    placement = Placement.reserve(2, use_gpu=False)
    try:
        policy = start_policy(placement, copy.deepcopy(model), OptimConfig(), micro_batch_size=2)
        rollout = start_rollout(placement, ray.put(model), spec, workers=2, owns_placement=True)
        assert ray.available_resources().get("CPU", 0) <= total - 2  # the group holds 2
        actors = policy.group.actors + rollout.group.actors
        rollout.close()
        rollout.close()  # idempotent
        policy.close()
        # ray.kill is asynchronous: a call sent at once may still be answered (seen once in
        # a full suite), so each actor gets until the deadline to be gone.
        deadline = time.monotonic() + 120
        for actor in actors:
            with pytest.raises(ray.exceptions.RayActorError):
                while time.monotonic() < deadline:
                    ray.get(actor.__ray_ready__.remote(), timeout=120)
                    time.sleep(0.2)
        assert ray.util.placement_group_table(placement.group)["state"] == "REMOVED"
        deadline = time.monotonic() + 60
        while ray.available_resources().get("CPU", 0) < total and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ray.available_resources().get("CPU", 0) == total
    finally:  # whatever failed above, the next test gets the cluster back
        if ray.util.placement_group_table(placement.group)["state"] != "REMOVED":
            ray.util.remove_placement_group(placement.group)


def test_sharded_state_reshards_across_world_sizes(
    ray_cluster: None, small_model, ragged_batch, tmp_path: Path
) -> None:
    """2 ranks save weights + AdamW with DCP (each its own shard); 1 rank and a local
    policy load them back exactly (DCP reshards by global offsets)."""
    optim = OptimConfig(lr=1e-2)
    loss_fn = magic_loss(AlgoConfig(clip_high=0.28), entropy_coef=0.01)
    batch = ragged_batch(small_model().config.vocab_size, n=7)
    placement = Placement.reserve(2, use_gpu=False)
    two = start_policy(placement, small_model(), optim, micro_batch_size=2, threads=1)
    path = tmp_path / "sharded"
    try:
        two.update(batch, loss_fn, mini_batches=[torch.arange(4), torch.arange(4, 7)])
        two.save_sharded(path, step=1)
        weights = {k: v.clone() for k, v in two.export_model().state_dict().items()}
        adamw = two.optimizer_state()
        # NaN on one rank's shard: every rank refuses, nothing is written, and the
        # controller gets the TrainingError itself (not a Ray traceback).
        poisoned = {k: v.clone() for k, v in weights.items()}
        poisoned["model.norm.weight"][-1] = float("nan")  # the last elements: rank 1's
        two.load_weights(poisoned)
        with pytest.raises(TrainingError, match="no checkpoint was written"):
            two.save_sharded(tmp_path / "nan", step=2)
        assert not (tmp_path / "nan").exists()
    finally:
        two.group.kill()
        ray.util.remove_placement_group(placement.group)
    assert sorted(p.name for p in path.iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    placement = Placement.reserve(1, use_gpu=False)
    one = start_policy(placement, small_model(), optim, micro_batch_size=2, threads=1)
    try:
        one.load_sharded(path)
        got_weights, got_adamw = one.export_model().state_dict(), one.optimizer_state()
    finally:
        one.group.kill()
        ray.util.remove_placement_group(placement.group)
    local = LocalPolicy(small_model(), optim, micro_batch_size=2)
    assert restore_training_state(local, Checkpoint(tmp_path, {"step": 1})) is True
    local_adamw = local.optimizer_state()
    for name, value in weights.items():
        assert torch.equal(value, got_weights[name]), name
        assert torch.equal(value, local.model.state_dict()[name]), name
    assert float((_flat(local.model) - _flat(small_model())).abs().max()) > 1e-4  # it moved
    for i, state in adamw["state"].items():
        for key, value in state.items():
            assert torch.equal(value, got_adamw["state"][i][key]), (i, key)
            assert torch.equal(value, local_adamw["state"][i][key]), (i, key)


# ---- (b) and (c): the CLI end to end -------------------------------------------------
# small_args' warmed-up model solves nothing yet (every group all-0): keep the groups
# and give the loss a fixed entropy term with a large learning rate, so every step makes
# a large update and the next step's rollouts show whether the new weights reached the
# rollout worker (a stale worker samples different tokens: every metric moves).
UPDATE_ARGS = [
    "algo.reject_uniform_groups=false",
    "algo.entropy.mode=fixed",
    "algo.entropy.coef=0.05",
    "optim.lr=1e-2",
    "train.max_steps=3",
    "eval.max_problems=4",  # evaluations still run (through the rollout workers), briefly
]
RAY_ARGS = [
    "distributed.backend=ray",
    "distributed.workers=2",
    # One rollout worker samples with the run's seed, exactly as the local engine does,
    # so both backends see the same tokens (R > 1 workers draw from R seeded streams).
    "distributed.rollout_workers=1",
]


def _or1(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_or1(["train", "--quiet", *args], env={"RAY_AUTH_MODE": "disabled", **(env or {})})


def _assert_close(a: list[dict], b: list[dict], *, rel: float, abs_: float) -> None:
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        for key, va in ra.items():
            if key in TIMING_METRICS or va is None:
                continue
            assert math.isclose(va, rb[key], rel_tol=rel, abs_tol=abs_), (
                ra["step"],
                key,
                va,
                rb[key],
            )


def test_ray_run_matches_local_and_resumes_after_a_worker_dies(
    small_args: list[str], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    local = _or1([*small_args, *UPDATE_ARGS, "name=local"])
    assert local.returncode == 0, local.stderr[-3000:]
    distributed = _or1([*small_args, *UPDATE_ARGS, *RAY_ARGS, "name=ray"])
    assert distributed.returncode == 0, distributed.stderr[-3000:]
    # (b) Same tokens sampled; losses, entropies, grad norms equal to float tolerance.
    rows = read_metrics(runs / "ray")
    assert all(r["kept_sequences"] == 16 and r["grad_norm"] > 0 for r in rows)
    _assert_close(read_metrics(runs / "local"), rows, rel=1e-4, abs_=1e-5)
    # (c) The last policy rank SIGKILLs itself when its 3rd update starts (mid-step 3).
    crashed = _or1([*small_args, *UPDATE_ARGS, *RAY_ARGS, "name=crashed"], env={KILL_ENV: "3"})
    assert crashed.returncode == 2, crashed.stderr[-3000:]
    assert "Traceback" not in crashed.stderr
    assert "or1: error: policy worker 1 of 2 died during update" in crashed.stderr
    assert "--resume" in crashed.stderr
    run = runs / "crashed"
    assert os.readlink(run / "ckpt" / "latest") == "step_2"
    assert [r["step"] for r in read_metrics(run)] == [1, 2]
    # The ranks wrote their own shards of weights and AdamW state (torch.distributed
    # .checkpoint), nothing gathered; the manifest covers the shards; the HF model beside.
    step = run / "ckpt" / "step_2"
    files = json.loads((step / "manifest.json").read_text())["files"]
    shards = {"sharded/.metadata", "sharded/__0_0.distcp", "sharded/__1_0.distcp"}
    assert shards <= set(files) and not (step / "optimizer.pt").exists()
    assert (step / "model" / "model.safetensors").is_file()
    resumed = _or1(["--resume", str(run)])  # (no kill hook: a fresh set of workers)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_close(read_metrics(runs / "ray"), read_metrics(run), rel=1e-5, abs_=1e-6)
