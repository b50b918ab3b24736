"""Tokenization, done once per split up front with one batched call to a fast tokenizer.

No padding here: ``Collator`` pads each batch to its own longest row (dynamic padding), and
``epoch_batches`` groups rows of similar length, so little compute goes to padding.

Causal LM (``labels`` are the targets; the model shifts them by one itself, as HF models do):

- a ``text`` row: ``labels = input_ids`` (every token is predicted);
- an instruction row (``prompt`` + ``response``): the prompt is rendered with the tokenizer's
  chat template when it has one (``add_generation_prompt=True``, so it ends with the assistant
  header), else ``prompt + "\\n"``; then come the response tokens and EOS. Labels are -100 on
  the prompt tokens, so the loss counts only the response (and EOS, which teaches the model to
  stop): the model learns to answer, not to write prompts. (Ouyang et al. 2022 and most SFT
  recipes do this.) Prompt and response are tokenized separately; after a chat template the
  boundary is a special token, so this equals tokenizing the joined string.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from tunewright import progress
from tunewright.data.readers import Example
from tunewright.errors import DataError

IGNORE_INDEX = -100   # torch.nn.CrossEntropyLoss's default ignore_index


def token_ids(tokenizer: Any, texts: list[str], max_length: Optional[int],
              add_special_tokens: bool = True, chunk: int = 2048) -> list[list[int]]:
    """Token ids of every text. Batched calls of `chunk` texts each: a fast tokenizer spreads one call over
    its threads, and the chunks let a large set show progress (20 Newsgroups' 11k long posts take a while)."""
    if not texts:
        return []
    kw = dict(truncation=True, max_length=max_length) if max_length else {}
    out: list[list[int]] = []
    for s in progress.track(range(0, len(texts), chunk), "tokenize", len(texts), "texts",
                            size=lambda s: min(chunk, len(texts) - s)):
        out.extend(tokenizer(texts[s:s + chunk], add_special_tokens=add_special_tokens, **kw)["input_ids"])
    return out


def render_prompt(tokenizer: Any, prompt: str) -> str:
    """The prompt as the model sees it at inference time (chat template if any)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                             add_generation_prompt=True, tokenize=False)
    return prompt + "\n"


def _fit(prompt: list[int], response: list[int], max_length: int) -> tuple[list[int], list[int]]:
    """Cut prompt+response to max_length: the response keeps at least half the budget (or all
    of itself); the prompt loses tokens from its START, so the assistant header stays."""
    if len(prompt) + len(response) <= max_length:
        return prompt, response
    response = response[:max(max_length - len(prompt), min(len(response), max_length // 2))]
    keep = max_length - len(response)
    return (prompt[-keep:] if keep > 0 else []), response


def instruction_examples(tokenizer: Any, rows: Sequence[Example],
                         max_length: int) -> list[dict]:
    """{"input_ids": prompt + response + [eos], "labels": [-100]*len(prompt) + response + [eos]}."""
    prompts = [render_prompt(tokenizer, ex.prompt) for ex in rows]
    templated = bool(getattr(tokenizer, "chat_template", None))
    # A rendered template already holds its special tokens; a bare prompt gets BOS if the
    # tokenizer adds one. Truncation is done by _fit, which knows where the response starts.
    p_ids = token_ids(tokenizer, prompts, None, add_special_tokens=not templated)
    r_ids = token_ids(tokenizer, [ex.response for ex in rows], None, add_special_tokens=False)
    eos = tokenizer.eos_token_id
    out = []
    for ex, p, r in zip(rows, p_ids, r_ids):
        p, r = _fit(list(p), list(r) + ([eos] if eos is not None else []), max_length)
        if not r:
            raise DataError("the response has no tokens left after truncation",
                            path=ex.path, line=ex.line, column="response")
        out.append({"input_ids": p + r, "labels": [IGNORE_INDEX] * len(p) + r})
    return out


def tokenize_examples(tokenizer: Any, rows: Sequence[Example], task: str,
                      max_length: int) -> list[dict]:
    """Examples -> dicts with ``input_ids`` (list[int]) and ``labels``.

    ``labels``: the class index (classification), the float (regression), the list of class
    indices (multilabel; ``build`` turns it multi-hot), or a token list (causal LM).
    """
    if task == "causal_lm":
        instr = [i for i, ex in enumerate(rows) if ex.prompt is not None]
        plain = [i for i, ex in enumerate(rows) if ex.prompt is None]
        out: list[Optional[dict]] = [None] * len(rows)
        for i, ex in zip(instr, instruction_examples(tokenizer, [rows[i] for i in instr],
                                                     max_length)):
            out[i] = ex
        plain_ids = token_ids(tokenizer, [rows[i].text for i in plain], max_length)
        for i, ids in zip(plain, plain_ids):
            out[i] = {"input_ids": list(ids), "labels": list(ids)}
    else:
        ids = token_ids(tokenizer, [ex.text for ex in rows], max_length)
        out = [{"input_ids": list(x), "labels": ex.target} for ex, x in zip(rows, ids)]
    for ex, item in zip(rows, out):
        if not item["input_ids"]:
            raise DataError("the text tokenizes to no tokens", path=ex.path, line=ex.line)
    return out
