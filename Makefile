# One command each: `make setup`, `make test`, `make run`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-done
EXTRAS := service,worker,train,embedded,dev

.PHONY: setup test lint typecheck imports pytest run bench clean

setup: $(STAMP)

# Re-runs only when pyproject.toml changes, so a second `make setup` takes a second.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[$(EXTRAS)]'
	# facenet-pytorch 2.6.0 pins torch<2.3 in its metadata; its MTCNN runs on torch 2.14.
	$(PY) -m pip install -q --disable-pip-version-check --no-deps facenet-pytorch==2.6.0
	touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

typecheck: setup
	$(VENV)/bin/mypy

imports: setup
	$(VENV)/bin/lint-imports

pytest: setup
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test: lint typecheck imports pytest

run: setup
	$(PY) -m launcher $(if $(SOURCE),--source '$(SOURCE)',)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
