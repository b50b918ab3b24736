"""The latency protocol of `tunewright compare`: eval mode, inference mode, fixed threads, warm-up,
the same inputs for every variant, medians (one slow call does not move the number)."""
import time

import pytest
import torch

from tunewright.evaluate.speed import measure_speed, torch_threads


class Probe(torch.nn.Module):
    """Records, for every call, the conditions it ran under; call number `slow_call` sleeps."""

    def __init__(self, slow_call: int | None = None, sleep_s: float = 0.0):
        super().__init__()
        self.lin = torch.nn.Linear(4, 2)
        self.calls, self.slow_call, self.sleep_s = [], slow_call, sleep_s

    def forward(self, batch):
        self.calls.append({"training": self.training, "inference": torch.is_inference_mode_enabled(),
                           "grad": torch.is_grad_enabled(), "threads": torch.get_num_threads(),
                           "ids": batch["ids"].tolist()})
        if len(self.calls) == self.slow_call:
            time.sleep(self.sleep_s)
        return self.lin(batch["x"])


def make_batch(idx):
    return {"ids": torch.tensor(idx), "x": torch.ones(len(idx), 4)}


def test_conditions_of_every_timed_call():
    model = Probe().train()
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    out = measure_speed(model, make_batch, n_examples=50, threads=target, n_single=4, n_batches=2, warmup=2,
                        repeats=3)
    assert all(not c["training"] and c["inference"] and not c["grad"] for c in model.calls)
    assert {c["threads"] for c in model.calls} == {target} and out["threads"] == target
    assert torch.get_num_threads() == before and model.training            # both restored afterwards
    warm, timed = model.calls[:4], model.calls[4:]                            # 2 x (one b1 + one b32)
    assert [len(c["ids"]) for c in warm] == [1, 32, 1, 32]
    assert len(timed) == 3 * (4 + 2) and out["calls_b1"] == 12
    # the same inputs in every repeat: the first 4 examples, then batches 0..31 and 32..63 (wrapping at 50)
    per_repeat = [[c["ids"] for c in timed[r * 6:(r + 1) * 6]] for r in range(3)]
    assert per_repeat[0] == per_repeat[1] == per_repeat[2]
    assert per_repeat[0][:4] == [[0], [1], [2], [3]]
    assert per_repeat[0][5] == [(32 + j) % 50 for j in range(32)]
    assert out["latency_ms_b1"] > 0 and out["throughput_b32"] > 0


def test_median_ignores_one_slow_call():
    # call 5 is the first timed batch-1 call (after 2 warm-up pairs); it sleeps 0.6 s
    model = Probe(slow_call=5, sleep_s=0.6)
    out = measure_speed(model, make_batch, n_examples=40, n_single=5, n_batches=1, warmup=2, repeats=3)
    assert out["latency_ms_b1"] < 15                                          # the mean is > 40 ms


def test_torch_threads_restores_on_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError):
        with torch_threads(1):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before
