# The two commands of the README:
#   make run    set everything up and open the workstation on the demo data
#   make test   set everything up and run the whole test suite
# Everything heavy (Debian packages, torch, weights) goes to ~/.cache/differnet, once.

SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: setup run test lint build bench drift-bench fuzz

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --release

run: build
	"$${CARGO_TARGET_DIR:-target}/release/differnet-workstation" assets/demo

test: setup
	$(CARGO) test --all-targets --no-fail-fast

# Accuracy and speed on ../shared/data/magnetic_tile, the PyTorch reference side by side,
# and the GUI's frame time; rewrites the tables of BENCHMARKS.md (about an hour on 2 cores).
bench: build
	python3 scripts/bench.py $(BENCH_ARGS)

# The line's drift warning on real parts (BENCHMARKS.md, "The line's health").
drift-bench: build
	"$${DIFFERNET_CACHE:-$$HOME/.cache/differnet}/venv/bin/python" scripts/drift_bench.py

# Fuzz the parsers of untrusted files (images, model-file header, PyTorch weights):
# FUZZ_RUNS executions per target. Needs no libtorch; see fuzz/README.md.
FUZZ_RUNS ?= 1000000
fuzz:
	bash scripts/fuzz.sh $(FUZZ_RUNS)

# Formatting, clippy, and the house rules (tests/architecture.rs: no circles between the
# files of src/, the floors only reach down, thin binaries).
lint: setup
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test --test architecture
