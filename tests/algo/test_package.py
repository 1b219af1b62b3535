"""Package-level checks for or1.algo: docstring examples run, purity of imports."""

import ast
import doctest
import importlib
from pathlib import Path

import pytest
import torch

import or1.algo

MODULES = ["advantages", "entropy", "entropy_diagnosis", "filters", "losses", "metrics"]
ALGO_DIR = Path(or1.algo.__file__).parent
# The pure core may only import these (no I/O, no torch.distributed, no models, no config).
ALLOWED_IMPORTS = {
    "torch",
    "torch.utils.checkpoint",
    "math",
    "typing",
    "collections.abc",
    "dataclasses",
}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"or1.algo.{name}")
    result = doctest.testmod(module, extraglobs={"torch": torch}, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize("path", sorted(ALGO_DIR.glob("*.py")), ids=lambda p: p.name)
def test_imports_stay_pure(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name in ALLOWED_IMPORTS or name.startswith("or1.algo"), f"{path.name}: {name}"


def test_all_is_complete():
    public = {
        name
        for name in dir(or1.algo)
        if not name.startswith("_") and name not in set(MODULES) | {"annotations"}
    }
    assert public == set(or1.algo.__all__)
