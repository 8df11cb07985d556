"""Kubernetes tooling: the Strimzi resources generated from the topic registry, and the
offline check of `deploy/k8s` (kustomize render, schema validation, consistency).

`python -m tools.k8s [--check]` writes (or checks) `deploy/k8s/components/strimzi/`.
"""
