#!/usr/bin/env bash
# Issue 6's GPU verification in one call on a lent NVIDIA machine (tools: `device run`):
#   bash tools/gpu_check.sh [STAGE ...]      stages: build cuda full bench memcheck racecheck
# (default: all, in that order). Logs go to $OUT (or ./gpu-out); the last lines printed are a
# summary. Every stage gets a share of one deadline (GPU_CHECK_SECONDS, default 560) so the
# call ends inside the device's 10-minute limit. Builds with the machine's own python3
# (`pip install --no-build-isolation --no-deps .`, the device has no internet).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
START=$SECONDS
DEADLINE=$((START + ${GPU_CHECK_SECONDS:-560}))
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(build cuda full bench memcheck racecheck)
summary=()

left() { echo $((DEADLINE - SECONDS)); }
# run NAME CAP CMD...: runs CMD with at most min(CAP, time left) seconds, log in $OUT/NAME.log
run_stage() {
  local name=$1 cap=$2; shift 2
  local t; t=$(left); [ "$cap" -lt "$t" ] && t=$cap
  if [ "$t" -le 10 ]; then summary+=("$name: not run (no time left)"); return; fi
  local t0=$SECONDS
  timeout --signal=INT --kill-after=10 "$t" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  summary+=("$name: rc=$rc in $((SECONDS - t0)) s (cap $t s) :: $(tail -n 1 "$OUT/$name.log" | cut -c1-160)")
}

{
  nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm \
    --format=csv
  nvcc --version | tail -n 1
  python3 -c 'import sys, numpy, torch; print(sys.version.split()[0], "numpy", numpy.__version__, "torch", torch.__version__, torch.cuda.get_device_name(0))'
  compute-sanitizer --version | tail -n 1
  nproc
} >"$OUT/env.txt" 2>&1

for s in "${stages[@]}"; do
  case $s in
    build)
      export CMAKE_BUILD_PARALLEL_LEVEL=$(nproc)
      # GPU_ARCHS (e.g. 90-real) overrides the project's default list for a faster build.
      run_stage build 300 python3 -m pip install -v --no-build-isolation --no-deps . \
        -Ccmake.define.FASTNN_CUDA=ON ${GPU_ARCHS:+"-Ccmake.define.FASTNN_CUDA_ARCHS=$GPU_ARCHS"}
      python3 -c 'import fastnn, fastnn._C_cuda as g; print("devices", g.device_count(), fastnn.cuda.is_available())' \
        >>"$OUT/build.log" 2>&1 ;;
    cuda)
      run_stage cuda 150 python3 -m pytest -q -rs -p no:cacheprovider --tb=short \
        tests/test_cuda.py tests/test_cuda_build.py tests/test_device.py ;;
    full)
      run_stage full 150 python3 -m pytest -q -p no:cacheprovider --tb=short -n 8 tests ;;
    bench)
      run_stage bench 150 python3 bench/run.py --markdown --cases gpu_gemm gpu_softmax_ce gpu_mlp_step ;;
    memcheck)
      run_stage memcheck 200 compute-sanitizer --tool memcheck --error-exitcode 99 \
        --print-limit 20 python3 -m pytest -q -x -p no:cacheprovider --tb=short tests/test_cuda.py ;;
    racecheck)
      run_stage racecheck 200 compute-sanitizer --tool racecheck --error-exitcode 99 \
        --print-limit 20 python3 -m pytest -q -x -p no:cacheprovider --tb=short tests/test_cuda.py \
        ${RACECHECK_K:+-k "$RACECHECK_K"} ;;
    *) summary+=("$s: unknown stage") ;;
  esac
done

for f in cuda full memcheck racecheck; do
  [ -f "$OUT/$f.log" ] && { echo "== $f: failures"; grep -E '^(FAILED|ERROR)|=== ERROR SUMMARY|Invalid|Race reported' "$OUT/$f.log" | head -n 25; }
done
[ -f "$OUT/bench.log" ] && { echo "== bench"; tail -n 30 "$OUT/bench.log"; }
echo "== env"; cat "$OUT/env.txt"
echo "== summary ($((SECONDS - START)) s)"
printf '%s\n' "${summary[@]}"
