#!/usr/bin/env bash
# The one prepared script a session with a lent GPU runs first (about 6-8 minutes on an H100; no downloads;
# prints tables, and keeps the whole log in $OUT/gpu_suite.log where $OUT is set, as the device tool sets it).
#
#   bash benchmarks/gpu_suite.sh                           # on the GPU machine: python3 there holds torch
#   REDUCED=1 bash benchmarks/gpu_suite.sh                 # smoke run on a CPU: tiny sizes (CI runs it)
#   STUDIOGAN=/path/to/PyTorch-StudioGAN bash benchmarks/gpu_suite.sh   # also StudioGAN's iteration beside ours
#
# From the device tool: run(command="bash benchmarks/gpu_suite.sh", timeout_s=540). Sections run one after
# another under their own time limit; a failing section is reported and the next one still runs (the exit
# status is that of the last failure).
#   1. step_bench: cifar10-reacgan at batch 128 over the fast-path options; the 128 px ReACGAN row at its batch;
#      StyleGAN2 + D2D-CE (cifar10-stylegan2-d2dce, ReACGAN Table 5) at its batch 64 (with STUDIOGAN: beside
#      StudioGAN's own iteration; 8 timed iterations carry one lazy R1 step)
#   2. data_bench: prepare rate and each residency tier's delivery at 64 and 128 px (20,000-image store)
#   3. metrics_bench: FID, PRDC and KID on 10,000 x 2048 features
#   4. feature extraction: DINOv2 ViT-L/14 (FD_DINOv2) and SwAV ResNet-50 on 50,000 images (about 4-5 minutes on an
#      H100 in fp32 without TF32, its own limit of 420 s). PART=1 runs sections 1-3, PART=2 section 4 alone: two calls
#      of the device tool when one would pass its 10-minute limit.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && ! "$PY" -c "import torch" 2>/dev/null && PY=.venv/bin/python
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
LOG=${OUT:-/tmp}/gpu_suite.log
: > "$LOG"
status=0

if [ -n "${REDUCED:-}" ]; then  # every section at its smallest: tiny widths, one iteration (CI runs this)
    DEVICE=cpu
    TINY=(--set model.g_width=8 --set model.d_width=8)
    CIFAR=(--batches 4 --options fp32 --warmup 1 --iterations 1 "${TINY[@]}")
    ROW128=(--batches 2 --options fp32 --warmup 1 --iterations 1 "${TINY[@]}" --set model.embed_dim=16
            --set model.z_dim=24)
    STYLE=(--batches 4 --options fp32 --warmup 1 --iterations 1 --set model.channel_max=8 --set model.mbstd_group=4
           --set model.z_dim=16 --set model.w_dim=16 --set model.embed_dim=8)
    DATA=(--images 48 --resolutions 64 --batches 2 --iter-ms 64=100)
    METRICS=(--n 300 --dim 16 --repeats 1)
    FEATURES=(--features 2 --feature-batch 2 --tiny-nets)
    LIMIT=300
    FEATURE_LIMIT=300
else
    DEVICE=cuda
    CIFAR=(--batches 128 --options fp32,fp32_fast,bf16,fast --warmup 3 --iterations 10)
    ROW128=(--options fp32,bf16 --warmup 2 --iterations 3)
    STYLE=(--batches 64 --options fp32,fp32_fast,bf16 --warmup 1 --iterations 8)
    DATA=(--images 20000 --batches 40)
    METRICS=(--n 10000 --dim 2048 --repeats 3)
    FEATURES=(--features 50000 --feature-batch 250)
    LIMIT=240
    FEATURE_LIMIT=420
fi

section() {  # section NAME COMMAND...: run under the time limit, log it, note a failure
    local name=$1
    shift
    echo "## $name" | tee -a "$LOG"
    local t0=$SECONDS
    timeout "$LIMIT" "$@" 2>&1 | tee -a "$LOG"
    local rc=${PIPESTATUS[0]}
    echo "($name: exit $rc, $((SECONDS - t0)) s)" | tee -a "$LOG"
    echo | tee -a "$LOG"
    [ "$rc" -eq 0 ] || status=$rc
}

PART=${PART:-all}
section "machine" "$PY" -c "import os, torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(),
      '|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU', '|', os.cpu_count(), 'CPU cores')"
if [ "$PART" != 2 ]; then
    section "step_bench cifar10-reacgan" "$PY" benchmarks/step_bench.py --device "$DEVICE" "${CIFAR[@]}"
    section "step_bench imagenet128-reacgan" "$PY" benchmarks/step_bench.py --device "$DEVICE" \
        --preset imagenet128-reacgan "${ROW128[@]}"
    section "step_bench cifar10-stylegan2-d2dce" "$PY" benchmarks/step_bench.py --device "$DEVICE" \
        --preset cifar10-stylegan2-d2dce "${STYLE[@]}"
    if [ -n "${STUDIOGAN:-}" ]; then
        section "step_bench beside StudioGAN" "$PY" benchmarks/step_bench.py --device "$DEVICE" "${CIFAR[@]}" \
            --studiogan "$STUDIOGAN"
        section "step_bench StyleGAN2 + D2D-CE beside StudioGAN" "$PY" benchmarks/step_bench.py --device "$DEVICE" \
            --preset cifar10-stylegan2-d2dce "${STYLE[@]}" --options fp32 --studiogan "$STUDIOGAN"
fi
section "data_bench" "$PY" benchmarks/data_bench.py --device "$DEVICE" "${DATA[@]}"
section "metrics_bench" "$PY" benchmarks/metrics_bench.py --device "$DEVICE" "${METRICS[@]}"
fi
if [ "$PART" != 1 ]; then
    LIMIT=$FEATURE_LIMIT
    section "feature extraction (DINOv2, SwAV)" "$PY" benchmarks/metrics_bench.py --device "$DEVICE" --only-features \
        "${FEATURES[@]}"
fi
echo "log: $LOG"
exit $status
