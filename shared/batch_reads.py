"""Reads a batch's events share: each row a transaction needs is fetched once, not per event.

A batch of a hundred orders for the same products would otherwise read each
product a hundred times, and look up a hundred order ids one statement each,
though almost all of them are new. Two tools, both scoped to one transaction
(one `AsyncSession`), so nothing read here outlives the batch that read it
(`shared.reference_cache` keeps reference rows across transactions, on these):

- `read_once` remembers rows by key (found or not: reference data, held fills) until the
  transaction ends or its writer calls `forget_reads`;
- `read_ahead` loads the rows a batch will look up by primary key in one
  statement, and `find` then answers from the session: a row read ahead is in
  its identity map, a key read ahead and not found is known to be absent
  until a row with that key is added to the session.

A rollback, even of one event's savepoint, forgets everything both remember:
what was read may have been read inside the undone work, and asking the
database again is never wrong.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, any_, bindparam, event, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, object_mapper

READ_ONCE = "read_once"
"""The `Session.info` key prefix of what `read_once` remembers."""
AHEAD = "read_ahead"
"""The `Session.info` key prefix of the rows `read_ahead` found (kept alive: the identity map
holds its rows weakly) and of the keys it did not find."""
WRITTEN = "written"
"""The `Session.info` key of the kinds a transaction called `forget_reads` for."""
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
M = TypeVar("M")


async def read_once(
    session: AsyncSession,
    kind: str,
    keys: Iterable[K],
    load: Callable[[set[K]], Awaitable[Mapping[K, V]]],
) -> dict[K, V]:
    """Rows by key (reference data, or fulfillment's fills held per order), read at most
    once per transaction.

    A batch of orders for the same products, price lists or warehouses reads
    each of them once, not once per order. A key is remembered as read, found
    or not, until the transaction ends; whatever writes that kind of data
    calls `forget_reads` first, so a batch that changes it reads it afresh.
    """
    wanted = set(keys)
    memo: dict[K, V | None] = session.info.setdefault((READ_ONCE, kind), {})
    if missing := wanted - memo.keys():
        found = await load(missing)
        memo.update({key: found.get(key) for key in missing})
    return {key: value for key in wanted if (value := memo[key]) is not None}


def forget_reads(session: AsyncSession, kind: str, keys: Iterable[Hashable] | None = None) -> None:
    """Drop what `read_once` remembers of `kind` (of these `keys` only, if given) in this
    transaction: it is being changed, or must be read again under a lock just taken.

    The kind is also noted as written (`written_kinds`): the transaction then reads it
    past `shared.reference_cache`, and its commit empties that cache of it.
    """
    session.info.setdefault(WRITTEN, set()).add(kind)
    if keys is None:
        session.info.pop((READ_ONCE, kind), None)
        return
    memo = session.info.get((READ_ONCE, kind), {})
    for key in keys:
        memo.pop(key, None)


def written_kinds(session: AsyncSession) -> set[str]:
    """The kinds this transaction called `forget_reads` for: those it may have changed."""
    written: set[str] = session.info.get(WRITTEN, set())
    return written


async def read_ahead(
    session: AsyncSession, model: type[Any], keys: Iterable[Hashable]
) -> set[Hashable]:
    """Load the rows of `model` with these primary keys (a value, or a tuple for a composite
    key) in one statement, so the batch's `find`s of them cost no round trip; the keys found."""
    wanted = set(keys)
    if not wanted:
        return set()
    on_postgres = session.get_bind().dialect.name == "postgresql"
    statement = _rows_among(model, on_postgres and len(model.__mapper__.primary_key) == 1)
    rows = list(await session.scalars(statement, {"keys": list(wanted)}))
    session.info.setdefault((AHEAD, model, "rows"), []).extend(rows)
    found = {_identity(row) for row in rows}
    known_absent(session, model, wanted - found)
    return found


def known_absent(session: AsyncSession, model: type[Any], keys: Iterable[Hashable]) -> None:
    """Let `find` answer None for these keys of `model` without asking the database: the
    caller knows they have no row, as `read_ahead` knows of the keys it did not find (until a
    row with such a key is added to the session, or a savepoint rolls back)."""
    absent: set[Hashable] = session.info.setdefault((AHEAD, model, "absent"), set())
    absent.update(keys)


async def find(session: AsyncSession, model: type[M], key: Hashable) -> M | None:
    """`session.get`, without asking the database for a key read ahead and not found."""
    if key in session.info.get((AHEAD, model, "absent"), ()):
        return None
    return await session.get(model, key)


_AMONG: dict[tuple[type[Any], bool], Select[Any]] = {}


def _rows_among(model: type[Any], as_array: bool) -> Select[Any]:
    """The rows of `model` whose primary key is one of the parameter `keys`, built once per
    model (a statement built per call costs its cache key's computation every time).

    `as_array` (PostgreSQL, a single-column key) compares the key with one array, so every
    batch size is the same statement, prepared once per connection; otherwise `keys` is an
    expanding `IN` list (a value, or a tuple for a composite key, per key).
    """
    if (model, as_array) not in _AMONG:
        columns = model.__mapper__.primary_key
        key: ColumnElement[Any] = tuple_(*columns) if len(columns) > 1 else columns[0]
        among = (
            key == any_(bindparam("keys", type_=ARRAY(key.type)))
            if as_array
            else key.in_(bindparam("keys", expanding=True))
        )
        _AMONG[model, as_array] = select(model).where(among)
    return _AMONG[model, as_array]


def _identity(row: object) -> Hashable:
    values = object_mapper(row).primary_key_from_instance(row)
    return values[0] if len(values) == 1 else tuple(values)


@event.listens_for(Session, "transient_to_pending")
def _no_longer_absent(session: Session, instance: object) -> None:
    """A row added to the session is no longer absent, whether it is flushed yet or not; if
    its savepoint rolls back, `find` asks the database, which is never wrong."""
    absent = session.info.get((AHEAD, type(instance), "absent"))
    if absent:
        absent.discard(_identity(instance))


@event.listens_for(Session, "after_soft_rollback")
def _forget_after_rollback(session: Session, previous_transaction: object) -> None:
    """An event's savepoint rolled back: what was read after it began may be undone."""
    remembered = [key for key in session.info if isinstance(key, tuple) and key]
    for key in remembered:
        if key[0] == READ_ONCE or (key[0] == AHEAD and key[-1] == "absent"):
            del session.info[key]
