"""`export_gguf(run_dir)`: a causal-LM run (Llama architecture), LoRA merged, as one GGUF file for llama.cpp/Ollama.

    out/model.gguf      llama architecture metadata, the tokenizer, every tensor in F32 (default) or F16

What is written, following llama.cpp's convert_hf_to_gguf.py for `LlamaForCausalLM`:
- metadata `llama.*`: context length, embedding / feed-forward length, block count, head counts, rope dimension
  and base, RMS-norm epsilon, vocab size; `general.file_type` ALL_F32 or MOSTLY_F16 (norms stay F32 either way);
- tensors renamed HF -> GGUF by `gguf.get_tensor_name_map(MODEL_ARCH.LLAMA, n_blocks)`
  (model.layers.3.self_attn.q_proj.weight -> blk.3.attn_q.weight); no `output.weight` when the embeddings are
  tied (readers then tie them back);
- q_proj / k_proj rows permuted to llama.cpp's rotary layout: per head, (2, d/2) -> (d/2, 2), i.e.
  `w.reshape(n_head, 2, d/2, in).swapaxes(1, 2)`; transformers' GGUF loader applies the inverse
  (LlamaTensorProcessor._reverse_permute_weights), so a round trip is exact;
- the tokenizer: copied field by field from a source GGUF whose vocabulary equals the run's (the packaged
  SmolLM2 file, so SmolLM2 runs keep llama.cpp's own `smollm` pre-tokenizer and chat template), else written
  from the run's tokenizer.json when it is a byte-level BPE (`gpt2` model: tokens, types, merges, special ids,
  chat template). Other tokenizers (WordPiece, Unigram) have no GGUF form that transformers reads back: error.

The export checks itself: the file is loaded back with `AutoModelForCausalLM.from_pretrained(dir,
gguf_file=...)` and its logits compared with the merged model's on a validation batch (largest absolute
difference printed; F32 tolerance 1e-4, F16 a looser bound relative to the logits).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from .. import progress
from ..errors import ConfigError, TunewrightError
from .onnx_export import check_batch, data_bundle, deployable_model, say

GGUF_FILE = "model.gguf"
F32_ATOL = 1e-4
F16_RTOL = 0.02          # of max(1, largest |logit|)


class GGUFExportError(TunewrightError):
    """The run cannot be written as GGUF, or the written file does not reproduce the merged model."""


def permute_rotary(w: np.ndarray, n_head: int, n_head_kv: int | None = None) -> np.ndarray:
    """HF q/k rows (per head: first half, second half of the rotary pairs) -> llama.cpp's interleaved order.
    w: (n_head * d, in). llama.cpp convert_hf_to_gguf.py `LlamaModel.permute`."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _source_tokenizer_fields(tokenizer, candidates) -> list | None:
    """[(key, value, types)] of every `tokenizer.*` field of the first candidate GGUF whose token list is the
    run's vocabulary, id for id; None when none matches."""
    import gguf
    n = len(tokenizer)
    ours = tokenizer.convert_ids_to_tokens(list(range(n)))
    for path in candidates:
        reader = gguf.GGUFReader(str(path))
        tokens = reader.fields.get("tokenizer.ggml.tokens")
        if tokens is None or len(tokens.data) != n or tokens.contents() != ours:
            continue
        return [(k, f.contents(), f.types) for k, f in reader.fields.items() if k.startswith("tokenizer.")]
    return None


