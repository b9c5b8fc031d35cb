# Two commands do everything on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JS_STAMP := node_modules/.installed
# llama-cpp-python is compiled here: for AVX2 (FMA, F16C), not -march=native. A native build
# on a CPU that reports AMX uses its tile instructions for quantised weights, and a virtual
# machine that does not enable AMX state for its guests kills the process at the first
# token (general protection fault in ldtilecfg); AVX2 runs on every x86-64 kind we use.
# pip's own wheel cache would hand back a wheel built with other flags, so the wheel is
# kept under a folder named after these flags.
LLAMA_SPEC := llama-cpp-python>=0.3.7,<0.4
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
LLAMA_WHEELS := $(HOME)/.cache/onebox/wheels/llama-avx2
LITELLM_VENV := .venv-litellm
LITELLM_SPEC := litellm[proxy]==1.108.7

.PHONY: run test lint bench bench-deps install system-deps js-deps clean

run: $(STAMP)
	$(BIN)/onebox serve

# Strictness behind one command: lint, types, then the suite with warnings as errors.
test: $(STAMP) system-deps js-deps lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: $(STAMP) bench-deps
	$(BIN)/python -m bench

# hey and wrk, the outside load generators of the gateway benchmark; installed once if missing
# and we can.
bench-deps:
	@for tool in hey wrk; do \
		if ! command -v $$tool >/dev/null; then \
			if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
				echo ">> Installing $$tool for the gateway benchmark"; \
				apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$tool >/dev/null; \
			else \
				echo ">> $$tool missing and cannot apt-get: the gateway benchmark will stop"; \
			fi; \
		fi; \
	done
	@# LiteLLM's proxy, the gateway benchmark's peer measured in the same run: its own virtual
	@# environment (its pins would fight ours); the benchmark skips the comparison without it.
	@if [ ! -x $(LITELLM_VENV)/bin/litellm ]; then \
		echo ">> Installing LiteLLM's proxy ($(LITELLM_SPEC)) in $(LITELLM_VENV) for the gateway benchmark"; \
		$(PYTHON) -m venv $(LITELLM_VENV) && $(LITELLM_VENV)/bin/python -m pip install --quiet '$(LITELLM_SPEC)' \
			|| { rm -rf $(LITELLM_VENV); echo ">> LiteLLM could not be installed: the gateway benchmark skips it"; }; \
	fi
	@# The PostgreSQL 15 HTML manual: the second corpus of the retrieval quality benchmark.
	@if [ ! -d /usr/share/doc/postgresql-doc-15/html ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo ">> Installing postgresql-doc-15 for the retrieval benchmarks"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-doc-15 >/dev/null; \
		else \
			echo ">> postgresql-doc-15 missing and cannot apt-get: the quality benchmark will stop"; \
		fi; \
	fi

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip wheel setuptools
	@$(BIN)/python -c "import llama_cpp" 2>/dev/null || { \
		ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || { \
			echo ">> Compiling llama-cpp-python once for AVX2 (about 6-7 minutes on 2 cores; the wheel is kept in $(LLAMA_WHEELS))..."; \
			CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip wheel --quiet --no-deps --no-cache-dir -w $(LLAMA_WHEELS) '$(LLAMA_SPEC)'; } && \
		$(BIN)/python -m pip install --quiet $$(ls -t $(LLAMA_WHEELS)/llama_cpp_python-*.whl | head -1); }
	@# The CPU build of torch first (on this machine kind it lies on disk), so nothing
	@# below pulls a multi-GB CUDA build for the embedding model.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --progress-bar on 'torch==2.13.0'
	$(BIN)/python -m pip install --progress-bar on -e '.[postgres,dev]'
	@touch $(STAMP)

# Debian chromium drives the browser tests, promtool (Debian's prometheus) checks the
# deploy/prometheus files, Debian nginx checks deploy/nginx and fronts the topology test,
# and npm fetches TypeScript for the web UI's type check; each installed once if missing
# and we can.
system-deps:
	@if ! command -v promtool >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo ">> Installing Debian prometheus (promtool) for the deploy checks"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
		else \
			echo ">> promtool missing and cannot apt-get: the deploy checks fail in CI, skip elsewhere"; \
		fi; \
	fi
	@if [ ! -x /usr/sbin/nginx ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo ">> Installing Debian nginx for the deploy checks and the topology test"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx openssl >/dev/null; \
		else \
			echo ">> nginx missing and cannot apt-get: the deploy checks fail in CI, skip elsewhere"; \
		fi; \
	fi
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo ">> Installing Debian chromium for the browser tests"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo ">> /usr/bin/chromium missing and cannot apt-get: browser tests will be skipped"; \
		fi; \
	fi
	@if ! command -v npm >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo ">> Installing Node.js and npm for the web UI type check"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
		else \
			echo ">> npm missing and cannot apt-get: the web UI type check will be skipped"; \
		fi; \
	fi

# TypeScript (exact version in package-lock.json) into node_modules/, again whenever the lock
# changes; tests/test_js_types.py runs it over src/onebox/web/static.
js-deps: system-deps
	@if ! command -v npm >/dev/null; then \
		echo ">> npm missing: the web UI type check will be skipped"; \
	elif [ ! -f $(JS_STAMP) ] || [ package-lock.json -nt $(JS_STAMP) ] || [ package.json -nt $(JS_STAMP) ]; then \
		npm ci --no-audit --no-fund && touch $(JS_STAMP); \
	fi

clean:
	rm -rf $(VENV) $(LITELLM_VENV) build *.egg-info node_modules
