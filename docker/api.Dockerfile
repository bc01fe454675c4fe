# syntax=docker/dockerfile:1
# The API and the scheduler (one image, two commands):
#   docker build -f docker/api.Dockerfile -t reelfarm-api .        (context: the repository root)
#   docker run reelfarm-api api --host 0.0.0.0 --port 8000         API, /metrics on the same port
#   docker run reelfarm-api scheduler --listen 0.0.0.0:50051       scheduler, /metrics on 9464
# Configuration and secrets come from REELFARM_* environment variables at run time, never the image.
#
# Base pinned by tag. To pin it by digest as well, resolve the tag once and append it:
#   docker buildx imagetools inspect python:3.11.11-slim-bookworm   ->  FROM python:3.11.11-slim-bookworm@sha256:...

# ---------------------------------------------------------------- build: the virtualenv
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# What the wheel build needs: the metadata, the proto files (the build hook generates the
# gRPC code from them) and the packages.
COPY pyproject.toml README.md ./
COPY proto/ proto/
COPY reelfarm/ reelfarm/
COPY analysis/ analysis/
COPY control_plane/ control_plane/
COPY scheduler/ scheduler/
COPY render_nodes/ render_nodes/
# DL3013 (pin pip versions): "." is this repository; its dependencies' versions are pyproject.toml's.
# hadolint ignore=DL3013
RUN pip install ".[postgres]"

# ---------------------------------------------------------------- runtime
FROM python:3.11.11-slim-bookworm
# ffmpeg: the API probes uploads with ffprobe; libmagic1: the API sniffs uploaded blobs' formats.
# Not version-pinned: Debian's security updates replace these versions (see .hadolint.yaml).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg libmagic1 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/venv /opt/venv
RUN useradd --uid 10001 --user-group --home-dir /home/reelfarm --create-home --shell /usr/sbin/nologin reelfarm \
 && mkdir -p /data \
 && chown 10001:10001 /data
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    REELFARM_DATA_DIR=/data
WORKDIR /home/reelfarm
USER 10001
# 8000: API (and its /metrics); 50051: scheduler gRPC; 9464: scheduler /metrics.
EXPOSE 8000 50051 9464
ENTRYPOINT ["reelfarm"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
