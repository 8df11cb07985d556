"""Tables standing in for a service's rows in the tests of what a batch reads and what a
worker keeps across transactions (`shared.batch_reads`, `shared.reference_cache`)."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Part(Base):
    __tablename__ = "parts"
    sku: Mapped[str] = mapped_column(String(40), primary_key=True)
    units: Mapped[int]


class Bin(Base):
    """A composite key, like an early cancellation's (order, account)."""

    __tablename__ = "bins"
    aisle: Mapped[str] = mapped_column(String(10), primary_key=True)
    shelf: Mapped[str] = mapped_column(String(10), primary_key=True)
