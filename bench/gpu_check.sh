#!/usr/bin/env bash
# Device check for a lent GPU machine, in under 10 minutes: CUDA jax, a device subset of the
# tests (the network against its references, the Pallas kernel compiled for the GPU against the
# XLA path, the cross-platform lowering test under the GPU build of jaxlib), and the neuron, network
# (XLA path, Pallas kernel and the same-budget LSTM in one run), seed-parallel and
# sweep-throughput benchmarks as JSON lines.
#
#     OUT=results/ bash bench/gpu_check.sh          # on the GPU machine, from the repo root
#     DRY_RUN=1 bash bench/gpu_check.sh             # print the steps, run nothing
#     CPU=1 OUT=/tmp/check bash bench/gpu_check.sh  # the same steps on CPU, small sizes
#
# Environment: PYTHON (default python3; with CPU=1 the repo's .venv/bin/python when there is
# one), OUT (where everything is written, default ./gpu_check_out), WHEELS (a folder of wheels
# installed offline first, for packages the machine lacks, e.g. ml-collections). Every step is
# cut off by `timeout` at its own limit; the limits add up to 9 min 10 s (10 min 10 s with WHEELS).
# Writes three files (few, so that they fit a machine's file return): OUT/results.jsonl (every
# benchmark's JSON lines, each naming its "bench"), OUT/check.log (commands, test output,
# warnings) and OUT/summary.json (exit code per step). A failing step is recorded and the next
# step still runs.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-./gpu_check_out}"
if [ -z "${PYTHON:-}" ]; then
  PYTHON=python3
  [ "${CPU:-0}" = 1 ] && [ -x .venv/bin/python ] && PYTHON=.venv/bin/python
fi
DRY_RUN="${DRY_RUN:-0}"
CPU="${CPU:-0}"
mkdir -p "$OUT"
LOG="$OUT/check.log"
: >"$LOG"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-/tmp/elm_jax_jax_cache}"
# CPU mode only exercises the script: slower machine, so each limit is stretched.
LIMIT_SCALE=1
if [ "$CPU" = 1 ]; then
  export JAX_PLATFORMS=cpu
  LIMIT_SCALE=3
fi
declare -A RC

RESULTS="$OUT/results.jsonl"
: >"$RESULTS"

step() {  # step NAME SECONDS CMD...
  local name=$1 seconds=$(($2 * LIMIT_SCALE))
  shift 2
  echo "== $name (limit ${seconds}s): $*" | tee -a "$LOG"
  if [ "$DRY_RUN" = 1 ]; then
    RC[$name]=dry
    return
  fi
  local start=$SECONDS
  local tmp="$OUT/.step.out"
  timeout --kill-after=10 "$seconds" "$@" >"$tmp" 2>>"$LOG"
  RC[$name]=$?
  # JSON lines go to the results; everything else to the log.
  grep '^{' "$tmp" >>"$RESULTS" || true
  grep -v '^{' "$tmp" >>"$LOG" || true
  rm -f "$tmp"
  echo "== $name: exit ${RC[$name]} after $((SECONDS - start))s" | tee -a "$LOG"
}

# 1. Packages: offline wheels first, then the CUDA build of the installed jax if jax sees no GPU.
if [ -n "${WHEELS:-}" ] && [ -d "$WHEELS" ]; then
  step wheels 60 "$PYTHON" -m pip install -q --no-index --no-deps \
    --target /tmp/elm_jax_site "$WHEELS"/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/elm_jax_site"
fi
if [ "$CPU" != 1 ] && [ "$DRY_RUN" != 1 ]; then
  if ! "$PYTHON" -c 'import jax, sys; sys.exit(jax.default_backend() != "gpu")' 2>>"$LOG"; then
    JAX_VERSION=$("$PYTHON" -c 'import jax; print(jax.__version__)' 2>>"$LOG")
    # jax >= 0.7 ships CUDA 13 plugins; older versions only CUDA 12.
    CUDA=$("$PYTHON" -c 'import jax; v = tuple(int(x) for x in jax.__version__.split(".")[:2]); print("cuda13" if v >= (0, 7) else "cuda12")' 2>>"$LOG")
    step install_cuda_jax 60 "$PYTHON" -m pip install -q -U "jax[$CUDA]==$JAX_VERSION"
  fi
fi
step devices 15 "$PYTHON" -c 'import json, jax; print(json.dumps({"bench": "devices", "backend": jax.default_backend(), "devices": [d.device_kind for d in jax.devices()], "jax": jax.__version__}))'

# 2. A device subset of the tests: the network against its references; on the GPU also the
# Pallas kernel compiled for it against the XLA path, and the lowering test under the GPU build
# of jaxlib (it lowers; it runs nothing).
if [ "$CPU" = 1 ]; then TEST_SELECT="rematerialised or invalid_layout"; else TEST_SELECT="numpy_per_step_loop or custom_gradient or remat or layout"; fi
# (tests/conftest.py picks the CPU unless JAX_PLATFORMS is set: on the GPU machine set it to cuda.)
TEST_PLATFORM=cuda
[ "$CPU" = 1 ] && TEST_PLATFORM=cpu
step tests 60 env JAX_PLATFORMS="$TEST_PLATFORM" "$PYTHON" -m pytest -x -q -p no:cacheprovider \
  tests/test_network.py -k "$TEST_SELECT" -o log_cli=false
if [ "$CPU" != 1 ]; then
  step pallas_tests 70 env JAX_PLATFORMS=cuda "$PYTHON" -m pytest -q -p no:cacheprovider -rs \
    tests/test_pallas.py -k compiled -o log_cli=false
  step lowering_tests 45 "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_lowering.py \
    -k "pallas or cuda" -o log_cli=false
fi

# 3. Benchmarks (JSON lines). CPU mode: tiny sizes, only to exercise the script.
if [ "$CPU" = 1 ]; then
  NEURON_ARGS=(--configs small --repeats 5 --warmup 1)
  NETWORK_ARGS=(--connectivity auto --layout neuron_major --points few_complex,lstm --seq-len 20 --repeats 2)
  SEED_ARGS=(--seeds 2 --steps 2)
  SWEEP_ARGS=(--max-points 1 --timed-steps 2)
else
  NEURON_ARGS=(--repeats 7)
  NETWORK_ARGS=(--connectivity auto --kernel xla,gpu_pallas --repeats 3)
  SEED_ARGS=(--seeds 4 --steps 30)
  SWEEP_ARGS=(--max-points 4 --timed-steps 5)
fi
step neuron 50 "$PYTHON" bench/neuron_speed.py "${NEURON_ARGS[@]}"
step network 100 "$PYTHON" bench/network_speed.py "${NETWORK_ARGS[@]}"
if [ "$CPU" != 1 ]; then
  step network_sweep_shapes 45 "$PYTHON" bench/network_speed.py \
    --connectivity auto --kernel xla,gpu_pallas --batch 32 --seq-len 80 --seeds 2 --repeats 3
  step network_memory 25 "$PYTHON" bench/network_speed.py \
    --connectivity auto --kernel xla,gpu_pallas --batch 32 --seq-len 1000 --memory-only
fi
step seed_parallel 35 "$PYTHON" bench/seed_parallel.py "${SEED_ARGS[@]}"
step sweep_throughput 45 "$PYTHON" bench/sweep_throughput.py "${SWEEP_ARGS[@]}"

summary="{"
for name in "${!RC[@]}"; do summary+="\"$name\": \"${RC[$name]}\", "; done
summary="${summary%, }}"
echo "$summary" | tee "$OUT/summary.json" | tee -a "$LOG"
