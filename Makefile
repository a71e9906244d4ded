# segfw: `make demo` shows it working, `make test` runs every test.
CARGO ?= cargo
SEGFW := target/release/segfw

.PHONY: all deps build test lint demo bench clean

all: build

deps:
	./scripts/install-deps.sh

build: deps
	$(CARGO) build --release --locked

# Installs what is missing, then: formatting, lints, unit + property tests,
# BPF_PROG_TEST_RUN tests and namespace tests with real traffic. Those need
# root and are #[ignore = "needs root: ..."], so a plain `cargo test` lists
# them as ignored; --include-ignored runs them here (as root, like CI).
test: deps
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	$(CARGO) test --locked -- --include-ignored

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

demo: build
	./scripts/demo.sh $(SEGFW)

bench: build
	./scripts/bench/run.sh

clean:
	$(CARGO) clean

# cargo-fuzz targets (fuzz/), each for FUZZ_SECONDS (default 60): reports
# executions and crashes; crashing inputs land in tests/fuzz_regressions/.
.PHONY: fuzz
fuzz:
	FUZZ_SECONDS=$(or $(FUZZ_SECONDS),60) ./scripts/fuzz.sh
