#!/usr/bin/env bash
# Float8 against bf16 for the `paper` model on one H100-class GPU, most telling numbers first
# (each table row is printed as soon as it is measured, so a cut-short run still reports):
#   1. the card's ceiling: compiled training step and export forward on pre-loaded inputs,
#      bf16 and fp8 (bench/gpu_ceiling.py);
#   2. pretraining with the real loader reading chip by chip (as a paper-scale store is read),
#      compiled, fp8 (bench/pretrain_throughput.py --cache off);
#   3. the export pipeline with the paper's `random` policy, compiled, fp8
#      (bench/embed_throughput.py).
# Usage: bench/gpu_fp8.sh [OUTDIR]; needs a CUDA GPU of compute capability >= 8.9, eoclip and
# torchao importable. TRAIN_BATCH (default 64: what an 80 GB card holds in bf16), CHIPS (200).
set -euo pipefail
out=${1:-gpu_fp8_out}
world=${WORLD:-/tmp/eoclip_w448}
chips=${CHIPS:-200}
batch=${TRAIN_BATCH:-64}
workers=${WORKERS:-$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))}
mkdir -p "$out"
python3 - <<PY | tee "$out/env.txt"
import torch, timm, torchao
print("torch", torch.__version__, "timm", timm.__version__, "torchao", torchao.__version__,
      "cuda", torch.version.cuda)
print("gpu", torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0))
PY
python3 bench/gpu_ceiling.py --model paper --train-batch "$batch" --export-batch 256 \
    --modes default --weights autocast --fp8 off,on --steps 10 --warmup 3 2>&1 | tee "$out/ceiling.txt"
if [ ! -f "$world/index.parquet" ]; then
    python3 -c "from eoclip.data.synthetic import make_world; make_world('$world', n_chips_per_aoi=$chips, chip_px=448, aois=['conus'], progress=False, workers=$workers)"
fi
python3 bench/pretrain_throughput.py --store "$world" --model paper --batch-size "$batch" --steps 8 \
    --warmup 2 --num-workers "$workers" --compile --fp8 --cache off --cuda-models "" 2>&1 | tee "$out/pretrain.txt"
python3 bench/embed_throughput.py --store "$world" --model paper --compile on --fp8 \
    --policies random --passes 4 2>&1 | tee "$out/embed.txt"
