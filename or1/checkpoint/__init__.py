"""Checkpoints that a resumed run continues from exactly, and that cannot rot silently.

Layout of ``ckpt/step_N/``: ``model/`` (HF ``save_pretrained`` + tokenizer, loadable by
transformers, ``or1 eval`` and ``or1 export``), the policy's training state (a local
policy: ``optimizer.pt``; a sharded one: ``sharded/``, torch.distributed.checkpoint files
written by every rank), ``rng.pt`` (torch, numpy, python and the rollout sampler's
generator), ``state.json`` (step, stage, controller, sampler, filter tables, elapsed
wall time), ``config.yaml`` (the run's config when it was written), and last
``manifest.json`` (size and sha256 of every other file, see ``or1.manifest``).

A checkpoint is written to ``step_N.tmp`` and renamed into place, then ``ckpt/latest``
(a relative symlink to ``step_N``; a one-line file on filesystems without symlinks, and
in runs written before 2026-12) is replaced atomically. A run killed mid-write leaves the
previous checkpoint as the latest. Weights or optimizer state with NaN/inf are never
written (``TrainingError``). Loading verifies the manifest: a damaged checkpoint is a
``CheckpointError`` naming the file, and the newest verified older one is used instead
only when asked (``fallback=True``; ``or1 train --resume RUN --fallback-to-verified``).
Pruning (``train.keep_checkpoints``) never deletes the newest (verified) checkpoint.
"""

from or1.checkpoint.layout import (
    FALLBACK_FLAG,
    KILL_ENV,
    LATEST,
    OPTIMIZER_FILE,
    SHARDED_DIR,
    Checkpoint,
    point_latest,
    step_dirs,
)
from or1.checkpoint.read import (
    checkpoint_problem,
    find_checkpoint,
    guarded_load,
    load_checkpoint,
    load_torch_file,
    move_aside_newer,
)
from or1.checkpoint.state import (
    ShardedState,
    global_rng_state,
    restore_training_state,
    set_global_rng_state,
    training_state_writer,
)
from or1.checkpoint.write import (
    first_non_finite,
    non_finite_error,
    require_finite,
    save_checkpoint,
)

__all__ = [
    "FALLBACK_FLAG",
    "KILL_ENV",
    "LATEST",
    "OPTIMIZER_FILE",
    "SHARDED_DIR",
    "Checkpoint",
    "ShardedState",
    "checkpoint_problem",
    "find_checkpoint",
    "first_non_finite",
    "global_rng_state",
    "guarded_load",
    "load_checkpoint",
    "load_torch_file",
    "move_aside_newer",
    "non_finite_error",
    "point_latest",
    "require_finite",
    "restore_training_state",
    "save_checkpoint",
    "set_global_rng_state",
    "step_dirs",
    "training_state_writer",
]
