# Worker image. CPU:  --build-arg BASE_IMAGE=python:3.11-slim-bookworm --build-arg ORT_EXTRA=cpu
#               CUDA: --build-arg BASE_IMAGE=nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04 --build-arg ORT_EXTRA=gpu
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ghcr.io/astral-sh/uv:0.5.31 AS uv

FROM ${BASE_IMAGE} AS build
ARG ORT_EXTRA=cpu
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_INSTALL_DIR=/opt/python UV_PYTHON_PREFERENCE=only-managed UV_NO_CACHE=1
RUN uv venv --python 3.11 /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY contract ./contract
COPY worker ./worker
RUN mkdir -p service models && touch service/__init__.py models/__init__.py
# CPU images take the CPU-only torch wheels; CUDA images the default (CUDA) ones.
RUN if [ "$ORT_EXTRA" = "gpu" ]; then \
      uv pip install --python /opt/venv/bin/python ".[worker,gpu]" && \
      uv pip uninstall --python /opt/venv/bin/python onnxruntime && \
      uv pip install --python /opt/venv/bin/python --reinstall "onnxruntime-gpu>=1.18" ; \
    else \
      uv pip install --python /opt/venv/bin/python --index-strategy unsafe-best-match \
        --extra-index-url https://download.pytorch.org/whl/cpu ".[worker]" ; \
    fi \
 && uv pip install --python /opt/venv/bin/python --no-deps facenet-pytorch==2.6.0

FROM ${BASE_IMAGE}
RUN useradd --create-home --uid 10001 app
COPY --from=build /opt/python /opt/python
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=app:app contract ./contract
COPY --chown=app:app worker ./worker
COPY --chown=app:app models/weights ./models/weights
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
USER app
CMD ["python", "-m", "worker"]
