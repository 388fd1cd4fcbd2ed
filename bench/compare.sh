#!/usr/bin/env bash
# Side-by-side training throughput: `gantry bench` vs PyTorch's torch_reference.py, same models, same
# machine, same thread count, measured alternately (gantry, torch, torch, gantry, ...) so that both see the
# same background load. Prints a markdown table of median images/s per model and the ratio gantry/PyTorch,
# and the peak resident memory of each side's process (the largest over its rounds; GNU time's %M).
#
#   bench/compare.sh [MODEL...]          # default: dcgan vae mlpgan convae; dcgan64 (64x64 RGB) when named
#
# Environment (all optional):
#   GANTRY           gantry binary (default target/release/gantry, built with `cargo build --release` if missing)
#   TORCH_REFERENCE  PyTorch reference script (default ../shared/bench/torch_reference.py)
#   PYTHON           Python with torch installed (default python3); also used to parse the JSON
#   THREADS          threads for both (default: number of physical cores)
#   ROUNDS           alternating rounds per model (default 3)
#   STEPS            timed steps per measurement (default 30)
#   STEPS_DCGAN, STEPS_VAE, STEPS_MLPGAN, STEPS_CONVAE, STEPS_DCGAN64   per-model steps (default: STEPS;
#                    a dcgan64 step takes seconds: STEPS_DCGAN64=8 is plenty)
#   RAW              if set, every single measurement is appended to this file as one JSON line
# Paths are relative to the repository root (the script changes there first).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
TORCH_REFERENCE=${TORCH_REFERENCE:-../shared/bench/torch_reference.py}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-30}

physical_cores() {
    local n=""
    if command -v lscpu >/dev/null 2>&1; then
        n=$(lscpu -p=Core,Socket 2>/dev/null | grep -v '^#' | sort -u | wc -l)
    fi
    if [ -z "$n" ] || [ "$n" -lt 1 ]; then
        n=$(nproc 2>/dev/null || echo 1)
    fi
    echo "$n"
}
THREADS=${THREADS:-$(physical_cores)}

if [ -z "${GANTRY:-}" ]; then
    GANTRY=target/release/gantry
    if [ ! -x "$GANTRY" ]; then
        echo "building $GANTRY (cargo build --release) ..." >&2
        cargo build --release --bin gantry >&2
    fi
fi
[ -x "$GANTRY" ] || { echo "error: GANTRY=$GANTRY is not an executable" >&2; exit 2; }
[ -f "$TORCH_REFERENCE" ] || { echo "error: TORCH_REFERENCE=$TORCH_REFERENCE not found" >&2; exit 2; }
"$PYTHON" -c 'import torch' 2>/dev/null || { echo "error: PYTHON=$PYTHON cannot import torch" >&2; exit 2; }

if [ $# -gt 0 ]; then MODELS=("$@"); else MODELS=(dcgan vae mlpgan convae); fi

steps_for() {
    local var="STEPS_$(echo "$1" | tr '[:lower:]' '[:upper:]')"
    if [ -n "${!var:-}" ]; then echo "${!var}";
    else echo "$STEPS"; fi
}

# Pulls "batch images_per_s threads" for one model out of the JSON array a tool printed on stdout.
extract() {
    "$PYTHON" -c '
import json, sys
model = sys.argv[1]
lines = [l for l in sys.stdin.read().splitlines() if l.strip().startswith("[")]
if not lines:
    sys.exit("no JSON array in the output")
for r in json.loads(lines[-1]):
    if r["model"] == model:
        print(r["batch"], r["images_per_s"], r["threads"])
        break
else:
    sys.exit("model %s not in the output" % model)
' "$1"
}

[ -x /usr/bin/time ] || { echo "error: /usr/bin/time (GNU time) is needed for peak memory: apt-get install time" >&2; exit 2; }
RSS_FILE=$(mktemp)
trap 'rm -f "$RSS_FILE"' EXIT

# Each run's peak resident set size in KiB goes to $RSS_FILE.
run_gantry() { # model steps
    /usr/bin/time -f '%M' -o "$RSS_FILE" "$GANTRY" bench --json --model "$1" --steps "$2" --threads "$THREADS"
}
run_torch() { # model steps
    OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS /usr/bin/time -f '%M' -o "$RSS_FILE" \
        "$PYTHON" "$TORCH_REFERENCE" --json --threads "$THREADS" --model "$1" --steps "$2"
}

measure() { # tool model steps round -> "batch images_per_s threads peak_kib"
    local tool=$1 model=$2 steps=$3 round=$4 out res rss
    out=$("run_$tool" "$model" "$steps")
    rss=$(tail -n 1 "$RSS_FILE")
    res="$(printf '%s\n' "$out" | extract "$model") $rss"
    read -r batch ips threads _ <<<"$res"
    printf '  round %d %-6s %-7s batch %4s  %10.1f images/s  (%s threads, %s steps)  peak %6d MiB  %s\n' \
        "$round" "$model" "$tool" "$batch" "$ips" "$threads" "$steps" "$((rss / 1024))" "$(date -u +%H:%M:%S)" >&2
    if [ -n "${RAW:-}" ]; then
        printf '{"tool":"%s","model":"%s","round":%d,"steps":%d,"batch":%s,"images_per_s":%s,"threads":%s,"peak_kib":%s,"time":"%s"}\n' \
            "$tool" "$model" "$round" "$steps" "$batch" "$ips" "$threads" "$rss" "$(date -u +%FT%TZ)" >>"$RAW"
    fi
    echo "$res"
}

echo "# $(date -u '+%F %T UTC')  $(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(physical_cores) physical cores, $(nproc) logical" >&2
echo "# gantry: $GANTRY   torch: $("$PYTHON" -c 'import torch; print(torch.__version__)') ($TORCH_REFERENCE)   threads: $THREADS   rounds: $ROUNDS" >&2

ROWS=()
for model in "${MODELS[@]}"; do
    steps=$(steps_for "$model")
    g_ips=(); t_ips=(); g_rss=(); t_rss=(); batch=?
    for round in $(seq 1 "$ROUNDS"); do
        # Alternate who goes first so neither side always gets the warmer (or quieter) slot.
        if [ $((round % 2)) -eq 1 ]; then order=(gantry torch); else order=(torch gantry); fi
        for tool in "${order[@]}"; do
            read -r batch ips _ rss <<<"$(measure "$tool" "$model" "$steps" "$round")"
            if [ "$tool" = gantry ]; then g_ips+=("$ips"); g_rss+=("$rss"); else t_ips+=("$ips"); t_rss+=("$rss"); fi
        done
    done
    ROWS+=("$("$PYTHON" -c '
import statistics, sys
model, batch, steps = sys.argv[1], sys.argv[2], sys.argv[3]
g, t, gr, tr = (list(map(float, a.split())) for a in sys.argv[4:8])
gm, tm = statistics.median(g), statistics.median(t)
print(f"| {model} | {batch} | {steps} | {gm:.1f} | {tm:.1f} | {gm / tm:.2f}x | {max(gr) / 1024:.0f} | {max(tr) / 1024:.0f} |")
' "$model" "$batch" "$steps" "${g_ips[*]}" "${t_ips[*]}" "${g_rss[*]}" "${t_rss[*]}")")
done

echo
echo "Median of $ROUNDS alternating rounds, $THREADS threads each."
echo
echo "| model | batch | steps | gantry images/s | PyTorch images/s | gantry/PyTorch | gantry peak MiB | PyTorch peak MiB |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
