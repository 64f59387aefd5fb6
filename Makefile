# The same commands run here, in CI (.ci/run) and in the README's quickstart.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install services test lint bench dev clean

# Installing is idempotent but not free: redo it only when the dependencies change.
$(VENV)/.installed: pyproject.toml .ci/install.sh
	bash .ci/install.sh
	touch $@

install: $(VENV)/.installed

services: install
	bash .ci/services.sh

test: services
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: services
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

dev: services
	$(BIN)/devloop dev

clean:
	-$(BIN)/devloop delete
	rm -rf build dist *.egg-info $(VENV)/.installed
