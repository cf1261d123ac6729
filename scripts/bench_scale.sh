#!/usr/bin/env bash
# Opens the workstation on a folder of 10,000 images (links to the demo images) under
# Xvfb, scrolls the gallery through a few thousand of them, and prints how long the
# window took to appear and the peak resident memory.
# Usage: scripts/bench_scale.sh [COUNT]   (run from the repository root after `make build`)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
count="${1:-10000}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/images" "$work/home"
src=("$root"/assets/demo/train/good/*.png)
for i in $(seq 0 $((count - 1))); do
  ln -s "${src[$((i % ${#src[@]}))]}" "$work/images/part_$(printf %05d "$i").png"
done
cat > "$work/drive.sh" <<DRIVE
#!/usr/bin/env bash
start=\$(date +%s.%N)
XDG_DATA_HOME="$work/home" "$root/target/release/differnet-workstation" "$work/images" >/dev/null 2>&1 &
pid=\$!
for _ in \$(seq 480); do xdotool search --onlyvisible --name "DifferNet workstation" >/dev/null 2>&1 && break; sleep 0.25; done
echo "images: $count; window shown after \$(echo "\$(date +%s.%N) - \$start" | bc) s"
sleep 10
xdotool mousemove 900 600
for _ in \$(seq 40); do xdotool click --repeat 20 5; sleep 0.2; done
sleep 5
grep VmHWM /proc/\$pid/status
kill \$pid
DRIVE
chmod +x "$work/drive.sh"
xvfb-run -a -s "-screen 0 1600x1000x24" "$work/drive.sh"
