"""Consumer lag as the service itself sees it: messages behind, and how old the oldest one is.

Kafka exporters compute lag from the group's committed offsets and, for
seconds, from the time of the last message, so an idle topic shows a lag that
grows forever. Here the rule is: the lag in messages is the partition's high
watermark minus the position of the next message to process; the lag in
seconds is the age of the oldest message not yet processed — and with nothing
behind the consumer there is no such message, so both are 0, however long the
topic has been quiet.

`consumer_lag` is the rule; `ConsumerProgress` keeps, per partition, what the
rule needs from the consume path (the message in hand, the last one done).
Neither knows Faust: `shared.service` reads the high watermarks from the
consumer when Prometheus scrapes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Lag:
    messages: int
    seconds: float | None
    """None when messages are behind but no record timestamp is known yet."""


def consumer_lag(
    highwater: int, position: int, oldest_unprocessed_at: float | None, now: float
) -> Lag:
    """Lag of one partition.

    `highwater` is the offset the next produced message will get; `position`
    the offset of the next message to process (last processed + 1);
    `oldest_unprocessed_at` the record timestamp (epoch seconds) of the oldest
    message not yet processed, or the best bound known for it (see
    `PartitionProgress.oldest_unprocessed_at`); `now` in epoch seconds.
    Caught up means 0 seconds, whatever the timestamps say.
    """
    messages = max(0, highwater - position)
    if messages == 0:
        return Lag(0, 0.0)
    if oldest_unprocessed_at is None:
        return Lag(messages, None)
    return Lag(messages, max(0.0, now - oldest_unprocessed_at))


@dataclass
class PartitionProgress:
    """What the consume path did last on one partition."""

    processed_offset: int | None = None
    processed_at: float | None = None
    """Record timestamp of the last message processed."""
    in_hand_offset: int | None = None
    in_hand_at: float | None = None
    """Record timestamp of the message being processed now, if any."""
    caught_up_at: float | None = None
    """Wall-clock time the partition was last seen with nothing behind."""

    def position(self, committed: int | None) -> int | None:
        """The next offset to process: the one in hand, the one after the last one done here,
        or the group's commit.

        The furthest wins: after a rebalance another worker may have processed
        this partition past what this one remembers.
        """
        done = None if self.processed_offset is None else self.processed_offset + 1
        known = [o for o in (self.in_hand_offset, done, committed) if o is not None]
        return max(known) if known else None

    def oldest_unprocessed_at(self) -> float | None:
        """The timestamp of the oldest message not yet processed, or a bound for it.

        The message in hand is that message. Between messages the next one is
        not readable here, but it is no older than the last one processed, nor
        (give or take a fetch interval) than the last moment nothing was
        behind: the later of the two bounds it from below, so the lag in
        seconds is an upper bound, and a topic that wakes up after an idle
        hour does not report an hour.
        """
        if self.in_hand_offset is not None:
            return self.in_hand_at
        bounds = [t for t in (self.processed_at, self.caught_up_at) if t is not None]
        return max(bounds) if bounds else None

    def lag(self, highwater: int, committed: int | None, now: float) -> Lag | None:
        """This partition's lag now; None if its position is not known yet."""
        position = self.position(committed)
        if position is None:
            return Lag(0, 0.0) if highwater == 0 else None
        found = consumer_lag(highwater, position, self.oldest_unprocessed_at(), now)
        if found.messages == 0:
            self.caught_up_at = now
        return found


class ConsumerProgress:
    """Per (topic, partition): the message in hand and the last one processed."""

    def __init__(self) -> None:
        self._partitions: dict[tuple[str, int], PartitionProgress] = {}

    def of(self, topic: str, partition: int) -> PartitionProgress:
        return self._partitions.setdefault((topic, partition), PartitionProgress())

    def started(self, topic: str, partition: int, offset: int, timestamp: float | None) -> None:
        progress = self.of(topic, partition)
        progress.in_hand_offset, progress.in_hand_at = offset, timestamp

    def finished(self, topic: str, partition: int, offset: int, timestamp: float | None) -> None:
        progress = self.of(topic, partition)
        progress.in_hand_offset = progress.in_hand_at = None
        if progress.processed_offset is None or offset >= progress.processed_offset:
            progress.processed_offset = offset
            if timestamp is not None:
                progress.processed_at = timestamp


def topic_lag(lags: Iterable[Lag | None]) -> Lag | None:
    """One topic's lag over the partitions this worker owns: messages add up, seconds is the
    oldest. A worker owning none of them is not behind; None if no owned partition's lag is
    known yet."""
    owned = list(lags)
    known = [lag for lag in owned if lag is not None]
    if not owned:
        return Lag(0, 0.0)
    if not known:
        return None
    ages = [lag.seconds for lag in known if lag.seconds is not None]
    messages = sum(lag.messages for lag in known)
    seconds = max(ages) if ages else (0.0 if messages == 0 else None)
    return Lag(messages, seconds)
