"""bench_trainer.py's report: the markdown table, what it measures (METHOD_NOTES), and the section it
keeps in benchmarks/README.md between its markers.
"""
from __future__ import annotations

import re
from pathlib import Path

from _trainer_job import MEASUREMENTS

README_START, README_END = "<!-- bench_trainer:start -->", "<!-- bench_trainer:end -->"


def markdown(report: dict) -> str:
    res, cmp_ = report["results"], report["comparisons"]
    rows = ["| measurement | variant | samples/s | vs peer | samples/CPU-s | vs peer | peak RSS (MB) | RSS vs peer "
            "| mean padded len | trainable params | others' CPU |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m, (ours, peer, _goal) in MEASUREMENTS.items():
        c = cmp_.get(m)
        for v in (ours, peer):
            if v not in res:
                continue
            r, mine = res[v], c is not None and v == ours
            ratio = (lambda key: f"**{c[key]:.2f}x**" if mine else ("1.00x" if c else ""))
            label = {"A": "A. fixed shape", "B": "B. defaults"}[m]
            others = ", ".join(f"{x['others_cpu_share']:.0%}" for x in r["rounds"])
            rows.append(f"| {label} | {v} | {r['samples_per_s']:.2f} | {ratio('speed_ratio')} | "
                        f"{r['samples_per_cpu_s']:.2f} | {ratio('cpu_speed_ratio')} | {r['peak_rss_mb']:.0f} | "
                        f"{ratio('rss_ratio')} | {r['mean_padded_len']:.0f} | {r['trainable_params']:,} | "
                        f"{others} |")
    goals = [f"- {m}: {c['tunewright']} / {c['peer']} = {c['speed_ratio']:.2f}x samples/s "
             f"(per round: {', '.join(f'{x:.2f}' for x in c['speed_ratio_rounds'])}; goal >= {c['goal']:.2f}x): "
             f"**{'met' if c['goal_met'] else 'NOT met'}**" for m, c in cmp_.items()]
    busy = max((x["others_cpu_share"] for r in res.values() for x in r["rounds"]), default=0.0)
    if busy > 0.25:
        goals.append(f"- Other processes used up to {busy:.0%} of the CPUs during some timed steps (column "
                     f"\"others' CPU\", one figure per round): with 2 torch threads on 2 cores every parallel region "
                     f"then waits for a descheduled thread, so those rounds measure kernel count more than FLOPs.")
    return "\n".join(rows + [""] + goals)


METHOD_NOTES = """\
What is measured (see the docstring of `bench_trainer.py` for the details):

- The same job for every variant: the same stratified subset of Reuters-R8 train (tunewright's own
  `subset_indices`; a digest of the rows is checked to be equal across variants), batch 32,
  max_length 128, AdamW at the same LR and weight decay (none on biases / LayerNorm), linear decay
  without warmup, gradient clipping at 1.0, fp32, 2 torch threads, the same seed.
- **samples/s** counts only the timed steps: from the end of the last warmup step to the end of the
  last step, batching included, model loading and tokenization excluded. **samples/CPU-s** divides by
  the process's CPU time over the same window instead; it moves less when other jobs share the
  2 cores, so it is the cross-check when the wall-clock ratio looks odd. Ratios are tunewright / peer,
  taken per round (the two runs of a pair run back to back, their order flipping every round) and
  then the median over rounds.
- **peak RSS** is the child process's peak resident memory up to the last timed step (each variant
  runs in its own process). `tunewright.train` then evaluates and writes the model and a checkpoint,
  which the Trainer (save_strategy=no) does not; that part is left out of the figure on purpose and is
  in the JSON as `peak_rss_exit_mb`.
- **A. fixed shape**: tunewright's `fit()` on its own tokenized bundle, set up by `run.assemble` exactly
  as `tunewright.train` sets it up, with its collate wrapped to pad every batch to 128 tokens (bucketing
  off, it cannot change a fixed shape), against a hand-written loop (`for batch in DataLoader`,
  torch's default AdamW) over the same architecture: `AutoModel` without its pooler, masked mean
  pooling, dropout 0.1, a linear head. Both train exactly the same parameters, and both run torch's
  CPU allocator on huge pages (`THP_MEM_ALLOC_ENABLE=1`, which `import tunewright` sets), so A
  compares the loops alone.
- **B. defaults**: `tunewright.train(config, callbacks=[clock])`, i.e. dynamic padding plus length
  bucketing, against `transformers.Trainer` with its defaults (DataCollatorWithPadding pads each batch
  to its longest row, random sampler, no length grouping, `adamw_torch_fused`; use_cpu, report_to=none,
  save_strategy=no, no evaluation, torch's allocator without huge pages as it comes). The Trainer's model is `AutoModelForSequenceClassification`: the
  CLS pooler (a 384x384 dense layer and tanh) plus a linear head, where tunewright mean-pools
  all-MiniLM-L6-v2's token states (its sentence-transformers config says mean) into a linear head.
  So the Trainer trains 147,840 more parameters (0.7%); their compute per step is negligible next to
  the encoder's.
- **mean padded len** is tokens per row as the model saw them, padding included (counted by a hook on
  the word embeddings, the same way for every variant).
"""


def write_readme(report: dict, command: str, path: Path) -> None:
    env, cfg = report["environment"], report["config"]
    loads = "; ".join(f"{v} " + ", ".join(f"{x['loadavg_1m'][0]}->{x['loadavg_1m'][1]}" for x in r["rounds"])
                      for v, r in report["results"].items())
    section = "\n".join([
        README_START,
        "## Peer benchmark: tunewright vs a hand-written loop and the HF Trainer (issue #2)",
        "",
        "```",
        command,
        "```",
        "",
        f"{env['date']}; {env['cpu_cores']} CPU cores ({env['cpu']}), torch {env['torch']}, transformers "
        f"{env['transformers']}, Python {env['python']}; fp32, {cfg['threads']} torch threads; {cfg['model']} on "
        f"{cfg['rows']} rows of {cfg['dataset']} train, batch {cfg['batch_size']}, max_length {cfg['max_length']}; "
        f"{cfg['steps']} timed steps after {cfg['warmup']} warmup steps per run; {report['rounds']} round(s), "
        f"each variant in its own process. Raw numbers: `benchmarks/results/trainer_bench.json`.",
        "",
        markdown(report),
        "",
        f"1-minute load average at the start -> end of each run (other jobs share this machine): {loads}.",
        "",
        METHOD_NOTES.rstrip(),
        README_END,
    ])
    text = path.read_text() if path.exists() else ""
    if README_START in text and README_END in text:
        text = re.sub(re.escape(README_START) + ".*?" + re.escape(README_END), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip() + ("\n\n" if text else "# Benchmarks\n\n") + section + "\n"
    path.write_text(text)
