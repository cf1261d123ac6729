# The two commands of the README:
#   make run    set everything up and open the workstation on the demo data
#   make test   set everything up and run the whole test suite
# Everything heavy (Debian packages, torch, weights) goes to ~/.cache/differnet, once.

SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: setup run test test-avx2 lint build bench batch-check drift-bench fuzz

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --release

run: build
	"$${CARGO_TARGET_DIR:-target}/release/differnet-workstation" assets/demo

test: setup
	$(CARGO) test --all-targets --no-fail-fast

# The numeric suites (every test that compares two ways of scoring: batches, lanes, a
# reload, a fusion against its member) once more with libtorch held to what an AVX2-only
# CPU computes, so that a machine with AVX-512, AMX or bfloat16 sees what an AVX2 machine
# sees. DIFFERNET_BF16=0 turns off the bfloat16 backbone (the largest change, 7 % of a
# score here); ONEDNN_MAX_CPU_ISA moves oneDNN's dense convolutions; the ATen and MKL
# settings hold the vectorised ops and BLAS to AVX2 (MKL_CBWR=AVX2 asks MKL for AVX2's
# results, not only its instructions). BENCHMARKS.md, "Scores on every x86-64 CPU".
AVX2_ENV := DIFFERNET_BF16=0 ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 \
	MKL_ENABLE_INSTRUCTIONS=AVX2 MKL_CBWR=AVX2
NUMERIC_SUITES := detectors fusion model_file lanes pipeline shapes defects
test-avx2: setup
	$(AVX2_ENV) $(CARGO) test --no-fail-fast $(addprefix --test ,$(NUMERIC_SUITES))

# Accuracy and speed on ../shared/data/magnetic_tile, the PyTorch reference side by side,
# and the GUI's frame time; rewrites the tables of BENCHMARKS.md (about an hour on 2 cores).
bench: build
	python3 scripts/bench.py $(BENCH_ARGS)

# How much scores move between batch 1 and batch 8 (BENCHMARKS.md, "Scores and batch size").
batch-check: build
	bash scripts/batch_check.sh

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
