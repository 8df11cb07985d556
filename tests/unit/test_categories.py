"""Category paths: what a category subtree covers, and the label metrics use."""

from __future__ import annotations

import pytest

from shared.categories import top_level, within


@pytest.mark.parametrize(
    ("category", "subtree"),
    [
        ("fasteners", "fasteners"),
        ("fasteners/bolts", "fasteners"),
        ("fasteners/bolts/hex", "fasteners"),
        ("fasteners/bolts/hex", "fasteners/bolts"),
        ("fasteners/bolts", "fasteners/"),
        ("fasteners", "fasteners/"),
    ],
    ids=["itself", "child", "grandchild", "below-a-deeper-subtree", "trailing-slash", "root"],
)
def test_a_subtree_covers_itself_and_everything_below_it(category: str, subtree: str) -> None:
    assert within(category, subtree)


@pytest.mark.parametrize(
    ("category", "subtree"),
    [
        ("fastenersX/bolts", "fasteners"),
        ("fasteners", "fasten"),
        ("fasteners", "fasteners/bolts"),
        ("fasteners/screws", "fasteners/bolts"),
        ("tools/fasteners", "fasteners"),
    ],
    ids=["longer-segment", "partial-segment", "parent", "sibling", "same-name-deeper"],
)
def test_a_subtree_covers_nothing_outside_its_whole_segments(category: str, subtree: str) -> None:
    assert not within(category, subtree)


@pytest.mark.parametrize(
    ("category", "label"),
    [
        ("fasteners/bolts", "fasteners"),
        ("fasteners/bolts/hex", "fasteners"),
        ("fasteners", "fasteners"),
        ("", "none"),
    ],
    ids=["child", "grandchild", "top-level-itself", "no-category"],
)
def test_top_level_is_the_first_segment_of_the_path(category: str, label: str) -> None:
    assert top_level(category) == label
