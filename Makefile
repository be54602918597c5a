# creditnode: `make demo` and `make test` bootstrap everything they need from requirements.lock.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | sha256sum | cut -c1-12)

.PHONY: venv demo test check lint format typecheck proto proto-check postgres-server pytest clean bench bench-border bench-oprf bench-verify bench-audit bench-check bench-report bench-startup

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-* && touch $@

demo: venv
	$(BIN)/creditnode demo $(DEMO_ARGS)

# Everything that checks the project, in the order a failure is cheapest to find.
test: venv lint typecheck proto-check postgres-server pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/buf lint
	$(BIN)/buf format --diff --exit-code

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	$(BIN)/buf format -w

typecheck: venv
	$(BIN)/mypy

proto: venv
	$(BIN)/python proto/generate.py

proto-check: venv
	$(BIN)/python proto/generate.py --check

# The tests start their own PostgreSQL in a temporary directory; this makes sure one is installed.
postgres-server:
	@deploy/ensure-postgres.sh

pytest: venv
	CREDITNODE_TEST_POSTGRES=require $(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis

# Feed benchmarks (issue #3): figures printed and written to bench/results/feed_sync.json.
bench: venv
	$(BIN)/python bench/feed_sync.py $(BENCH_ARGS)

# The border's cost (issue #5), on SQLite and on a throw-away PostgreSQL server:
# bench/results/border_cost_{sqlite,postgresql}.json.
bench-border: venv postgres-server
	$(BIN)/python bench/border_cost.py --backend sqlite
	$(BIN)/python bench/border_cost.py --backend postgresql

# The audit log's cost on a query (issue 13): p50/p99 with and without the record, same run.
bench-audit: venv postgres-server
	$(BIN)/python bench/audit_cost.py --backend sqlite
	$(BIN)/python bench/audit_cost.py --backend postgresql

# Oblivious pseudonyms (issue 11): local OPRF cost against HMAC, and a blinded evaluation round
# trip over mTLS against a bare one: bench/results/oprf.json.
bench-oprf: venv
	$(BIN)/python bench/oprf.py $(BENCH_ARGS)

# `creditnode verify` over a 1,000,000-leaf own log (issue 13): bench/results/verify.json.
bench-verify: venv
	$(BIN)/python bench/verify.py $(BENCH_ARGS)

# A federated check over three partners on loopback, one down (issue 14): per-partner p50/p99
# and the down partner at its deadline: bench/results/check.json.
bench-check: venv
	$(BIN)/python bench/check.py $(BENCH_ARGS)

# The report RPC (mTLS, policy, signing, audit) at concurrency 1 and 16 against a bare grpc.aio
# echo over mTLS in the same run, and p99 at half the maximum rate (issue 14):
# bench/results/report.json.
bench-report: venv
	$(BIN)/python bench/report.py $(BENCH_ARGS)

# Command start-up (issue 16): median and p90 wall time of --help, --version, `identity check`
# and others in fresh processes, against a bare python and `import typer` in the same run:
# bench/results/startup.json.
bench-startup: venv
	$(BIN)/python bench/startup.py $(BENCH_ARGS)
