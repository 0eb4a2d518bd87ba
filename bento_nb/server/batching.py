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
  growing (say 16 clients, all already waiting) the wait ends after one look, and it ends
  at once when the IOLoop, having queued requests, finishes the turn in which it read them
  (:meth:`Dispatcher._nudge`): everything that had arrived is then queued, and waiting
  longer would leave both threads idle. A lone request never waits.
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
* **A deadline per request.** Each request gets ``deadline = submitted + request_timeout``.
  One IOLoop timer, armed at the earliest deadline still pending, answers every request
  whose deadline passed with :class:`~bento_nb.errors.DeadlineExceeded` (HTTP 504): queued
  ones are taken off the queue (the model never sees them), and those inside a model call
  that overran are answered too, their late results dropped. A hung model thread cannot be
  killed in Python, but no client waits on it past ``request_timeout``. Deadlines grow in
  queue order, so the timer only ever looks at the head: O(1) per request.
* **Admission by deadline.** A request is queued only if its predicted completion fits
  ``_HEADROOM`` (90 %) of ``request_timeout``: the rest of the model call under way
  (``t(running)`` minus what it has run) plus ``ceil(k / cap)`` batches of ``t(min(k, cap))``
  for the ``k`` requests up to and including it, ``cap`` being the current batch cap.
  Otherwise :meth:`submit` answers 503 + Retry-After at once. The fit knows nothing until
  the second batch (the model's first call is warm-up, see :class:`BatchTimeModel`), so a
  flood on a cold model is admitted whole; after every batch (on the IOLoop, with the new fit) requests at the
  tail of the queue whose predicted completion no longer fits their deadline get the same
  503 at once instead of a 504 later (O(1) amortized: each request is shed at most once).
  This sheds by a real deadline, not by the short batching budget (BentoML's 503 storms)
  and not never: a flood on a slow model is answered within ``request_timeout``, 200 for
  those that fit and 503 at once for the rest. While a model call has run past
  ``request_timeout`` (a stuck model), new requests get 503 at once and :meth:`health`
  says so (``/readyz`` answers 503).
* **The model thread never dies of the model.** Anything the model raises, even
  ``SystemExit`` or ``KeyboardInterrupt``, is that request's 500. Should the thread still
  end (a bug), everything pending is answered 500, new requests are refused and
  :meth:`health` reports it.
* **Inline when alone.** A request that is the only one in flight, with nothing queued and
  no model call under way, for a warm model whose call on one request takes under
  ``_INLINE_MAX`` (1 ms), is answered by :meth:`run_inline` on the event loop itself: a
  lone request then pays no thread hand-off (two of them cost more than the iris SVC's
  call). The model thread need not have gone back to sleep yet: it only takes what is
  queued. The call time judged is a lower envelope of the single-request calls (it drops
  to a faster call at once and rises by a quarter of the gap on a slower one), so a few
  calls stretched by other work on the machine do not send a fast model to the thread,
  while a model that turns slow does after a call or two. Any other request takes the
  model thread.
* **Drain on close.** :meth:`close` refuses new requests and lets the thread finish what is
  queued; :meth:`join` waits for that.

Non-batch APIs use the same machinery with a cap of one: each request is its own call, still
off the IOLoop and still behind the bounded queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from queue import Empty, SimpleQueue
from typing import Any

import numpy as np
from orjson import dumps as _orjson_dumps

from ..adapters import Payload, dumps_json
from ..errors import BentoNbError, DeadlineExceeded, ModelError, Overloaded, ServerError
from .config import DEFAULT_REQUEST_TIMEOUT

_log = logging.getLogger("bento_nb.server")

# Gathering under load: wait at most max(b, this share of the latency budget), looking at
# the queue every max(b/4, this many seconds); see the module docstring.
_GATHER_SHARE = 0.05
_GATHER_SLICE = 0.0005
# Admission: a request is queued when its predicted completion fits this share of
# request_timeout; the rest absorbs fit error and the hand-offs between batches.
_HEADROOM = 0.9

# A warm model whose fitted call time is at most this runs inline on a lone request.
_INLINE_MAX = 0.001
_INLINE_WARM = 3  # batches seen before a model may run inline
_INLINE_RISE = 0.25  # share of the gap the single-call estimate rises by on a slower call

# (ok, body): body is the JSON bytes of the result, or the BentoNbError to answer with.
Outcome = tuple
# A queued request: (payload, reply, deadline), deadline in time.monotonic() seconds.
Entry = tuple


class BatchTimeModel:
    """Online fit of batch wall time ``t(n) = a*n + b`` (seconds), exponentially weighted so
    it follows a model whose speed changes (other load on the machine).

    The first ``warmup`` batches are not fitted: a model's first call pays for lazy imports,
    allocations and caches (on a scikit-learn model behind pandas, 0.35 s more than the
    next ones), and an estimate made of it would refuse requests that fit their deadline.
    Until a batch is fitted every prediction is 0 (nothing is known, nothing is refused)."""

    def __init__(self, decay: float = 0.98, warmup: int = 1):
        self.decay = decay
        self._warmup = warmup
        self._s0 = self._sn = self._st = self._snn = self._snt = 0.0
        self.a = 0.0
        self.b = 0.0

    def observe(self, n: int, seconds: float) -> None:
        if self._warmup > 0:
            self._warmup -= 1
            return
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
                 on_batch: Callable[[int, float], None] | None = None,
                 request_timeout: float = DEFAULT_REQUEST_TIMEOUT, retry_after_s: int = 1):
        self.api = api
        self.retry_after_s = retry_after_s
        self.batch = bool(api.batch)
        self.max_batch_size = max_batch_size if self.batch else 1
        self.budget = max_latency_ms / 1000.0
        self.max_queue = max_queue
        self.request_timeout = float(request_timeout)
        self._margin = (1.0 - _HEADROOM) * self.request_timeout
        self._cap = self.max_batch_size  # the cap of the last batch, for admission
        self.model = BatchTimeModel()
        self._single = math.inf  # lower envelope of one-request call times (run_inline)
        self.batches = 0
        self.batched_requests = 0
        self._loop = loop
        self._on_batch = on_batch
        self._queue: deque = deque()
        # Wake-up channel: submit() puts a token only when the model thread said it is idle
        # (a C-level SimpleQueue is much cheaper than threading.Event's Condition).
        self._wakeup: SimpleQueue = SimpleQueue()
        self._idle = False
        self._gathering = False  # the model thread is in _gather
        self._nudging = False  # a _nudge is scheduled on the IOLoop
        self._closed = False
        self._running = 0  # requests inside the current model call
        self._current: list = []  # entries of the current model call
        self._call_started = 0.0  # time.monotonic() the current model call started
        # The model thread takes a batch off the queue's head, the IOLoop expires requests
        # there: the lock makes "look at the head, then take it" one step for either.
        self._lock = threading.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._stopped: str | None = None  # why the model thread ended, if it did
        self._thread = threading.Thread(target=self._serve_forever, daemon=True,
                                        name=f"bento-nb-model-{api.name}")

    # -- IOLoop side ------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def submit(self, payload: Payload,
               reply: Callable[[bool, Any], None] | None = None) -> asyncio.Future | None:
        """Queue one parsed request. With ``reply``, ``reply(ok, body)`` is called on the
        IOLoop when it is answered; without, a future resolving to ``(ok, body)`` is
        returned. Raises Overloaded when the queue is full, the request cannot be answered
        within ``request_timeout`` or the server is stopping; ServerError when the model
        thread has stopped."""
        if self._closed:
            if self._stopped is not None:
                raise ServerError(self._stopped)
            raise self.overloaded("the server is shutting down; retry shortly")
        queue = self._queue
        waiting = len(queue)
        if waiting >= self.max_queue:
            raise self.overloaded(f"the server is overloaded ({waiting} requests waiting "
                             f"for {self.api.name!r}); retry after {self.retry_after()} s")
        now = time.monotonic()
        if self._predicted_wait(waiting + 1, now) > self.request_timeout - self._margin:
            if self._running and now - self._call_started > self.request_timeout:
                raise self.overloaded(f"the model of {self.api.name!r} has been busy on one call "
                                 f"for {now - self._call_started:.1f} s, longer than "
                                 f"request_timeout ({self.request_timeout:g} s); retry later")
            raise self.overloaded(f"the server is overloaded: {waiting} requests waiting for "
                             f"{self.api.name!r} would not be answered within request_timeout"
                             f" ({self.request_timeout:g} s); retry after {self.retry_after()} s")
        future = None
        if reply is None:
            future = self._loop.create_future()
            reply = partial(_set_future, future)
        deadline = now + self.request_timeout
        queue.append((payload, reply, deadline))
        if self._timer is None:
            self._timer = self._loop.call_at(self._loop.time() + self.request_timeout,
                                             self._expire)
        if self._idle:
            self._idle = False
            self._wakeup.put(None)
        elif self._gathering and not self._nudging:
            self._nudging = True
            self._loop.call_soon(self._nudge)
        return future

    def _nudge(self) -> None:
        """IOLoop, after the events that were ready: every request that had arrived is
        queued, so the model thread gathering more would wait for nothing."""
        self._nudging = False
        if self._gathering:
            self._wakeup.put(None)

    def run_inline(self, payload: Payload) -> Outcome | None:
        """Answer ``payload`` on the calling (event loop) thread when the model thread is
        idle with nothing queued and the model is warm and fast (see the module
        docstring); None when not, then :meth:`submit` it. The caller makes sure no other
        request is in flight."""
        # _running stays set until the model thread has recorded its batch: while it is
        # 0 with nothing queued, the thread has no call under way and takes nothing.
        if (self._closed or self._queue or self._running or self.batches < _INLINE_WARM
                or self._single > _INLINE_MAX):
            return None
        started = time.perf_counter()
        outcome = self._run([payload])[0]
        elapsed = time.perf_counter() - started
        self._recorded(1, elapsed)
        return outcome

    def _recorded(self, n: int, elapsed: float) -> None:
        """Count a model call of ``n`` requests that took ``elapsed`` seconds: the fit, the
        single-call estimate of :meth:`run_inline`, the counters and the metrics."""
        self.model.observe(n, elapsed)
        if n == 1:
            single = self._single
            self._single = (elapsed if elapsed <= single
                            else single + _INLINE_RISE * (elapsed - single))
        self.batches += 1
        self.batched_requests += n
        if self._on_batch is not None:
            try:
                self._on_batch(n, elapsed)
            except Exception:  # noqa: BLE001 - metrics must not fail a request or the thread
                _log.exception("recording a batch failed")

    def _predicted_wait(self, position: int, now: float) -> float:
        """Seconds until the request at ``position`` (1 = next) would be answered, by the
        fitted batch time: the rest of the current call plus the batches up to its own.
        A call that has already run past ``request_timeout`` counts as never ending."""
        model, cap = self.model, self._cap
        wait = 0.0
        running = self._running
        if running:
            elapsed = now - self._call_started
            if elapsed > self.request_timeout:
                return math.inf
            wait = max(model.predict(running) - elapsed, 0.0)
        batches = -(-position // cap)
        return wait + batches * model.predict(min(position, cap))

    def overloaded(self, message: str) -> Overloaded:
        """The 503 of this API: ``Retry-After`` is the predicted time to drain the queue,
        at least the server's ``retry_after_s``."""
        return Overloaded(message, retry_after=max(self.retry_after_s, self.retry_after()))

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

    def health(self) -> str | None:
        """None when the model thread can take requests, else why not (for /readyz)."""
        if self._stopped is not None:
            return self._stopped
        if not self._thread.is_alive():
            return "its model thread is not running"
        if self._running:
            busy = time.monotonic() - self._call_started
            if busy > self.request_timeout:
                return (f"one model call has been running for {busy:.1f} s, longer than "
                        f"request_timeout ({self.request_timeout:g} s)")
        return None

    def close(self) -> None:
        """Refuse new requests; queued ones are still answered."""
        self._closed = True
        self._wakeup.put(None)

    def abandon(self, error: BentoNbError) -> int:
        """Answer every request still queued or inside the model call with ``error`` (on
        the IOLoop, when a drain runs out of time); returns how many. Results the model
        thread delivers later for them are dropped (each request is answered once)."""
        self._closed = True
        with self._lock:  # the model thread takes a batch as one step: see all of it
            taken = [*self._current, *self._queue]
            self._queue.clear()
        for entry in taken:
            entry[1](False, error)
        self._wakeup.put(None)
        return len(taken)

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _resolve(self, items: Sequence[Entry], outcomes: Sequence[Outcome]) -> None:
        for entry, (ok, body) in zip(items, outcomes):
            try:
                entry[1](ok, body)
            except Exception:  # noqa: BLE001 - one broken reply must not stop the others
                _log.exception("reply failed")
        self._shed()

    def _shed(self) -> None:
        """After a batch, with the new fit: answer 503 at once to the requests at the tail
        of the queue that would now miss their deadline (see the module docstring)."""
        queue, shed = self._queue, []
        now = time.monotonic()
        with self._lock:
            position = len(queue)
            while position:
                entry = queue[-1]
                if now + self._predicted_wait(position, now) <= entry[2] - self._margin:
                    break
                shed.append(queue.pop())
                position -= 1
        if shed:
            error = self.overloaded(f"the server is overloaded: requests waiting for "
                               f"{self.api.name!r} would not be answered within "
                               f"request_timeout ({self.request_timeout:g} s); retry after "
                               f"{self.retry_after()} s")
            for entry in reversed(shed):
                entry[1](False, error)

    def _expire(self) -> None:
        """The deadline timer (IOLoop): answer 504 to every request whose deadline passed,
        queued or inside an overrunning model call; re-arm for the next deadline."""
        self._timer = None
        now = time.monotonic()
        expired = []
        queue = self._queue
        with self._lock:
            while queue and queue[0][2] <= now:
                expired.append(queue.popleft())
            current = self._current if self._running else ()
        upcoming = None
        for entry in current:
            if entry[2] <= now:
                expired.append(entry)  # answering again is a no-op: replies are idempotent
            elif upcoming is None:
                upcoming = entry[2]
        if expired:
            error = DeadlineExceeded(
                f"no answer from the model of {self.api.name!r} within request_timeout "
                f"({self.request_timeout:g} s); the request was dropped")
            for entry in expired:
                entry[1](False, error)
        if upcoming is None:
            try:
                upcoming = queue[0][2]
            except IndexError:
                return  # nothing pending: the next submit() arms the timer
        self._timer = self._loop.call_later(max(upcoming - time.monotonic(), 0.0),
                                            self._expire)

    # -- model thread -----------------------------------------------------------------

    def _serve_forever(self) -> None:
        try:
            self._take_batches()
        except BaseException as e:  # noqa: BLE001 - a bug here must not go unnoticed
            self._stopped = (f"the model thread of {self.api.name!r} stopped "
                             f"({_describe(e)}); restart the server")
            _log.error("%s", self._stopped, exc_info=True)
            self._closed = True
            try:
                self._loop.call_soon_threadsafe(self.abandon, ServerError(self._stopped))
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    def _take_batches(self) -> None:
        queue, wakeup, lock = self._queue, self._wakeup, self._lock
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
            cap = self._cap = self.model.largest_within(self.budget, self.max_batch_size)
            if 1 < len(queue) < cap:
                self._gather(cap)
            items: list = []
            with lock:
                # Under the lock, abandon() and the deadline timer see each request either
                # queued or in the current call, never in between.
                self._current = items
                try:
                    while len(items) < cap:
                        items.append(queue.popleft())
                except IndexError:
                    pass
                # The start before the count: a reader that sees the count sees its start.
                self._call_started = time.monotonic()
                n = self._running = len(items)
            if not items:
                continue
            started = time.perf_counter()
            outcomes = self._run([entry[0] for entry in items])
            elapsed = time.perf_counter() - started
            self._recorded(n, elapsed)
            self._running = 0  # after the record: run_inline waits for both
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
        wakeup = self._wakeup
        self._gathering = True
        try:
            while True:
                try:
                    wakeup.get(timeout=step)
                    return  # nudged: the IOLoop has nothing more for now
                except Empty:
                    pass
                now = len(queue)
                if now >= cap or now == before or time.perf_counter() >= deadline:
                    return
                before = now
        finally:
            self._gathering = False

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
        except BaseException as e:  # noqa: BLE001 - the user's model (even SystemExit or
            # KeyboardInterrupt): isolate, never let it end the model thread
            if len(payloads) == 1:
                return [(False, _as_error(e))]
            middle = len(payloads) // 2
            return (self._run_same_shape(payloads[:middle])
                    + self._run_same_shape(payloads[middle:]))
        outcomes = []
        for payload, result in zip(payloads, results):
            try:
                # A payload may bring its own encoder (the Open Inference Protocol's tensors,
                # see .oip); the rest are answered as JSON.
                encode = getattr(payload, "encode", None)
                outcomes.append((True, _to_json(result) if encode is None else encode(result)))
            except BaseException as e:  # noqa: BLE001
                outcomes.append((False, _as_error(e)))
        return outcomes


_encode = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


def _to_json(result: Any) -> bytes:
    """JSON bytes of one request's result; numpy slices (the usual case) take a shortcut
    around :func:`~bento_nb.adapters.dumps_json`, which handles everything else. Integers
    and booleans (a classifier's labels) are written by orjson, ~8x faster than
    :mod:`json` on a short list and byte for byte the same; floats keep :mod:`json`'s
    spelling (``1e+16``, where orjson writes ``1e16``)."""
    if type(result) is np.ndarray:
        kind = result.dtype.kind
        if kind in "iub":
            try:
                return _orjson_dumps(result.tolist())
            except TypeError:  # an integer beyond 64 bits cannot come from numpy; be safe
                pass
        elif kind == "f":
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
    return ModelError(_describe(e))


def _describe(e: BaseException) -> str:
    """``Type: message``, even for an exception whose ``__str__`` itself raises."""
    try:
        text = str(e)
    except BaseException:  # noqa: BLE001 - the user's exception class
        text = "(its message could not be read)"
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
