#!/usr/bin/env bash
# Issue 14, item 5: every GPU check in one command, for a lent GPU machine's few minutes.
#
#   benchmarks/gpu.sh wheels   here, where the package registries are: CPython 3.12 wheels of the
#                              packages salbench needs that the GPU image lacks, at the versions
#                              installed in .venv (the libraries CI tests), into .whl/ (ignored
#                              through .git/info/exclude; about 31 MB)
#   bash benchmarks/gpu.sh run [all|metrics|lrp-grid|cam]
#                              there, through the device tool with carry [".whl"]: installs the
#                              wheels into /tmp/site without an index, then runs the parts
#                              (all: about 7 minutes at most, each part under its own time limit,
#                              so one that hangs leaves the others their time), writing to $OUT:
#       gpu.txt       the GPU (nvidia-smi)
#       metrics.log   benchmarks/metrics.py --quick --device cuda: region perturbation, pixel
#                     flipping and AOPC at the documents' sizes (224²) against Quantus on the same
#                     GPU (target >= 5x faster), bf16 and the channels-last fused copy against fp32
#                     within their stated tolerances
#       lrp_grid.log  lrp-grid's paper grid stage (2 composites x 256 points x 3 stabilisers,
#                     50 images, region perturbation with Telea inpainting) timed at 6 grid
#                     points and extrapolated (target: the whole grid under 15 minutes)
#       cam.log       cam-faithfulness's paper explain-and-score stage, every job timed, at 64 of
#                     the paper's 1600 samples per model (its cost is linear in the samples)
# The data are generated on every core, the models trained for one epoch only: they time the
# stages, they are not the documents' models (one whose vanilla-stabiliser maps are all NaN
# scores nothing at those grid points).
# The GPU image (device/KINDS.md) has Python 3.12 and torch 2.11; salbench runs from src/.
set -uo pipefail
cd "$(dirname "$0")/.."

# not in the GPU image, or older there than salbench's pins need (pydantic's typing-extensions)
WHEELS="captum zennit quantus duckdb pydantic pydantic_core annotated_types typing_inspection
typing_extensions cachetools nibabel"

wheels() {
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    local pins=()
    for name in $WHEELS; do
        pins+=("$name==$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('$name'))")")
    done
    .venv/bin/pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "${pins[@]}"
    du -sh .whl
}

run() {
    local out="${OUT:-gpu-out}" parts="$1"
    case "$parts" in all|metrics|lrp-grid|cam) ;; *)
        echo "gpu.sh run: the part must be all, metrics, lrp-grid or cam, got '$parts'" >&2
        exit 2 ;;
    esac
    mkdir -p "$out"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
    python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" \
        | tee -a "$out/gpu.txt"
    if [[ $parts == all || $parts == metrics ]]; then
        timeout 150 python3 benchmarks/metrics.py --quick --device cuda 2>&1 \
            | tee "$out/metrics.log"
    fi
    if [[ $parts == all || $parts == lrp-grid ]]; then
        timeout 150 python3 benchmarks/stages.py lrp-grid --preset paper --stage grid --jobs 6 \
            --set train.epochs=1 --set "data.params.workers=$(nproc)" 2>&1 \
            | tee "$out/lrp_grid.log"
    fi
    if [[ $parts == all || $parts == cam ]]; then
        timeout 120 python3 benchmarks/stages.py cam-faithfulness --preset paper \
            --stage "explain and score" --warmup 0 --jobs 0 --skip "table 1" --set train.epochs=1 \
            --set n_samples=64 --set n_haas=64 --set "data.params.workers=$(nproc)" 2>&1 \
            | tee "$out/cam.log"
    fi
}

case "${1:-}" in
    wheels) wheels ;;
    run) run "${2:-all}" ;;
    *) echo "usage: benchmarks/gpu.sh wheels | run [all|metrics|lrp-grid|cam]" >&2; exit 2 ;;
esac
