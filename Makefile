# Two commands: `make demo` runs the main job, `make test` runs the tests.
# Each creates its own virtual environment and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# The extras (the demo and the tests share them) include llama-cpp-python, which compiles
# from source the first time (about 11 minutes on 2 cores; pip caches the wheel afterwards).
TEST_EXTRAS ?= dev,postgres,openai,anthropic,google,local,memory,otel,dashboard,evals,encryption,fuzz,pydantic-ai,openai-agents,langgraph
# torch goes in first, on its own: 2.13.0 is a CPU build on this disk (about 190 MB); a bare
# torch requirement (sentence-transformers has one) would pull a CUDA build of several GB.
TORCH ?= torch==2.13.0
# Portable CPU flags: a native (-march=native) build dies with SIGILL on this CPU.
export CMAKE_ARGS ?= -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: demo test lint bench clean

$(BIN)/tether: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(BIN)/tether

$(VENV)/.test-extras: $(BIN)/tether pyproject.toml
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[$(TEST_EXTRAS)]"
	$(BIN)/pip show torch | grep "^Version: $(subst torch==,,$(TORCH))" >/dev/null || { echo "torch was replaced"; exit 1; }
	touch $(VENV)/.test-extras

demo: $(VENV)/.test-extras
	$(BIN)/tether demo

lint: $(VENV)/.test-extras
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: $(VENV)/.test-extras lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .tether
