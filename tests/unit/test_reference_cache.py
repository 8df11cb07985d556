"""`shared.reference_cache` rules without a database: expiry, the change that outdates a read
under way, and the bound on what is kept."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from shared.batch_reads import forget_reads
from shared.reference_cache import CACHE, MAX_KEYS_PER_KIND, ReferenceCache, read_reference


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def transaction(cache: ReferenceCache) -> AsyncSession:
    """A session that is never sent a statement: the loads below stand in for the table."""
    return AsyncSession(info={CACHE: cache})


def test_what_is_remembered_expires_after_its_seconds() -> None:
    clock = Clock()
    cache = ReferenceCache(2.0, clock)
    cache.remember("prices", cache.generation("prices"), {"bolt": 3, "nut": None})
    clock.now += 1.9
    assert cache.recall("prices", ["bolt", "nut", "washer"]) == {"bolt": 3, "nut": None}
    clock.now += 0.2
    assert cache.recall("prices", ["bolt", "nut"]) == {}


def test_a_change_outdates_a_read_that_started_before_it() -> None:
    cache = ReferenceCache(2.0, Clock())
    started_under = cache.generation("prices")
    with cache.changing({"prices"}):
        pass
    cache.remember("prices", started_under, {"bolt": 3})
    assert cache.recall("prices", ["bolt"]) == {}


def test_a_change_forgets_only_its_own_kind() -> None:
    cache = ReferenceCache(2.0, Clock())
    cache.remember("prices", 0, {"bolt": 3})
    cache.remember("warehouses", 0, {"north": "N"})
    with cache.changing({"prices"}):
        pass
    assert cache.recall("prices", ["bolt"]) == {}
    assert cache.recall("warehouses", ["north"]) == {"north": "N"}


def test_a_kind_past_its_bound_starts_afresh() -> None:
    cache = ReferenceCache(2.0, Clock())
    cache.remember("codes", 0, {n: n for n in range(MAX_KEYS_PER_KIND)})
    cache.remember("codes", 0, {"one more": 1})
    assert cache.recall("codes", [0, 1, "one more"]) == {"one more": 1}


async def test_a_read_under_way_when_this_worker_commits_a_change_is_not_kept() -> None:
    cache = ReferenceCache(2.0, Clock())
    stored = {"bolt": 1}

    async def load_while_a_change_commits(keys: set[str]) -> dict[str, int]:
        found = {key: stored[key] for key in keys}
        with cache.changing({"prices"}):  # another transaction of this worker commits meanwhile
            stored["bolt"] = 5
        return found

    assert await read_reference(
        transaction(cache), "prices", ["bolt"], load_while_a_change_commits
    ) == {"bolt": 1}

    async def load(keys: set[str]) -> dict[str, int]:
        return {key: stored[key] for key in keys}

    assert await read_reference(transaction(cache), "prices", ["bolt"], load) == {"bolt": 5}


async def test_while_a_change_commits_its_kind_is_neither_answered_nor_kept() -> None:
    cache = ReferenceCache(2.0, Clock())
    cache.remember("prices", 0, {"bolt": 1})

    async def load(keys: set[str]) -> dict[str, int]:
        return {"bolt": 1}  # read before the commit became visible

    with cache.changing({"prices"}):
        assert cache.recall("prices", ["bolt"]) == {}
        assert await read_reference(transaction(cache), "prices", ["bolt"], load) == {"bolt": 1}
    assert cache.recall("prices", ["bolt"]) == {}


def test_a_commit_that_fails_still_has_its_kind_read_afresh() -> None:
    cache = ReferenceCache(2.0, Clock())
    cache.remember("prices", 0, {"bolt": 1})
    with pytest.raises(ConnectionError), cache.changing({"prices"}):
        raise ConnectionError("the database went away during the commit")
    assert cache.recall("prices", ["bolt"]) == {}
    cache.remember("prices", cache.generation("prices"), {"bolt": 1})
    assert cache.recall("prices", ["bolt"]) == {"bolt": 1}


async def test_a_transaction_that_wrote_a_kind_neither_reads_nor_fills_the_cache() -> None:
    cache = ReferenceCache(2.0, Clock())
    cache.remember("prices", 0, {"bolt": 1})
    session = transaction(cache)
    forget_reads(session, "prices")

    async def own_change(keys: set[str]) -> dict[str, int]:
        return {"bolt": 5}

    assert await read_reference(session, "prices", ["bolt"], own_change) == {"bolt": 5}
    assert cache.recall("prices", ["bolt"]) == {"bolt": 1}, "uncommitted: not for others"
