# Strongroom: two commands do everything on a fresh Debian machine.
#   make run   – local SeaweedFS + SQLite + the daemon on a sample dock (Ctrl-C stops all)
#   make test  – lint, then the whole test suite (2 xdist workers) against a real SeaweedFS,
#                real ffmpeg and a real PostgreSQL
# Other targets: make setup, make bench, make lint, make clean.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v ffmpeg >/dev/null || { echo "installing ffmpeg (Debian package)"; \
		{ [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg; } \
		|| { echo "ffmpeg missing: run 'sudo apt-get install ffmpeg'"; exit 1; }; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "installing PostgreSQL (Debian package, for the tests)"; \
		{ [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } \
		|| { echo "PostgreSQL missing: run 'sudo apt-get install postgresql'"; exit 1; }; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $(STAMP)

strongroom.toml:
	cp config/strongroom.example.toml strongroom.toml

run: setup strongroom.toml
	@bash .ci/demo.sh

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q -n 2

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf var strongroom.toml .pytest_cache