def _bpe_tokenizer_fields(tokenizer) -> list:
    """A byte-level BPE tokenizer.json as llama.cpp's `gpt2` tokenizer model."""
    import gguf
    T = gguf.GGUFValueType
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = spec.get("model", {})
    if model.get("type") != "BPE":
        raise GGUFExportError(f"the run's tokenizer is {model.get('type')!r}: GGUF (as transformers and llama.cpp "
                              f"read it) needs a byte-level BPE tokenizer or a source GGUF with the same vocabulary")
    n = len(tokenizer)
    tokens = tokenizer.convert_ids_to_tokens(list(range(n)))
    special = set(tokenizer.all_special_ids) | {a["id"] for a in spec.get("added_tokens", []) if a.get("special")}
    types = [3 if i in special else 1 for i in range(n)]                     # 3 CONTROL, 1 NORMAL
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    fields = [("tokenizer.ggml.model", "gpt2", [T.STRING]), ("tokenizer.ggml.pre", "default", [T.STRING]),
              ("tokenizer.ggml.tokens", tokens, [T.ARRAY, T.STRING]),
              ("tokenizer.ggml.token_type", types, [T.ARRAY, T.INT32]),
              ("tokenizer.ggml.merges", merges, [T.ARRAY, T.STRING])]
    for key, tid in (("bos", tokenizer.bos_token_id), ("eos", tokenizer.eos_token_id),
                     ("unknown", tokenizer.unk_token_id), ("padding", tokenizer.pad_token_id)):
        if tid is not None:
            fields.append((f"tokenizer.ggml.{key}_token_id", int(tid), [T.UINT32]))
    if isinstance(getattr(tokenizer, "chat_template", None), str):
        fields.append(("tokenizer.chat_template", tokenizer.chat_template, [T.STRING]))
    return fields


def tokenizer_fields(tokenizer, source_ggufs=None) -> tuple[list, str]:
    """(fields, where they came from). `source_ggufs` None: the packaged SmolLM2 file if it is installed."""
    if source_ggufs is None:
        from ..assets.models import MODELS
        from ..errors import ModelLoadError
        try:
            source_ggufs = [MODELS["smollm2-135m"].path()]
        except ModelLoadError:
            source_ggufs = []
    fields = _source_tokenizer_fields(tokenizer, source_ggufs)
    if fields is not None:
        return fields, f"copied from {Path(source_ggufs[0]).name} (same vocabulary)"
    return _bpe_tokenizer_fields(tokenizer), "written from the run's tokenizer.json (byte-level BPE)"


def write_gguf(lm, tokenizer, path: Path, dtype: str = "f32", name: str = "tunewright", source_ggufs=None) -> dict:
    """Write the HF LlamaForCausalLM `lm` and `tokenizer` to `path` (atomically). Returns what was written."""
    import gguf

    c = lm.config
    if c.model_type != "llama":
        raise GGUFExportError(f"GGUF export writes the llama architecture; this model is {c.model_type!r}")
    rope = getattr(c, "rope_parameters", None) or getattr(c, "rope_scaling", None) or {}   # transformers 5 / 4
    if rope.get("rope_type", "default") != "default":
        raise GGUFExportError(f"rope scaling {rope} is not written by this exporter (plain RoPE only)")
    rope_theta = rope.get("rope_theta", getattr(c, "rope_theta", 10000.0))
    n_head, n_kv = c.num_attention_heads, c.num_key_value_heads or c.num_attention_heads
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // n_head
    fields, tok_source = tokenizer_fields(tokenizer, source_ggufs)

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    w = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(name)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(float(rope_theta))
    w.add_layer_norm_rms_eps(float(c.rms_norm_eps))
    w.add_vocab_size(c.vocab_size)
    w.add_file_type(gguf.LlamaFileType.ALL_F32 if dtype == "f32" else gguf.LlamaFileType.MOSTLY_F16)
    for key, value, types in fields:
        w.add_key_value(key, value, types[0], sub_type=types[-1] if len(types) > 1 else None)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, c.num_hidden_layers)
    state = lm.state_dict()
    tied = bool(getattr(c, "tie_word_embeddings", False))
    n_bytes = n_tensors = 0
    for hf_name, t in progress.track(list(state.items()), "gguf convert", unit="tensors"):
        if hf_name == "lm_head.weight" and tied:
            continue                              # tied: llama.cpp and transformers reuse token_embd
        if "rotary_emb" in hf_name:
            continue
        new = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise GGUFExportError(f"no GGUF name for tensor {hf_name!r}")
        x = t.detach().float().cpu().numpy()
        if hf_name.endswith("q_proj.weight"):
            x = permute_rotary(x, n_head, n_head)
        elif hf_name.endswith("k_proj.weight"):
            x = permute_rotary(x, n_head, n_kv)
        x = np.ascontiguousarray(x.astype(np.float16 if dtype == "f16" and x.ndim == 2 else np.float32))
        n_bytes, n_tensors = n_bytes + x.nbytes, n_tensors + 1
        w.add_tensor(new, x)
    say(f"  {n_tensors} tensors, {n_bytes / 1e6:.1f} MB ({dtype.upper()}; norms F32); "
        f"tokenizer {tok_source}")
    with progress.phase("gguf write", round(n_bytes / 1e6), "MB") as shown:
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file(progress=False)   # gguf's own bar is tqdm's; ours is rich's or plain lines
        w.close()
        shown.advance(round(n_bytes / 1e6))
    os.replace(tmp, path)
    return {"file": path.name, "bytes": path.stat().st_size, "dtype": dtype, "tokenizer": tok_source}


