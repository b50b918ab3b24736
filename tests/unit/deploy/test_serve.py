"""The server in-process (httpx over ASGI, lifespan on): every 4xx case, mixed-adapter batches, the event loop
stays free while the model computes."""
import asyncio
import json
import time

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

TEXTS = ["the striker scored twice", "shares slid after the bank cut its outlook", "snow expected overnight"]


@pytest.fixture(scope="module")
def engine(lora_runs):
    from tunewright.deploy.serve.engine import TorchEngine
    return TorchEngine([str(lora_runs[0]), str(lora_runs[1])], ["a", "b"])


def call(app, fn):
    async def main():
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
                return await fn(c)
    return asyncio.run(main())


def test_bad_requests_get_4xx_with_a_message_and_the_server_stays_up(engine):
    from tunewright.deploy.serve import Limits, build_app
    app = build_app(engine, Limits(max_inputs=4, max_input_chars=50, max_body_bytes=2000))
    cases = [(b'{"inputs": ["a"', 400, "malformed JSON"), (b'[1, 2]', 422, "JSON object"),
             (b'{"adapter": "a"}', 422, "missing field 'inputs'"), (b'{"inputs": "text"}', 422, "must be list"),
             (b'{"inputs": [3]}', 422, "non-empty string"),
             (b'{"inputs": ["x"], "adapter": "../../etc/passwd"}', 404, "unknown adapter"),
             (json.dumps({"inputs": ["x"] * 5}).encode(), 413, "limit is 4"),
             (json.dumps({"inputs": ["x" * 51]}).encode(), 413, "limit is 50"),
             (json.dumps({"inputs": ["x"], "pad": "y" * 3000}).encode(), 413, "body")]

    async def run(c):
        out = [(await c.post("/predict", content=body), status, msg) for body, status, msg in cases]
        out.append((await c.post("/generate", json={"prompt": "hi", "adapter": "a"}), 400, "use POST /predict"))
        ok = await c.post("/predict", json={"inputs": TEXTS, "adapter": "b"})
        return out, ok

    out, ok = call(app, run)
    for resp, status, msg in out:
        assert resp.status_code == status and msg in resp.json()["error"], (status, resp.text)
    assert ok.status_code == 200 and len(ok.json()["predictions"]) == 3


def test_two_adapters_in_one_batch_equal_each_served_alone(engine, lora_runs):
    from tunewright.deploy.serve import Limits, build_app
    from tunewright.deploy.serve.engine import TorchEngine
    app = build_app(engine, Limits(batch_window_ms=500))       # a wide window: both requests share one pass
    assert engine.bases[0].mixed and len(engine.bases) == 1     # one base model, two adapters

    async def run(c):
        ra, rb = await asyncio.gather(c.post("/predict", json={"inputs": TEXTS, "adapter": "a"}),
                                      c.post("/predict", json={"inputs": TEXTS[:2], "adapter": "b"}))
        return ra.json(), rb.json(), (await c.get("/metadata")).json()

    ra, rb, meta = call(app, run)
    assert (meta["batching"]["forward_passes"], meta["batching"]["rows"]) == (1, 5)
    alone_a = TorchEngine([str(lora_runs[0])]).predict([("lora_a", t) for t in TEXTS])
    alone_b = TorchEngine([str(lora_runs[1])]).predict([("lora_b", t) for t in TEXTS[:2]])
    for got, want in zip(ra["predictions"] + rb["predictions"], alone_a + alone_b):
        assert got["label"] == want["label"]
        assert got["probs"] == pytest.approx(want["probs"], abs=1e-5)
    assert ra["predictions"][0]["probs"] != rb["predictions"][0]["probs"]   # the adapters really differ
    # and the two heads really differ (a head mix-up in a mixed batch must change some answer)
    import torch

    from tunewright.peft.base import heads
    hs, x = heads(engine.bases[0].model), torch.randn(16, 32)                 # tiny-bert features: (B, 32)
    with torch.no_grad():
        pa, pb = (hs[engine.runs[n].adapter].eval()(x).softmax(-1) for n in ("a", "b"))
    assert (pa - pb).abs().max() > 0.01       # 0.04 here under bf16 autocast; a shared head gives exactly 0


def test_metadata_and_health(engine):
    from tunewright.deploy.serve import build_app

    async def run(c):
        return (await c.get("/health")).json(), (await c.get("/metadata")).json()

    health, meta = call(build_app(engine), run)
    assert health["status"] == "ok"
    assert meta["backend"] == "torch" and [a["name"] for a in meta["adapters"]] == ["a", "b"]
    assert meta["adapters"][0]["labels"] == ["finance", "sports", "weather"]


def test_the_event_loop_answers_while_a_batch_computes(engine):
    from tunewright.deploy.serve import build_app

    class Slow:                           # a model call that takes 1 s
        runs, backend = engine.runs, "torch"

        def predict(self, rows):
            time.sleep(1.0)
            return engine.predict(rows)

    async def run(c):
        t0 = time.perf_counter()
        slow = asyncio.create_task(c.post("/predict", json={"inputs": TEXTS}))
        await asyncio.sleep(0.2)            # the batch is computing now; a blocked loop would return after it
        health = await c.get("/health")
        took = time.perf_counter() - t0     # from the start: a model call on the loop delays the sleep itself
        return health.status_code, took, (await slow).status_code, time.perf_counter() - t0

    status, took, slow_status, slow_took = call(build_app(Slow()), run)
    assert status == 200 and slow_status == 200 and slow_took >= 1.0
    assert took < 0.7, took                 # answered while the 1 s batch was still running


