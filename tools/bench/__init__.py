"""`make bench`: Tradelane's throughput, latency and cost against the raw Kafka chain's.

See docs/performance.md for what each number means and how to run it.
"""
