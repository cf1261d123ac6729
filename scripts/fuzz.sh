#!/usr/bin/env bash
# Fuzzes the parsers that read untrusted files, one target after the other:
#   image_load    bytes -> image_io::decode_rgb (every image the program opens)
#   model_meta    bytes -> model_header::metadata_json, then the configuration checks of
#                 model_file::load
#   model_json    text -> the metadata entry of a well-formed model file, then the same
#                 checks (structure-aware: reaches the configuration far more often)
#   torch_pickle  bytes -> torch_pickle::parse_state_dict (the restricted unpickler)
#
# Usage: scripts/fuzz.sh [RUNS] [TARGET...]
#   RUNS     executions per target (default 1000000)
#   TARGET   some of the targets above (default: all four)
#   FUZZ_SANITIZER=none   build without AddressSanitizer (faster; for when ASan fails)
#   FUZZ_ARGS="..."       more libFuzzer options, e.g. "-max_total_time=600"
#
# Installs cargo-fuzz when it is missing. cargo-fuzz needs nightly flags; on a stable
# toolchain RUSTC_BOOTSTRAP=1 allows them. Builds keep debug assertions (-a), so integer
# overflow is a crash. The corpus grows in fuzz/corpus/TARGET from the seeds kept in
# fuzz/seeds/TARGET (made by scripts/fuzz_seeds.py), helped by the libFuzzer dictionary
# fuzz/TARGET.dict where there is one; a crash leaves its input in
# fuzz/artifacts/TARGET. Ends with one line of figures per target, and fails when any
# target crashed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
runs="${1:-1000000}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(image_load model_meta model_json torch_pickle)
fi
sanitizer="${FUZZ_SANITIZER:-address}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

# Longest input per target: room for a small image, a model file header, a small
# state_dict, without spending the runs on huge inputs.
max_len() {
    case "$1" in
        image_load) echo 16384 ;;
        model_meta | model_json) echo 8192 ;;
        torch_pickle) echo 8192 ;;
        *) echo "unknown target: $1" >&2; exit 2 ;;
    esac
}

summary=()
failed=0
for target in "${targets[@]}"; do
    len="$(max_len "$target")"
    mkdir -p "fuzz/corpus/$target" fuzz/logs
    # Not in fuzz/artifacts: cargo-fuzz names the newest file there as the failing input.
    log="fuzz/logs/$target.log"
    dict=()
    if [ -f "fuzz/$target.dict" ]; then
        dict=(-dict="fuzz/$target.dict")
    fi
    echo "== $target: $runs runs, inputs up to $len bytes, sanitizer $sanitizer"
    set +e
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of options.
    cargo fuzz run -a -s "$sanitizer" "$target" \
        "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -runs="$runs" -max_len="$len" -print_final_stats=1 "${dict[@]}" ${FUZZ_ARGS:-} \
        2>&1 | tee "$log" |
        grep -E "^(Done|==[0-9]+==|SUMMARY|thread .* panicked|INFO: Running|INFO: seed corpus)"
    status="${PIPESTATUS[0]}"
    set -e
    done_line="$(grep -E '^Done [0-9]+ runs' "$log" | tail -1 || true)"
    crashes="$(find "fuzz/artifacts/$target" -maxdepth 1 2>/dev/null \( -name 'crash-*' -o -name 'oom-*' \
        -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)"
    if [ "$status" -ne 0 ]; then
        failed=1
        summary+=("$target: FAILED (exit $status), ${done_line:-no final count}; inputs left in fuzz/artifacts/$target: $crashes; log $log")
    else
        summary+=("$target: ${done_line:-no final count}; corpus $(find "fuzz/corpus/$target" -type f | wc -l) inputs")
    fi
done

echo
echo "== fuzzing summary"
printf '%s\n' "${summary[@]}"
exit "$failed"
