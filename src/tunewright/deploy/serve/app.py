"""The HTTP face of the server: FastAPI routes over an engine (engine.py), uvicorn to run them.

    POST /predict   {"inputs": [text | base64 image, ...], "adapter": name?}  -> {"adapter", "predictions": [...]}
    POST /generate  {"prompt": str, "adapter": name?, "max_new_tokens", "temperature", "top_p", "seed", "raw"}
    GET  /health    {"status": "ok"}
    GET  /metadata  the backend, each adapter (run, task, labels, method), the bases they share, batching, limits

Bad requests get a 4xx and a message, and the server stays up: a body over the cap or too many / too long
inputs 413, malformed JSON 400, a missing or wrong field 422, an unknown adapter 404, /generate on a
classifier 400. The body is read here (not by FastAPI's parameter binding) so each case has its own status
and message. SIGTERM: uvicorn stops accepting connections and waits for the requests in flight; the app's
lifespan then closes the batcher, which answers whatever is still queued, and prints how many requests were
accepted and answered.
"""
from __future__ import annotations

import asyncio
import base64
import io
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .batcher import Batcher


@dataclass
class Limits:
    max_body_bytes: int = 1_000_000      # request body
    max_inputs: int = 64                 # inputs per /predict request
    max_input_chars: int = 20_000        # characters per text input (images: base64 characters x 50)
    max_new_tokens: int = 256            # /generate cap
    batch_window_ms: float = 5.0         # dynamic batching: how long the first request waits for company
    max_batch: int = 32                  # rows per forward pass


class HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


async def read_json(request, cap: int) -> dict:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise HTTPError(413, f"request body is {declared} bytes; the limit is {cap}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise HTTPError(413, f"request body is over the limit of {cap} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise HTTPError(400, f"malformed JSON: {err}") from None
    if not isinstance(data, dict):
        raise HTTPError(422, f"the body must be a JSON object, got {type(data).__name__}")
    return data


def field(data: dict, key: str, kind, default=..., what: str = "") -> object:
    if key not in data:
        if default is ...:
            raise HTTPError(422, f"missing field {key!r}{what}")
        return default
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise HTTPError(422, f"field {key!r} must be {name}, got {type(value).__name__}")
    return value


def decode_image(s: str, i: int):
    from PIL import Image
    try:
        img = Image.open(io.BytesIO(base64.b64decode(s, validate=True)))
        img.load()
        return img
    except Exception as err:
        raise HTTPError(422, f"input {i}: not a base64-encoded image ({type(err).__name__})") from None


def build_app(engine, limits: Limits | None = None):
    limits = limits or Limits()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")   # the one model thread
    batcher = Batcher(engine.predict, executor, limits.batch_window_ms, limits.max_batch)
    stats = {"accepted": 0, "answered": 0}
    default = next(iter(engine.runs))

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        await batcher.close()           # after uvicorn's drain: anything still queued is answered first
        executor.shutdown(wait=True)
        print(f"drained: {json.dumps(stats)}", file=sys.stderr, flush=True)

    app = FastAPI(title="tunewright serve", lifespan=lifespan)
    app.state.engine, app.state.batcher, app.state.stats, app.state.limits = engine, batcher, stats, limits

    @app.exception_handler(HTTPError)
    async def _http_error(request, err: HTTPError):
        return JSONResponse({"error": err.message}, status_code=err.status)

    def adapter_of(data: dict):
        name = field(data, "adapter", str, default)
        run = engine.runs.get(name)
        if run is None:
            raise HTTPError(404, f"unknown adapter {name[:80]!r}; this server has {sorted(engine.runs)}")
        return name, run

    @app.get("/health")
    async def health():
        return {"status": "ok", "backend": engine.backend}

    @app.get("/metadata")
    async def metadata():
        return {**engine.metadata(), "default_adapter": default, "limits": asdict(limits),
                "batching": batcher.stats()}

    @app.post("/predict")
    async def predict(request: Request):
        data = await read_json(request, limits.max_body_bytes)
        inputs = field(data, "inputs", list)
        name, run = adapter_of(data)
        if run.task == "causal_lm":
            raise HTTPError(400, f"adapter {name!r} is a causal LM: use POST /generate")
        if not inputs:
            raise HTTPError(422, "field 'inputs' is empty")
        if len(inputs) > limits.max_inputs:
            raise HTTPError(413, f"{len(inputs)} inputs; the limit is {limits.max_inputs} per request")
        cap = limits.max_input_chars * (50 if run.modality == "image" else 1)
        for i, x in enumerate(inputs):
            if not isinstance(x, str) or not x.strip():
                raise HTTPError(422, f"input {i} must be a non-empty string, got {str(x)[:40]!r}")
            if len(x) > cap:
                raise HTTPError(413, f"input {i} is {len(x)} characters; the limit is {cap}")
        if run.modality == "image":
            inputs = [decode_image(x, i) for i, x in enumerate(inputs)]
        stats["accepted"] += 1
        replies = await batcher.submit([(name, x) for x in inputs])
        stats["answered"] += 1
        return {"adapter": name, "predictions": replies}

    @app.post("/generate")
    async def generate(request: Request):
        data = await read_json(request, limits.max_body_bytes)
        prompt = field(data, "prompt", str)
        name, run = adapter_of(data)
        if run.task != "causal_lm":
            raise HTTPError(400, f"adapter {name!r} is a {run.task} model: use POST /predict")
        if not prompt.strip() or len(prompt) > limits.max_input_chars:
            raise HTTPError(413 if prompt.strip() else 422,
                            f"prompt must be 1..{limits.max_input_chars} characters, got {len(prompt)}")
        n = field(data, "max_new_tokens", int, 64)
        if not 1 <= n <= limits.max_new_tokens:
            raise HTTPError(422, f"max_new_tokens must be 1..{limits.max_new_tokens}, got {n}")
        temperature = float(field(data, "temperature", (int, float), 0.0))
        top_p = float(field(data, "top_p", (int, float), 0.9))
        if temperature < 0 or not 0 < top_p <= 1:
            raise HTTPError(422, f"temperature must be >= 0 and top_p in (0, 1], got {temperature}, {top_p}")
        seed, raw = field(data, "seed", int, 0), field(data, "raw", bool, False)
        stats["accepted"] += 1
        loop = asyncio.get_running_loop()
        text = await loop.run_in_executor(executor, engine.generate, name, prompt, n, temperature, top_p, seed, raw)
        stats["answered"] += 1
        return {"adapter": name, "text": text}

    return app


def serve(engine, host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None,
          log_level: str = "info") -> None:
    """Run until SIGINT/SIGTERM; uvicorn drains the requests in flight, then the lifespan drains the batcher."""
    import uvicorn
    app = build_app(engine, limits)
    print(f"serving {sorted(engine.runs)} ({engine.backend}) on http://{host}:{port}", file=sys.stderr, flush=True)
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False)).run()
