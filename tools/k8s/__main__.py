"""``python -m tools.k8s [--check]``: write or check deploy/k8s/components/strimzi/."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tools.k8s.strimzi import COMPONENT_DIR, drifted_files, write_component


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.k8s",
        description="generate the Strimzi KafkaTopic/KafkaUser component from the topic registry",
    )
    parser.add_argument("--check", action="store_true", help="fail if the committed files drifted")
    args = parser.parse_args(argv)
    if args.check:
        drifted = drifted_files()
        for name in drifted:
            print(f"drifted: {COMPONENT_DIR / name}", file=sys.stderr)
        return 1 if drifted else 0
    for name in write_component():
        print(COMPONENT_DIR / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
