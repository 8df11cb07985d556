"""Consumer lag in messages and seconds: the rule, the per-partition bookkeeping, the gauges.

The case Kafka exporters get wrong is the idle topic: nothing behind the
consumer is 0 seconds of lag, however long ago the last message was written.
"""

from __future__ import annotations

from typing import NamedTuple

from prometheus_client import REGISTRY

from shared.lag import ConsumerProgress, Lag, PartitionProgress, consumer_lag, topic_lag
from shared.service import consumer_lags, show_lag

NOW = 1_800_000_000.0
HOUR = 3600.0

# --- the rule --------------------------------------------------------------------------------


def test_an_idle_topic_that_is_caught_up_has_no_lag_however_old_its_last_message() -> None:
    assert consumer_lag(
        highwater=42, position=42, oldest_unprocessed_at=NOW - 30 * 86400, now=NOW
    ) == Lag(0, 0.0)


def test_an_empty_topic_has_no_lag() -> None:
    assert consumer_lag(0, 0, None, NOW) == Lag(0, 0.0)


def test_behind_is_the_messages_not_processed_and_the_age_of_the_oldest() -> None:
    assert consumer_lag(
        highwater=50, position=42, oldest_unprocessed_at=NOW - 12.5, now=NOW
    ) == Lag(8, 12.5)


def test_a_position_past_the_last_known_highwater_or_a_future_timestamp_is_never_negative() -> None:
    assert consumer_lag(40, 42, NOW - 5, NOW) == Lag(0, 0.0)
    assert consumer_lag(43, 42, NOW + 2, NOW) == Lag(1, 0.0)


def test_behind_without_any_timestamp_has_an_unknown_age() -> None:
    assert consumer_lag(10, 0, None, NOW) == Lag(10, None)


# --- one partition, as the consume path and the scrapes see it ---------------------------------


def test_the_message_in_hand_is_the_oldest_not_processed() -> None:
    progress = ConsumerProgress()
    progress.finished("orders.submitted", 0, 41, NOW - HOUR)
    progress.started("orders.submitted", 0, 42, NOW - 3.0)
    assert progress.of("orders.submitted", 0).lag(highwater=43, committed=None, now=NOW) == Lag(
        1, 3.0
    )


def test_done_with_the_last_message_the_partition_is_caught_up() -> None:
    progress = ConsumerProgress()
    progress.started("orders.submitted", 1, 42, NOW - 3.0)
    progress.finished("orders.submitted", 1, 42, NOW - 3.0)
    assert progress.of("orders.submitted", 1).lag(43, None, NOW) == Lag(0, 0.0)
    # an hour of silence later, still nothing behind
    assert progress.of("orders.submitted", 1).lag(43, None, NOW + HOUR) == Lag(0, 0.0)


def test_a_topic_waking_up_after_an_idle_hour_does_not_report_an_hour() -> None:
    """Between messages the next one's timestamp is unknown here: it is no older than the last
    time the partition was seen caught up, so that bounds the age, not the hour-old message."""
    partition = PartitionProgress()
    partition.processed_offset, partition.processed_at = 41, NOW - HOUR
    assert partition.lag(42, None, NOW - 10) == Lag(0, 0.0)  # a scrape sees it caught up
    woken = partition.lag(43, None, NOW)  # a message arrived, the agent has not taken it yet
    assert woken == Lag(1, 10.0)


def test_behind_since_the_last_message_processed_is_the_bound_without_a_caught_up_scrape() -> None:
    partition = PartitionProgress(processed_offset=41, processed_at=NOW - 20)
    assert partition.lag(45, None, NOW) == Lag(3, 20.0)


def test_the_groups_commit_wins_when_another_worker_processed_further() -> None:
    """After a rebalance this worker's memory of a partition may be behind the group's commit."""
    partition = PartitionProgress(processed_offset=9, processed_at=NOW - HOUR)
    assert partition.position(committed=30) == 30
    assert partition.lag(30, committed=30, now=NOW) == Lag(0, 0.0)
    assert PartitionProgress(processed_offset=40).position(committed=30) == 41


def test_a_partition_not_processed_here_takes_its_position_from_the_commit() -> None:
    assert PartitionProgress().lag(highwater=7, committed=7, now=NOW) == Lag(0, 0.0)
    assert PartitionProgress().lag(highwater=0, committed=None, now=NOW) == Lag(0, 0.0)
    assert PartitionProgress().lag(highwater=7, committed=None, now=NOW) is None  # not known yet