def check_gguf(path: Path, lm, batch: dict, dtype: str) -> dict:
    """Load `path` with transformers' GGUF loader; its logits against `lm`'s on the real (unpadded) positions."""
    from transformers import AutoModelForCausalLM
    back = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    ids, mask = batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        ref = lm(input_ids=ids, attention_mask=mask).logits
        got = back(input_ids=ids, attention_mask=mask).logits                     # (B, T, V)
    keep = mask.bool()
    diff = float((got - ref).abs()[keep].max())
    bound = F32_ATOL if dtype == "f32" else F16_RTOL * max(1.0, float(ref[keep].abs().max()))
    agree = float((got.argmax(-1) == ref.argmax(-1))[keep].float().mean())
    say(f"self-check: max |GGUF (transformers) - merged torch| logit difference = {diff:.3g} on "
        f"{int(keep.sum())} tokens (tolerance {bound:.3g}); next-token argmax agrees on {100 * agree:.1f}%")
    if not np.isfinite(diff) or diff > bound:
        raise GGUFExportError(f"{path} disagrees with the merged model: max |logit difference| {diff:.3g} > "
                              f"{bound:.3g}")
    return {"max_abs_diff": diff, "tolerance": bound, "argmax_agreement": agree, "tokens": int(keep.sum())}


def export_gguf(run_dir, out_dir=None, *, dtype: str = "f32", check: bool = True, source_ggufs=None) -> dict:
    """Export the causal-LM run `run_dir` to `out_dir`/model.gguf (default RUN_DIR/export/gguf); returns the report
    (also written to gguf.json beside it)."""
    if dtype not in ("f32", "f16"):
        raise ConfigError(f"GGUF tensor type {dtype!r}: use 'f32' or 'f16'")
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir else run_dir / "export" / "gguf"
    t0 = time.perf_counter()
    say(f"[1/3] loading {run_dir} (a LoRA adapter is merged into the weights)")
    cfg, model, tokenizer, meta = deployable_model(run_dir)
    if model.task != "causal_lm":
        raise ConfigError(f"{run_dir} is a {model.task} run: GGUF is for causal LMs; use --format onnx")
    out.mkdir(parents=True, exist_ok=True)
    say(f"[2/3] writing {out / GGUF_FILE} ... ({time.perf_counter() - t0:.0f} s)")
    report = write_gguf(model.backbone, tokenizer, out / GGUF_FILE, dtype, cfg.run_name or run_dir.name, source_ggufs)
    if check:
        say(f"[3/3] loading it back through transformers' GGUF loader ... ({time.perf_counter() - t0:.0f} s)")
        report["check"] = check_gguf(out / GGUF_FILE, model.backbone, check_batch(data_bundle(cfg, tokenizer), 8),
                                     dtype)
    report.update(seconds=round(time.perf_counter() - t0, 1), run_dir=str(run_dir), method=cfg.method)
    (out / "gguf.json").write_text(json.dumps(report, indent=2))
    say(f"written: {out / GGUF_FILE}: {report['bytes'] / 1e6:.1f} MB in {report['seconds']:.0f} s")
    return {"out_dir": str(out), **report}
