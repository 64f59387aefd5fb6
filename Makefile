# The same commands run here, in CI (.ci/run) and in the README's quickstart.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install services test test-wheel test-floor test-pythons test-python lint bench dev clean

# Installing is idempotent but not free: redo it only when the dependencies change.
$(VENV)/.installed: pyproject.toml .ci/install.sh
	bash .ci/install.sh
	touch $@

install: $(VENV)/.installed

services: install
	bash .ci/services.sh

test: services
	$(BIN)/pytest $(PYTEST_ARGS)

# What users install: the wheel (not editable) in a fresh venv, the suite run against it.
# --import-mode=append and PYTHONSAFEPATH keep the checkout's devloop/ off the front of
# sys.path (tests/test_install.py fails under CI=true if devloop came from the checkout).
WHEEL_VENV ?= .venv-wheel
FLOOR_VENV ?= .venv-floor
define wheel_venv
	rm -rf $(1) dist
	$(or $(3),python3) -m venv $(1)
	$(1)/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
	$(1)/bin/python -m pip wheel -q --no-deps -w dist .
	$(1)/bin/python -m pip install -q $(2) "$$(ls dist/devloop-*.whl)[test]"
endef
PYTEST_INSTALLED = PYTHONSAFEPATH=1 $(1)/bin/pytest -p no:cacheprovider --import-mode=append

test-wheel: services
	$(call wheel_venv,$(WHEEL_VENV),)
	$(call PYTEST_INSTALLED,$(WHEEL_VENV)) $(PYTEST_ARGS)

# Every runtime dependency (and the validate extra's) at the floor pyproject.toml admits,
# the fast tier (no slow, no cluster).
test-floor: services
	python3 .ci/floors.py > .floors.txt
	$(call wheel_venv,$(FLOOR_VENV),--constraint .floors.txt)
	$(call PYTEST_INSTALLED,$(FLOOR_VENV)) -m 'not slow and not cluster' $(PYTEST_ARGS)

# The same fast tier on the other Pythons the classifiers name (3.11 is the tiers above).
test-pythons: services
	@set -e; for v in 3.12 3.13; do \
	  py=$$(bash .ci/python.sh $$v); \
	  if [ -z "$$py" ]; then echo "Python $$v not found (PATH, pyenv): its tier is skipped"; continue; fi; \
	  $(MAKE) --no-print-directory test-python PY=$$py PYV=$$v; \
	done

test-python:
	$(call wheel_venv,.venv-py$(PYV),,$(PY))
	$(call PYTEST_INSTALLED,.venv-py$(PYV)) -m 'not slow and not cluster' $(PYTEST_ARGS)

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
	rm -rf build dist *.egg-info $(VENV)/.installed $(WHEEL_VENV) $(FLOOR_VENV) .venv-py3.* .floors.txt
