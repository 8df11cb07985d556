"""The service's start-up settles the garbage collector (see `collect_garbage_less`)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from shared.service import GC_YOUNG_ALLOCATIONS, collect_garbage_less


@pytest.fixture
def collector_as_it_was() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("collector_as_it_was")
def test_start_up_freezes_what_it_built_and_collects_the_young_less_often() -> None:
    gc.unfreeze()
    built_at_start_up = object(), [object()]
    _, middle, oldest = gc.get_threshold()

    collect_garbage_less()

    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (GC_YOUNG_ALLOCATIONS, middle, oldest)
    assert built_at_start_up[1] not in gc.get_objects()  # frozen: no collection scans it
