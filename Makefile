# The two commands of the README: `make demo` and `make test`. Each creates .venv if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_FLAGS := --disable-pip-version-check -q -c .ci/constraints.txt

.PHONY: demo test install lint bench clean

$(STAMP): pyproject.toml .ci/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) -e '.[dev]'
	# openai-whisper without its triton dependency (GPU kernels a CPU install never uses)
	$(BIN)/pip install $(PIP_FLAGS) --no-deps openai-whisper==20250625
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/curate demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check flows stages tests benchmarks
	$(BIN)/ruff format --check flows stages tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/text_filters.py

clean:
	rm -rf $(VENV) demo-output
