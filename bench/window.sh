#!/usr/bin/env bash
# Training speed with the real workbench window open vs headless, under Xvfb with Mesa's software renderer
# (as a VM or remote desktop without a GPU draws). Needs the packages xvfb, mesa-vulkan-drivers, libgl1-mesa-dri.
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/gantry-runtime-$(id -u)}"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
cargo build --release --example window_bench
exec xvfb-run -a -s "-screen 0 1600x1000x24" cargo run --release --example window_bench -- "$@"
