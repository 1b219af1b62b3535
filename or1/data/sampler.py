"""Deterministic, resumable order of training prompts."""

from __future__ import annotations

from typing import Any

import torch


class PromptSampler:
    """Yields batches of prompt uids: a seeded shuffle per epoch over the active set.

    The state (active set, epoch, position) is a small JSON-able dict, so a resumed run
    sees exactly the prompts an uninterrupted one would.
    """

    def __init__(self, uids: list[str], *, seed: int) -> None:
        if not uids:
            raise ValueError("PromptSampler needs at least one prompt")
        self.seed = seed
        self.active = list(uids)
        self.epoch = 0
        self.position = 0
        self._order = self._shuffle()

    def _shuffle(self) -> list[int]:
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(len(self.active), generator=gen).tolist()

    def next_batch(self, size: int) -> list[str]:
        """``size`` uids; an epoch boundary reshuffles (a batch may span two epochs)."""
        out: list[str] = []
        while len(out) < size:
            if self.position >= len(self._order):
                self.epoch += 1
                self.position = 0
                self._order = self._shuffle()
            take = self._order[self.position : self.position + size - len(out)]
            out.extend(self.active[i] for i in take)
            self.position += len(take)
        return out

    def set_active(self, uids: list[str]) -> None:
        """Restrict sampling to ``uids`` (e.g. after the online filter) from a new epoch."""
        if not uids:
            raise ValueError("the active prompt set cannot be empty")
        self.active = list(uids)
        self.epoch += 1
        self.position = 0
        self._order = self._shuffle()

    def state_dict(self) -> dict[str, Any]:
        return {"active": self.active, "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.active = list(state["active"])
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self._order = self._shuffle()
