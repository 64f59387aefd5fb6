# The same commands run here, in the pre-commit hook and in CI (.ci/run).
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install services test lint bench dev clean

install:
	bash .ci/install.sh

services:
	bash .ci/services.sh

test:
	$(BIN)/pytest $(PYTEST_ARGS)

lint:
	$(BIN)/ruff check devloop tests bench
	$(BIN)/ruff format --check devloop tests bench
	$(BIN)/mypy

bench:
	$(BIN)/python bench/run_all.py

dev: install services
	$(BIN)/devloop dev

clean:
	$(BIN)/devloop delete || true
	rm -rf build dist *.egg-info
