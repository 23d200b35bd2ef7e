# splatter-node: the GPU compute node image. Build from the repository root:
#   docker build -t splatter-node .
# Run (GPU, env file from .env.example, workspaces on a volume):
#   docker run --gpus all --env-file .env -v splatter-tasks:/app/tasks splatter-node
ARG NERFSTUDIO_IMAGE=ghcr.io/nerfstudio-project/nerfstudio:1.1.5
FROM ${NERFSTUDIO_IMAGE}

USER root
ARG DEBIAN_FRONTEND=noninteractive
# ffmpeg for the pipeline's video tools; tini as PID 1 so signals reach the node and orphans are reaped.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg tini \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md run.py ./
COPY pipeline/ pipeline/
COPY splat_render/ splat_render/
COPY runner/ runner/
# The base image already carries nerfstudio and its CUDA build of torch; pip keeps what satisfies the pins.
RUN python3 -m pip install --no-cache-dir . && command -v splatter-node

ARG USER_UID=10001
RUN useradd --uid "${USER_UID}" --create-home --shell /usr/sbin/nologin splatter \
    && mkdir -p /app/tasks \
    && chown splatter /app/tasks
USER splatter

ENV TASKS_ROOT=/app/tasks \
    SPLATTER_RUN_PY=/app/run.py \
    HEALTH_PORT=8080 \
    PYTHONUNBUFFERED=1
VOLUME ["/app/tasks"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python3 -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('HEALTH_PORT', '8080'), timeout=4)"

ENTRYPOINT ["tini", "--", "splatter-node"]
