"""Development tooling, not part of the installed package: a local Kafka, the service fleet,
the demo, its data set and the JSON Schema generator. Run from the repository root, e.g.
`python -m tools.demo` (`make run`)."""
