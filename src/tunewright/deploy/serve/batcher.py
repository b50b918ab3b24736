"""Dynamic batching: requests that arrive within `window_ms` of the first share one forward pass.

Hand-written (about 80 lines) because the libraries that do this (litserve, ray serve, triton) bring their own
server and process model; here it is one asyncio queue and one worker task inside the FastAPI app:

    request --put--> queue --worker: first item, then more until window_ms after the FIRST ITEM ARRIVED, or
    max_batch rows--> run_in_executor(model thread, predict(rows)) --> each request's future gets its rows back

The window counts from when the first request was queued, not from when the worker got to it: while a batch
computes, the next requests wait in the queue, and once the model is free they are taken at once, without a
second wait (continuous batching). Only a request that finds the model idle waits up to `window_ms` for company.

The model runs on the executor's thread, never on the event loop (fastapi #2148): the loop keeps accepting
and parsing requests while a batch computes, and those requests form the next batch. `close()` puts a stop
mark behind everything queued, so the worker answers every queued request before it exits (SIGTERM drain).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class _Job:
    rows: list
    future: asyncio.Future = field(repr=False)
    queued: float = 0.0                                 # loop.time() when submitted


class Batcher:
    def __init__(self, fn, executor, window_ms: float = 5.0, max_batch: int = 32):
        self.fn, self.executor = fn, executor          # fn(rows) -> one result per row, run on the executor
        self.window, self.max_batch = window_ms / 1000.0, max_batch
        self.queue: asyncio.Queue = asyncio.Queue()
        self.task: asyncio.Task | None = None
        self.held: _Job | None = None                  # a job that would have overfilled the last batch: next first
        self.batches = 0                               # forward passes run (GET /metadata shows them)
        self.rows = 0
        self.wait_s = 0.0                              # summed over batches: first request queued -> model starts
        self.model_s = 0.0                             # summed over batches: the model call itself

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._worker())

    async def submit(self, rows: list) -> list:
        loop = asyncio.get_running_loop()
        job = _Job(rows, loop.create_future(), loop.time())
        await self.queue.put(job)
        return await job.future

    async def close(self) -> None:
        """Answer everything queued, then stop the worker."""
        if self.task is not None:
            await self.queue.put(None)
            await self.task

    def stats(self) -> dict:
        n = max(self.batches, 1)
        return {"forward_passes": self.batches, "rows": self.rows, "mean_rows": round(self.rows / n, 2),
                "mean_wait_ms": round(1000 * self.wait_s / n, 2), "mean_model_ms": round(1000 * self.model_s / n, 2)}

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        stop = False
        while not stop:
            first, self.held = self.held or await self.queue.get(), None
            if first is None:
                break
            jobs, n = [first], len(first.rows)
            deadline = first.queued + self.window
            while n < self.max_batch:
                if not self.queue.empty():        # already waiting (the model was busy): take it, no timer
                    job = self.queue.get_nowait()
                else:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        job = await asyncio.wait_for(self.queue.get(), left)
                    except asyncio.TimeoutError:
                        break
                if job is None:
                    stop = True               # still run the batch collected so far
                    break
                if n + len(job.rows) > self.max_batch:
                    self.held = job           # it starts the next batch (a job alone may exceed max_batch)
                    break
                jobs.append(job)
                n += len(job.rows)
            await self._run(loop, jobs)

    async def _run(self, loop, jobs: list[_Job]) -> None:
        rows = [r for job in jobs for r in job.rows]
        t0 = time.perf_counter()
        self.wait_s += max(0.0, loop.time() - jobs[0].queued)
        try:
            results = await loop.run_in_executor(self.executor, self.fn, rows)
        except Exception as err:               # a model error fails this batch's requests, never the worker
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(err)
            return
        self.model_s += time.perf_counter() - t0
        self.batches += 1
        self.rows += len(rows)
        k = 0
        for job in jobs:
            if not job.future.done():          # a client that hung up has a cancelled future
                job.future.set_result(results[k:k + len(job.rows)])
            k += len(job.rows)
