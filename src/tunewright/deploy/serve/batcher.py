"""Dynamic batching: requests that arrive within `window_ms` of the first share one forward pass.

Hand-written (about 60 lines) because the libraries that do this (litserve, ray serve, triton) bring their own
server and process model; here it is one asyncio queue and one worker task inside the FastAPI app:

    request --put--> queue --worker: first item, then more until window_ms has passed or max_batch rows-->
    run_in_executor(model thread, predict(rows)) --> each request's future gets its own rows back

The model runs on the executor's thread, never on the event loop (fastapi #2148): the loop keeps accepting
and parsing requests while a batch computes, and those requests form the next batch. `close()` puts a stop
mark behind everything queued, so the worker answers every queued request before it exits (SIGTERM drain).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class _Job:
    rows: list
    future: asyncio.Future = field(repr=False)


class Batcher:
    def __init__(self, fn, executor, window_ms: float = 5.0, max_batch: int = 32):
        self.fn, self.executor = fn, executor          # fn(rows) -> one result per row, run on the executor
        self.window, self.max_batch = window_ms / 1000.0, max_batch
        self.queue: asyncio.Queue = asyncio.Queue()
        self.task: asyncio.Task | None = None
        self.batches = 0                               # forward passes run (GET /metadata shows them)
        self.rows = 0

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._worker())

    async def submit(self, rows: list) -> list:
        job = _Job(rows, asyncio.get_running_loop().create_future())
        await self.queue.put(job)
        return await job.future

    async def close(self) -> None:
        """Answer everything queued, then stop the worker."""
        if self.task is not None:
            await self.queue.put(None)
            await self.task

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        stop = False
        while not stop:
            first = await self.queue.get()
            if first is None:
                break
            jobs, n = [first], len(first.rows)
            deadline = loop.time() + self.window
            while n < self.max_batch:
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
                jobs.append(job)
                n += len(job.rows)
            await self._run(loop, jobs)

    async def _run(self, loop, jobs: list[_Job]) -> None:
        rows = [r for job in jobs for r in job.rows]
        try:
            results = await loop.run_in_executor(self.executor, self.fn, rows)
        except Exception as err:               # a model error fails this batch's requests, never the worker
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(err)
            return
        self.batches += 1
        self.rows += len(rows)
        k = 0
        for job in jobs:
            if not job.future.done():          # a client that hung up has a cancelled future
                job.future.set_result(results[k:k + len(job.rows)])
            k += len(job.rows)
