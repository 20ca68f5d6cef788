# The everyday commands. `make demo` and `make test` are the two a newcomer needs.

CARGO ?= cargo

.PHONY: build test demo fuzz bench fmt lint

build:
	$(CARGO) build --release

# --quiet keeps one line of dots per test binary, and every "test result:" summary.
test:
	$(CARGO) test --all-targets --quiet

demo:
	$(CARGO) run --release --quiet -- --demo

fuzz:
	@echo "fuzz: not there yet (issue 4)"

bench:
	@echo "bench: not there yet (issue 7)"

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
