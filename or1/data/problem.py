"""The one record every data source produces and every engine consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Message = dict[str, str]  # {"role": ..., "content": ...}


@dataclass(frozen=True)
class Problem:
    """A verifiable prompt.

    Attributes:
        uid: stable identifier, unique inside a dataset (used by filters and logs).
        prompt: chat messages, as in verl/Skywork parquet (`[{"role": "user", ...}]`).
        ground_truth: the answer (math) or a JSON string of tests (code).
        ability: selects the reward function ("math" or "code").
        data_source: where the row came from (e.g. "aime24", "tiny-arith").
        extra_info: free-form metadata (e.g. `model_difficulty`).
    """

    uid: str
    prompt: list[Message]
    ground_truth: str
    ability: str = "math"
    data_source: str = ""
    extra_info: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def question(self) -> str:
        """The text of the last user message."""
        users = [m["content"] for m in self.prompt if m.get("role") == "user"]
        return users[-1] if users else ""
