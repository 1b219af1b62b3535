"""Checkpoints that cannot rot: the manifest is verified on load, a damaged file is a
CheckpointError naming it (the fallback only when asked), NaN/inf is never written,
pruning keeps the newest checkpoint, ``latest`` is a path transformers can load."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from or1.build.models import build_tiny_tokenizer, load_pretrained
from or1.checkpoint import (
    FALLBACK_FLAG,
    LATEST,
    checkpoint_problem,
    find_checkpoint,
    global_rng_state,
    guarded_load,
    load_checkpoint,
    load_torch_file,
    move_aside_newer,
    restore_training_state,
    save_checkpoint,
    step_dirs,
    training_state_writer,
)
from or1.checkpoint.manifest import MANIFEST, read_manifest
from or1.config import ModelConfig
from or1.engine.policy import LocalPolicy
from or1.errors import CheckpointError, TrainingError

TOKENIZER = build_tiny_tokenizer(["abc def 123"] * 10, vocab_size=300)


def _train(policy: LocalPolicy) -> None:
    """One AdamW step, so the optimizer has state to save."""
    ids = torch.randint(3, 250, (2, 6), generator=torch.Generator().manual_seed(0))
    policy.model(input_ids=ids, labels=ids).loss.backward()
    policy.optimizer.step()
    policy.optimizer.zero_grad()


def _save(root: Path, policy: LocalPolicy, step: int, *, keep: int = 5) -> Path:
    return save_checkpoint(
        root,
        step=step,
        model=policy.model,
        tokenizer=TOKENIZER,
        write_training_state=training_state_writer(policy, step=step),
        rng={"global": global_rng_state(), "engine": {}},
        state={"stage_index": 0},
        config_text="preset: test\n",
        keep=keep,
    )


@pytest.fixture
def run(tmp_path: Path, small_policy: Callable[..., LocalPolicy]) -> tuple[Path, LocalPolicy]:
    """A run dir with checkpoints at steps 2 and 4 (a trained optimizer in both)."""
    policy = small_policy(4)
    _train(policy)
    _save(tmp_path / "run" / "ckpt", policy, 2)
    _train(policy)
    _save(tmp_path / "run" / "ckpt", policy, 4)
    return tmp_path / "run", policy


def _garble(path: Path, *, at: int, size: int = 4096) -> None:
    with open(path, "r+b") as fh:
        fh.seek(at)
        fh.write(os.urandom(size))


def test_latest_is_a_relative_symlink_that_transformers_loads(run: tuple) -> None:
    run_dir, policy = run
    latest = run_dir / "ckpt" / LATEST
    assert latest.is_symlink() and os.readlink(latest) == "step_4"  # relative: runs move
    model = AutoModelForCausalLM.from_pretrained(latest / "model")
    for name, value in policy.model.state_dict().items():
        assert torch.equal(value, model.state_dict()[name]), name
    for given in (run_dir, run_dir / "ckpt", latest, run_dir / "ckpt" / "step_4"):
        assert find_checkpoint(given) == run_dir / "ckpt" / "step_4"
    files = read_manifest(run_dir / "ckpt" / "step_4")["files"]
    for name in ("model/model.safetensors", "model/config.json", "model/tokenizer.json"):
        assert name in files
    assert {"optimizer.pt", "rng.pt", "state.json", "config.yaml"} <= set(files)
    assert load_checkpoint(run_dir).state["format"] == 2


def test_a_text_latest_of_an_old_run_is_replaced_by_the_symlink(
    tmp_path: Path, small_policy: Callable[..., LocalPolicy]
) -> None:
    root = tmp_path / "ckpt"
    root.mkdir()
    (root / LATEST).write_text("step_1\n")
    _save(root, small_policy(4), 2)
    assert (root / LATEST).is_symlink() and os.readlink(root / LATEST) == "step_2"


def test_a_run_copied_with_its_links_followed_keeps_saving(run: tuple, tmp_path: Path) -> None:
    """shutil.copytree (as scripts/gpu_smoke.py copies a run) turns latest into a copy of
    the checkpoint directory; the next save replaces it by the symlink again."""
    run_dir, policy = run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    assert (copy / "ckpt" / LATEST).is_dir() and not (copy / "ckpt" / LATEST).is_symlink()
    assert find_checkpoint(copy) == copy / "ckpt" / "step_4"
    _save(copy / "ckpt", policy, 6)
    assert os.readlink(copy / "ckpt" / LATEST) == "step_6"


def test_a_checkpoint_written_before_manifests_loads_unverified(run: tuple) -> None:
    run_dir, _ = run
    step = run_dir / "ckpt" / "step_4"
    (step / MANIFEST).unlink()
    state = json.loads((step / "state.json").read_text())
    del state["format"]
    (step / "state.json").write_text(json.dumps(state))
    (run_dir / "ckpt" / LATEST).unlink()
    (run_dir / "ckpt" / LATEST).write_text("step_4\n")  # the old one-line file
    assert checkpoint_problem(step) is None
    assert load_checkpoint(run_dir / "ckpt" / LATEST).path == step
    # The same directory claiming the new format is incomplete without its manifest.
    (step / "state.json").write_text(json.dumps({**state, "format": 2}))
    assert "no manifest.json" in (checkpoint_problem(step) or "")


def test_garbage_in_the_weights_is_an_error_naming_the_file(
    run: tuple, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 18: 4 KB of garbage in model.safetensors was loaded silently."""
    run_dir, _ = run
    weights = run_dir / "ckpt" / "step_4" / "model" / "model.safetensors"
    _garble(weights, at=weights.stat().st_size // 2)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(run_dir)
    assert f"{weights} is damaged" in err.value.message
    assert "step_2" in (err.value.hint or "") and FALLBACK_FLAG in (err.value.hint or "")
    assert load_checkpoint(run_dir, fallback=True).path == run_dir / "ckpt" / "step_2"
    # On the command line: one paragraph, exit code 2, no traceback.
    from or1.cli import main

    assert main(["eval", "--checkpoint", str(run_dir)]) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("or1: error: checkpoint") and "Traceback" not in stderr
    assert str(weights) in stderr and stderr.count("\n") == 1


def test_no_fallback_without_an_older_verified_checkpoint(run: tuple) -> None:
    run_dir, _ = run
    for step in ("step_2", "step_4"):
        (run_dir / "ckpt" / step / "rng.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"no older checkpoint in .* verifies"):
        load_checkpoint(run_dir, fallback=True)


@pytest.mark.parametrize("name", ["model/model.safetensors", "optimizer.pt", "rng.pt"])
def test_a_truncated_file_is_an_error_naming_it(run: tuple, name: str) -> None:
    run_dir, _ = run
    path = run_dir / "ckpt" / "step_4" / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=f"{path} has .* bytes.*truncated"):
        load_checkpoint(run_dir)


@pytest.mark.parametrize("name", ["model/model.safetensors", "optimizer.pt", "rng.pt"])
def test_an_unverified_truncated_file_is_still_a_clear_error(
    run: tuple, small_policy: Callable[..., LocalPolicy], name: str
) -> None:
    """Without a manifest to catch it (``verify=False``, or a checkpoint older than
    manifests), the loaders themselves name the file instead of raising raw errors."""
    run_dir, _ = run
    step = run_dir / "ckpt" / "step_4"
    path = step / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    ckpt = load_checkpoint(run_dir, verify=False)
    with pytest.raises(CheckpointError) as err:
        if name == "rng.pt":
            load_torch_file(path)
        elif name == "optimizer.pt":
            restore_training_state(small_policy(4), ckpt)
        else:
            guarded_load(ckpt.model_dir, lambda: load_pretrained(ckpt.model_dir, ModelConfig()))
    where = str(ckpt.model_dir) if name.startswith("model/") else str(path)
    assert where in err.value.message and "Traceback" not in str(err.value)


def test_nan_weights_are_never_written_and_the_good_checkpoint_is_kept(run: tuple) -> None:
    """Issue 18: the run saved a NaN checkpoint and pruned the last good one."""
    run_dir, policy = run
    root = run_dir / "ckpt"
    with torch.no_grad():
        policy.model.model.layers[1].mlp.up_proj.weight[0, 0] = float("nan")
    with pytest.raises(TrainingError, match=r"model\.layers\.1\.mlp\.up_proj\.weight"):
        _save(root, policy, 6, keep=1)
    assert step_dirs(root) == [root / "step_2", root / "step_4"]  # nothing written or pruned
    assert not (root / "step_6.tmp").exists() and os.readlink(root / LATEST) == "step_4"
    assert checkpoint_problem(root / "step_4") is None


def test_a_non_finite_optimizer_state_is_never_written(run: tuple) -> None:
    run_dir, policy = run
    state = next(iter(policy.optimizer.state.values()))
    state["exp_avg_sq"].view(-1)[0] = float("inf")
    with pytest.raises(TrainingError, match="optimizer state"):
        _save(run_dir / "ckpt", policy, 6)
    assert not (run_dir / "ckpt" / "step_6.tmp").exists()
    assert [p.name for p in step_dirs(run_dir / "ckpt")] == ["step_2", "step_4"]


def test_pruning_keeps_the_newest_and_drops_leftovers_of_killed_writes(
    tmp_path: Path, small_policy: Callable[..., LocalPolicy]
) -> None:
    root, policy = tmp_path / "ckpt", small_policy(4)
    for step in (1, 2, 3):
        _save(root, policy, step, keep=2)
    assert [p.name for p in step_dirs(root)] == ["step_2", "step_3"]
    (root / "step_9.tmp" / "model").mkdir(parents=True)  # a write killed midway
    _save(root, policy, 4, keep=1)
    assert sorted(p.name for p in root.iterdir()) == [LATEST, "step_4"]


def test_the_newest_complete_checkpoint_wins_over_a_stale_latest(run: tuple) -> None:
    """Killed after renaming step_4 into place, before pointing latest at it."""
    run_dir, _ = run
    (run_dir / "ckpt" / LATEST).unlink()
    os.symlink("step_2", run_dir / "ckpt" / LATEST)
    assert find_checkpoint(run_dir) == run_dir / "ckpt" / "step_4"


def test_checkpoints_newer_than_the_resumed_one_are_set_aside(run: tuple) -> None:
    run_dir, _ = run
    moved = move_aside_newer(run_dir / "ckpt", 2, suffix="damaged")
    assert moved == [run_dir / "ckpt" / "step_4.damaged"] and moved[0].is_dir()
    assert step_dirs(run_dir / "ckpt") == [run_dir / "ckpt" / "step_2"]


def test_the_optimizer_state_round_trips(
    run: tuple, small_policy: Callable[..., LocalPolicy]
) -> None:
    run_dir, policy = run
    fresh = small_policy(4)
    assert restore_training_state(fresh, load_checkpoint(run_dir)) is False  # weights: HF dir
    saved, loaded = policy.optimizer.state_dict(), fresh.optimizer.state_dict()
    for index, values in saved["state"].items():
        for key, value in values.items():
            assert torch.equal(value, loaded["state"][index][key]), (index, key)
