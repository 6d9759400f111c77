# batcher — every target creates .venv itself on a fresh machine (Python 3.11+ and make only).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

# The emulator's demo credentials: not a secret, they open nothing but the local emulator.
DEMO_ENV := TENCENTCLOUD_SECRET_ID=AKIDbatcherDemo0000000000000000000 \
            TENCENTCLOUD_SECRET_KEY=batcher-demo-secret-key
DEMO_KEYS := --secret-id AKIDbatcherDemo0000000000000000000 --secret-key batcher-demo-secret-key

.PHONY: install test lint demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check batcher tests bench
	$(BIN)/mypy

# The suite on TEST_WORKERS processes (most tests wait on a rate cap or a generation, not the
# CPU), then the `serial` tests alone: they judge timing (rate caps at the emulator, send
# lateness) and must not share the CPUs with the others. Either phase finding no test fails.
TEST_WORKERS ?= 4

test: lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal -m "not serial"
	$(BIN)/python -m pytest -q -m serial

# Start the emulator on a free loopback port, submit jobs/example.yaml to it, collect what it
# generated (polling until every image is on disk), and print the path of the gallery.
demo: $(STAMP)
	@set -e; tmp=$$(mktemp -d); \
	$(BIN)/batcher emulator --port 0 $(DEMO_KEYS) --generation-seconds 3 --generation-jitter 0.5 \
	  >"$$tmp/emulator.out" 2>"$$tmp/emulator.err" & \
	pid=$$!; trap 'kill $$pid 2>/dev/null; rm -rf "$$tmp"' EXIT; \
	for i in $$(seq 100); do [ -s "$$tmp/emulator.out" ] && break; sleep 0.1; done; \
	url=$$(head -n 1 "$$tmp/emulator.out"); \
	[ -n "$$url" ] || { echo "emulator did not start:"; cat "$$tmp/emulator.err"; exit 1; }; \
	echo "== emulator listening at $$url"; \
	echo "== batcher plan jobs/example.yaml"; \
	$(BIN)/batcher plan jobs/example.yaml --ledger "$$tmp/example.ledger.jsonl"; \
	echo "== batcher submit jobs/example.yaml --endpoint $$url"; \
	$(DEMO_ENV) $(BIN)/batcher submit jobs/example.yaml --endpoint "$$url" \
	  --ledger "$$tmp/example.ledger.jsonl"; \
	echo "== batcher collect jobs/example.yaml --wait"; \
	$(DEMO_ENV) $(BIN)/batcher collect jobs/example.yaml --endpoint "$$url" --wait --expected-generation 3s \
	  --ledger "$$tmp/example.ledger.jsonl" --rate-store memory; \
	echo "== batcher status"; \
	$(BIN)/batcher status jobs/example.yaml --ledger "$$tmp/example.ledger.jsonl"; \
	echo "== the gallery: file://$$(pwd)/jobs/example.results/index.html"

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis bench/results
