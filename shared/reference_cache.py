"""Reference data remembered across transactions, for a bounded time.

Every order reads the accounts, products, price lists, promotions or
warehouses it names, and they rarely change: at a few dozen orders a second, where batches
hold one or two events, those reads were a sixth of the statements an order
cost, each paid again by the next transaction (docs/performance.md, "Ninth
change"). `read_reference` answers them from a `ReferenceCache` the service's
database keeps, under three rules that keep an answer from being wrong for
longer than a worker's view of another worker's change already is:

- A change this worker commits is read by every transaction that starts after
  the commit (the writer calls `forget_reads`; `ServiceDatabase.transaction`
  commits inside `changing`): while the commit is under way nothing of its
  kind is answered or kept, and a read that was under way meanwhile is not
  kept afterwards either: each kind has a generation the change advances, and
  a load remembers what it found only if the generation it started under
  still holds.
- A transaction that writes a kind reads that kind from the database for the
  rest of its life: it must see its own uncommitted change.
- A change another worker of the service committed (they share one database)
  is seen within `seconds` (`TRADELANE_REFERENCE_CACHE_SECONDS`), when what was
  remembered expires. Reference topics and order topics are not ordered with
  each other anyway: an order may always be handled a moment before a price
  change published just ahead of it.

Only reads of committed reference data belong here: never a row locked for
update, never state an order's handling changes (stock, holds, fills).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from shared.batch_reads import read_once, written_kinds

DEFAULT_SECONDS = 1.0
"""How long a worker may answer from what it remembered (`TRADELANE_REFERENCE_CACHE_SECONDS`)."""
CACHE = "reference_cache"
"""The `Session.info` key of the database's `ReferenceCache` (set by its session maker)."""
MAX_KEYS_PER_KIND = 10_000
"""Past this many remembered keys a kind starts afresh: a bound on memory, not a policy."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class ReferenceCache:
    """One service database's remembered reference rows, by kind and key."""

    seconds: float
    clock: Callable[[], float] = time.monotonic
    _rows: dict[str, dict[Hashable, tuple[float, Any]]] = field(default_factory=dict)
    _generations: dict[str, int] = field(default_factory=dict)
    _changing: Counter[str] = field(default_factory=Counter)

    def generation(self, kind: str) -> int:
        return self._generations.get(kind, 0)

    def recall(self, kind: str, keys: Iterable[K]) -> dict[K, Any]:
        """What is remembered, unexpired, of `keys` (None for a key known to be absent)."""
        if self._changing[kind]:
            return {}
        rows, now = self._rows.get(kind, {}), self.clock()
        return {key: found[1] for key in keys if (found := rows.get(key)) and found[0] > now}

    def remember(self, kind: str, generation: int, found: Mapping[K, object]) -> None:
        """Keep `found`, unless `kind` changed since `generation` was taken (the load may have
        read what the change replaced)."""
        if generation != self.generation(kind) or self._changing[kind]:
            return
        rows = self._rows.setdefault(kind, {})
        if len(rows) + len(found) > MAX_KEYS_PER_KIND:
            rows.clear()
        until = self.clock() + self.seconds
        rows.update((key, (until, value)) for key, value in found.items())

    @contextmanager
    def changing(self, kinds: Iterable[str]) -> Iterator[None]:
        """A commit that may change `kinds` runs inside: meanwhile they are neither answered
        nor kept, and afterwards (committed or not) they are read afresh and loads that
        were under way are outdated."""
        kinds = set(kinds)
        self._changing.update(kinds)
        try:
            yield
        finally:
            self._changing.subtract(kinds)
            for kind in kinds:
                self._generations[kind] = self.generation(kind) + 1
                self._rows.pop(kind, None)


async def read_reference(
    session: AsyncSession,
    kind: str,
    keys: Iterable[K],
    load: Callable[[set[K]], Awaitable[Mapping[K, V]]],
) -> dict[K, V]:
    """`read_once`, answered from the database's `ReferenceCache` where it can be.

    `load` must return immutable values (they are shared between transactions).
    """
    cache: ReferenceCache | None = session.info.get(CACHE)
    if cache is None or cache.seconds <= 0 or kind in written_kinds(session):
        return await read_once(session, kind, keys, load)

    async def recall_or_load(missing: set[K]) -> dict[K, V]:
        known = cache.recall(kind, missing)
        if unknown := missing - known.keys():
            generation = cache.generation(kind)
            found = await load(unknown)
            loaded = {key: found.get(key) for key in unknown}
            cache.remember(kind, generation, loaded)
            known.update(loaded)
        return {key: value for key, value in known.items() if value is not None}

    return await read_once(session, kind, keys, recall_or_load)