def test_a_late_finish_of_an_older_offset_does_not_move_the_position_back() -> None:
    progress = ConsumerProgress()
    progress.finished("t", 0, 10, NOW - 1)
    progress.finished("t", 0, 8, NOW - 5)
    assert progress.of("t", 0).processed_offset == 10
    assert progress.of("t", 0).processed_at == NOW - 1


# --- a topic over the partitions a worker owns ---------------------------------------------------


def test_a_topics_lag_adds_the_messages_and_takes_the_oldest_age() -> None:
    assert topic_lag([Lag(3, 2.0), Lag(0, 0.0), Lag(5, 9.0)]) == Lag(8, 9.0)


def test_a_worker_owning_no_partition_of_a_topic_is_not_behind_on_it() -> None:
    assert topic_lag([]) == Lag(0, 0.0)


def test_partitions_whose_lag_is_unknown_leave_the_topic_unknown_or_count_out() -> None:
    assert topic_lag([None, None]) is None
    assert topic_lag([None, Lag(2, 4.0)]) == Lag(2, 4.0)
    assert topic_lag([Lag(2, None)]) == Lag(2, None)


# --- read from a consumer the way the scrape hook does ----------------------------------------


class TP(NamedTuple):
    topic: str
    partition: int


class ConsumerView:
    """What the hook reads from Faust's consumer: assignment, highwaters, committed offsets."""

    def __init__(self, highwaters: dict[TP, int | None], committed: dict[TP, int]) -> None:
        self.highwaters = highwaters
        self._committed_offset = committed

    def assignment(self) -> set[TP]:
        return set(self.highwaters)

    def highwater(self, tp: TP) -> int | None:
        return self.highwaters[tp]


class NotStarted:
    def assignment(self) -> set[TP]:
        raise RuntimeError("Consumer thread not yet started")


TOPICS = {"x.orders.submitted": "orders.submitted", "x.orders.status": "orders.status"}


def test_the_hook_reads_each_owned_partition_and_reports_per_topic() -> None:
    progress = ConsumerProgress()
    progress.finished("orders.submitted", 0, 4, NOW - 1)
    progress.started("orders.submitted", 1, 10, NOW - 6)
    consumer = ConsumerView(
        {
            TP("x.orders.submitted", 0): 5,  # caught up
            TP("x.orders.submitted", 1): 12,  # offset 10 in hand, 11 waiting
            TP("x.orders.status", 0): 3,  # idle, committed by the group before this worker
            TP("x.elsewhere", 0): 99,  # not a topic this service's agents read
        },
        {TP("x.orders.status", 0): 3},
    )
    lags = consumer_lags(consumer, TOPICS, progress, NOW)
    assert lags["orders.submitted"] == Lag(2, 6.0)
    assert lags["orders.status"] == Lag(0, 0.0)


def test_before_the_consumer_runs_or_fetches_nothing_is_claimed() -> None:
    assert consumer_lags(NotStarted(), TOPICS, ConsumerProgress(), NOW) == {}
    unfetched = ConsumerView({TP("x.orders.submitted", 0): None}, {})
    lags = consumer_lags(unfetched, TOPICS, ConsumerProgress(), NOW)
    assert lags == {"orders.submitted": None, "orders.status": Lag(0, 0.0)}


def gauge(name: str, topic: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"service": "lag-test", "topic": topic})


def test_the_gauges_show_the_lag_and_drop_what_is_not_known() -> None:
    show_lag("lag-test", "orders.submitted", Lag(3, 7.5))
    assert gauge("tradelane_consumer_lag_messages", "orders.submitted") == 3
    assert gauge("tradelane_consumer_lag_seconds", "orders.submitted") == 7.5
    show_lag("lag-test", "orders.submitted", Lag(3, None))
    assert gauge("tradelane_consumer_lag_messages", "orders.submitted") == 3
    assert gauge("tradelane_consumer_lag_seconds", "orders.submitted") is None
    show_lag("lag-test", "orders.submitted", None)
    assert gauge("tradelane_consumer_lag_messages", "orders.submitted") is None
    show_lag("lag-test", "orders.submitted", Lag(0, 0.0))
    assert gauge("tradelane_consumer_lag_messages", "orders.submitted") == 0
    assert gauge("tradelane_consumer_lag_seconds", "orders.submitted") == 0
