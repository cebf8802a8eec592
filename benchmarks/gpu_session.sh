#!/usr/bin/env bash
# The GPU tables in one lent-GPU call (DEVELOPERS.md, GPU): sets itself up on the bare machine,
# runs the target benchmarks at sizes that fit the lease, and packs every result into one file.
#
#   bash benchmarks/gpu_session.sh OUT [SECONDS]      # on the device: OUT=$OUT, SECONDS=540
#   PYTHON=.venv/bin/python bash benchmarks/gpu_session.sh /tmp/gs 600 --quick   # dry run on CPU
#
# Each step runs under its own time limit and the whole under SECONDS, so that a slow step
# costs only itself; after each step everything so far is packed into OUT/results.tgz (the
# device returns at most 8 files). The 10980^2 and 4096^2 inputs are generated in the
# background while the model-only benchmarks keep the GPU busy. By default the steps run in
# the order that fills what the H200 run of 2026-12-04 left unmeasured (BENCHMARKS.md, GPU);
# SESSION=first gives each target's figure first (the full tile's decloud before its I/O floor,
# eager training before compiled, which did not finish in 141 s there).
set -u
OUT=${1:?usage: gpu_session.sh OUT [SECONDS] [--quick]}
BUDGET=${2:-540}
QUICK=${3:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
START=$(date +%s)
mkdir -p "$OUT"
exec > >(tee -a "$OUT/session.log") 2>&1

PY=${PYTHON:-python3}
if ! "$PY" -c "from osgeo import gdal" 2>/dev/null; then       # the device has no GDAL: the carried wheel
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
        "$ROOT"/.whl/gdal_wheel-*.whl || { echo "no GDAL and no .whl/gdal_wheel-*.whl"; exit 1; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$ROOT/library${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
WORK=${SARCLEAR_BENCH_WORKDIR:-/tmp/sarclear-gpu}
RES=$WORK/results
mkdir -p "$RES"
cd "$ROOT/benchmarks" || exit 1

left() { echo $(( BUDGET - ($(date +%s) - START) )); }
pack() { tar -czf "$OUT/results.tgz.part" -C "$WORK" results && mv "$OUT/results.tgz.part" "$OUT/results.tgz"; }
step() {  # step NAME MAX_SECONDS SCRIPT ARGS...: run under min(MAX, time left - 15 s)
    local name=$1 max=$2; shift 2
    local t=$(( $(left) - 15 )); (( t > max )) && t=$max
    if (( t < 20 )); then echo "=== $name: skipped, $(left) s left"; return; fi
    echo "=== $name ($t s at most, $(left) s left): $*"
    local t0=$(date +%s)
    timeout -k 5 "$t" "$PY" "$@" --out "$RES" --workdir "$WORK" > "$RES/$name.log" 2>&1
    local rc=$?
    echo "=== $name: exit $rc in $(( $(date +%s) - t0 )) s"
    tail -n 40 "$RES/$name.log"
    pack
    return $rc
}

{ nvidia-smi || true; "$PY" - <<'EOF'
import platform, numpy, torch
from osgeo import gdal
import sarclear
print("python", platform.python_version(), "numpy", numpy.__version__, "torch", torch.__version__,
      "cuda", torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA",
      "gdal", gdal.__version__, "sarclear", sarclear.__file__)
EOF
git -C "$ROOT" rev-parse HEAD 2>/dev/null || true; } > "$RES/env.txt" 2>&1
cat "$RES/env.txt"
grep -q "^python .* gdal" "$RES/env.txt" || { echo "set-up failed: no torch, GDAL or sarclear"; exit 1; }

if [ "$QUICK" = --quick ]; then SIZE=512 WINDOW=512 PAIRS=2 SIZES=512 BATCH=2 WORKERS=0 STEPS=2 WARM=1 Q=--quick
else SIZE=10980 WINDOW=1024 PAIRS=16 SIZES=1024,4096 BATCH=64 WORKERS=0 STEPS=30 WARM=10 Q=; fi   # cached data are cropped on the GPU: no loader workers
MEM=$(( WINDOW * $("$PY" -c "print(int($PAIRS ** 0.5 + 0.999))") ))
gen() { "$PY" -c "import inputs, time; from pathlib import Path; t = time.perf_counter(); inputs.scene($1, Path('$WORK')); \
print('scene $1 generated in %.0f s' % (time.perf_counter() - t))" > "$RES/inputs_$1.log" 2>&1; }
gen "$SIZE" & GEN=$!      # the full tile's scene and the training scene, side by side
if [ "$MEM" != "$SIZE" ]; then gen "$MEM" & GEN_MEM=$!; else GEN_MEM=; fi

# The default order: what the H200 run of 2026-12-04 16:14 left unmeasured first (the full tile's
# I/O floor, then its decloud again in the same lease, GDAL's threaded decoding, compiled training
# end to end), then what it measured.
TRAIN=(train_throughput.py --preset paper --data memory --workers "$WORKERS" --batch "$BATCH" --batches "$BATCH"
       --window "$WINDOW" --pairs "$PAIRS" --steps "$STEPS" --warmup-steps "$WARM" --repeats 2 --min-time 1 $Q)
inference() {
    step model_inference 150 model_throughput.py --presets paper --kinds inference --repeats 3 --min-time 1 $Q
    mv -f "$RES/model_throughput.json" "$RES/model_inference.json" 2>/dev/null
}
training_model_only() {
    step model_training 70 model_throughput.py --presets paper --kinds training --variants 0,1,2,3,4 \
        --repeats 3 --min-time 1 $Q
    mv -f "$RES/model_throughput.json" "$RES/model_training.json" 2>/dev/null
}
inputs_ready() {  # both scenes, so that no generation runs beside a timed step
    local g
    [ -n "$GEN$GEN_MEM" ] || return 0
    for g in $GEN $GEN_MEM; do wait "$g"; echo "=== inputs: exit $? ($(left) s left)"; done
    GEN= GEN_MEM=
    tail -q -n 2 "$RES"/inputs_*.log
}
tile_decloud() {
    step full_tile 150 full_tile.py --model paper --size "$SIZE" --timeout 130 --no-floor $Q
    mv -f "$RES/full_tile.json" "$RES/full_tile_decloud.json" 2>/dev/null
}
tile_floor() {
    step full_tile_floor 200 full_tile.py --model paper --size "$SIZE" --no-decloud $Q
    mv -f "$RES/full_tile.json" "$RES/full_tile_floor.json" 2>/dev/null
}
tile_gdal_threads() {
    export GDAL_NUM_THREADS=ALL_CPUS  # GDAL's threaded decoding: safe from 3.7.3 (open_raster keeps it off before)
    step full_tile_gdal_threads 150 full_tile.py --model paper --size "$SIZE" --timeout 130 --no-floor $Q
    unset GDAL_NUM_THREADS
    mv -f "$RES/full_tile.json" "$RES/full_tile_gdal_threads.json" 2>/dev/null
}
train_eager() {
    inputs_ready
    step train_throughput_eager 100 "${TRAIN[@]}" --no-compile
    mv -f "$RES/train_throughput.json" "$RES/train_throughput_eager.json" 2>/dev/null
    mv -f "$RES/train_throughput.partial.json" "$RES/train_throughput_eager.partial.json" 2>/dev/null  # if stopped
}
train_compiled() {
    inputs_ready
    step train_throughput_compiled 220 "${TRAIN[@]}"
    mv -f "$RES/train_throughput.json" "$RES/train_throughput_compiled.json" 2>/dev/null
    mv -f "$RES/train_throughput.partial.json" "$RES/train_throughput_compiled.partial.json" 2>/dev/null  # if stopped
}

if [ "${SESSION:-}" = first ]; then
    inference; training_model_only; inputs_ready; tile_decloud; train_eager; tile_gdal_threads; tile_floor
    train_compiled
else
    inputs_ready; tile_floor; tile_decloud; tile_gdal_threads; train_compiled; train_eager; inference
    training_model_only
fi
pack
echo "=== done in $(( $(date +%s) - START )) s"
