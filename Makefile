# paradime — set-up, main job, tests. `make demo` and `make test` are the two README commands.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-benchmark
# CPU set-ups pin torch to the CPU build (pip would otherwise pull a ~5.5 GB CUDA build).
CONSTRAINTS ?= constraints-cpu.txt

export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
export MPLBACKEND ?= Agg

.PHONY: setup setup-bench browser demo test test-slow test-all wheel-check lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[dev,explain]"
	touch $(STAMP)

## The comparison libraries (openTSNE, umap-learn) that benchmarks and experiments run beside ours.
setup-bench: $(BENCH_STAMP)

$(BENCH_STAMP): $(STAMP)
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[benchmark]"
	touch $(BENCH_STAMP)

## The main job: a real routine (UMAP spec) on the embedded digits dataset, as a Prefect flow.
demo: setup
	$(VENV)/bin/paradime run specs/umap.yaml --data digits --out outputs/demo --overwrite

## The default test run (a few minutes on 2 cores; tests/test_architecture.py runs lint-imports).
test: setup
	$(PY) -m pytest -q -m "not slow"

## Debian's chromium for the web-page test (installed when missing; needs root and apt-get).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

## Long tests (pynndescent compile, larger data, the experiments with their references,
## the exported web page in headless Chromium); CI runs them as a second stage.
test-slow: setup-bench browser
	$(PY) -m pytest -q -m slow || [ $$? -eq 5 ]  # exit 5: no slow test selected

test-all: test test-slow

## The wheel on its own: build, install into a fresh venv, `paradime specs` and a tiny run elsewhere.
wheel-check:
	bash .ci/wheel_check.sh

lint: setup
	$(VENV)/bin/ruff check paradime_core pipelines tests benchmarks
	$(VENV)/bin/lint-imports

bench: setup-bench
	$(PY) benchmarks/quality.py

clean:
	rm -rf outputs .pytest_cache .ruff_cache
