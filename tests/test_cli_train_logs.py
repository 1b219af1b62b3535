"""`or1 train` as a cluster runs it: stdout to a pipe (plain lines, no bar frames), wandb
(offline) and MLflow (a local file store) on, killed and resumed: the trackers continue
their runs, and every metric the loop logs has a namespaced tracker name."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from or1.trackers import read_state
from or1.tracking import OTHER_PREFIX, TRACKER_NAMES, tracker_name

from .cli_runs import read_metrics, run_or1

pytestmark = pytest.mark.slow

STEP_LINE = re.compile(
    r"^RL steps (\d+)/6 \(\d+%\) elapsed \S+( eta \S+)? stage=(\d)/2 reward=[\d.]+ "
    r"accuracy=[\d.]+ entropy=[\d.]+ coef=\S+ len=[\d.]+/\d+ trunc=[\d.]+ seconds=[\d.]+$"
)


def _or1(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_or1(["train", *args], env)  # stdout is a pipe, not a terminal


def test_piped_run_with_trackers_killed_and_resumed(
    small_args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    from tests.test_trackers import wandb_history

    store = (tmp_path / "mlruns").as_uri()
    env = {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_PROJECT": "or1-e2e",
        "WANDB_TAGS": "e2e,cpu",
        "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config"),
        "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache"),
        "MLFLOW_TRACKING_URI": store,
    }
    args = [a for a in small_args if not a.startswith("logging.progress")]
    args += [
        "name=piped",
        "eval.every=2",
        "algo.kl_beta=0.01",  # every optional actor metric is logged (kl_ref)
        "algo.reject_uniform_groups=false",  # an update (and its metrics) every step
        "algo.entropy.mode=fixed",
        "algo.entropy.coef=0.05",
        "logging.wandb.enabled=true",
        "logging.wandb.group=e2e-group",  # the config's, beside the environment's project
        "logging.mlflow.enabled=true",
    ]
    killed = _or1(args, {**env, "OR1_KILL_AFTER_STEP": "5"})
    assert killed.returncode == -9, killed.stderr[-3000:]
    run = tmp_path / "runs" / "piped"
    resumed = _or1(["--resume", str(run)], env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    # Plain lines: no terminal control codes, one line per step with the step's numbers.
    for out in (killed.stdout, resumed.stdout):
        assert "\x1b" not in out and "\r" not in out
    steps = [STEP_LINE.match(line) for line in killed.stdout.splitlines()]
    assert [int(m.group(1)) for m in steps if m] == [1, 2, 3, 4, 5]
    assert [int(m.group(3)) for m in steps if m] == [1, 1, 1, 2, 2]
    resumed_lines = resumed.stdout.splitlines()
    assert "RL steps 4/6 (67%) elapsed 0:00:00" in resumed_lines  # the resumed start
    assert [int(m.group(1)) for m in map(STEP_LINE.match, resumed_lines) if m] == [5, 6]
    warmup = [x for x in killed.stdout.splitlines() if x.startswith("warm-up (supervised) ")]
    if warmup:  # the session's cache may already hold this warm-up
        assert len(warmup) == 11 and warmup[-1].startswith("warm-up (supervised) 40/40 (100%)")
    assert any(x.startswith("eval final (avg@2) 12/12 (100%)") for x in resumed_lines)

    # metrics.jsonl keeps flat keys, and each has an entry in the tracker-name table.
    rows = read_metrics(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    keys = set().union(*rows) - {"step"}
    assert {"reward_mean", "stage", "lr", "kl_ref", "grad_norm"} <= keys
    assert not [k for k in keys if tracker_name(k).startswith(OTHER_PREFIX)]
    assert all(r["lr"] == 1e-4 for r in rows)

    # wandb: one run, continued by the resumed process, which sends only what the killed
    # one had not (step 6 and the final eval). What the killed process logged offline
    # may never reach its run file: wandb-core writes it in blocks and died with it.
    state = read_state(run)
    assert len(list((run / "wandb").glob(f"offline-run-*-{state['wandb']['id']}"))) == 2
    runs, history = wandb_history(run)
    assert {r.run_id for r in runs} == {state["wandb"]["id"]}
    last = runs[-1]
    assert last.resume and last.project == "or1-e2e" and last.run_group == "e2e-group"
    assert list(last.tags) == ["e2e", "cpu"] and last.display_name == "piped"
    train_steps = [int(h["_step"]) for h in history if "reward/mean" in h]
    assert len(train_steps) == len(set(train_steps)) and train_steps[-1] == 6
    assert {"actor/lr", "actor/kl_ref", "rollout/tokens_per_second", "timing/step"} <= set(
        history[-1]
    )
    assert "eval/test/avg_at_k" in history[-1]  # the final eval, at step 6

    # MLflow: one run, every step once (the file store keeps what the killed run sent).
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # to read it here
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("or1")
    assert [r.info.run_id for r in client.search_runs([experiment.experiment_id])] == [
        state["mlflow"]["run_id"]
    ]
    run_id = state["mlflow"]["run_id"]
    reward = client.get_metric_history(run_id, TRACKER_NAMES["reward_mean"])
    assert sorted(m.step for m in reward) == [1, 2, 3, 4, 5, 6]
    assert [r["reward_mean"] for r in rows] == [
        m.value for m in sorted(reward, key=lambda m: m.step)
    ]
    evals = client.get_metric_history(run_id, "eval/test/avg_at_k")
    assert sorted(m.step for m in evals) == [0, 2, 4, 6]
    finished = client.get_run(run_id)
    assert finished.info.status == "FINISHED"
    assert finished.data.params["algo.kl_beta"] == "0.01"
