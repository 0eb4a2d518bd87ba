"""Adaptive micro-batching: many concurrent requests, few model calls.

One :class:`Dispatcher` per API. The HTTP handler parses and validates its request on the
IOLoop (a bad body fails alone, before it can spoil a batch), then calls :meth:`submit`,
which appends the parsed payload to a queue and returns an asyncio future. A single model
thread per API takes requests off the queue, calls the API once per batch and hands the
results back to the IOLoop::

    dispatcher = Dispatcher(api, loop, config)
    dispatcher.start()
    ok, body = await dispatcher.submit(api.input.parse(body, content_type))

The algorithm
-------------
* **No idle penalty.** When the model thread is idle, a request wakes it at once and is
  dispatched alone: there is no timer and no wait for company (Triton's default).
* **Batches grow with load.** While the model runs, new requests queue up; when it is done
  it takes *everything* waiting, up to a cap, as the next batch. The batch size therefore
  follows arrival rate × model time without any tuning: one client gives batches of one,
  64 clients give batches of up to 64, and a slow model gives bigger batches than a fast
  one.
* **Within a latency budget.** Every batch's wall time is fed to an exponentially weighted
  least-squares fit ``t(n) = a*n + b`` (BentoML's CorkDispatcher fits the same model). The
  cap is ``min(max_batch_size, (max_latency_ms - b) / a)``: a batch is never made so large
  that the model call alone would blow the budget.
* **Wait while waiting pays, only under load.** When the model thread is free and finds
  more than one request (but fewer than the cap) waiting, more are on their way: it looks
  at the queue again every ``max(b/4, 0.5 ms)`` and waits while it keeps growing, at most
  ``max(b, 5 % of the budget)`` in all and never past the budget, then takes the lot.
  Every batch pays the fixed cost ``b`` plus two thread hand-offs, and with scikit-learn
  that is Python holding the GIL the IOLoop needs; fewer, fuller batches leave the CPU to
  HTTP. On the iris SVC at 64 clients this took the mean batch from ~6 to ~30 and the
  model thread's CPU per request from ~45 to ~20 us (bench/serve.py). When the queue stops
  growing (say 16 clients, all already waiting) the wait ends after one look. A lone
  request never waits.
* **Cheap assembly.** Payloads are already numpy arrays; the adapter's ``make_batch`` does
  one ``concatenate`` per batch. Results are cut back per request in order and serialized
  to JSON on the model thread, once per request, so the IOLoop only writes bytes.
* **A bad request fails alone.** If the model raises on a batch, the batch is split in
  halves and each half retried (recursively), so only the request(s) that really fail get
  the error (HTTP 500 with the model's message); the others get their answers. A batch with
  ``k`` poisoned requests costs about ``2k*log2(n)`` extra model calls.
* **Bounded queue.** Past ``max_queue`` waiting requests, :meth:`submit` raises
  :class:`~bento_nb.errors.Overloaded` at once (HTTP 503 with Retry-After): no request
  waits forever for a model that cannot keep up.
* **Drain on close.** :meth:`close` refuses new requests and lets the thread finish what is
  queued; :meth:`join` waits for that.

Non-batch APIs use the same machinery with a cap of one: each request is its own call, still
off the IOLoop and still behind the bounded queue.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from queue import SimpleQueue
from typing import Any

import numpy as np

from ..adapters import Payload, dumps_json
from ..errors import BentoNbError, ModelError, Overloaded

# Gathering under load: wait at most max(b, this share of the latency budget), looking at
# the queue every max(b/4, this many seconds); see the module docstring.
_GATHER_SHARE = 0.05
_GATHER_SLICE = 0.0005

# (ok, body): body is the JSON bytes of the result, or the BentoNbError to answer with.
Outcome = tuple


class BatchTimeModel:
    """Online fit of batch wall time ``t(n) = a*n + b`` (seconds), exponentially weighted so
    it follows a model whose speed changes (warm-up, other load on the machine)."""

    def __init__(self, decay: float = 0.98):
        self.decay = decay
        self._s0 = self._sn = self._st = self._snn = self._snt = 0.0
        self.a = 0.0
        self.b = 0.0

    def observe(self, n: int, seconds: float) -> None:
        d = self.decay
        self._s0 = d * self._s0 + 1.0
        self._sn = d * self._sn + n
        self._st = d * self._st + seconds
        self._snn = d * self._snn + n * n
        self._snt = d * self._snt + n * seconds
        det = self._s0 * self._snn - self._sn * self._sn
        if det > 1e-9 * max(self._s0 * self._snn, 1e-12):
            a = (self._s0 * self._snt - self._sn * self._st) / det
            b = (self._st - a * self._sn) / self._s0
        else:  # every batch had the same size: the slope is not identifiable yet
            a, b = 0.0, self._st / self._s0
        if a < 0:  # noise: a bigger batch is never cheaper
            a, b = 0.0, self._st / self._s0
        self.a, self.b = a, max(b, 0.0)

    def predict(self, n: int) -> float:
        return self.a * n + self.b

    def largest_within(self, budget: float, ceiling: int) -> int:
        """The largest batch size whose predicted time fits ``budget`` (at least 1)."""
        if self.a <= 0:
            return ceiling
        return max(1, min(ceiling, int((budget - self.b) / self.a + 1e-9)))


class Dispatcher:
    """The queue and model thread of one API (see the module docstring)."""

    def __init__(self, api: Any, loop: asyncio.AbstractEventLoop, max_batch_size: int = 100,
                 max_latency_ms: float = 100.0, max_queue: int = 1024,
                 on_batch: Callable[[int, float], None] | None = None):
        self.api = api
        self.batch = bool(api.batch)
        self.max_batch_size = max_batch_size if self.batch else 1
        self.budget = max_latency_ms / 1000.0
        self.max_queue = max_queue
        self.model = BatchTimeModel()
        self.batches = 0
        self.batched_requests = 0
        self._loop = loop
        self._on_batch = on_batch
        self._queue: deque = deque()
        # Wake-up channel: submit() puts a token only when the model thread said it is idle
        # (a C-level SimpleQueue is much cheaper than threading.Event's Condition).
        self._wakeup: SimpleQueue = SimpleQueue()
        self._idle = False
        self._closed = False
        self._running = 0  # requests inside the current model call
        self._current: list = []  # (payload, reply) of the current model call
        self._thread = threading.Thread(target=self._serve_forever, daemon=True,
                                        name=f"bento-nb-model-{api.name}")

    # -- IOLoop side ------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def submit(self, payload: Payload,
               reply: Callable[[bool, Any], None] | None = None) -> asyncio.Future | None:
        """Queue one parsed request. With ``reply``, ``reply(ok, body)`` is called on the
        IOLoop when it is answered; without, a future resolving to ``(ok, body)`` is
        returned. Raises Overloaded when the queue is full or the server is stopping."""
        if self._closed:
            raise Overloaded("the server is shutting down; retry shortly")
        queue = self._queue
        if len(queue) >= self.max_queue:
            raise Overloaded(f"the server is overloaded ({len(queue)} requests waiting "
                             f"for {self.api.name!r}); retry after {self.retry_after()} s")
        future = None
        if reply is None:
            future = self._loop.create_future()
            reply = partial(_set_future, future)
        queue.append((payload, reply))
        if self._idle:
            self._idle = False
            self._wakeup.put(None)
        return future

    def retry_after(self) -> int:
        """Seconds a refused client should wait: the predicted time to drain the queue."""
        waiting = len(self._queue) + self._running
        per_batch = self.model.predict(self.max_batch_size) or 0.01
        return max(1, math.ceil(per_batch * waiting / self.max_batch_size))

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def pending(self) -> int:
        """Requests queued or inside a model call."""
        return len(self._queue) + self._running

    def close(self) -> None:
        """Refuse new requests; queued ones are still answered."""
        self._closed = True
        self._wakeup.put(None)

    def abandon(self, error: BentoNbError) -> int:
        """Answer every request still queued or inside the model call with ``error`` (on
        the IOLoop, when a drain runs out of time); returns how many. Results the model
        thread delivers later for them are dropped (each request is answered once)."""
        self._closed = True
        answered = 0
        for _, reply in list(self._current):
            reply(False, error)
            answered += 1
        while True:
            try:
                _, reply = self._queue.popleft()
            except IndexError:
                break
            reply(False, error)
            answered += 1
        self._wakeup.put(None)
        return answered

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @staticmethod
    def _resolve(items: Sequence[tuple], outcomes: Sequence[Outcome]) -> None:
        for (_, reply), (ok, body) in zip(items, outcomes):
            try:
                reply(ok, body)
            except Exception:
                import logging

                logging.getLogger("bento_nb.server").exception("reply failed")

    # -- model thread -----------------------------------------------------------------

    def _serve_forever(self) -> None:
        queue, wakeup = self._queue, self._wakeup
        while True:
            if not queue:
                self._idle = True
                # Re-check after announcing idleness: a submit() that ran before it did not
                # put a token, but its request is already in the queue.
                if not queue:
                    if self._closed:
                        return
                    wakeup.get()
                    continue
                self._idle = False
            cap = self.model.largest_within(self.budget, self.max_batch_size)
            if 1 < len(queue) < cap:
                self._gather(cap)
            # Published before it is filled, so abandon() sees every request taken.
            items = self._current = []
            try:
                while len(items) < cap:
                    items.append(queue.popleft())
            except IndexError:
                pass
            if not items:
                continue
            n = len(items)
            self._running = n
            started = time.perf_counter()
            outcomes = self._run([payload for payload, _ in items])
            elapsed = time.perf_counter() - started
            self._running = 0
            self.model.observe(n, elapsed)
            self.batches += 1
            self.batched_requests += n
            if self._on_batch is not None:
                self._on_batch(n, elapsed)
            try:
                self._loop.call_soon_threadsafe(self._resolve, items, outcomes)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return

    def _gather(self, cap: int) -> None:
        """Under load, wait while waiting pays (see the module docstring)."""
        queue, model = self._queue, self.model
        pause = min(max(model.b, _GATHER_SHARE * self.budget), self.budget - model.predict(cap))
        if pause <= 0:
            return
        step = max(model.b / 4, _GATHER_SLICE)
        deadline = time.perf_counter() + pause
        before = len(queue)
        while True:
            time.sleep(step)
            now = len(queue)
            if now >= cap or now == before or time.perf_counter() >= deadline:
                return
            before = now

    def _run(self, payloads: list[Payload]) -> list[Outcome]:
        """Outcomes for ``payloads`` in order. Only requests of one shape (the same column
        names, or none) share a model call; a failing call is bisected."""
        shape = payloads[0].columns
        if all(p.columns == shape for p in payloads):
            return self._run_same_shape(payloads)
        groups: dict = {}
        for index, payload in enumerate(payloads):
            groups.setdefault(payload.columns, []).append(index)
        outcomes: list = [None] * len(payloads)
        for indexes in groups.values():
            for index, outcome in zip(indexes, self._run_same_shape(
                    [payloads[i] for i in indexes])):
                outcomes[index] = outcome
        return outcomes

    def _run_same_shape(self, payloads: list[Payload]) -> list[Outcome]:
        try:
            if self.batch:
                results = self.api.run_batch(payloads)
            else:
                results = [self.api.run_one(payloads[0])]
        except Exception as e:  # noqa: BLE001 - the user's model: isolate, never crash
            if len(payloads) == 1:
                return [(False, _as_error(e))]
            middle = len(payloads) // 2
            return (self._run_same_shape(payloads[:middle])
                    + self._run_same_shape(payloads[middle:]))
        outcomes = []
        for result in results:
            try:
                outcomes.append((True, _to_json(result)))
            except Exception as e:  # noqa: BLE001
                outcomes.append((False, _as_error(e)))
        return outcomes


_encode = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


def _to_json(result: Any) -> bytes:
    """JSON bytes of one request's result; numpy slices (the usual case) take a shortcut
    around :func:`~bento_nb.adapters.dumps_json`, which handles everything else."""
    if type(result) is np.ndarray and result.dtype.kind in "iufb":
        try:
            return _encode(result.tolist()).encode()
        except ValueError:  # NaN or infinity: dumps_json turns them into null
            pass
    return dumps_json(result)


def _set_future(future: asyncio.Future, ok: bool, body: Any) -> None:
    if not future.done():
        future.set_result((ok, body))


def _as_error(e: BaseException) -> BentoNbError:
    if isinstance(e, BentoNbError):
        return e
    return ModelError(f"{type(e).__name__}: {e}")
