# Muster: two commands set everything up on a fresh machine.
#   make run   - create the venv, install, start `muster agent -dev -ui` on 127.0.0.1:8500
#   make test  - create the venv with test extras and run the whole (bounded) suite
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
SYSSTAMP:= $(VENV)/.sysdeps

.PHONY: run run-cluster test test-fast soak fuzz-soak k8s-sim bench lint typecheck sysdeps clean venv clientsuites clientsuites-stale

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml tests/support/pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,fast]'
	# The test kit (simulators, checkers, netns pods) is its own distribution, never in the wheel.
	$(BIN)/pip install -q --no-deps -e tests/support
	# python-consul2 ships the same top-level package as py-consul: keep it apart.
	$(BIN)/pip install -q --target $(VENV)/python-consul2 python-consul2
	touch $(STAMP)

venv: $(STAMP)

# Client libraries' own test suites (tests/clientsuites/): their pinned sdists, unpacked.
SUITES  := $(VENV)/clientsuites
SUITESTAMP := $(SUITES)/.unpacked

$(SUITESTAMP): tests/clientsuites/sdists.txt | $(BIN)/python
	rm -rf $(SUITES) && mkdir -p $(SUITES)/sdist
	$(BIN)/pip download -q --no-deps --no-binary :all: --require-hashes \
	  -r tests/clientsuites/sdists.txt -d $(SUITES)/sdist
	for f in $(SUITES)/sdist/*.tar.gz; do tar -xzf "$$f" -C $(SUITES); done
	touch $(SUITESTAMP)

clientsuites: $(SUITESTAMP)

# The deselected client-suite tests that pass now (their line in deselected.txt should go).
clientsuites-stale: $(STAMP) $(SUITESTAMP)
	$(BIN)/python tests/clientsuites/clientsuite.py --listed

# Debian packages the tests need: dig (DNS tests), chromium (UI tests), prometheus and promtool
# (the scrape test and the dashboard check).
$(SYSSTAMP): | $(BIN)/python
	@if ! command -v dig >/dev/null || ! command -v chromium >/dev/null || ! command -v prometheus >/dev/null; then \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q bind9-dnsutils chromium prometheus) \
	  || echo "warning: could not install dig/chromium/prometheus; the tests that need them will be skipped"; \
	fi
	touch $(SYSSTAMP)

sysdeps: $(SYSSTAMP)

run: $(STAMP)
	$(BIN)/muster agent -dev -ui -client=127.0.0.1

# The StatefulSet's three servers on 127.0.0.1/2/3 (UI on http://127.0.0.1:8500/ui/).
run-cluster: $(STAMP)
	BIN=$(BIN) bash scripts/local-cluster.sh

# Byte-compile first: with PYTHONDONTWRITEBYTECODE set (as on this workplace's machines) every
# agent a test spawns would otherwise compile the whole package from source at start-up, which
# on a loaded 2-core machine pushed cluster formation past the tests' bounds.
test: $(STAMP) $(SYSSTAMP) $(SUITESTAMP)
	$(BIN)/python -m compileall -q src tests/support >/dev/null
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	PYTHONHASHSEED=0 $(BIN)/pytest -q -p no:cacheprovider

test-fast: $(STAMP) $(SUITESTAMP)
	$(BIN)/python -m compileall -q src tests/support >/dev/null
	PYTHONHASHSEED=0 $(BIN)/pytest -q -x -p no:cacheprovider -m 'not soak and not browser'

soak: $(STAMP) $(SYSSTAMP)
	PYTHONHASHSEED=0 $(BIN)/pytest -q -p no:cacheprovider -m soak

# Only the fuzz soak: 100,000 generated inputs at each decoder (tests/unit/test_fuzz_decoders.py,
# tests/integration/test_fuzz_http.py); `make test` runs the same tests with 500 inputs each.
fuzz-soak: $(STAMP)
	PYTHONHASHSEED=0 $(BIN)/pytest -q -p no:cacheprovider -m soak --durations=0 \
	  tests/unit/test_fuzz_decoders.py tests/integration/test_fuzz_http.py

# The whole StatefulSet simulation (network namespaces; needs root).
k8s-sim: $(STAMP)
	PYTHONHASHSEED=0 $(BIN)/pytest -q -p no:cacheprovider -s tests/k8s -m 'k8s_full or not k8s_full'

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache
