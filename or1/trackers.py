"""Experiment trackers: Weights & Biases and MLflow, behind one small protocol.

:class:`or1.tracking.MetricsLogger` writes ``metrics.jsonl`` and tensorboard itself and
hands every scalar, under its namespaced name, to the trackers made here from
``logging.wandb`` / ``logging.mlflow``. Each tracker is started by the logger at its first
row, resumed when the logger is resuming (``MetricsLogger.truncate_after``):

- wandb: project, entity, group, tags, run name and mode from the config, else the
  usual environment variables (``WANDB_PROJECT``, ``WANDB_ENTITY``, ``WANDB_RUN_GROUP``,
  ``WANDB_TAGS``, ``WANDB_NAME``, ``WANDB_MODE``), else project ``or1``, the run
  directory's name, online. The run's id is kept in ``<run_dir>/trackers.json``; a
  resumed or1 run calls ``wandb.init(id=..., resume="allow")`` and continues that run.
- MLflow: tracking URI (``MLFLOW_TRACKING_URI``) and experiment
  (``MLFLOW_EXPERIMENT_NAME``, else ``or1``) likewise; the resolved config goes in as
  the run's params (flattened dotted keys), the run id into ``trackers.json``, and a
  resumed or1 run logs into the same MLflow run. A ``file:`` or plain-path URI is
  MLflow's file store, which MLflow 3 only opens with ``MLFLOW_ALLOW_FILE_STORE=true``:
  asking for one in the config sets that variable (if unset) for this process.

A package that is missing is a ConfigError when the trackers are made (before training).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from or1.config import LoggingConfig, MlflowConfig, WandbConfig
from or1.errors import ConfigError

TRACKERS_FILE = "trackers.json"
DEFAULT_PROJECT = "or1"  # wandb project and MLflow experiment when nothing names one
PARAMS_PER_BATCH = 100  # MLflow's limits (mlflow.utils.validation)
METRICS_PER_BATCH = 1000
PARAM_VALUE_CHARS = 6000


class Tracker(Protocol):
    """Where scalars go besides metrics.jsonl. Names are already namespaced."""

    name: str

    def start(self, *, resume: bool) -> bool:
        """Open the run; with ``resume``, the run this run directory logged to before.
        Returns whether an earlier run was continued."""

    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        """Record finite scalars at ``step``."""

    def close(self, *, failed: bool) -> None:
        """Finish the run (``failed``: it ended with an exception)."""


# ---- the run directory's record of tracker runs -----------------------------------------
def read_state(run_dir: Path) -> dict[str, Any]:
    """``trackers.json`` of a run directory: tracker name -> what resumes its run."""
    path = Path(run_dir) / TRACKERS_FILE
    if not path.is_file():
        return {}
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}  # a damaged record costs a new tracker run, never the training run
    return state if isinstance(state, dict) else {}


def write_state(run_dir: Path, name: str, entry: dict[str, Any]) -> None:
    """Record ``entry`` for tracker ``name`` atomically (temp file, then rename)."""
    state = {**read_state(run_dir), name: entry}
    path = Path(run_dir) / TRACKERS_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, path)


# ---- wandb ------------------------------------------------------------------------------
def wandb_settings(cfg: WandbConfig, env: Mapping[str, str], run_name: str) -> dict[str, Any]:
    """``wandb.init`` arguments: the config where set, else the environment, else defaults.

    Example:
        >>> wandb_settings(WandbConfig(group="sweep"), {"WANDB_PROJECT": "p"}, "r1")["project"]
        'p'
    """
    tags = cfg.tags
    if tags is None:
        tags = [t.strip() for t in env.get("WANDB_TAGS", "").split(",") if t.strip()]
    return {
        "project": cfg.project or env.get("WANDB_PROJECT") or DEFAULT_PROJECT,
        "entity": cfg.entity or env.get("WANDB_ENTITY") or None,
        "group": cfg.group or env.get("WANDB_RUN_GROUP") or None,
        "tags": tags or None,
        "name": cfg.name or env.get("WANDB_NAME") or run_name,
        "mode": cfg.mode or env.get("WANDB_MODE") or "online",
    }


class WandbTracker:
    """One wandb run per or1 run directory, continued on resume."""

    name = "wandb"

    def __init__(
        self, cfg: WandbConfig, run_dir: Path, config: dict[str, Any], env: Mapping[str, str]
    ) -> None:
        try:
            import wandb  # optional extra
        except ImportError as err:
            raise ConfigError(
                "logging.wandb is on but the wandb package is not installed.",
                hint="pip install 'or1[wandb]', or set logging.wandb.enabled=false.",
            ) from err
        self._wandb, self.run_dir, self.config = wandb, Path(run_dir), config
        self.settings = wandb_settings(cfg, env, self.run_dir.name)
        self._run: Any = None

    def start(self, *, resume: bool) -> bool:
        previous = read_state(self.run_dir).get(self.name, {}) if resume else {}
        try:
            self._run = self._wandb.init(
                **self.settings,
                id=previous.get("id"),
                resume="allow",
                dir=str(self.run_dir),
                config=self.config,
            )
        except Exception as err:  # wandb's own errors (no login, no network) have no base
            raise ConfigError(
                f"logging.wandb: wandb could not start a run ({err}).",
                hint="run `wandb login` (or set WANDB_API_KEY), or log offline with "
                "logging.wandb.mode=offline and `wandb sync` the run directory's wandb/ later.",
            ) from err
        write_state(self.run_dir, self.name, {"id": self._run.id, **self.settings})
        return bool(previous.get("id"))

    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        self._run.log(dict(scalars), step=step)

    def close(self, *, failed: bool) -> None:
        if self._run is not None:
            self._run.finish(exit_code=1 if failed else 0)
            self._run = None


# ---- MLflow -----------------------------------------------------------------------------
def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    """Nested config data as dotted keys with string values (MLflow params).

    Example:
        >>> flatten({"algo": {"clip_high": 0.28}, "stages": [{"steps": 5}]})
        {'algo.clip_high': '0.28', 'stages.0.steps': '5'}
    """
    if isinstance(tree, Mapping) and tree:
        items = [(str(k), v) for k, v in tree.items()]
    elif isinstance(tree, list | tuple) and tree:
        items = [(str(i), v) for i, v in enumerate(tree)]
    elif prefix:
        return {prefix: json.dumps(tree) if not isinstance(tree, str) else tree}
    else:
        return {}
    out: dict[str, str] = {}
    for key, value in items:
        out.update(flatten(value, f"{prefix}.{key}" if prefix else key))
    return out


def is_file_store(uri: str) -> bool:
    """A ``file:`` URI or a plain path: MLflow's file store."""
    return urlparse(uri).scheme in ("", "file")


