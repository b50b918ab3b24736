"""Evaluation runs text rows shortest first (less padding); every row once, and the same metrics."""
import numpy as np
import torch

from tunewright.data.batching import padding_fraction
from tunewright.evaluate import predict
from tunewright.training.precision import resolve_precision


def test_sorted_batches_hold_every_row_once_and_pad_less():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 256, size=203).tolist()
    plain = [list(b) for b in predict.eval_batches(203, 32)]
    ordered = predict.eval_batches(203, 32, lengths)
    assert sorted(i for b in ordered for i in b) == list(range(203))
    flat = [lengths[i] for b in ordered for i in b]
    assert flat == sorted(flat)
    assert padding_fraction(ordered, lengths) < 0.5 * padding_fraction(plain, lengths)


class BagOfTokens(torch.nn.Module):
    """Logits that depend on the row's tokens only (padding masked out), so batch order cannot move them."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(50, 3)

    def forward(self, batch):
        m = batch["attention_mask"].unsqueeze(-1).float()
        return (self.emb(batch["input_ids"]) * m).sum(1) / m.sum(1)


def collate(rows):
    T = max(len(r["input_ids"]) for r in rows)
    ids = torch.tensor([r["input_ids"] + [0] * (T - len(r["input_ids"])) for r in rows])
    mask = torch.tensor([[1] * len(r["input_ids"]) + [0] * (T - len(r["input_ids"])) for r in rows])
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([r["labels"] for r in rows])}


def test_metrics_do_not_depend_on_the_order(monkeypatch):
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    ds = [{"input_ids": rng.integers(1, 50, size=int(rng.integers(2, 40))).tolist(), "labels": int(rng.integers(3))}
          for _ in range(150)]
    model, prec = BagOfTokens(), resolve_precision("fp32", torch.device("cpu"))
    sorted_m = predict.evaluate_dataset(model, ds, collate, "classification", 3, 16, prec)
    assert predict.text_lengths(ds) is not None
    monkeypatch.setattr(predict, "text_lengths", lambda d: None)
    row_order = predict.evaluate_dataset(model, ds, collate, "classification", 3, 16, prec)
    assert sorted_m["accuracy"] == row_order["accuracy"] and sorted_m["macro_f1"] == row_order["macro_f1"]
    assert abs(sorted_m["loss"] - row_order["loss"]) < 1e-6
