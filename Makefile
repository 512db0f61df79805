# kubeweir: `make run` and `make test` install what is missing, then do their job.
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# 1: compiled modules built and required (tests check it); 0: pure Python, compiled ones removed
KUBEWEIR_NATIVE ?= 1
export KUBEWEIR_NATIVE
TAP_ARGS ?=

.PHONY: setup native run test lint bench bench-all fuzz-deep soak front clean

setup:
	@bash scripts/setup.sh

front: setup
	@if [ -f front/package.json ]; then cd front && npm run --silent build; fi

# The hot modules (kubeweir/_native.py) compiled in place with mypyc, only when a source is
# newer than its compiled module. `KUBEWEIR_NATIVE=0 make test` removes them: pure Python.
native: setup
	@$(PY) scripts/native.py

run: setup front native
	$(PY) -m kubeweir tap --demo $(TAP_ARGS)

test: setup front native
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: setup front native
	$(PY) -m benchmarks

fuzz-deep: setup native
	HYPOTHESIS_PROFILE=deep $(PY) -m pytest -q -k "fuzz or property" $(PYTEST_ARGS)

soak: setup native
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

clean:
	$(PY) scripts/native.py --clean || true
	rm -rf $(VENV) build front/node_modules front/dist .pytest_cache .mypy_cache .ruff_cache
