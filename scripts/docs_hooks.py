"""mkdocs hooks (mkdocs.yml ``hooks:``): pages generated from the code at build time.

- ``reference/config.md``: every setting of the config tree (or1/config/reference.py);
- ``reference/presets.md``: the YAML of every preset shipped in or1/presets/.

The checkout's own ``or1`` is imported (not an installed copy), so the site documents the
code next to it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

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


def on_files(files: Files, config: Any) -> Files:
    """Add the generated pages to the site's files (they are not in docs/)."""
    for uri, text in (
        ("reference/config.md", reference_markdown()),
        ("reference/presets.md", presets_markdown()),
    ):
        files.append(File.generated(config, uri, content=text))
    return files
