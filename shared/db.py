"""Each service's own database, and the inbox/outbox that make its effects exactly-once.

Handling an event is one transaction: record its `event_id` in the inbox (a
duplicate stops here), apply the state change, write outgoing events to the
outbox. `OutboxRelay` later publishes the outbox. A crash anywhere leaves
either a redelivery the inbox drops or an unsent row the relay sends on restart.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
import uuid
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    BindParameter,
    Column,
    DateTime,
    Dialect,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    String,
    Table,
    Text,
    TypeDecorator,
    bindparam,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared import metrics, reference_cache
from shared.batch_reads import written_kinds
from shared.contract import Channel, Event, OrderState, OrderStatusChanged, Reason
from shared.topics import ORDERS_STATUS, TopicNames, TopicSpec, repeating


class ExactDecimal(TypeDecorator[Decimal]):
    """Money and weights kept as decimal text, so they come back exactly as they were sent.

    SQLite stores NUMERIC as a float and SQLAlchemy then quantizes it to the
    column's scale: a unit price of 0.33335 would silently come back as 0.3333.
    """

    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        return None if value is None else format(value, "f")

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


def as_utc(moment: datetime) -> datetime:
    """A datetime read back from the database, in UTC: SQLite returns them naive."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def messaging_tables(metadata: MetaData) -> tuple[Table, Table]:
    """Add the inbox and outbox tables to a service's own metadata."""
    inbox = Table(
        "inbox",
        metadata,
        Column("event_id", String(36), primary_key=True),
        Column("topic", String(200), nullable=False),
        Column("received_at", DateTime(timezone=True), nullable=False),
    )
    outbox = Table(
        "outbox",
        metadata,
        Column(
            "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
        Column("topic", String(200), nullable=False),
        Column("key", LargeBinary, nullable=True),
        Column("value", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("sent_at", DateTime(timezone=True), nullable=True, index=True),
        Column("parked_at", DateTime(timezone=True), nullable=True),
        Column("park_reason", Text, nullable=True),
    )
    return inbox, outbox


SQLITE_BUSY_MS = 30_000
"""How long a SQLite writer waits for another's lock before it gives up."""


def _switch_to_wal(cursor: Any) -> None:
    """`PRAGMA journal_mode=WAL`, retried while another connection is switching at once.

    Two connections that both read the header and then both want the exclusive
    lock would deadlock, so SQLite answers one of them `database is locked` at
    once instead of calling the busy handler: workers starting together on a new
    file hit this. Runs in aiosqlite's own thread, so sleeping here blocks no loop.
    """
    deadline = time.monotonic() + SQLITE_BUSY_MS / 1000
    pause = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.2)


def _prepare_sqlite(engine: AsyncEngine, url: str) -> None:
    """SQLite as a real transactional store: WAL, a busy timeout, and BEGIN IMMEDIATE.

    pysqlite defers BEGIN, which breaks SAVEPOINT and lets two writers deadlock on
    lock upgrade; taking the write lock at BEGIN serialises writers cleanly.
    """
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})
"""PostgreSQL's deadlock_detected and serialization_failure: the transaction lost a race."""


def lost_a_race(error: BaseException) -> bool:
    """Whether the database aborted the transaction to let a concurrent one through.

    Nothing is wrong with the events: a batch locking two accounts in the order its
    events came can meet another worker's batch locking them the other way round.
    Running the transaction again is the cure.
    """
    orig = getattr(error, "orig", None)
    return getattr(orig, "sqlstate", None) in CONFLICT_SQLSTATES


class OrderIdentity(Protocol):
    """What a status event needs to name an order: an `Order`, or a service's own record of it."""

    @property
    def order_id(self) -> str: ...
    @property
    def account_id(self) -> str | None: ...
    @property
    def channel(self) -> Channel | str | None: ...


