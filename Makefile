# Two commands for a fresh machine: `make run` and `make test`. Each installs what it needs:
# uv (bootstrapped with pip into .tools/), then the locked dependencies into .venv/.
PYTHON ?= python3
UV := .tools/bin/uv
VENV := .venv
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test lint typecheck unit install messages clean

run: install ## Depotline with demo data on the embedded PostgreSQL and Redis
	$(VENV)/bin/depotline run

test: lint typecheck unit ## ruff, mypy (strict) and the whole test suite

lint: install
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(VENV)/bin/pytest

install: $(VENV)/.installed

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==0.13.9"

$(VENV)/.installed: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen
	touch $@

messages: install ## re-extract translatable strings and update the catalogs
	$(VENV)/bin/pybabel extract -F babel.cfg -k Conflict -k InvalidInput -k NotFound -k NotPermitted -o frontend/locale/messages.pot --no-location --project Depotline .
	$(VENV)/bin/pybabel update -i frontend/locale/messages.pot -d frontend/locale --no-fuzzy-matching

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
