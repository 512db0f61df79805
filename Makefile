# kubeweir: `make run` and `make test` install what is missing, then do their job.
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
TAP_ARGS ?=

.PHONY: setup run test lint bench bench-all fuzz-deep soak front clean

setup:
	@bash scripts/setup.sh

front: setup
	@if [ -f front/package.json ]; then cd front && npm run --silent build; fi

run: setup front
	$(PY) -m kubeweir tap --demo $(TAP_ARGS)

test: setup front
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: setup front
	$(PY) -m benchmarks

fuzz-deep: setup
	HYPOTHESIS_PROFILE=deep $(PY) -m pytest -q -k "fuzz or property" $(PYTEST_ARGS)

soak: setup
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) front/node_modules front/dist .pytest_cache .mypy_cache .ruff_cache
