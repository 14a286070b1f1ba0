# API + dashboard + ingest + migrations. No ML stack (the service never imports it).
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY contract ./contract
COPY service ./service
# setuptools' package discovery needs the other top-level packages to exist, not their code.
RUN mkdir -p worker models && touch worker/__init__.py models/__init__.py \
 && /opt/venv/bin/pip install ".[service]"

FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 10001 app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=app:app alembic.ini ./
COPY --chown=app:app migrations ./migrations
COPY --chown=app:app contract ./contract
COPY --chown=app:app service ./service
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
USER app
EXPOSE 8000
CMD ["python", "-m", "service", "--host", "0.0.0.0", "--port", "8000"]
