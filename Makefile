# Strongroom: two commands do everything on a fresh Debian machine.
#   make run   – local SeaweedFS + SQLite + the daemon on a sample dock (Ctrl-C stops all)
#   make test  – lint (ruff, import contracts, mypy), then the whole test suite (2 xdist workers) against a real SeaweedFS,
#                real ffmpeg and a real PostgreSQL
# Other targets: make setup, make bench, make lint, make clean.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@missing=""; \
	command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v pdftotext >/dev/null || missing="$$missing poppler-utils"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	ls /usr/share/fonts/truetype/wqy/wqy-microhei.ttc >/dev/null 2>&1 || missing="$$missing fonts-wqy-microhei"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	[ -z "$$missing" ] || { echo "installing Debian packages:$$missing"; \
		{ [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; } \
		|| { echo "missing:$$missing – run 'sudo apt-get install$$missing'"; exit 1; }; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $(STAMP)

strongroom.toml:
	cp config/strongroom.example.toml strongroom.toml

run: setup strongroom.toml
	@bash .ci/demo.sh

# --dist loadgroup: tests sharing a module-scoped station run on one worker (the
# groups are tests/conftest.py's); the slowest modules are handed out first
test: lint
	$(BIN)/pytest -q -n 2 --dist loadgroup --no-loadscope-reorder --durations=25 --cov --cov-report=
	@echo "branch coverage of config, archive, verify, ingest, frontdoors: $$($(BIN)/coverage report --format=total)%"

# ruff, then the layering contracts (pyproject.toml [tool.importlinter]), then the
# type check (pyproject.toml [tool.mypy]: strict for config, archive, verify)
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf var strongroom.toml .pytest_cache
