"""GGUF export of a causal LM: a LoRA run on a tiny Llama (SmolLM2's tokenizer) merged, written, loaded back
through transformers' GGUF loader; logits equal the merged model's, the tokenizer tokenizes alike."""
import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")


@pytest.fixture(scope="module")
def exported(smol_llama_run, tmp_path_factory):
    from tunewright.deploy.gguf_export import export_gguf
    out = tmp_path_factory.mktemp("gguf")
    return export_gguf(smol_llama_run, out), out


def test_gguf_round_trip_gives_the_merged_models_logits(exported, smol_llama_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunewright.deploy.onnx_export import deployable_model
    report, out = exported
    assert report["check"]["max_abs_diff"] < 1e-4 and report["dtype"] == "f32"
    _, model, tok, _ = deployable_model(smol_llama_run)
    back = AutoModelForCausalLM.from_pretrained(str(out), gguf_file="model.gguf", dtype=torch.float32).eval()
    ids = tok(["the cat sat on the mat", "hello"], return_tensors="pt", padding=True)
    with torch.no_grad():
        want = model.backbone(**ids).logits
        got = back(**ids).logits
    keep = ids["attention_mask"].bool()
    assert (got - want).abs()[keep].max() < 1e-4
    tok_back = AutoTokenizer.from_pretrained(str(out), gguf_file="model.gguf")
    text = "Fine-tuning a tiny llama, then exporting it!"
    assert tok_back(text)["input_ids"] == tok(text)["input_ids"]


def test_q_and_k_rows_are_permuted_as_llama_cpp_and_transformers_undoes_it(exported, smol_llama_run):
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    from tunewright.deploy.gguf_export import permute_rotary
    w = np.arange(4 * 8 * 3, dtype=np.float32).reshape(4 * 8, 3)          # 4 heads of 8 rows
    p = permute_rotary(w, 4, 4)
    assert not np.array_equal(p, w)
    assert np.array_equal(p[:8, 0], w[[0, 4, 1, 5, 2, 6, 3, 7], 0])        # per head: halves interleaved
    assert np.array_equal(LlamaTensorProcessor()._reverse_permute_weights(p, 4, 4), w)
    _, out = exported
    r = gguf.GGUFReader(str(out / "model.gguf"))
    names = {t.name for t in r.tensors}
    assert {"token_embd.weight", "blk.0.attn_q.weight", "blk.1.ffn_down.weight", "output_norm.weight"} <= names
    assert "output.weight" not in names                                      # tied embeddings stay tied
    assert r.fields["llama.attention.head_count_kv"].contents() == 1
    assert r.fields["tokenizer.ggml.model"].contents() == "gpt2"


def test_bpe_tokenizer_written_from_tokenizer_json_also_loads(smol_llama_run, tmp_path):
    """No source GGUF to copy from: the tokenizer is written from the run's tokenizer.json."""
    from transformers import AutoTokenizer

    from tunewright.deploy.gguf_export import export_gguf
    report = export_gguf(smol_llama_run, tmp_path, dtype="f16", source_ggufs=[])
    assert "tokenizer.json" in report["tokenizer"] and report["check"]["max_abs_diff"] <= report["check"]["tolerance"]
    tok = AutoTokenizer.from_pretrained(str(tmp_path), gguf_file="model.gguf")
    from tunewright.deploy.onnx_export import deployable_model
    _, _, ours, _ = deployable_model(smol_llama_run)
    text = "Fine-tuning a tiny llama, then exporting it!"
    assert tok(text)["input_ids"] == ours(text)["input_ids"]


def test_a_wordpiece_tokenizer_is_refused_with_the_reason(llama_run, tmp_path):
    from tunewright.deploy.gguf_export import GGUFExportError, export_gguf
    with pytest.raises(GGUFExportError, match="BPE"):
        export_gguf(llama_run, tmp_path, source_ggufs=[])
