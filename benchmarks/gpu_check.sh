#!/usr/bin/env bash
# The GPU checks of issue 16 in one run: `pytest -m gpu`, then Z1, Z2, Z3 (ZO memory, MeZO step
# time, batched perturbations), B2 (BBT population) and E4 (batched evaluation) on CUDA, each
# under `timeout`, with one markdown table of what ran in OUT_DIR/gpu_check.md.
#
#   benchmarks/gpu_check.sh OUT_DIR [--dry-run]
#
# The GPU machine reaches no package registry: it has torch (CUDA), transformers, peft, numpy,
# scipy and pytest; everything else travels with the tree as wheels in $WHEELS (default
# wheels/, an ignored folder; fill it beforehand with benchmarks/gpu_wheels.sh) and is installed
# with `pip install --no-index --find-links`. bbopt itself runs from the tree (PYTHONPATH=.).
# Nothing is downloaded at run time. The benchmarks append their sections to the tree's
# benchmarks/RESULTS.md; the sections this run added are copied to OUT_DIR/results_added.md,
# and every step's output to OUT_DIR/logs/. --dry-run prints the plan and exits 0.
# Environment: PYTHON (default python3), WHEELS, SEEDS (default 1).
set -uo pipefail

usage() { echo "usage: $0 OUT_DIR [--dry-run]" >&2; exit 2; }
[ $# -ge 1 ] || usage
OUT=$1; shift
DRY=0
for arg in "$@"; do
    case $arg in
        --dry-run) DRY=1 ;;
        *) echo "$0: unknown argument '$arg'" >&2; usage ;;
    esac
done
case $OUT in -*) usage ;; esac

cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-wheels}
SEEDS=${SEEDS:-1}
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}

# name | seconds | command: about 9 minutes in all, so that one rerun fits in a 15-minute lease.
# B2 and E4 get --device cuda where their script has that option, else they run on the CPU
# and their step name says so.
on_cuda() {
    if grep -q -- "--device" "$2"; then echo "$1|--device cuda"; else echo "$1 (CPU: $2 has no --device)|"; fi
}
IFS='|' read -r B2 B2_FLAG <<< "$(on_cuda B2 benchmarks/bbt_population.py)"
IFS='|' read -r E4 E4_FLAG <<< "$(on_cuda E4 benchmarks/sweep.py)"
STEPS=(
    "install|60|$PY -m pip install --no-index --no-deps --find-links $WHEELS $WHEELS/*.whl"
    "versions|30|$PY -c 'import torch, numpy; print(torch.__version__, numpy.__version__, torch.cuda.get_device_name(0))'"
    "pytest-gpu|120|$PY -m pytest -m gpu -q -p no:cacheprovider tests"
    "Z1|90|$PY benchmarks/zo_memory.py --device cuda --seeds $SEEDS --methods mezo,mezo-plain,forward-grad,bp-adam"
    "Z2|90|$PY benchmarks/zo_speed.py --device cuda --parts z2 --seeds $SEEDS --rows minilm:16:all:gaussian,minilm:16:all:rademacher,mlp:64::gaussian,mlp:1024::gaussian"
    "Z3|60|$PY benchmarks/zo_speed.py --device cuda --parts z3 --seeds $SEEDS"
    "$B2|60|$PY benchmarks/bbt_population.py $B2_FLAG"
    "$E4|60|$PY benchmarks/sweep.py --quick $E4_FLAG"
)

if [ "$DRY" = 1 ]; then
    echo "gpu_check plan (dry run: nothing is run); table -> $OUT/gpu_check.md"
    for step in "${STEPS[@]}"; do
        IFS='|' read -r name limit cmd <<< "$step"
        echo "$name: timeout $limit $cmd"
    done
    exit 0
fi

mkdir -p "$OUT/logs" || exit 2
RESULTS=benchmarks/RESULTS.md
before=$(wc -l < "$RESULTS")
{
    echo "| step | exit | seconds | command | last line |"
    echo "|---|---|---|---|---|"
} > "$OUT/gpu_check.md"
for step in "${STEPS[@]}"; do
    IFS='|' read -r name limit cmd <<< "$step"
    if [ "$name" = install ] && ! ls "$WHEELS"/*.whl > /dev/null 2>&1; then
        echo "| $name | skipped | 0 | no wheels in $WHEELS | |" >> "$OUT/gpu_check.md"
        continue
    fi
    log="$OUT/logs/${name%% *}.log"
    start=$(date +%s)
    timeout "$limit" bash -c "$cmd" > "$log" 2>&1
    rc=$?
    [ $rc = 124 ] && rc="124 (timed out)"
    last=$(grep -v '^\s*$' "$log" | tail -n 1 | tr '|' '/' | cut -c1-160)
    echo "| $name | $rc | $(( $(date +%s) - start )) | \`${cmd//|//}\` | $last |" >> "$OUT/gpu_check.md"
    echo "$name: exit $rc"
done
tail -n +"$((before + 1))" "$RESULTS" > "$OUT/results_added.md"
cat "$OUT/gpu_check.md"
