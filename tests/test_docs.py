"""The docs site: it builds (mkdocs, strict), its configuration reference lists and
describes every setting, and README's links resolve.

The settings are enumerated here from pydantic's JSON schema of ``Config``, not with the
generator's own walk (or1/config/reference.py), so a field the generator skipped fails.
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from or1.config import Config, load_config
from or1.config.reference import reference_markdown, type_name, undescribed_keys

ROOT = Path(__file__).resolve().parents[1]


def _module_at(path: str) -> Any:
    """The Python file at ``path`` (from the repository root), imported as a module."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _schema_fields(schema: dict[str, Any], node: dict[str, Any], prefix: str = ""):
    """(dotted key, description) of every leaf setting in a JSON schema of pydantic's."""
    defs = schema.get("$defs", {})

    def resolve(prop: dict[str, Any]) -> dict[str, Any] | None:
        ref = prop.get("$ref") or next(
            (p["$ref"] for p in prop.get("allOf", []) if "$ref" in p), None
        )
        return defs[ref.rsplit("/", 1)[-1]] if ref else None

    for name, prop in node.get("properties", {}).items():
        key = f"{prefix}{name}"
        section = resolve(prop)
        if section is None and prop.get("type") == "array" and "items" in prop:
            item = resolve(prop["items"])
            if item is not None:
                yield from _schema_fields(schema, item, f"{key}.N.")
                continue
        if section is not None:
            yield from _schema_fields(schema, section, f"{key}.")
        else:
            yield key, prop.get("description", "")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as `make docs` builds it (strict: a warning is an error)."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    # No -q: mkdocs drops quieted warnings before --strict counts them.
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml"]
    done = subprocess.run(
        [*cmd, "-d", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    output = done.stdout + done.stderr
    warnings = [line for line in output.splitlines() if "WARNING" in line or line.startswith("  -")]
    assert done.returncode == 0, (
        "mkdocs build --strict failed (is the docs extra installed? pip install -e '.[docs]'; "
        f"a page in docs/ must be in mkdocs.yml's nav): {' '.join(warnings) or output}"
    )
    return out


def test_every_setting_has_a_description() -> None:
    missing = undescribed_keys()
    assert not missing, (
        f"settings without a description: {missing}; give each a "
        "Field(..., description=...) in or1/config/ (it is the docs' configuration reference)"
    )


def test_the_reference_lists_every_setting_with_its_description(site: Path) -> None:
    page = (site / "reference" / "config" / "index.html").read_text()
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    codes = {html.unescape(c) for c in re.findall(r"<code>([^<]*)</code>", page)}
    schema = Config.model_json_schema()
    fields = dict(_schema_fields(schema, schema))
    assert len(fields) > 100  # the walk found the tree, not just the top level
    assert {k for k in fields if k not in codes} == set()
    assert [k for k, d in fields.items() if d and " ".join(d.split()) not in text] == []


def test_the_reference_gives_defaults_and_types() -> None:
    page = reference_markdown()
    rows = {line.split(" | ")[0].strip("| `"): line for line in page.splitlines()}
    assert "`0.2`" in rows["algo.clip_high"] and "float" in rows["algo.clip_high"]
    assert "`required`" in rows["stages.N.steps"] and "&gt;= 2" in rows["stages.N.group_size"]
    assert "one of: paper, released-code" in rows["algo.variant"]
    assert type_name(int | None) == "int or null"


def test_generated_pages_are_in_the_site(site: Path) -> None:
    presets = (site / "reference" / "presets" / "index.html").read_text()
    for name in ("tiny-arith", "skywork-or1-7b"):
        assert f"<code>{name}</code>" in presets


def test_the_committed_reference_pages_are_what_the_code_generates(tmp_path: Path) -> None:
    hooks = _module_at("scripts/docs_hooks.py")
    assert hooks.stale_pages() == [], "run `make reference` and commit docs/reference/"
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference/config.md").write_text(reference_markdown())
    assert hooks.stale_pages(tmp_path) == ["reference/presets.md"]  # (a missing page is stale)


def _github_slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading (lowercase, punctuation dropped)."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _prose(markdown: str) -> str:
    """Markdown without its fenced code blocks (a ``# comment`` there is no heading)."""
    lines, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return "\n".join(lines)


def _anchors(markdown: str) -> set[str]:
    return {_github_slug(h) for h in re.findall(r"^#{1,6} (.+)$", _prose(markdown), flags=re.M)}


def test_readme_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", _prose(readme))
    assert links, "README links to no page"
    broken = []
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue  # an external URL: not checked offline
        path, _, anchor = link.partition("#")
        target = (ROOT / path).resolve() if path else ROOT / "README.md"
        if not target.is_relative_to(ROOT) or not target.exists():
            broken.append(f"{link}: no such file in the repository")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target.read_text()):
            broken.append(f"{link}: no heading #{anchor} in {target.relative_to(ROOT)}")
    assert broken == []


def test_the_recipe_pages_stage_table_is_the_presets() -> None:
    module = _module_at("tests/test_presets.py")
    table = module.parse_stage_table((ROOT / "docs" / "recipe.md").read_text())
    assert set(table) == set(module.PRESETS)
    for model, preset in module.PRESETS.items():
        stages = load_config(preset).stages
        shipped = [
            (s.steps, s.max_response_length, s.batch_size, s.mini_batch_size, s.group_size)
            for s in stages
        ]
        assert table[model] == shipped, preset


@pytest.mark.parametrize("stage", [0, 1])
def test_the_scaling_page_shows_what_or1_plan_prints_for_7b(tmp_path: Path, stage: int) -> None:
    """The quickstart's `or1 plan` output (16K, 32K) is what the budget computes today."""
    from or1.plan import make_plan, model_shape, settings_of
    from or1.plan.report import header, verdict

    module = _module_at("tests/plan/conftest.py")
    (tmp_path / "config.json").write_text(json.dumps(module.Q7B))
    cfg = load_config("skywork-or1-7b", [f"model.path={tmp_path}"])
    plan = make_plan(model_shape(tmp_path), settings_of(cfg, stage=stage), gpu_gib=80)
    page = (ROOT / "docs" / "scaling.md").read_text()
    for line in [*header(plan).splitlines(), *verdict(plan).splitlines()]:
        assert line in page, f"docs/scaling.md lacks `or1 plan`'s line: {line}"


def test_the_files_the_docs_name_exist() -> None:
    """A page naming `or1/trainer.py` or `scripts/gpu_smoke.py` points at a real file, so a
    file that moves (a split, a rename) fails here until the docs follow it."""
    path = re.compile(r"(?<![\w./-])((?:or1|tests|scripts|bench|docs)/[\w./-]*[\w/])")
    missing = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for name in path.findall(page.read_text()):
            made_on_use = "/.venv" in name  # e.g. bench/.venv-trl, created by the bench
            if not made_on_use and not (ROOT / name).exists():
                missing.append(f"{page.relative_to(ROOT)}: {name}")
    assert sorted(set(missing)) == []


# Dotted names in the docs that look like settings and are not: an error message's typo,
# a transformers method.
NOT_SETTINGS = {"algo.clip_hgh", "model.generate"}
FILE_SUFFIX = re.compile(r"\.(parquet|jsonl|json|ya?ml|py|md|txt|csv|gguf|pt)$")


def test_every_setting_the_docs_name_exists() -> None:
    """`algo.entropy.delta`, `stages.0.steps=64`, `rewards.by_ability.math=...` in a page
    name settings of today's config tree (a renamed or removed setting fails here)."""
    from or1.config.reference import sections

    leaves = {row.key: row.type for section in sections() for row in section.rows}
    known = set(leaves) | {section.key for section in sections()}
    heads = "model|data|warmup|rollout|algo|rewards|optim|stages|train|eval|distributed|logging"
    dotted = re.compile(rf"(?<![\w./$-])((?:{heads})\.[\w.*<>-]*[\w*>])")
    unknown = set()
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text()
        blocks = re.findall(r"^```.*?^```", text, flags=re.S | re.M)
        inline = [code for _, code in re.findall(r"(`+)(.+?)\1", _prose(text))]
        for span in blocks + inline:
            for name in dotted.findall(span):
                name = name if "<" in name else name.rstrip(">")  # `<eval.data_dir>/x`
                key = re.sub(r"^stages\.(\d+|\*|N)(?=\.|$)", "stages.N", name).removesuffix(".*")
                in_a_mapping = any(
                    key.startswith(f"{leaf}.") and kind.startswith("dict")
                    for leaf, kind in leaves.items()
                )
                if key in known or in_a_mapping or name in NOT_SETTINGS or FILE_SUFFIX.search(key):
                    continue
                unknown.add(f"{page.relative_to(ROOT)}: {name}")
    assert not unknown, "settings that do not exist: " + ", ".join(sorted(unknown))


def test_the_reference_and_the_recipe_name_every_released_code_value() -> None:
    """What algo.variant=released-code changes (computed by validating both variants) is
    marked in the reference and listed in the recipe page's released-code table."""
    from or1.config.reference import released_code_values

    released = released_code_values()
    assert released["algo.entropy.delta"] == "0.0001"  # RELEASED_CODE_ENTROPY, by hand
    assert "algo.variant" not in released and "algo.clip_high" not in released
    rows = {line.split(" | ")[0].strip("| `"): line for line in reference_markdown().splitlines()}
    assert "(released code: `0.0001`)" in rows["algo.entropy.delta"]
    recipe = (ROOT / "docs" / "recipe.md").read_text()
    assert [key for key in released if f"`{key}" not in recipe] == []
    # README's table: one row per released-code setting, its released value in the row.
    readme_rows = {
        line.split(" | ")[0].strip("| `"): line
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("| `")
    }
    missing = [k for k, v in released.items() if v not in readme_rows.get(k, "")]
    assert missing == [] and set(readme_rows) >= set(released)
