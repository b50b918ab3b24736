#!/usr/bin/env bash
# bench_peft.py on a CUDA machine that lacks the asset packages (the tables tagged "GPU" in docs/peft.md).
#   here:   HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_peft.py --export-assets .gpu-peft   # 49 MB
#   there:  bash benchmarks/bench_peft_gpu.sh          (python3 with torch, transformers, peft; repo root)
#   here:   copy the result files into benchmarks/results/peft/, then bench_peft.py --render
# Order: throughput (100 timed steps: a GPU step is ~15 ms), latency, the time-to-accuracy race, LoRA and full
# fine-tuning on full R8, the other methods.
set -u
ASSETS=${ASSETS:-$PWD/.gpu-peft}
RES=${RES:-/tmp/bench-peft}
export PYTHONPATH=$PWD/src HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export TW_BENCH_MINILM=$ASSETS/minilm TW_BENCH_R8=$ASSETS TW_BENCH_RESULTS=$RES TW_BENCH_TAG=gpu
mkdir -p "$RES"
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, torch.cuda.get_device_name(0))" | tee "$RES/versions.txt"
J() {  # job, time limit (s), [extra bench_peft.py args]; results are packed after every job, so a cut-off run keeps what it did
  local job=$1 limit=$2 t0=$(date +%s); shift 2
  local log="$RES/$(echo $job | tr : -)$([[ " $* " == *" --full "* ]] && echo -full).log"
  timeout "$limit" python3 benchmarks/bench_peft.py --job "$job" "$@" > "$log" 2>&1
  echo "$job $* exit=$? $(( $(date +%s) - t0 ))s"
  if [ -n "${OUT:-}" ]; then tar czf "$OUT/gpu.tgz" -C "$RES" . ; fi
}
J throughput:tunewright 60 --steps 100
J throughput:hf_trainer 60 --steps 100
J latency 40
J curve:tunewright 120
J curve:hf_trainer 120
J method:lora 80 --full
J method:full 80 --full
for m in adapter ia3 bitfit adalora prefix_tuning prompt_tuning; do J method:$m 70 --full; done
