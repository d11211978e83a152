# Sluice — two commands do all set-up on a fresh machine:
#   make dev    install into .venv and run the dev server with the example apps (WASM sandbox, no Docker)
#   make test   install what the tests need (Docker engine included) and run them
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
APP     ?= examples
PORT    ?= 8288
SANDBOX ?= wasm
PYTEST_ARGS ?=

.PHONY: help install dev test test-fast lint docker images images-docker images-wasm bench clean

help:
	@echo "make dev     run the dev server on 127.0.0.1:$(PORT) with the apps in $(APP)/ (WASM sandbox)"
	@echo "make test    install test dependencies (Docker engine included) and run lint + the test suite"
	@echo "make bench   run the benchmarks (table on stdout, JSON in bench/out/)"
	@echo "make images  build the Python guest image (Docker) and the Python-on-WASI bundle"
	@echo "make lint    ruff and mypy"

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

dev: install
	$(BIN)/sluice dev $(APP) --port $(PORT) --sandbox $(SANDBOX)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

docker:
	bash scripts/docker-engine.sh --gvisor

images-docker: install docker
	bash scripts/build-images.sh

images-wasm: install
	$(BIN)/python images/wasm-python/build.py

images: images-docker images-wasm

test: install docker images
	$(MAKE) lint
	$(BIN)/pytest $(PYTEST_ARGS)

# Without Docker: everything but the tests marked `docker`.
test-fast: install images-wasm
	$(BIN)/pytest -m "not docker" $(PYTEST_ARGS)

bench: install docker images
	$(BIN)/python -m bench

# Sluice beside Temporal, Restate and Celery+Redis on this machine, one engine at a time
# (peers install into .cache/peers, never .venv): docs/benchmarks-peers.md. About 15 minutes.
.PHONY: bench-peers
bench-peers: install docker images
	bash bench/peers/install.sh
	$(BIN)/python -m bench.peers $(BENCH_PEERS_ARGS)

clean:
	rm -rf .sluice build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache bench/out