class MlflowTracker:
    """One MLflow run per or1 run directory, continued on resume."""

    name = "mlflow"

    def __init__(
        self, cfg: MlflowConfig, run_dir: Path, config: dict[str, Any], env: Mapping[str, str]
    ) -> None:
        try:
            import mlflow.entities
            from mlflow.tracking import MlflowClient
        except ImportError as err:
            raise ConfigError(
                "logging.mlflow is on but the mlflow package is not installed.",
                hint="pip install 'or1[mlflow]', or set logging.mlflow.enabled=false.",
            ) from err
        self._client_type = MlflowClient
        self._metric, self._param = mlflow.entities.Metric, mlflow.entities.Param
        self.cfg, self.run_dir, self.config = cfg, Path(run_dir), config
        self.tracking_uri = cfg.tracking_uri or env.get("MLFLOW_TRACKING_URI") or None
        self.experiment = cfg.experiment or env.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_PROJECT
        self._client: Any = None
        self.run_id: str | None = None

    def start(self, *, resume: bool) -> bool:
        previous = read_state(self.run_dir).get(self.name, {}) if resume else {}
        uri = previous.get("tracking_uri") or self.tracking_uri
        if uri and is_file_store(uri):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # asked for: see above
        try:
            self._client = self._client_type(tracking_uri=uri)
            if previous.get("run_id"):
                self.run_id = previous["run_id"]
                self._client.update_run(self.run_id, status="RUNNING")
            else:
                self.run_id = self._new_run()
        except Exception as err:  # MlflowException, a server that is down, ...
            raise ConfigError(
                f"logging.mlflow: MLflow could not start a run at {uri or 'the default URI'} "
                f"({err}).",
                hint="check logging.mlflow.tracking_uri (or $MLFLOW_TRACKING_URI) and that its "
                "server is up.",
            ) from err
        write_state(
            self.run_dir,
            self.name,
            {"run_id": self.run_id, "tracking_uri": self._client.tracking_uri},
        )
        return bool(previous.get("run_id"))

    def _new_run(self) -> str:
        client = self._client
        found = client.get_experiment_by_name(self.experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(self.experiment)
        run = client.create_run(
            experiment_id,
            run_name=self.cfg.run_name or self.run_dir.name,
            tags={"or1.run_dir": str(self.run_dir.resolve())},
        )
        params = [
            self._param(k, v[:PARAM_VALUE_CHARS]) for k, v in sorted(flatten(self.config).items())
        ]
        for i in range(0, len(params), PARAMS_PER_BATCH):
            client.log_batch(run.info.run_id, params=params[i : i + PARAMS_PER_BATCH])
        return str(run.info.run_id)

    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        stamp = int(time.time() * 1000)
        metrics = [self._metric(k, float(v), stamp, step) for k, v in scalars.items()]
        for i in range(0, len(metrics), METRICS_PER_BATCH):
            self._client.log_batch(self.run_id, metrics=metrics[i : i + METRICS_PER_BATCH])

    def close(self, *, failed: bool) -> None:
        if self._client is not None and self.run_id is not None:
            self._client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")
            self._client = None


def make_trackers(
    cfg: LoggingConfig,
    run_dir: Path,
    config: dict[str, Any],
    env: Mapping[str, str] | None = None,
) -> list[Tracker]:
    """The trackers ``cfg`` turns on, not yet started (their packages imported now).

    Args:
        cfg: ``logging``.
        run_dir: The run directory (``trackers.json`` lives there; wandb writes ``wandb/``).
        config: The resolved run config as plain data (wandb config, MLflow params).
        env: Environment variables (default ``os.environ``).

    Raises:
        ConfigError: A tracker is on but its package is not installed.
    """
    env = os.environ if env is None else env
    trackers: list[Tracker] = []
    if cfg.wandb.enabled:
        trackers.append(WandbTracker(cfg.wandb, run_dir, config, env))
    if cfg.mlflow.enabled:
        trackers.append(MlflowTracker(cfg.mlflow, run_dir, config, env))
    return trackers
