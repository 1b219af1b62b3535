"""The real trackers, offline: wandb in offline mode (its run files parsed back) and
MLflow on a local file store; settings from config and environment, resumed runs
continue the same tracker run. No network: both write only under tmp_path."""

from __future__ import annotations

import os
import struct
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from or1.config import LoggingConfig, MlflowConfig, WandbConfig
from or1.errors import ConfigError
from or1.trackers import (
    TRACKERS_FILE,
    MlflowTracker,
    WandbTracker,
    flatten,
    make_trackers,
    read_state,
    wandb_settings,
)
from or1.tracking import MetricsLogger

WANDB_BLOCK = 32768  # the .wandb file is a LevelDB-style log of 32 KiB blocks


@pytest.fixture
def wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """wandb offline, with its own settings and cache under tmp_path."""
    for var in ("WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_GROUP", "WANDB_TAGS", "WANDB_NAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home" / var.lower()))


def _next_second() -> None:
    """wandb names an offline run's directory by the second it starts: two runs in one
    second share a directory (a resume minutes later never does)."""
    time.sleep(1.0 - time.time() % 1.0 + 0.01)


def wandb_records(run_file: Path) -> list[Any]:
    """The protobuf records of a ``run-<id>.wandb`` file (header, then chunked records)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = run_file.read_bytes()
    assert data[:4] == b":W&B"
    pos, pending, records = 7, b"", []
    while pos + 7 <= len(data):
        left = WANDB_BLOCK - pos % WANDB_BLOCK
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7]) if left >= 7 else (0, 0, 0)
        if left < 7 or (length == 0 and kind == 0):  # block padding
            pos += left
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def wandb_history(run_dir: Path) -> tuple[list[Any], list[dict[str, str]]]:
    """(run records, history rows {key: json value}) of every offline run in run_dir."""
    import wandb

    wandb.teardown()  # finish() may return before wandb-core wrote the run file out
    runs, rows = [], []
    for run_file in sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb")):
        for record in wandb_records(run_file):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                runs.append(record.run)
            elif kind == "history":
                rows.append(
                    {"/".join(i.nested_key) or i.key: i.value_json for i in record.history.item}
                )
    return runs, rows


def test_wandb_settings_config_wins_over_environment() -> None:
    env = {
        "WANDB_PROJECT": "env-project",
        "WANDB_ENTITY": "env-team",
        "WANDB_RUN_GROUP": "env-group",
        "WANDB_TAGS": "a, b,,c",
        "WANDB_NAME": "env-name",
        "WANDB_MODE": "offline",
    }
    from_env = wandb_settings(WandbConfig(), env, "run-7")
    assert from_env == {
        "project": "env-project",
        "entity": "env-team",
        "group": "env-group",
        "tags": ["a", "b", "c"],
        "name": "env-name",
        "mode": "offline",
    }
    cfg = WandbConfig(project="p", entity="e", group="g", tags=["x"], name="n", mode="disabled")
    assert wandb_settings(cfg, env, "run-7") == {
        "project": "p",
        "entity": "e",
        "group": "g",
        "tags": ["x"],
        "name": "n",
        "mode": "disabled",
    }
    assert wandb_settings(WandbConfig(), {}, "run-7") == {
        "project": "or1",
        "entity": None,
        "group": None,
        "tags": None,
        "name": "run-7",
        "mode": "online",
    }


def test_logging_booleans_still_mean_enabled() -> None:
    cfg = LoggingConfig.model_validate({"wandb": True, "mlflow": False})
    assert cfg.wandb.enabled and not cfg.mlflow.enabled and cfg.wandb.project is None


def test_missing_packages_are_config_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # makes `import wandb` fail
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(ConfigError, match=r"pip install 'or1\[wandb\]'"):
        make_trackers(LoggingConfig(wandb=WandbConfig(enabled=True)), tmp_path, {})
    with pytest.raises(ConfigError, match=r"pip install 'or1\[mlflow\]'"):
        make_trackers(LoggingConfig(mlflow=MlflowConfig(enabled=True)), tmp_path, {})
    assert make_trackers(LoggingConfig(), tmp_path, {}) == []


def test_flatten_gives_dotted_params() -> None:
    tree = {"algo": {"clip_high": 0.28, "entropy": {"mode": "adaptive"}}, "stages": [{"steps": 5}]}
    tree |= {"name": None, "eval": {"benchmarks": [], "benchmark_paths": {}}}
    assert flatten(tree) == {
        "algo.clip_high": "0.28",
        "algo.entropy.mode": "adaptive",
        "stages.0.steps": "5",
        "name": "null",
        "eval.benchmarks": "[]",
        "eval.benchmark_paths": "{}",
    }


def test_wandb_offline_run_is_continued_on_resume(tmp_path: Path, wandb_offline: None) -> None:
    run_dir = tmp_path / "runs" / "r1"
    cfg = WandbConfig(enabled=True, project="proj", group="sweep-1", tags=["ablation"])
    config = {"algo": {"clip_high": 0.28}}
    with MetricsLogger(
        run_dir, tensorboard=False, trackers=[WandbTracker(cfg, run_dir, config, os.environ)]
    ) as logger:
        logger.log(1, {"reward_mean": 0.25, "lr": 1e-6})
        logger.log(2, {"reward_mean": 0.5, "lr": 1e-6})
        logger.log(3, {"reward_mean": 0.75, "lr": 1e-6})
    first = read_state(run_dir)["wandb"]["id"]
    _next_second()
    with MetricsLogger(
        run_dir, tensorboard=False, trackers=[WandbTracker(cfg, run_dir, config, os.environ)]
    ) as logger:
        logger.truncate_after(2)  # resume from the checkpoint at step 2
        logger.log(3, {"reward_mean": 0.7, "lr": 1e-6})
        logger.log(4, {"reward_mean": 1.0, "lr": 1e-6})
    assert read_state(run_dir)["wandb"]["id"] == first
    runs, rows = wandb_history(run_dir)
    assert [r.run_id for r in runs] == [first, first]  # one wandb run, continued
    assert runs[0].project == "proj" and runs[0].run_group == "sweep-1"
    assert list(runs[0].tags) == ["ablation"] and runs[0].display_name == "r1"
    assert [(r["_step"], r["reward/mean"]) for r in rows] == [
        ("1", "0.25"),
        ("2", "0.5"),
        ("3", "0.75"),
        ("4", "1"),  # step 3 was sent before the kill: not sent twice
    ]
    assert all(r["actor/lr"] == "1e-06" for r in rows)


def test_wandb_fresh_start_in_a_used_directory_is_a_new_run(
    tmp_path: Path, wandb_offline: None
) -> None:
    run_dir = tmp_path / "r2"
    for _ in range(2):  # a restart, not a resume: no truncate_after
        _next_second()
        tracker = WandbTracker(
            WandbConfig(enabled=True), run_dir, {}, {**os.environ, "WANDB_PROJECT": "envp"}
        )
        with MetricsLogger(run_dir, tensorboard=False, trackers=[tracker]) as logger:
            logger.log(1, {"reward_mean": 0.5})
    runs, _ = wandb_history(run_dir)
    assert len({r.run_id for r in runs}) == 2 and {r.project for r in runs} == {"envp"}


def test_mlflow_file_store_run_is_continued_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    # Absent now, and absent again after the test (which the tracker sets it in).
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "unset")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    store = (tmp_path / "mlruns").as_uri()
    run_dir = tmp_path / "runs" / "m1"
    cfg = MlflowConfig(enabled=True, tracking_uri=store, experiment="or1-tests")
    config = {"algo": {"clip_high": 0.28}, "stages": [{"steps": 4}]}

    def tracker() -> MlflowTracker:
        return MlflowTracker(cfg, run_dir, config, {})

    with MetricsLogger(run_dir, tensorboard=False, trackers=[tracker()]) as logger:
        for step in (1, 2, 3):
            logger.log(step, {"reward_mean": step / 4, "grad_norm": 1.0})
    run_id = read_state(run_dir)["mlflow"]["run_id"]
    with MetricsLogger(run_dir, tensorboard=False, trackers=[tracker()]) as logger:
        logger.truncate_after(2)
        logger.log(3, {"reward_mean": 0.7, "grad_norm": 1.0})
        logger.log(4, {"reward_mean": 1.0, "grad_norm": 1.0})
        logger.log_eval(4, {"label": "final", "benchmark": "aime24", "avg_at_k": 0.3, "k": 2})
    assert read_state(run_dir)["mlflow"]["run_id"] == run_id
    assert os.environ["MLFLOW_ALLOW_FILE_STORE"] == "true"  # a file store was asked for
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("or1-tests")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [run_id]  # one MLflow run, continued
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "m1"
    assert run.data.params == {"algo.clip_high": "0.28", "stages.0.steps": "4"}
    history = [(m.step, m.value) for m in client.get_metric_history(run_id, "reward/mean")]
    assert history == [(1, 0.25), (2, 0.5), (3, 0.75), (4, 1.0)]
    assert [m.value for m in client.get_metric_history(run_id, "eval/aime24/avg_at_k")] == [0.3]
    assert (run_dir / TRACKERS_FILE).is_file()


def test_mlflow_failed_run_is_marked_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    store = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "unset")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)  # from the environment this time
    run_dir = tmp_path / "m2"
    tracker = MlflowTracker(MlflowConfig(enabled=True), run_dir, {}, {"MLFLOW_TRACKING_URI": store})
    with pytest.raises(KeyboardInterrupt), MetricsLogger(run_dir, trackers=[tracker]) as logger:
        logger.log(1, {"reward_mean": 0.5})
        raise KeyboardInterrupt
    run = MlflowClient(tracking_uri=store).get_run(read_state(run_dir)["mlflow"]["run_id"])
    assert run.info.status == "FAILED"
    assert MlflowClient(tracking_uri=store).get_experiment_by_name("or1") is not None


def test_a_tracker_that_cannot_start_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wandb_offline: None
) -> None:
    # wandb online without a key: wandb refuses before any network traffic.
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    online = WandbTracker(WandbConfig(enabled=True, mode="online"), tmp_path / "w", {}, os.environ)
    with pytest.raises(
        ConfigError, match=r"wandb could not start a run .*logging.wandb.mode=offline"
    ):
        online.start(resume=False)
    bogus = MlflowTracker(
        MlflowConfig(enabled=True, tracking_uri="bogus-scheme://nowhere"), tmp_path / "m", {}, {}
    )
    with pytest.raises(ConfigError, match="MLflow could not start a run at bogus-scheme://nowhere"):
        bogus.start(resume=False)
    assert not (tmp_path / "m" / TRACKERS_FILE).exists()
