# The one Tradelane image: every service runs from it, the command picks which.
#
#   make image                                        # docker build -t tradelane:<commit> .
#   docker run --rm tradelane:<commit> services.pricing
#   docker run --rm --entrypoint tradelane tradelane:<commit> topics list
#
# The base is pinned to an exact Python patch release and Debian release (never
# `3.11` or `latest`), so a rebuild gets the same interpreter. Pin the digest too
# where an engine can see the registry:
#   docker buildx imagetools inspect python:3.11.17-slim-trixie   # -> FROM python:3.11.17-slim-trixie@sha256:…
# tests/unit/test_image.py checks these promises (pins, numeric non-root user, no
# build tools or dev extra, the constraints file, the service modules the image is
# started with).

# --- builder: the locked runtime dependency set in a venv (no [dev] extra) -------------
FROM python:3.11.17-slim-trixie AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml constraints.txt ./
COPY shared ./shared
COPY services ./services
COPY cli ./cli

# Every runtime dependency ships a CPython 3.11 manylinux wheel (checked for x86_64 with
# `pip download --only-binary :all:`), so no compiler is needed even here. The venv's
# own pip is removed: nothing installs at run time.
RUN python -m venv /opt/tradelane \
 && /opt/tradelane/bin/pip install --no-cache-dir -c constraints.txt . \
 && /opt/tradelane/bin/pip uninstall -y pip \
 && find /opt/tradelane -name '__pycache__' -prune -exec rm -rf {} +

# --- runtime: the venv and nothing else -------------------------------------------------
FROM python:3.11.17-slim-trixie AS runtime

ENV PATH=/opt/tradelane/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TRADELANE_DATA_DIR=/var/lib/tradelane \
    HOME=/var/lib/tradelane \
    WEB_BIND=0.0.0.0

COPY --from=builder /opt/tradelane /opt/tradelane

# The only place a service writes: SQLite files (when DATABASE_URL is not set) and
# Faust's datadir, under TRADELANE_DATA_DIR (also HOME: user 10001 has no passwd entry).
# Kubernetes mounts an emptyDir here, and one at /tmp for SQLite's and Python's temp
# files, so the root filesystem can be read-only.
RUN mkdir -p /var/lib/tradelane && chown 10001:10001 /var/lib/tradelane
VOLUME ["/var/lib/tradelane"]
WORKDIR /var/lib/tradelane

# Numeric, so Kubernetes' runAsNonRoot can verify it without an /etc/passwd entry.
USER 10001:10001

# /metrics, /health and the APIs: catalog 6061, pricing 6062, approvals 6063,
# fulfillment 6064 (WEB_PORT overrides).
EXPOSE 6061 6062 6063 6064

ENTRYPOINT ["python", "-m"]
CMD ["services.catalog"]
