"""Leasing the sandbox's throwaway uids: no two live leases share a uid, a slot with an
account is skipped, the pool runs out with a clear error, a closed lease frees its slot."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from or1.rewards import sandbox_uids as uids


@pytest.fixture
def small_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the lock files go here
    monkeypatch.setattr(uids, "UID_SLOTS", 5)
    monkeypatch.setattr(uids, "UID_BASE", 70000)
    # slot 2 (uid 70002) "has an account": never leased
    monkeypatch.setattr(uids, "has_account", lambda uid: uid == 70002)


def _close(leases: list[tuple[int, int]]) -> None:
    for _, fd in leases:
        os.close(fd)


def test_leases_are_disjoint_skip_accounts_and_run_out(small_pool: None) -> None:
    first = uids.lease_uids(2, spread=1)  # slots 1, then 3 (2 has an account)
    second = uids.lease_uids(2, spread=1)  # 1 and 3 are held: 4, then 0
    assert [u for u, _ in first] == [70001, 70003]
    assert [u for u, _ in second] == [70004, 70000]
    with pytest.raises(uids.UidsExhausted, match="all throwaway uids are in use"):
        uids.lease_uids(1, spread=0)  # 4 usable slots, all held
    _close(first)
    again = uids.lease_uids(2, spread=0)  # closing a lease frees its slots
    assert sorted(u for u, _ in again) == [70001, 70003]
    _close(second + again)


def test_a_partial_lease_that_runs_out_releases_what_it_took(small_pool: None) -> None:
    held = uids.lease_uids(3, spread=0)
    with pytest.raises(uids.UidsExhausted):
        uids.lease_uids(2, spread=0)  # finds one free slot, then none: gives it back
    one = uids.lease_uids(1, spread=0)
    assert [u for u, _ in one] == [70004]
    _close(held + one)


def test_count_tasks_counts_this_process() -> None:
    assert uids.count_tasks(os.getuid()) >= 2  # this process's task(s), plus the 1 to come
