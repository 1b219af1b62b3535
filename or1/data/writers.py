"""Writing verl rows: parquet (atomically) or jsonl, by the file's suffix."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from or1.data.rows import Row

logger = logging.getLogger("or1.data")


def write_parquet(rows: Iterable[Row], path: str | Path) -> Path:
    """Write verl rows to ``path`` atomically (a temp file renamed into place)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # extra_info whose values differ in type across rows has no struct schema: store
        # it as a JSON string (read back as a mapping by or1/data/rows.py).
        logger.warning("%s: extra_info differs in type across rows; stored as JSON", path)
        rows = [{**r, "extra_info": json.dumps(r.get("extra_info") or {})} for r in rows]
        table = pa.Table.from_pylist(rows)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def write_jsonl(rows: Iterable[Row], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def write_rows(rows: Iterable[Row], path: str | Path) -> Path:
    """Parquet or jsonl by the suffix of ``path``."""
    if Path(path).suffix in (".jsonl", ".json"):
        return write_jsonl(rows, path)
    return write_parquet(rows, path)
