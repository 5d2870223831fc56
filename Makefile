# Two commands: `make demo` runs the main job, `make test` runs the tests.
# Each creates its own virtual environment and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/tether: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(BIN)/tether

demo: $(BIN)/tether
	$(BIN)/tether demo

lint: $(BIN)/tether
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy

test: $(BIN)/tether lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .tether
