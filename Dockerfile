# syntax=docker/dockerfile:1
# The bridge image: `bridge` as the entrypoint, e.g.
#   docker build -t amqp-mqtt-bridge .
#   docker run --rm amqp-mqtt-bridge backends
#   docker run --rm -e BRIDGE_MQTT__URL=mqtt://broker:1883 amqp-mqtt-bridge demo --backend mqtt
#
# The base is pinned to a patch release (bump it deliberately; for byte-for-byte rebuilds pin
# the digest too: python:3.11.11-slim-bookworm@sha256:...).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---- builder: wheels for the project and every dependency ------------------------------------
# python-qpid-proton is published as a source distribution only: its C core is compiled here,
# against OpenSSL for amqps:// (SASL ANONYMOUS/PLAIN/EXTERNAL are built in, no Cyrus needed).
FROM ${PYTHON_IMAGE} AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev pkg-config libssl-dev \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bridge ./bridge
RUN pip wheel --wheel-dir /wheels .

# ---- runtime: no compiler, no build headers, not root -----------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="amqp-mqtt-bridge" \
      org.opencontainers.image.description="Legacy imp AMQP agent code over MQTT, AMQP 1.0 or an in-process broker" \
      org.opencontainers.image.licenses="MIT"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# libssl3, which the compiled proton core links, is already part of the python base image.
COPY --from=builder /wheels /wheels
RUN pip install --no-index --find-links /wheels amqp-mqtt-bridge \
    && rm -rf /wheels \
    && useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin bridge
WORKDIR /app
# Profiles and the example agent, so `bridge --config config/memory.toml run examples/...` works.
COPY config ./config
COPY examples ./examples
USER 10001:10001
ENTRYPOINT ["bridge"]
CMD ["--help"]
