"""`tradelane topics create|list`: the topic registry on the configured broker."""

from __future__ import annotations

import argparse

from shared.kafka_connection import KafkaConnection
from shared.settings import load_settings
from shared.topics import ALL_TOPICS, TopicNames, create_topics


def cmd_topics(args: argparse.Namespace) -> int:
    settings = load_settings()
    names = TopicNames(settings.topic_prefix)
    if args.action == "create":
        created = create_topics(
            KafkaConnection.from_settings(settings),
            names,
            settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
            min_insync_replicas=settings.topic_min_insync_replicas,
        )
        print(f"{len(created)} topic(s) created, {len(names.all_names()) - len(created)} existed")
        return 0
    print(f"{'topic':<24} {'key':<22} {'writer':<13} {'kind':<10} description")
    for spec in ALL_TOPICS:
        kind = "compacted" if spec.compacted else "stream"
        print(
            f"{names.of(spec):<24} {spec.key:<22} {spec.writer:<13} {kind:<10} {spec.description}"
        )
    return 0
