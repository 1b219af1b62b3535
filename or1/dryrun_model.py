"""The model checks of ``or1 train --dry-run`` (or1/dryrun.py): ``model.path`` or the
tiny model, read without loading weights (config.json, safetensors headers, tokenizer,
GGUF file, warm-up cache), and the memory plan's verdict."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import PretrainedConfig, PreTrainedTokenizerBase

from or1.config import Config
from or1.errors import ConfigError
from or1.rundir import require_writable

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")

Model = tuple[PreTrainedTokenizerBase | None, PretrainedConfig | None]


def check_model(cfg: Config) -> tuple[str, Model]:
    """The model's description, its tokenizer and its config (None: not available
    without loading weights: a GGUF file not converted yet)."""
    from or1.build import gguf

    source = gguf.gguf_source(cfg.model)
    if source is not None:
        target = cfg.cache_path / "gguf" / gguf.cache_key(gguf.file_digest(source.file))
        size = source.file.stat().st_size / 1e9
        if (target / "config.json").is_file():
            text, tokenizer = _hf_dir(target, cfg)
            return f"GGUF {source.file} ({size:.2f} GB), converted: {text}", tokenizer
        cache = require_writable(target, "the GGUF cache", "cache_dir=")
        return (
            f"GGUF {source.file} ({size:.2f} GB), converted on the first run (cache {cache}); "
            "prompt lengths are checked then",
            (None, None),
        )
    if cfg.model.path is not None:
        return _hf_dir(Path(cfg.model.path), cfg)
    from or1.build.start import tiny_hooks

    if tiny_hooks(cfg) is not None:
        return _tiny_model(cfg)
    raise ConfigError(
        "model.path is not set and the task builds no model.",
        hint="set model.path to a local Hugging Face model directory.",
    )


def _tiny_model(cfg: Config) -> tuple[str, Model]:
    from transformers import AutoConfig

    from or1.build.models import load_tokenizer, tiny_model_config
    from or1.build.start import tiny_tokenizer, warmup_dir

    t = cfg.model.tiny
    text = f"tiny Qwen2 from model.tiny ({t.num_layers} layers, hidden {t.hidden_size})"
    target = warmup_dir(cfg)
    if (target / "config.json").is_file():
        model = (load_tokenizer(target, cfg.model), AutoConfig.from_pretrained(target))
        return f"{text}, warm-up cached in {target}", model
    steps = cfg.warmup.steps if cfg.warmup.enabled else 0
    cache = require_writable(target, "the warm-up cache", "cache_dir=")
    tokenizer = tiny_tokenizer(cfg)
    model = (tokenizer, tiny_model_config(cfg.model.tiny, tokenizer))
    return f"{text}, warm-up of {steps} steps runs first (cache {cache})", model


def _hf_dir(path: Path, cfg: Config) -> tuple[str, Model]:
    """Describe a local HF model directory from its config and weight headers."""
    from transformers import AutoConfig

    from or1.build.models import load_tokenizer

    if not (path / "config.json").is_file():
        raise ConfigError(
            f"model.path {path} is not a Hugging Face model directory (no config.json).",
            hint="point model.path at a directory written by save_pretrained.",
        )
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(f"{path}/config.json cannot be read: {err}") from None
    params, files = _weights(path)
    tokenizer = load_tokenizer(path, cfg.model)
    arch = ",".join(getattr(config, "architectures", None) or [config.model_type])
    positions = getattr(config, "max_position_embeddings", None)
    count = f"{params / 1e9:.2f}B" if params >= 1e9 else f"{params / 1e6:.2f}M"
    return (
        f"{path}: {arch}, {count} parameters in {files}, max positions {positions}; "
        "tokenizer with a chat template"
    ), (tokenizer, config)


def _weights(path: Path) -> tuple[int, str]:
    """(parameter count, which files): read from safetensors headers, no tensor data."""
    from safetensors import SafetensorError, safe_open

    shards = sorted(p for p in path.iterdir() if p.name.endswith(WEIGHT_SUFFIXES))
    if not shards:
        raise ConfigError(
            f"model.path {path} has a config.json but no weight files "
            f"({', '.join(WEIGHT_SUFFIXES)}).",
            hint="copy the model's weights beside its config, or re-save it with save_pretrained.",
        )
    safetensors = [p for p in shards if p.suffix == ".safetensors"]
    if not safetensors:  # torch pickles: counting would mean loading them
        return 0, f"{len(shards)} torch weight files (not inspected)"
    total = 0
    for shard in safetensors:
        try:
            with safe_open(shard, framework="pt") as f:
                total += sum(_numel(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118
        except (SafetensorError, OSError, json.JSONDecodeError) as err:
            raise ConfigError(
                f"weight file {shard} is damaged: {err}.",
                hint="download or copy the model again.",
            ) from None
    size = sum(p.stat().st_size for p in safetensors) / 1e9
    return total, f"{len(safetensors)} safetensors files ({size:.2f} GB)"


def _numel(shape: list[int]) -> int:
    n = 1
    for dim in shape:
        n *= dim
    return n


def memory_verdict(cfg: Config) -> str | None:
    """The memory plan's verdict for a model.path run (``or1 plan`` prints its table);
    None when there is no plan (the tiny model, a GGUF file)."""
    from or1.plan import make_plan, model_shape, settings_of
    from or1.plan.report import device_memory

    if cfg.model.path is None or cfg.model.gguf_file or cfg.model.path.endswith(".gguf"):
        return None
    try:
        shape = model_shape(cfg.model.path)
    except (ConfigError, ValueError, OSError):
        return None
    device, gib = device_memory(cfg)
    plan = make_plan(shape, settings_of(cfg, device=device), gpu_gib=gib)
    peak = plan.peak / 2**30
    verdict = "fits" if plan.fits else "does NOT fit (training warns)"
    return f"{verdict}: peak {peak:.1f} of {gib:.0f} GiB ({device}); `or1 plan` has the table"
