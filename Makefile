# The everyday commands. `make demo` and `make test` are the two a newcomer needs.

CARGO ?= cargo

.PHONY: build test demo fuzz bench fmt lint

build:
	$(CARGO) build --release

# --quiet keeps one line of dots per test binary, and every "test result:" summary;
# --no-fail-fast runs every test binary even when one fails, so one run shows every failure.
test:
	$(CARGO) test --all-targets --quiet --no-fail-fast

demo:
	$(CARGO) run --release --quiet -- --demo

# Every cargo-fuzz target for FUZZ_SECONDS each (nightly toolchain; see docs/http.md).
FUZZ_SECONDS ?= 60
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz
	@rustup run nightly rustc --version >/dev/null 2>&1 || \
		{ echo "fuzz: needs the nightly toolchain: rustup toolchain install nightly"; exit 1; }
	@for target in $$($(CARGO) fuzz list); do \
		echo "fuzz: $$target for $(FUZZ_SECONDS)s"; \
		$(CARGO) +nightly fuzz run $$target -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

# The yardstick the project is judged by lives beside the repository (../shared/bench);
# bench/extra.py adds the scenarios it lacks, and measures trident against bench/floor.rs (the
# least a three-leg fan-out can do). Results go to bench/results*.md (not committed).
YARDSTICK ?= ../shared/bench/run.py
BENCH_ARGS ?=

bench: build
	$(CARGO) build --release --example floor
	@command -v nginx >/dev/null 2>&1 && command -v wrk >/dev/null 2>&1 || \
		{ apt-get update && apt-get install -y nginx wrk; }
	@command -v perf >/dev/null 2>&1 || apt-get install -y linux-perf || \
		echo "bench: no perf: the syscall count is skipped"
	@command -v valgrind >/dev/null 2>&1 || apt-get install -y valgrind || \
		echo "bench: no valgrind: the instruction count is skipped"
	@if [ -f $(YARDSTICK) ]; then \
		python3 $(YARDSTICK) target/release/trident --out bench/results.md $(BENCH_ARGS); \
	else \
		echo "bench: $(YARDSTICK) not found: the shared yardstick is skipped"; \
	fi
	python3 bench/extra.py target/release/trident --out bench/results-extra.md

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
