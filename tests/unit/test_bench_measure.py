"""The benchmark's rate definitions: what a burst's completions say about the capacity."""

from __future__ import annotations

from tools.bench.measure import percentile, rounded, steady_rate, whole_rate


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
