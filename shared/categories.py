"""Category paths ('fasteners/bolts'): one meaning of "in a category" for every service.

Approval rules, assortments and metrics all talk about category subtrees; they
must agree on what 'fasteners' covers, so the rule lives here once.
"""

from __future__ import annotations


def within(category: str, subtree: str) -> bool:
    """True if `category` is `subtree` or below it: 'fasteners' covers 'fasteners/bolts'.

    'fasten' does not cover 'fasteners': only whole path segments match.
    """
    root = subtree.rstrip("/")
    return category == root or category.startswith(root + "/")


def top_level(category: str) -> str:
    """The first segment, 'fasteners' for 'fasteners/bolts': a bounded label for metrics."""
    return category.split("/", 1)[0] or "none"
