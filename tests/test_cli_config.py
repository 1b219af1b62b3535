"""`or1 config`: the resolved YAML of a preset and overrides, loadable as a preset."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from or1.cli import main
from or1.config import Config, load_config


def test_config_prints_the_whole_tree_with_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--preset", "skywork-or1-7b", "algo.clip_high=0.28"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["preset"] == "skywork-or1-7b"
    assert printed["algo"]["clip_high"] == 0.28
    # The whole typed tree: every top-level section and the defaults the preset leaves.
    assert set(printed) == set(Config.model_fields)
    assert printed["algo"]["clip_low"] == 0.2 and printed["optim"]["lr"] == 1e-6
    assert printed["logging"]["tensorboard"] is True
    assert printed == load_config("skywork-or1-7b", ["algo.clip_high=0.28"]).model_dump(mode="json")


def test_config_output_loads_back_as_the_same_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    overrides = ["stages.0.group_size=4", "eval.benchmarks=[aime24]", "train.seed=3"]
    assert main(["config", "--preset", "tiny-arith", *overrides]) == 0
    path = tmp_path / "resolved.yaml"
    path.write_text(capsys.readouterr().out)
    assert load_config(str(path)) == load_config("tiny-arith", overrides)


def test_config_errors_are_one_paragraph(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--preset", "tiny-arith", "algo.clip_hgh=0.3"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("or1: error: ") and captured.err.count("\n") == 1
    assert "algo.clip_hgh" in captured.err and "clip_high" in captured.err
    assert main(["config", "--preset", "no-such-preset"]) == 2
    assert "unknown preset 'no-such-preset'" in capsys.readouterr().err
