"""tunewright generate RUN_DIR "prompt" [--temperature T] [--top-p P] [--max-new-tokens N]

Samples a continuation from a causal-LM run's best model (adapter runs included). The prompt is
rendered with the tokenizer's chat template, exactly as instruction tuning rendered its prompts
(`--raw` feeds it as plain text, as domain-adaptation runs saw their data).
"""
from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="Sample text from a causal-LM run's best model.")
    p.add_argument("run_dir")
    p.add_argument("prompt")
    p.add_argument("--temperature", type=float, default=0.7, help="0 means greedy decoding.")
    p.add_argument("--top-p", type=float, default=0.9, help="Nucleus sampling: keep the smallest set of tokens "
                   "whose probability reaches this.")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="Sampling seed (same seed, same text).")
    p.add_argument("--raw", action="store_true", help="Do not apply the chat template.")
    p.set_defaults(func=run)


def generate(model, tokenizer, cfg, prompt: str, *, temperature: float = 0.7, top_p: float = 0.9,
             max_new_tokens: int = 64, seed: int = 0, raw: bool = False) -> str:
    import torch

    from ..data import encode_inputs

    if cfg.task != "causal_lm":
        from ..errors import ConfigError
        raise ConfigError(f"generate needs a causal_lm run; this one is task: {cfg.task} (use predict).")
    ids = torch.tensor([encode_inputs(tokenizer, [prompt], cfg, as_prompt=not raw)[0]["input_ids"]])  # (1, T)
    device = next(model.parameters()).device
    torch.manual_seed(seed)
    sample = temperature > 0
    kw = {"do_sample": True, "temperature": temperature, "top_p": top_p} if sample else {"do_sample": False}
    model.eval()
    with torch.no_grad():
        out = model.backbone.generate(input_ids=ids.to(device), attention_mask=torch.ones_like(ids).to(device),
                                      max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, **kw)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)  # (new tokens only)


def run(args) -> int:
    from ..run import load_run
    from ..training.precision import resolve_device

    cfg, model, tokenizer, _ = load_run(args.run_dir)
    model.to(resolve_device(cfg.train.device))
    text = generate(model, tokenizer, cfg, args.prompt, temperature=args.temperature, top_p=args.top_p,
                    max_new_tokens=args.max_new_tokens, seed=args.seed, raw=args.raw)
    sys.stdout.write(text.strip() + "\n")
    return 0
