# syntax=docker/dockerfile:1
# One image for every spendwatch service: `docker run IMAGE run <service>` or `IMAGE migrate`.
# Builder and runtime use the same base image so the venv's interpreter symlinks stay valid.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN pip install --no-cache-dir "uv==0.13.9"

WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY libs/ libs/
COPY services/ services/

# --frozen: the lock file is the truth; a drifted lock fails the build instead of re-resolving.
# Workspace members stay editable installs that point at /app/libs and /app/services,
# which the runtime stage copies to the same paths.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --all-packages --python /usr/local/bin/python3


FROM ${PYTHON_IMAGE} AS runtime

ENV PATH=/app/.venv/bin:$PATH \
    VIRTUAL_ENV=/app/.venv \
    MIGRATIONS_DIR=/app/migrations \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN groupadd --system --gid 10001 spendwatch \
    && useradd --system --uid 10001 --gid spendwatch --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin spendwatch

WORKDIR /app
# Files stay owned by root: the service user can read and run the code but not rewrite it.
COPY --from=builder /app/.venv /app/.venv
COPY --from=builder /app/libs /app/libs
COPY --from=builder /app/services /app/services
COPY migrations/ /app/migrations/

USER 10001:10001

# Default METRICS_PORT of the services (metrics and /healthz).
EXPOSE 9101

ENTRYPOINT ["spendwatch"]
CMD ["run", "collector"]