def test_length_chunks_bound_padding_and_keep_every_row():
    from tunewright.deploy.serve.engine import length_chunks
    lengths = [128, 20, 22, 120, 21, 64, 0]
    chunks = length_chunks(lengths, slack=1.25, pad_free=0)
    assert sorted(i for c in chunks for i in c) == list(range(len(lengths)))
    for c in chunks:
        longest, real = max(lengths[i] for i in c), sum(lengths[i] for i in c)
        assert len(c) == 1 or len(c) * longest <= 1.25 * real
    assert [20, 21, 22] in [sorted(lengths[i] for i in c) for c in chunks]     # short rows share one chunk
    assert length_chunks([0, 0, 0]) == [[0, 1, 2]]                              # images: one chunk


def test_batcher_takes_queued_requests_without_waiting_the_window_again():
    from concurrent.futures import ThreadPoolExecutor
    from tunewright.deploy.serve.batcher import Batcher
    calls = []

    def fn(rows):
        calls.append(len(rows))
        time.sleep(1.2)                     # the model is busy: the next requests queue up meanwhile
        return rows

    async def run():
        b = Batcher(fn, ThreadPoolExecutor(1), window_ms=1000, max_batch=4)
        b.start()
        t0 = time.perf_counter()
        first = asyncio.create_task(b.submit([1, 2, 3, 4]))       # max_batch at once: runs without a window
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(b.submit(r)) for r in ([5], [6], [7], [8, 9])]
        got = await asyncio.gather(first, *rest)
        took = time.perf_counter() - t0
        await b.close()
        return got, took

    got, took = asyncio.run(run())
    assert got == [[1, 2, 3, 4], [5], [6], [7], [8, 9]]
    assert calls == [4, 3, 2]               # [8, 9] would overfill the second pass: it starts the third
    # queued at 0.05 s, their window over by 1.05 s: each pass starts when the model is free (3 x 1.2 s), with
    # no second wait of 1 s before the second and third passes
    assert took < 3 * 1.2 + 0.8, took


def test_adapter_names_never_become_paths(lora_runs):
    from tunewright.deploy.serve.engine import public_names
    from tunewright.errors import ModelLoadError
    assert public_names([str(lora_runs[0])], None) == ["lora_a"]
    with pytest.raises(ModelLoadError, match="adapter name"):
        public_names([str(lora_runs[0])], ["../x"])


def test_generate_answers_a_causal_lm_run_and_rejects_bad_fields(llama_run):
    from tunewright.deploy.serve import build_app
    from tunewright.deploy.serve.engine import TorchEngine
    eng = TorchEngine([str(llama_run)], ["lm"])
    app = build_app(eng)

    async def run(c):
        ok = await c.post("/generate", json={"prompt": "the weather today", "adapter": "lm", "max_new_tokens": 6,
                                             "raw": True, "temperature": 1.0, "top_p": 1.0, "seed": 3})
        bad = [await c.post("/generate", json=body) for body in
               ({"prompt": "x", "max_new_tokens": 0}, {"prompt": "x", "temperature": -1}, {"max_new_tokens": 3},
                {"prompt": "x", "seed": "one"})]
        wrong = await c.post("/predict", json={"inputs": ["x"], "adapter": "lm"})
        return ok, bad, wrong

    ok, bad, wrong = call(app, run)
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"adapter": "lm", "text": eng.generate("lm", "the weather today", 6, 1.0, 1.0, 3, True)}
    assert len(ok.json()["text"].split()) >= 2          # sampled from a near-random model: words, not only specials
    assert [r.status_code for r in bad] == [422, 422, 422, 422]
    assert wrong.status_code == 400 and "/generate" in wrong.json()["error"]


def test_predict_takes_base64_images_for_an_image_run(image_run):
    import base64
    import io

    import numpy as np
    from PIL import Image

    from tunewright.deploy.serve import build_app
    from tunewright.deploy.serve.engine import TorchEngine
    eng = TorchEngine([str(image_run)], ["img"])
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)) for _ in range(2)]
    encoded = []
    for im in images:
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        encoded.append(base64.b64encode(buf.getvalue()).decode())

    async def run(c):
        ok = await c.post("/predict", json={"inputs": encoded, "adapter": "img"})
        bad = await c.post("/predict", json={"inputs": ["bm90IGFuIGltYWdl"], "adapter": "img"})   # "not an image"
        return ok, bad

    ok, bad = call(build_app(eng), run)
    assert ok.status_code == 200, ok.text
    want = eng.predict([("img", im) for im in images])
    got = ok.json()["predictions"]
    assert [g["label"] for g in got] == [w["label"] for w in want]
    assert got[0]["probs"] == pytest.approx(want[0]["probs"], abs=1e-5)
    assert bad.status_code == 422 and "base64-encoded image" in bad.json()["error"]
