# creditnode: `make demo` and `make test` bootstrap everything they need from requirements.lock.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | sha256sum | cut -c1-12)

.PHONY: screenshots venv demo test check lint format typecheck proto proto-check postgres-server chromium pytest clean bench bench-sync bench-status bench-table bench-border bench-oprf bench-verify bench-audit bench-lookup bench-check bench-report bench-startup bench-native bench-uscc bench-names bench-routine bench-rust rust-crates

# The pure cores compiled with mypyc (node/native): rebuilt when their source changed; no C
# compiler means the pure-Python modules, with a message.
venv: $(STAMP)
	@$(BIN)/python -m node.native.build

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-* && touch $@

demo: venv
	$(BIN)/creditnode demo $(DEMO_ARGS)

# Everything that checks the project, in the order a failure is cheapest to find.
test: venv lint typecheck proto-check postgres-server chromium pytest

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

# cargo and Debian's PyO3 and sha2 crates, for bench/native_rust.py (Rust against mypyc).
rust-crates:
	@deploy/ensure-rust-crates.sh

bench-rust: venv rust-crates
	$(BIN)/python bench/native_rust.py $(BENCH_ARGS)

# The console's browser tests (tests/browser/) drive Debian's chromium (and need a CJK font);
# this installs them if missing.
chromium:
	@deploy/ensure-chromium.sh

# Retake the README's console screenshots (docs/screenshots/) with the browser tests.
screenshots: venv chromium
	CREDITNODE_SCREENSHOTS=1 CREDITNODE_TEST_BROWSER=require $(BIN)/pytest -q tests/browser/

# The cores' tests run twice: compiled (when built) above, pure-Python below.
PURE_TESTS := tests/test_merkle.py tests/test_leaf_verify.py tests/test_identity_validate.py \
	tests/test_uscc_fast.py tests/test_native.py tests/test_identity_names.py
pytest: venv
	CREDITNODE_TEST_POSTGRES=require CREDITNODE_TEST_BROWSER=require $(BIN)/pytest $(PYTEST_ARGS)
	CREDITNODE_PURE=1 $(BIN)/pytest -q $(PURE_TESTS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis node/native/compiled

# Issue 17's figures, in one run, on SQLite and a throw-away PostgreSQL; each bench writes
# bench/results/<name>.json (bench/_results.py) and bench/table.py rewrites the README's table.
# A bench another change has not delivered yet is skipped (and reads "not measured").
# BENCH_ENTRIES sets the feed size (default 1M); BENCH_10M=1 adds sync and Lookup at 10M on
# PostgreSQL (about an hour more).
BENCH_ENTRIES ?= 1000000
define bench_if
	@if [ -f bench/$(1) ]; then echo "$(BIN)/python bench/$(1) $(2)"; $(BIN)/python bench/$(1) $(2); \
	else echo "bench/$(1) is not there yet: skipped"; fi
endef

bench: venv postgres-server rust-crates
	$(call bench_if,uscc.py,)
	$(call bench_if,native.py,)
	$(call bench_if,native_rust.py,)
	$(BIN)/python bench/sync.py --backend sqlite --entries $(BENCH_ENTRIES)
	$(BIN)/python bench/sync.py --backend postgresql --entries $(BENCH_ENTRIES) --latency-seconds 0
	$(call bench_if,lookup.py,--backend sqlite)
	$(call bench_if,lookup.py,--backend postgresql)
	$(call bench_if,name_search.py,--backend sqlite --entries $(BENCH_ENTRIES))
	$(call bench_if,name_search.py,--backend postgresql --entries $(BENCH_ENTRIES))
	$(BIN)/python bench/status.py --backend sqlite --entries $(BENCH_ENTRIES)
	$(BIN)/python bench/status.py --backend postgresql --entries $(BENCH_ENTRIES)
ifeq ($(BENCH_10M),1)
	@# Lookup by USCC against the sync's filled origin: one 10M fill for both figures.
	$(BIN)/python bench/sync.py --backend postgresql --entries 10000000 --rounds 1 \
		--latency-seconds 0 --name sync_postgresql_10m --lookup-queries 2000 \
		--lookup-name lookup_postgresql_10m
endif
	$(BIN)/python bench/table.py

# Initial sync alone (verified against an unverified copy, peak RSS, propagation latency):
# bench/results/sync_<backend>.json; BENCH_ARGS e.g. "--backend postgresql --entries 100000".
bench-sync: venv postgres-server
	$(BIN)/python bench/sync.py $(BENCH_ARGS)

# `status` on a home mirroring N entries: bench/results/status_<backend>.json.
bench-status: venv postgres-server
	$(BIN)/python bench/status.py $(BENCH_ARGS)

# The README's issue-17 table from whatever bench/results/ holds.
bench-table: venv
	$(BIN)/python bench/table.py

# The border's cost (issue #5), on SQLite and on a throw-away PostgreSQL server:
# bench/results/border_cost_{sqlite,postgresql}.json.
bench-border: venv postgres-server
	$(BIN)/python bench/border_cost.py --backend sqlite
	$(BIN)/python bench/border_cost.py --backend postgresql

# The audit log's cost on a query (issue 13): p50/p99 with and without the record, same run.
bench-audit: venv postgres-server
	$(BIN)/python bench/audit_cost.py --backend sqlite
	$(BIN)/python bench/audit_cost.py --backend postgresql

# Lookup (gate, border, durable record) against a bare grpc.aio mTLS echo at concurrency 1
# and 16 (issue 17): bench/results/lookup_<backend>.json; BENCH_ARGS e.g. "--entries 1000000".
bench-lookup: venv postgres-server
	$(BIN)/python bench/lookup.py --backend sqlite $(BENCH_ARGS)
	$(BIN)/python bench/lookup.py --backend postgresql $(BENCH_ARGS)

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

# Name search and organisation-code resolve p99 at 10k/100k entries (1M: BENCH_ARGS=--million)
# on SQLite and PostgreSQL, against the old full-table answers in the same run (issue 17):
# bench/results/name_search_{sqlite,postgresql}.json.
bench-names: venv postgres-server
	$(BIN)/python bench/name_search.py --backend sqlite $(BENCH_ARGS)
	$(BIN)/python bench/name_search.py --backend postgresql $(BENCH_ARGS)

# find_conflicts and the status counts, old scan against new, at 10k/100k rows (BENCH_ARGS
# "--million" adds 1M): bench/results/routine.json and routine_postgresql.json.
bench-routine: venv postgres-server
	$(BIN)/python bench/routine.py --backend sqlite $(BENCH_ARGS)
	$(BIN)/python bench/routine.py --backend postgresql $(BENCH_ARGS)

# USCC validation, fast path (pure and compiled) against the full path, one core, 1M codes
# (issue 17): bench/results/uscc.json.
bench-uscc: venv
	$(BIN)/python bench/uscc.py $(BENCH_ARGS)

# Compiled (mypyc) against pure-Python cores, alternating in one run (issue 17): Merkle
# hashing onto a Frontier, proofs, leaf parse and checks, USCC: bench/results/native.json.
bench-native: venv
	$(BIN)/python bench/native.py $(BENCH_ARGS)
