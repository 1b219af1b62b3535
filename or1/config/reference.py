"""The configuration reference: every field of the ``Config`` tree as Markdown tables.

Generated from the pydantic models themselves (type, default, bounds, description), so
the docs site cannot drift from the code: ``make docs`` renders it through the mkdocs hook
in ``scripts/docs_hooks.py``, and tests/test_docs.py checks that every field is there and
described. Plain data in, a string out: nothing here reads or writes files.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types as at
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from or1.config.run import Config


@dataclass(frozen=True)
class FieldRow:
    """One leaf setting: its dotted key (``stages.N.steps`` for list items) and docs."""

    key: str
    type: str
    default: str
    bounds: str
    description: str


@dataclass(frozen=True)
class SectionDoc:
    """One section (a pydantic model) with its docstring and its leaf settings."""

    key: str  # dotted prefix; "" for the top level
    doc: str
    rows: tuple[FieldRow, ...]


def _section_of(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The section model an annotation holds, and whether it is a list of them."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    if get_origin(annotation) is list:
        (item,) = get_args(annotation) or (None,)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return item, True
    return None, False


def type_name(annotation: Any) -> str:
    """A short human spelling of a type: ``int or null``, ``one of: "a", "b"``."""
    origin = get_origin(annotation)
    if annotation is type(None):
        return "null"
    if origin is Literal:
        return "one of: " + ", ".join(_yaml(v) for v in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in get_args(annotation))
    if origin in (list, tuple, dict):
        args = ", ".join("..." if a is Ellipsis else type_name(a) for a in get_args(annotation))
        return f"{origin.__name__}[{args}]" if args else origin.__name__
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def _yaml(value: Any) -> str:
    """A value as one would write it in a preset or an override (YAML flow style)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, tuple):
        value = list(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def default_text(info: FieldInfo) -> str:
    """The default as YAML, or ``required`` when the field has none."""
    if info.default_factory is not None:
        return _yaml(info.default_factory())  # type: ignore[call-arg]
    if info.default is PydanticUndefined:
        return "required"
    return _yaml(info.default)


_BOUNDS = ((at.Gt, "gt", ">"), (at.Ge, "ge", ">="), (at.Lt, "lt", "<"), (at.Le, "le", "<="))


def bounds_text(info: FieldInfo) -> str:
    """The numeric and length bounds pydantic enforces (``> 0, <= 1``)."""
    parts = []
    for item in info.metadata:
        for kind, attr, sign in _BOUNDS:
            if isinstance(item, kind):
                parts.append(f"{sign} {getattr(item, attr)}")
        if isinstance(item, at.MinLen):
            parts.append(f"at least {item.min_length} items")
    return ", ".join(parts)


def sections(model: type[BaseModel] = Config, key: str = "") -> Iterator[SectionDoc]:
    """Every section of the tree, depth first, parents before their subsections."""
    rows, children = [], []
    for name, info in model.model_fields.items():
        dotted = f"{key}.{name}" if key else name
        sub, is_list = _section_of(info.annotation)
        if sub is not None:
            children.append((sub, f"{dotted}.N" if is_list else dotted))
            continue
        rows.append(
            FieldRow(
                key=dotted,
                type=type_name(info.annotation),
                default=default_text(info),
                bounds=bounds_text(info),
                description=(info.description or "").strip(),
            )
        )
    yield SectionDoc(key=key, doc=_docstring(model), rows=tuple(rows))
    for sub, dotted in children:
        yield from sections(sub, dotted)


def _docstring(model: type[BaseModel]) -> str:
    doc = model.__doc__ or ""
    if doc.startswith(BaseModel.__doc__ or "\0"):  # pydantic's own docstring: none given
        return ""
    lines = doc.strip().splitlines()
    first, rest = lines[:1], [line.strip() for line in lines[1:]]
    return "\n".join(first + rest).strip()


# The smallest valid tree: one stage (the only required field).
_ONE_STAGE = {"steps": 1, "max_response_length": 8, "batch_size": 1, "mini_batch_size": 1}


def _leaf(tree: Any, key: str) -> Any:
    for part in key.split("."):
        tree = tree[0] if part == "N" else tree[part]
    return tree


def released_code_values() -> dict[str, str]:
    """The settings ``algo.variant=released-code`` changes, with the released code's value
    (computed by validating both variants, so it is what a run gets, not a copied list)."""
    stage = {**_ONE_STAGE, "group_size": 2}
    paper = Config.model_validate({"stages": [stage]}).model_dump(mode="json")
    released = Config.model_validate(
        {"stages": [stage], "algo": {"variant": "released-code"}}
    ).model_dump(mode="json")
    keys = [key for key in leaf_keys() if key != "algo.variant"]
    return {k: _yaml(_leaf(released, k)) for k in keys if _leaf(released, k) != _leaf(paper, k)}


def leaf_keys() -> list[str]:
    """The dotted key of every leaf setting (``stages.N.*`` for the stage list)."""
    return [row.key for section in sections() for row in section.rows]


def undescribed_keys() -> list[str]:
    """Leaf settings whose Field has no description (the reference needs one each)."""
    return [row.key for section in sections() for row in section.rows if not row.description]


_MARKDOWN_SPECIAL = re.compile(r"([\\*_{}\[\]|])")


def _cell(text: str) -> str:
    """Plain text as one table cell: Markdown's special characters escaped (a ``{...}``
    would be read as attributes, ``<x>`` as an HTML tag, ``|`` as a column), one line."""
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text).replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\n", " ")


def _code(text: str) -> str:
    """Text as a code span in a table cell (only a pipe needs escaping there)."""
    pipe = "\\|"
    return "`" + text.replace("|", pipe) + "`"


def _released_note(value: str | None) -> str:
    return "" if value is None else f" (released code: {_code(value)})"


def reference_markdown() -> str:
    """The whole reference page: one table per section, in the tree's order."""
    out = [
        "# Configuration reference",
        "",
        "Every setting of `or1`'s config tree, generated from the pydantic models in "
        "`or1/config/` when the site is built. Set any of them in a preset YAML file or on "
        "the command line as a dotted override (`algo.clip_high=0.265`, "
        "`stages.0.max_response_length=64`); `or1 config --preset NAME [overrides]` prints "
        "the resolved tree. Defaults are the paper's values wherever the paper gives one; "
        '`stages.N` is the N-th stage of the schedule (0-based). "released code" marks the '
        "value `algo.variant=released-code` selects when the setting is left unset. See "
        "[Configuration](../configuration.md) for presets and overrides.",
        "",
    ]
    released = released_code_values()
    for section in sections():
        title = f"`{section.key}`" if section.key else "Top level"
        out += [f"## {title}", ""]
        if section.doc:
            out += [section.doc, ""]
        if not section.rows:
            continue
        out += ["| key | type | default | bounds | description |", "|---|---|---|---|---|"]
        for row in section.rows:
            cells = (
                _code(row.key),
                _cell(row.type),
                _code(row.default),
                _cell(row.bounds),
                _cell(row.description) + _released_note(released.get(row.key)),
            )
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)
