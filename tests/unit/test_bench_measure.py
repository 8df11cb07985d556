"""The benchmark's rate definitions: what a burst's completions say about the capacity."""

from __future__ import annotations

from tools.bench.measure import (
    Probe,
    next_probe_rate,
    percentile,
    rounded,
    steady_rate,
    sustainable_rate,
    traffic_per_order,
    whole_rate,
)


def test_a_steady_rate_is_taken_between_the_10th_and_90th_percentile_completion() -> None:
    finish_ms = [1000 + 100 * n for n in range(100)]  # ten per second for ten seconds

    assert steady_rate(finish_ms) == 79 / 7.9


def test_a_burst_that_finished_within_a_few_batches_has_no_steady_rate() -> None:
    # Sixty statuses leaving the relay within two milliseconds measure the relay, not the pipeline.
    assert steady_rate([5000 + n % 3 for n in range(60)]) is None


def test_too_few_completions_have_no_steady_rate() -> None:
    assert steady_rate([0, 1000, 2000, 3000, 4000]) is None


def test_the_whole_rate_counts_from_the_first_due_time_so_it_never_overstates() -> None:
    assert whole_rate(1000, [3000, 3000, 3000, 3000]) == 2.0


def test_a_whole_burst_finishing_within_its_due_millisecond_is_not_taken_as_infinite() -> None:
    assert whole_rate(1000, [1000] * 6) == 60.0


def test_nothing_finished_has_no_whole_rate() -> None:
    assert whole_rate(1000, []) is None


def test_percentiles_are_nearest_rank_and_rounding_keeps_unknown_unknown() -> None:
    values = [float(n) for n in range(1, 101)]

    assert (percentile(values, 0.5), percentile(values, 0.99)) == (50.0, 99.0)
    assert rounded(None) is None and rounded(float("nan")) is None and rounded(1.26) == 1.3


def test_the_capacity_search_steps_down_from_the_burst_until_a_probe_is_sustained() -> None:
    assert next_probe_rate(50.0, []) == 45.0
    overloaded = [Probe(45.0, sustained=False, completed=36.0)]
    assert next_probe_rate(50.0, overloaded) == 36.0 * 0.85


def test_after_a_sustained_probe_the_search_halves_the_gap_to_the_lowest_rate_that_was_not() -> (
    None
):
    tried = [Probe(50.0, False, 36.2), Probe(30.8, True, 30.1)]
    assert next_probe_rate(55.6, tried) == 40.4
    tried.append(Probe(40.4, False, 37.0))
    assert next_probe_rate(55.6, tried) == 35.6
    tried.append(Probe(35.6, True, 35.5))
    assert next_probe_rate(55.6, tried) == 38.0
    tried.append(Probe(38.0, True, 37.9))
    assert next_probe_rate(55.6, tried) is None  # 38.0 to 40.4 is within 8 %
    assert sustainable_rate(tried) == 38.0


def test_a_first_probe_that_is_sustained_ends_the_search() -> None:
    tried = [Probe(45.0, True, 44.8)]
    assert next_probe_rate(50.0, tried) is None
    assert sustainable_rate(tried) == 45.0


def test_without_a_sustained_probe_the_last_completion_rate_is_taken() -> None:
    assert sustainable_rate([Probe(45.0, False, 36.0), Probe(30.6, False, 28.0)]) == 28.0
    assert sustainable_rate([]) is None


def test_messages_per_order_count_what_each_service_reads_and_the_reports_written() -> None:
    before = {"orders.submitted": 100, "orders.validated": 40, "orders.status": 500}
    after = {"orders.submitted": 110, "orders.validated": 48, "orders.status": 530}
    reads = {
        "catalog": ["orders.submitted", "orders.status"],
        "pricing": ["orders.validated", "orders.status"],
    }

    traffic = traffic_per_order(before, after, reads, "orders.status", orders=10)

    assert traffic == {
        "status_reports": 3.0,
        "consumed": {"catalog": 4.0, "pricing": 3.8},
        "consumed_all_services": 7.8,
    }
