"""The pages generated from the code, committed under docs/reference/ so that their links
work on GitHub too, and the mkdocs hook (mkdocs.yml ``hooks:``) that fails the build when
they are stale.

- ``docs/reference/config.md``: every setting of the config tree (or1/config/reference.py);
- ``docs/reference/presets.md``: the YAML of every preset shipped in or1/presets/.

``python scripts/docs_hooks.py`` (``make reference``) writes them. The checkout's own
``or1`` is imported (not an installed copy), so the pages document the code next to it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from or1.config import preset_names, read_preset  # noqa: E402
from or1.config.reference import reference_markdown  # noqa: E402

PRESETS_INTRO = (
    "# Presets\n\n"
    "A preset is a short YAML file in `or1/presets/` that sets only what differs from the "
    "defaults (the paper's values; see the [reference](config.md)). Run one with "
    "`or1 train --preset NAME [overrides]`; `or1 config --preset NAME` prints it resolved. "
    "This page is generated from the files themselves.\n"
)


def presets_markdown() -> str:
    """Each shipped preset's YAML file, verbatim, under its name."""
    from importlib import resources

    out = [PRESETS_INTRO]
    for name in preset_names():
        read_preset(name)  # fails the build on a preset that does not parse
        text = resources.files("or1.presets").joinpath(f"{name}.yaml").read_text()
        out += [f"## `{name}`\n", "```yaml", text.rstrip(), "```\n"]
    return "\n".join(out)


def generated_pages() -> dict[str, str]:
    """Path under docs/ -> the text that page must have."""
    return {
        "reference/config.md": reference_markdown(),
        "reference/presets.md": presets_markdown(),
    }


def stale_pages(docs: Path = ROOT / "docs") -> list[str]:
    """The generated pages whose committed copy differs from what the code generates."""
    return [
        uri
        for uri, text in generated_pages().items()
        if not (docs / uri).is_file() or (docs / uri).read_text(encoding="utf-8") != text
    ]


def on_pre_build(config: Any) -> None:
    """Fail the build on a stale reference page (the site documents today's code)."""
    from mkdocs.exceptions import PluginError

    stale = stale_pages(Path(config["docs_dir"]))
    if stale:
        raise PluginError(
            f"docs/{', docs/'.join(stale)}: not what the code generates; "
            "run `make reference` (python scripts/docs_hooks.py) and commit the pages"
        )


def main() -> None:
    for uri, text in generated_pages().items():
        path = ROOT / "docs" / uri
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
