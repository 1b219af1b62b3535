"""The checksum manifest: what it lists, and each kind of damage it detects."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from or1.checkpoint.manifest import (
    MANIFEST,
    file_sha256,
    manifest_problem,
    read_manifest,
    write_manifest,
)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "ckpt"
    (root / "model").mkdir(parents=True)
    (root / "model" / "weights.bin").write_bytes(bytes(range(256)) * 64)  # 16 KB
    (root / "state.json").write_text('{"step": 3}')
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "sub" / "deep" / ".metadata").write_bytes(b"meta")
    return root


def test_the_manifest_lists_every_file_with_size_and_sha256(tree: Path) -> None:
    manifest = write_manifest(tree, step=3)
    assert manifest == read_manifest(tree)
    assert manifest["step"] == 3
    assert sorted(manifest["files"]) == ["model/weights.bin", "state.json", "sub/deep/.metadata"]
    entry = manifest["files"]["model/weights.bin"]
    data = (tree / "model" / "weights.bin").read_bytes()
    assert entry == {"bytes": 16384, "sha256": hashlib.sha256(data).hexdigest()}
    assert file_sha256(tree / "state.json") == hashlib.sha256(b'{"step": 3}').hexdigest()
    assert manifest_problem(tree) is None
    assert not list(tree.glob("*.tmp"))  # written through a temp file, renamed


def test_same_size_garbage_is_a_checksum_mismatch_naming_the_file(tree: Path) -> None:
    write_manifest(tree)
    path = tree / "model" / "weights.bin"
    with open(path, "r+b") as fh:  # 4 KB of garbage in the middle, the size unchanged
        fh.seek(4096)
        fh.write(b"\xff" * 4096)
    problem = manifest_problem(tree)
    assert problem is not None
    assert str(path) in problem and "sha256 does not match" in problem


def test_truncated_and_missing_files_are_named(tree: Path) -> None:
    write_manifest(tree)
    path = tree / "model" / "weights.bin"
    data = path.read_bytes()
    path.write_bytes(data[:1000])
    assert manifest_problem(tree) == (
        f"{path} has 1,000 bytes, its manifest says 16,384 (truncated or overwritten)"
    )
    path.write_bytes(data)
    assert manifest_problem(tree) is None
    (tree / "state.json").unlink()
    assert manifest_problem(tree) == f"{tree / 'state.json'} is missing"


def test_no_manifest_or_an_unreadable_one_is_a_problem(tree: Path) -> None:
    assert manifest_problem(tree) == f"{tree} has no {MANIFEST} (it was not completely written)"
    (tree / MANIFEST).write_text("{not json")
    problem = manifest_problem(tree)
    assert problem is not None and "unreadable" in problem
    (tree / MANIFEST).write_text(json.dumps({"format": 1}))  # no "files"
    assert "unreadable" in (manifest_problem(tree) or "")


def test_files_added_after_the_manifest_do_not_count(tree: Path) -> None:
    write_manifest(tree)
    (tree / "notes.txt").write_text("written later by a user")
    assert manifest_problem(tree) is None
