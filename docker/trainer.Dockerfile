# Offline jobs: train, evaluate, export (and augmentation). Data is mounted at /data.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY contract ./contract
COPY models ./models
RUN mkdir -p service worker && touch service/__init__.py worker/__init__.py \
 && /opt/venv/bin/pip install ".[train]"

FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 10001 app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=app:app contract ./contract
COPY --chown=app:app models ./models
RUN mkdir -p /app/runs && chown app:app /app/runs /app/models/weights
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 EMO_DATA_DIR=/data
USER app
CMD ["python", "-m", "models.train", "--help"]
