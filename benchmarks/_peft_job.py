"""The job bench_peft.py measures, for both tools: MiniLM and Reuters-R8 (packaged, or the folders
TW_BENCH_MINILM / TW_BENCH_R8 name), as a tunewright config and as the HF Trainer + peft LoRA model and
datasets of the peer.
"""
from __future__ import annotations

import os

METHODS = ["full", "lora", "adalora", "prompt_tuning", "prefix_tuning", "adapter", "bitfit", "ia3"]
LM_METHODS = ["lora", "prompt_tuning", "prefix_tuning"]
THREADS = 2
# Elsewhere than this machine (a GPU box without the asset packages): a MiniLM HF folder and a folder with
# r8-train.csv / r8-test.csv (text,label) stand in for the packaged model and dataset.
MINILM = os.environ.get("TW_BENCH_MINILM")
R8_DIR = os.environ.get("TW_BENCH_R8")
SETTINGS: dict = {}     # --set key=value: config overrides for every tunewright run (exploratory runs)


def minilm_path() -> str:
    if MINILM:
        return MINILM
    from tunewright.assets.models import get_model_asset
    return str(get_model_asset("minilm").prepare())


def device():
    import torch
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def r8_config(method: str, out: str, run_name: str, **over) -> dict:
    data = {"train": f"{R8_DIR}/r8-train.csv", "test": f"{R8_DIR}/r8-test.csv"} if R8_DIR else {"train": "reuters-r8"}
    cfg = {"run_name": run_name, "output_dir": out, "task": "classification", "model": {"name": MINILM or "minilm"},
           "data": data, "train": {"num_threads": THREADS, "progress": "plain"},
           "checkpoint": {"keep_last": 1}}
    if method == "full":
        cfg["train"]["lr"] = 5e-5
    else:
        cfg["method"] = method
    if method == "adapter":
        cfg["adapter"] = {"kind": "houlsby"}
    for key, value in {**SETTINGS, **over}.items():  # "data.train_subset": 800; a job's own keys win
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return cfg


def r8_texts():
    if R8_DIR:
        import pandas as pd
        return pd.read_csv(f"{R8_DIR}/r8-train.csv"), pd.read_csv(f"{R8_DIR}/r8-test.csv")
    from tunewright.assets.datasets import get_dataset
    frames = get_dataset("reuters-r8").load()
    return frames["train"], frames["test"]


def hf_lora_model(num_labels: int):
    import peft
    from transformers import AutoModelForSequenceClassification
    model = AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=num_labels,
                                                               dtype="float32")
    config = peft.LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, lora_dropout=0.1,
                             target_modules=["query", "value"])
    return peft.get_peft_model(model, config)


def hf_datasets(tok, max_length: int, train_df, test_df, labels):
    import torch

    class DS(torch.utils.data.Dataset):
        def __init__(self, df):
            enc = tok(list(df["text"]), truncation=True, max_length=max_length)
            self.ids, self.y = enc["input_ids"], [labels.index(v) for v in df["label"]]

        def __len__(self):
            return len(self.ids)

        def __getitem__(self, i):
            return {"input_ids": self.ids[i], "attention_mask": [1] * len(self.ids[i]), "labels": self.y[i]}
    return DS(train_df), DS(test_df)
