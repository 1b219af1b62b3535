"""Presets, dotted overrides and validation: from YAML and the command line to a Config.

A preset is a short YAML file under ``or1/presets/`` that sets only what differs from the
defaults (the paper's values). Overrides look like ``algo.clip_high=0.265`` or
``stages.0.max_response_length=64``; values are parsed as YAML
(``eval.benchmarks=[aime24,aime25]``). Nothing here writes files: a Config is plain data.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from or1.config.run import Config
from or1.errors import ConfigError

PRESETS_PACKAGE = "or1.presets"


def preset_names() -> list[str]:
    """Names of the presets shipped with or1."""
    files = resources.files(PRESETS_PACKAGE).iterdir()
    return sorted(f.name.removesuffix(".yaml") for f in files if f.name.endswith(".yaml"))


def _read_yaml(path: Path | Any, label: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{label} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{label} must hold a mapping of settings, not {type(data).__name__}.")
    return data


def read_preset(preset: str) -> dict[str, Any]:
    """The raw settings of a preset name or a YAML file path."""
    path = Path(preset)
    if preset.endswith((".yaml", ".yml")) or path.exists():
        if not path.is_file():
            raise ConfigError(f"preset file {preset} does not exist.")
        return _read_yaml(path, f"preset file {preset}")
    file = resources.files(PRESETS_PACKAGE).joinpath(f"{preset}.yaml")
    if not file.is_file():
        raise ConfigError(
            f"unknown preset '{preset}'.",
            hint=f"choose one of: {', '.join(preset_names())}, or give a YAML file path.",
        )
    data = _read_yaml(file, f"preset {preset}")
    data.setdefault("preset", preset)
    return data


_YAML11_WORDS = {"on", "off", "yes", "no", "y", "n"}


def apply_override(data: dict[str, Any], override: str) -> None:
    """Set one dotted ``key.sub=value`` in a raw settings mapping (value parsed as YAML)."""
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise ConfigError(
            f"override '{override}' is not of the form key=value.",
            hint="write e.g. algo.clip_high=0.265 or stages.0.max_response_length=64.",
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        value = raw
    if raw.strip().lower() in _YAML11_WORDS:
        value = raw.strip()  # `mode=off` means the string "off", not YAML 1.1's False
    parts = key.split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        node = _child(node, part, ".".join(parts[: i + 1]), create=True)
    _set(node, parts[-1], value, key)


def _child(node: Any, part: str, where: str, *, create: bool) -> Any:
    if isinstance(node, list):
        index = _index(node, part, where)
        return node[index]
    if not isinstance(node, dict):
        raise ConfigError(f"override key '{where}': its parent is a value, not a section.")
    if part not in node or node[part] is None:
        node[part] = {}
    return node[part]


def _index(node: list[Any], part: str, where: str) -> int:
    if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
        raise ConfigError(
            f"override key '{where}': '{part}' is not an index of a list of {len(node)} items."
        )
    return int(part)


def _set(node: Any, part: str, value: Any, key: str) -> None:
    if isinstance(node, list):
        node[_index(node, part, key)] = value
    elif isinstance(node, dict):
        node[part] = value
    else:
        raise ConfigError(f"override key '{key}': its parent is a value, not a section.")


# Keys that moved (old dotted key -> new one), so an old preset or command line gets a
# pointer instead of a bare "unknown key".
RENAMED_KEYS: dict[str, str] = {
    "rollout.batch_size": "rollout.max_num_seqs",
    "rollout.processes": "rollout.hf.processes",
    "rollout.tensor_parallel_size": "rollout.vllm.tensor_parallel_size",
    "rollout.gpu_memory_utilization": "rollout.vllm.gpu_memory_utilization",
}


def _describe(err: dict[str, Any], data: dict[str, Any]) -> str:
    loc = [str(p) for p in err["loc"]]
    key = ".".join(loc)
    if err["type"] == "extra_forbidden" and key in RENAMED_KEYS:
        return f"'{key}' was renamed: write '{RENAMED_KEYS[key]}'."
    if err["type"] == "extra_forbidden":
        model: type[BaseModel] = Config
        for part in loc[:-1]:
            if part.isdigit():
                continue
            annotation = model.model_fields[part].annotation
            args = getattr(annotation, "__args__", None)
            model = args[0] if args and isinstance(args[0], type) else annotation  # type: ignore[assignment]
        allowed = ", ".join(model.model_fields)
        section = ".".join(p for p in loc[:-1]) or "the top level"
        return f"unknown key '{key}'; allowed keys under {section}: {allowed}."
    if isinstance(err.get("input"), dict):  # a section's own check: its input is the section
        return f"{key + ': ' if key else ''}{err['msg'].removeprefix('Value error, ')}."
    return f"bad value for '{key}' (got {err.get('input')!r}): {err['msg']}."


def build_config(data: dict[str, Any], *, source: str = "config") -> Config:
    """Validate raw settings into a Config, or raise one ConfigError naming every problem."""
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        problems = " ".join(_describe(e, data) for e in exc.errors())
        raise ConfigError(
            f"{source}: {problems}",
            hint="see `or1 train --help` and the presets in or1/presets/.",
        ) from None
    return cfg


def load_config(preset: str = "tiny-arith", overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a preset (name or YAML path) and apply dotted overrides."""
    data = read_preset(preset)
    for override in overrides:
        apply_override(data, override)
    label = f"preset {preset}" + (f" with overrides {' '.join(overrides)}" if overrides else "")
    return build_config(data, source=label)


def save_config(config: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))


def load_saved_config(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    if not path.is_file():
        raise ConfigError(f"{path} does not exist.", hint="is this a run directory of or1?")
    data = _read_yaml(path, str(path))
    for override in overrides:
        apply_override(data, override)
    return build_config(data, source=str(path))
