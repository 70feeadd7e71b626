#!/usr/bin/env bash
# The GPU numbers of the README in one go: a 448 px synthetic world, then the pretraining and
# export benchmarks (bf16, eager and torch.compile). Usage: bench/gpu_suite.sh [OUTDIR]
# (needs a CUDA GPU and eoclip importable; the world goes to $WORLD, default /tmp/eoclip_w448).
set -euo pipefail
out=${1:-gpu_suite_out}
world=${WORLD:-/tmp/eoclip_w448}
chips=${CHIPS:-300}
workers=${WORKERS:-$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))}
mkdir -p "$out"
python3 - <<PY | tee "$out/env.txt"
import torch, timm
print("torch", torch.__version__, "timm", timm.__version__, "cuda", torch.version.cuda)
print("gpu", torch.cuda.get_device_name(0), f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
PY
t0=$(date +%s)
python3 -c "from eoclip.data.synthetic import make_world; make_world('$world', n_chips_per_aoi=$chips, chip_px=448, aois=['conus'], progress=False, workers=$workers)"
echo "world: $chips chips of 448 px in $(( $(date +%s) - t0 )) s with $workers workers" | tee "$out/world.txt"
python3 bench/embed_throughput.py --store "$world" --model paper --compile off,on --passes 4 2>&1 | tee "$out/embed.txt"
python3 bench/pretrain_throughput.py --store "$world" --model paper --batch-size 64 --steps 8 \
    --warmup 2 --num-workers "$workers" --compile --cuda-models paper,vit-s --cuda-batch-size 64 \
    --cuda-compile off,on 2>&1 | tee "$out/pretrain.txt"
