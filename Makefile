# facevox: the two set-up commands are `make demo` and `make test` (see README).
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup demo test test-slow lint ci

setup:
	@bash scripts/setup.sh

demo: setup
	$(BIN)/facevox demo --out runs/demo

test: setup
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-slow: setup
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

ci: lint test test-slow
