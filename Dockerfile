# syntax=docker/dockerfile:1
#
# The platform's one image. Every service runs from it, chosen by the command:
#
#   docker build -t complaints-platform .
#   docker run complaints-platform python -m services.routing
#
# (intake, routing, sla, notify, reporting; `python -m shared.kafka_admin` and
# `python -m shared.db.roles` for the one-off jobs). docs/operations.md, "Deployment".
#
# The base image is pinned by its exact tag and by digest: the digest is the one
# docker-library/repo-info records for this tag (not checked against the registry from
# the machine that wrote this). Change both together; docs/operations.md says how.
ARG PYTHON_IMAGE=python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /build
COPY pyproject.toml requirements.lock ./
COPY deploy/docker/runtime_requirements.py ./
# A venv without pip, filled by the base image's pip: the runtime stage copies the venv
# alone. Every version comes from the lock; `pip check` fails the build on a conflict.
RUN python -m venv --without-pip /opt/venv \
 && python runtime_requirements.py pyproject.toml > runtime.txt \
 && pip --python /opt/venv/bin/python install --only-binary=:all: \
        -r runtime.txt -c requirements.lock \
 && pip --python /opt/venv/bin/python check

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    INTAKE_HOST=0.0.0.0 \
    REPORTING_HOST=0.0.0.0 \
    OPS_HOST=0.0.0.0
# A fixed UID, so that volume ownership and runAsUser can name it. /credentials is where
# intake and reporting find the files they check callers against (a Secret in Kubernetes,
# a named volume in compose): owned by that user so a fresh volume mounted there is too.
RUN groupadd --system --gid 10001 complaints \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin complaints \
 && install -d -o 10001 -g 10001 -m 0700 /credentials
COPY --from=builder /opt/venv /opt/venv
# PYTHONPATH: a script run by its path (the development sinks compose mounts) imports
# shared/ as `python -m` does from /app.
WORKDIR /app
COPY shared/ shared/
COPY services/ services/
COPY policy-packs/ policy-packs/
# Compiled once here, owned by root: the running user can neither write bytecode nor
# change the code, and the root filesystem can be mounted read-only.
RUN python -m compileall -q shared services
USER 10001:10001
EXPOSE 8001 8002 8003 8004 8005
CMD ["python", "-c", "raise SystemExit('name a service: python -m services.<intake|routing|sla|notify|reporting>')"]
