# syntax=docker/dockerfile:1
# carbon-intensity-exporter: multi-stage build.
#   builder: build the wheel and install it (with its dependencies) into a virtualenv at /opt/venv
#   final:   the same slim Python, the venv copied in, no compilers, no pip, non-root UID 10001
# The UID/GID 10001 matches the Helm chart's runAsUser/runAsGroup (tests/chart/test_dockerfile.py checks it).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install /wheels/*.whl \
 && /opt/venv/bin/pip uninstall -y pip setuptools wheel \
 && /opt/venv/bin/carbon-intensity-exporter --help >/dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="carbon-intensity-exporter" \
      org.opencontainers.image.description="Publishes grid carbon-intensity forecasts inside Kubernetes as a ConfigMap and Prometheus metrics" \
      org.opencontainers.image.licenses="MIT"
RUN groupadd --system --gid 10001 exporter \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin exporter
COPY --from=builder /opt/venv /opt/venv
# Bytecode was compiled at install time; the root filesystem is read-only in the cluster.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 9102
ENTRYPOINT ["carbon-intensity-exporter"]
CMD ["run"]
