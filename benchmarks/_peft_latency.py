"""The latency half of bench_peft.py's peer section: MiniLM forward time, base against LoRA unmerged,
merged in place and merged and exported (what `tunewright merge` writes).
"""
from __future__ import annotations

import tempfile
import time

from _peft_job import THREADS, device, r8_config


def job_latency(reps: int = 7) -> dict:
    """Median forward time of 10 batches of 32 test docs: base, LoRA unmerged, LoRA merged."""
    import copy
    import statistics
    import torch
    from tunewright.config.load import config_from_dict
    from tunewright.peft import apply_method, merge_report, merged_model
    from tunewright.run import prepare
    torch.set_num_threads(THREADS)
    with tempfile.TemporaryDirectory() as out:
        cfg = config_from_dict(r8_config("lora", out, "lat", **{"data.test_subset": 320}))
        _, base, _, bundle = prepare(cfg)
    base.eval().to(device())
    lora = copy.deepcopy(base)
    apply_method(lora, cfg)
    with torch.no_grad():                           # a trained-looking adapter: B no longer zero
        for n, p in lora.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02)
    lora.eval()
    from tunewright.training.loop import to_device
    batches = [to_device(bundle.collate([bundle.test[i] for i in range(s, s + 32)]), device()) for s in range(0, 320, 32)]
    merged = copy.deepcopy(lora)
    report = merge_report(merged, batches[0])       # merged in place: peft's wrapper layers stay
    exported = merged_model(copy.deepcopy(merged))  # what `tunewright merge` writes: the base architecture

    def timed(model) -> float:
        with torch.no_grad():
            model(batches[0])                       # warm (kernels, caches)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            for b in batches:
                model(b)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            return time.perf_counter() - start
    times = {"base": [], "lora_unmerged": [], "lora_merged": [], "lora_merged_exported": []}
    for _ in range(reps):                           # interleaved, so drift in machine load hits all alike
        for name, model in (("base", base), ("lora_unmerged", lora), ("lora_merged", merged),
                            ("lora_merged_exported", exported)):
            times[name].append(timed(model))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"median_seconds_per_320_docs": {k: round(v, 3) for k, v in med.items()},
            "merged_vs_base": round(med["lora_merged"] / med["base"], 3),
            "exported_vs_base": round(med["lora_merged_exported"] / med["base"], 3),
            "unmerged_vs_base": round(med["lora_unmerged"] / med["base"], 3), "drift": report}
