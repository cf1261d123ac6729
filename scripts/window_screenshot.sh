#!/usr/bin/env bash
# Opens the real workstation window on an X display, waits until it has drawn, saves a
# screenshot of the whole screen and closes the window.
#
# Usage: scripts/window_screenshot.sh OUT.png [SETTLE_SECS] [-- ARGS...]
# Run it under an X server, e.g.
#   xvfb-run -a -s '-screen 0 1600x1000x24' scripts/window_screenshot.sh shot.png 5 -- assets/demo
# The binary is $DIFFERNET_WORKSTATION (default target/release/differnet-workstation);
# WINDOW_SHOT_MIN_COLOURS=N waits (up to 60 s after SETTLE_SECS) for N colours on screen.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$1"; shift
settle="${1:-5}"; [ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
bin="${DIFFERNET_WORKSTATION:-$root/target/release/differnet-workstation}"

"$bin" "$@" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT

# Wait (up to 120 s: the first start of a GPU context on a software renderer is slow)
# for the window to be mapped.
for _ in $(seq 1 240); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "window_screenshot: the workstation exited before showing its window" >&2
    exit 1
  fi
  if xdotool search --onlyvisible --name "DifferNet workstation" >/dev/null 2>&1; then
    break
  fi
  sleep 0.5
done
xdotool search --onlyvisible --name "DifferNet workstation" >/dev/null 2>&1 || {
  echo "window_screenshot: no window after 120 s" >&2
  exit 1
}
# Let it load the data and draw the thumbnails.
sleep "$settle"
import -window root "$out"
# With WINDOW_SHOT_MIN_COLOURS, wait on (up to 60 s more) until the screen has that many
# colours: on a busy machine the thumbnails can take longer than the settle time.
if [ -n "${WINDOW_SHOT_MIN_COLOURS:-}" ]; then
  for _ in $(seq 1 30); do
    colours=$(identify -format '%k' "$out" 2>/dev/null || echo 0)
    [ "$colours" -ge "$WINDOW_SHOT_MIN_COLOURS" ] && break
    sleep 2
    import -window root "$out"
  done
fi
echo "window_screenshot: wrote $out" >&2
