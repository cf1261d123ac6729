#!/usr/bin/env bash
# The GPU check: one table of the engine on the GPU machine (images/s per detector and
# setting, training time, image and pixel AUROC, agreement with the CPU), in at most five
# minutes, building nothing there. Pack first, here: scripts/gpu_pack.sh (writes .gpu/),
# then on the GPU machine, from a copy of the working tree with .gpu carried:
#   scripts/gpu_check.sh                 # the GPU against that machine's CPU
#   scripts/gpu_check.sh --device cpu    # the same runs on the CPU alone (a dry run here)
# The binary finds libtorch through its rpath here; on the GPU machine through the
# system torch's lib folder, which this script puts on LD_LIBRARY_PATH.
# Reports and logs go to $OUT when set (the device tool's folder), else to a temp folder.
set -euo pipefail
cd "$(dirname "$0")/.."
if lib=$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))' 2>/dev/null); then
  export LD_LIBRARY_PATH="$lib/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
exec python3 scripts/gpu_check.py "$@"