@dataclass
class Transaction:
    """The unit of work handed to a handler: a session, the outbox, and whose work it is."""

    session: AsyncSession
    outbox_table: Table
    names: TopicNames
    service: str
    published: list[dict[str, Any]] = field(default_factory=list)
    """Outbox rows queued so far; `write_outbox` inserts them in one statement at the end."""
    committed: list[Callable[[], None]] = field(default_factory=list)

    def on_commit(self, action: Callable[[], None]) -> None:
        """Run `action` once this transaction has committed, never if it rolls back.

        Metrics are counted this way: a transaction retried after a database
        outage would otherwise count its effects twice. An action queued inside
        a savepoint that rolls back is dropped with it.
        """
        self.committed.append(action)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """One event's share of a batch: if the block raises, only its own work is undone.

        The block's rows, outbox rows and `on_commit` actions go with it, so a
        bad event rolls back alone and its good neighbours in the batch commit.
        """
        published, committed = len(self.published), len(self.committed)
        try:
            async with self.session.begin_nested():
                yield
        except BaseException:
            del self.published[published:]
            del self.committed[committed:]
            raise

    async def publish(self, spec: TopicSpec, event: Event) -> None:
        """Queue an event for its topic; it is sent only if this transaction commits."""
        await self.publish_raw(self.names.of(spec), spec.key_of(event).encode(), event.to_bytes())

    async def report(
        self,
        order: OrderIdentity,
        state: OrderState,
        *,
        reason: Reason | None = None,
        not_repeated_on: Collection[TopicSpec] = (),
        **details: Any,
    ) -> None:
        """Publish an order's transition on `orders.status` (and on the topics that repeat it
        for the services that act on it), counted by channel and outcome (and a rejection
        by its reason code, for the dashboards' rejections by reason).

        `not_repeated_on` names report topics whose readers would not act on this
        order's transition, as the reporting service knows from what it was told (an
        approval of an order pricing holds nothing for): it is not repeated there.
        """
        channel = Channel(order.channel) if order.channel else None
        status = OrderStatusChanged.new(
            order_id=order.order_id,
            account_id=order.account_id,
            channel=channel,
            status=state,
            reported_by=self.service,
            reason=reason,
            **details,
        )
        value = status.to_bytes()  # one report, the same bytes on every topic carrying it
        for spec in (ORDERS_STATUS, *repeating(state)):
            if spec not in not_repeated_on:
                await self.publish_raw(self.names.of(spec), spec.key_of(status).encode(), value)
        label = channel.value if channel else "unknown"
        self.on_commit(metrics.ORDERS.labels(self.service, label, state.value).inc)
        if state is OrderState.REJECTED and reason is not None:
            rejected = metrics.ORDER_REJECTIONS.labels(self.service, label, reason.code.value)
            self.on_commit(rejected.inc)

    def order_reached(self, stage: metrics.OrderStage, submitted_at: datetime | None) -> None:
        """Time the order from its submission to `stage`, once this transaction commits.

        `submitted_at` is None for an event written before the pipeline carried it:
        that order is simply not timed.
        """
        if submitted_at is not None:
            self.on_commit(partial(metrics.observe_stage, self.service, stage, submitted_at))

    async def publish_raw(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Queue a row for the outbox (kept in memory until the commit, in publishing order)."""
        row = {"topic": topic, "key": key, "value": value, "created_at": datetime.now(UTC)}
        self.published.append(row)

    async def write_outbox(self) -> None:
        """Insert every queued row in one statement: a batch of events costs one round trip
        for its outgoing events, not one per event."""
        if self.published:
            await self.session.execute(_insert_into(self.outbox_table), self.published)


def insert_unless_present(session: AsyncSession, target: Any, key: str, **values: Any) -> Any:
    """An `INSERT` of one row that does nothing if a row with the same `key` is there
    (`ON CONFLICT DO NOTHING`): PostgreSQL and SQLite both have it, each under its own
    statement builder, so the session's dialect picks the builder."""
    build = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    return build(target).values(**values).on_conflict_do_nothing(index_elements=[key])


@functools.cache
def _insert_into(table: Table) -> Any:
    """One `INSERT` statement object per table, built once: SQLAlchemy then finds its
    compiled form by a cache key it memoizes on the object, where a statement built per
    call costs that key's computation every time."""
    return insert(table)


class OrderRecord:
    """The columns every service keeps of each order it has seen: whose it is, where it stands.

    Mixed into each service's own `orders` table (with the service's own extra
    columns), so "have I seen this order, whose is it, in which state" reads the
    same everywhere; `state` holds the service's own state machine's value.
    """

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    channel: Mapped[str | None] = mapped_column(String(3), nullable=True)
    state: Mapped[str] = mapped_column(String(30))


@dataclass(frozen=True)
class OutboxRow:
    id: int
    topic: str
    key: bytes | None
    value: bytes

    @property
    def size(self) -> int:
        return len(self.value) + len(self.key or b"")


def _by_id(row: OutboxRow) -> int:
    return row.id


@dataclass(frozen=True)
class ParkedRow:
    """An outbox row the broker refused for good, set aside for ops to retry or drop."""

    id: int
    topic: str
    size: int
    created_at: datetime
    parked_at: datetime
    reason: str


@dataclass
class OutboxBatch:
    """Rows the relay holds locked; those it does not park are marked sent when it ends."""

    rows: list[OutboxRow]
    parked: dict[int, str] = field(default_factory=dict)

    def park(self, row: OutboxRow, reason: str) -> None:
        self.parked[row.id] = reason[:2000]

    @property
    def sent(self) -> list[OutboxRow]:
        return [row for row in self.rows if row.id not in self.parked]


SCHEMA_LOCK_KEY = 7_326_101
"""Advisory lock id held while a worker creates its service's tables (any fixed number)."""


class SchemaMismatch(SystemExit):
    """The database was created by an older version of the service."""


PREPARED_STATEMENTS = 500
"""Statements each PostgreSQL connection keeps prepared (the driver's default is 100).

A service's handlers, inbox, outbox and relay use more distinct statements than
that, and one evicted is prepared again on its next use: a round trip more.
"""


@dataclass(frozen=True)
class ConnectionPool:
    """How many PostgreSQL connections one worker may hold: `size` kept, `overflow` more.

    A server's `max_connections` is shared by every worker of every service on it, so
    ops size it as workers x (size + overflow); SQLite files need no pool.
    """

    size: int = 5
    overflow: int = 5
    wait_seconds: float = 30.0
    """How long a checkout waits for a free connection before it counts as unavailable."""

    def options(self) -> dict[str, float]:
        return {
            "pool_size": self.size,
            "max_overflow": self.overflow,
            "pool_timeout": self.wait_seconds,
        }


class ServiceDatabase:
    """One service's database: engine, sessions, inbox and outbox."""

    def __init__(
        self,
        url: str,
        metadata: MetaData,
        names: TopicNames,
        service: str = "tradelane",
        pool: ConnectionPool | None = None,
        reference_seconds: float = reference_cache.DEFAULT_SECONDS,
    ) -> None:
        self.url = url
        self.service = service
        self.metadata = metadata
        self.names = names
        self.inbox, self.outbox = (
            (metadata.tables["inbox"], metadata.tables["outbox"])
            if "inbox" in metadata.tables
            else messaging_tables(metadata)
        )
        self.is_sqlite = url.startswith("sqlite")
        options: dict[str, Any] = (
            {}
            if self.is_sqlite
            else {
                **(pool or ConnectionPool()).options(),
                # No ping before each checkout: asyncpg's costs three round trips (BEGIN, a
                # query, ROLLBACK) on every transaction. A connection the server dropped
                # fails its first use instead; that error renews the pool, and the batch
                # or relay round runs again (`shared.consume.database_trouble`).
                "pool_pre_ping": False,
                "connect_args": {"prepared_statement_cache_size": PREPARED_STATEMENTS},
            }
        )
        self.engine = create_async_engine(url, **options)
        if self.is_sqlite:
            _prepare_sqlite(self.engine, url)
        self.reference = reference_cache.ReferenceCache(reference_seconds)
        """Reference rows remembered across this database's transactions (`read_reference`)."""
        self.sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, info={reference_cache.CACHE: self.reference}
        )
        self.outbox_written = asyncio.Event()
        """Set after every commit that wrote to the outbox: the relay waits on it."""

    async def create_tables(self) -> None:
        """Create missing tables, then refuse to start on tables of an older layout.

        There are no migrations yet: a column the code needs but the database
        lacks would fail every message later, which looks like an outage and is
        retried forever. Failing here names the database and what is missing.
        """
        async with self.engine.begin() as connection:
            if not self.is_sqlite:  # SQLite's BEGIN IMMEDIATE already lets one in at a time
                # Workers of a service starting together would each see the tables missing
                # and create them; PostgreSQL then fails all but one on its catalog's keys.
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY}
                )
            await connection.run_sync(self.metadata.create_all)
            missing = await connection.run_sync(self._missing_columns)
        if missing:
            raise SchemaMismatch(
                f"database {self.engine.url.render_as_string(hide_password=True)} has tables of "
                f"an older layout (missing {', '.join(missing)}); move it aside or delete it "
                "(make clean removes the local ones) so it is created afresh"
            )

    def _missing_columns(self, connection: Any) -> list[str]:
        inspector = inspect(connection)
        return [
            f"{table.name}.{column.name}"
            for table in self.metadata.sorted_tables
            for column in table.columns
            if column.name not in {c["name"] for c in inspector.get_columns(table.name)}
        ]

    async def dispose(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """One unit of work; after it commits, its `on_commit` actions run and the relay wakes.

        The commit runs inside the reference cache's `changing` for the kinds the
        transaction wrote: a transaction that starts after it reads the change.
        """
        async with self.sessions() as session, session.begin():
            tx = Transaction(session, self.outbox, self.names, self.service)
            yield tx
            await tx.write_outbox()
            with self.reference.changing(written_kinds(session)):
                await session.commit()
        for action in tx.committed:
            action()
        if tx.published:
            self.outbox_written.set()

    async def first_delivery(self, tx: Transaction, event_id: uuid.UUID | str, topic: str) -> bool:
        """Record `event_id` in the inbox; False if it was already there (a redelivery)."""
        result = await tx.session.execute(
            insert_unless_present(
                tx.session,
                self.inbox,
                "event_id",
                event_id=str(event_id),
                topic=topic,
                received_at=datetime.now(UTC),
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def first_deliveries(
        self, tx: Transaction, event_ids: Sequence[str], topic: str
    ) -> set[str]:
        """Record a batch's event ids in the inbox in one statement; the ones new to it.

        An id another worker's transaction has just written makes PostgreSQL wait
        for that transaction, and then counts as seen: as with `first_delivery`,
        two workers never both take an event.
        """
        if not event_ids:
            return set()
        now = datetime.now(UTC)
        parameters: dict[str, Any] = {}
        if self.is_sqlite:
            statement = self._new_to_inbox(
                sqlite_insert(self.inbox).values(
                    [{"event_id": i, "topic": topic, "received_at": now} for i in event_ids]
                )
            )
        else:
            statement = self._pg_inbox_insert
            parameters = {"ids": list(event_ids), "topic": topic, "now": now}
        return set((await tx.session.execute(statement, parameters)).scalars())

    def _new_to_inbox(self, statement: Any) -> Any:
        """An inbox insert that skips ids already there and returns those it added."""
        return statement.on_conflict_do_nothing(index_elements=["event_id"]).returning(
            self.inbox.c.event_id
        )

    @functools.cached_property
    def _pg_inbox_insert(self) -> Any:
        """The inbox insert with the ids as one array: the same statement text for every
        batch size, so PostgreSQL prepares it once (a row per id in `VALUES` would make
        each batch size a statement of its own, and churn the prepared-statement cache),
        and one statement object, built once, whose cache key SQLAlchemy computes once."""
        ids = func.unnest(bindparam("ids", type_=ARRAY(String)))
        rows = select(ids, bindparam("topic", type_=String), bindparam("now", type_=DateTime(True)))
        return self._new_to_inbox(
            pg_insert(self.inbox).from_select(["event_id", "topic", "received_at"], rows)
        )

    async def received(self, session: AsyncSession, event_id: uuid.UUID | str) -> bool:
        """Whether an event with this id is in the inbox already: a new one with it is dropped."""
        found = await session.scalar(
            select(self.inbox.c.event_id).where(self.inbox.c.event_id == str(event_id))
        )
        return found is not None

    def _oldest_unsent(self, limit: int | BindParameter[int]) -> Select[Any]:
        outbox = self.outbox.c
        return (
            select(outbox.id, outbox.topic, outbox.key, outbox.value)
            .where(outbox.sent_at.is_(None), outbox.parked_at.is_(None))
            .order_by(outbox.id)
            .limit(limit)
        )

    @functools.cached_property
    def _claim_oldest(self) -> Any:
        """Claim the oldest unsent rows and mark them sent, in one statement built once
        (`limit` and `now` are its parameters); the relay's failure rolls the mark back."""
        outbox = self.outbox.c
        limit = bindparam("limit", type_=Integer)
        oldest = self._oldest_unsent(limit).with_only_columns(outbox.id).with_for_update()
        return (
            update(self.outbox)
            .where(outbox.id.in_(oldest.scalar_subquery()))
            .values(sent_at=bindparam("now", type_=DateTime(True)))
            .returning(outbox.id, outbox.topic, outbox.key, outbox.value)
        )

    async def unsent(self, limit: int) -> list[OutboxRow]:
        async with self.sessions() as session:
            return [OutboxRow(*row) for row in await session.execute(self._oldest_unsent(limit))]

    @asynccontextmanager
    async def sending(self, limit: int) -> AsyncIterator[OutboxBatch]:
        """The oldest unsent rows, locked until the block ends; then they are marked sent.

        Several workers of a service share its database and each runs a relay: the
        row locks (`FOR UPDATE` on PostgreSQL, the write lock `BEGIN IMMEDIATE` takes
        on SQLite) make a second relay wait instead of sending the same rows again,
        and waiting rather than skipping keeps each key's events in order. If the
        block raises (the broker is away), nothing is marked and the rows are sent
        again later. Rows the block parks (the broker refused them for good) are
        set aside instead, so they no longer hold up the rows behind them.
        """
        outbox = self.outbox.c
        parameters = {"limit": limit, "now": datetime.now(UTC)}
        async with self.engine.begin() as connection:  # plain SQL: no session to keep
            claimed = await connection.execute(self._claim_oldest, parameters)
            rows = sorted((OutboxRow(*row) for row in claimed), key=_by_id)
            batch = OutboxBatch(rows)
            yield batch
            now = datetime.now(UTC)
            for row_id, reason in batch.parked.items():
                await connection.execute(
                    update(self.outbox)
                    .where(outbox.id == row_id)
                    .values(sent_at=None, parked_at=now, park_reason=reason)
                )

    # --- parked rows: what ops see and decide -------------------------------------------

    async def parked(self, limit: int = 100) -> list[ParkedRow]:
        outbox = self.outbox.c
        query = (
            select(
                outbox.id,
                outbox.topic,
                func.length(outbox.value),
                outbox.created_at,
                outbox.parked_at,
                outbox.park_reason,
            )
            .where(outbox.parked_at.is_not(None))
            .order_by(outbox.id)
            .limit(limit)
        )
        async with self.sessions() as session:
            return [
                ParkedRow(row_id, topic, size, as_utc(created), as_utc(parked), reason or "")
                for row_id, topic, size, created, parked, reason in await session.execute(query)
            ]

    async def count_unsent(self) -> int:
        """Rows committed but not yet sent (parked ones not counted: they wait for ops)."""
        outbox = self.outbox.c
        query = select(func.count()).where(outbox.sent_at.is_(None), outbox.parked_at.is_(None))
        async with self.sessions() as session:
            return int((await session.execute(query)).scalar_one())

    async def count_parked(self) -> int:
        query = select(func.count()).where(self.outbox.c.parked_at.is_not(None))
        async with self.sessions() as session:
            return int((await session.execute(query)).scalar_one())

    async def retry_parked(self, row_ids: Sequence[int]) -> int:
        """Put parked rows back in line (after ops raised a broker limit, say)."""
        outbox = self.outbox.c
        async with self.transaction() as tx:
            result = await tx.session.execute(
                update(self.outbox)
                .where(outbox.id.in_(row_ids), outbox.parked_at.is_not(None))
                .values(parked_at=None, park_reason=None)
            )
            count = int(result.rowcount)  # type: ignore[attr-defined]
        self.outbox_written.set()
        return count

    async def drop_parked(self, row_ids: Sequence[int]) -> int:
        """Give up on parked rows for good: ops decided the event will never be sent."""
        outbox = self.outbox.c
        async with self.transaction() as tx:
            result = await tx.session.execute(
                delete(self.outbox).where(outbox.id.in_(row_ids), outbox.parked_at.is_not(None))
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    # --- retention ------------------------------------------------------------------------

    async def forget_before(self, moment: datetime, limit: int = 5000) -> int:
        """Delete inbox entries received and outbox rows sent before `moment`, `limit` at a time.

        Keeping every event id forever grows the inbox without bound; an id only
        has to outlive the redeliveries it guards against (see the retention
        setting). Deleting in slices keeps each transaction short.
        """
        inbox, outbox = self.inbox.c, self.outbox.c
        old_ids = select(inbox.event_id).where(inbox.received_at < moment).limit(limit)
        sent_ids = select(outbox.id).where(outbox.sent_at < moment).limit(limit)
        async with self.transaction() as tx:
            forgotten = await tx.session.execute(
                delete(self.inbox).where(inbox.event_id.in_(old_ids))
            )
            cleared = await tx.session.execute(delete(self.outbox).where(outbox.id.in_(sent_ids)))
        return int(forgotten.rowcount) + int(cleared.rowcount)  # type: ignore[attr-defined]
