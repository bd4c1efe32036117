"""The worker: consume messages from every source, apply them through the engine in
batches, and ack them once durable.

For each source, in turn: fetch up to `batch` messages, decode them (a message that is not
tallyboard JSON is kept with its reason), apply the rest in calls of at most `max_items`
items (all of a message's events in one call, so a message is applied whole or not at
all), keep what the engine refused with the message it names, and only then ack the
whole batch. A crash anywhere before the ack redelivers the batch, and the ids the
messages carry (or were given from their broker coordinates) make the second delivery
count nothing. Nothing is acked that is not durable: applied, or kept.

A broker that goes away is connected to again with backoff (1 s doubling to 30 s), and the
source shows as down in /readyz meanwhile. A store that refuses for a moment (503, a
failover) is retried with the same backoff, holding the batch unacked.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import BadRequest, Conflict, InvalidEvent, TallyboardError, TooLarge
from .kept import KeptMessages
from .messages import BadMessage, Items, decode
from .sources import Delivery, Source
from .telemetry import QueueMetrics

log = logging.getLogger("tallyboard.worker")

BATCH = 1000  # messages fetched at once, at most
BATCH_ITEMS = 50_000  # items a fetch aims at (fewer messages when each holds many)
MAX_ITEMS = 10_000  # items per engine call (a request's limit)
FIRST_WAIT = 1.0
LONGEST_WAIT = 30.0
LAG_EVERY = 1.0  # seconds between two consumer-lag readings
# What the engine refuses because of the message itself; anything else (a key refused, a
# store down) is about the worker, and is retried rather than blamed on the message.
POISON = (InvalidEvent, BadRequest, TooLarge, Conflict)


class Refused(Exception):
    """The engine refused a call because of one message's content (`culprit`, when the
    refusal names an item)."""

    def __init__(self, error: TallyboardError, culprit: Items | None,
                 index: int | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.culprit = culprit
        self.index = index


class Stopped(Exception):
    """The worker was stopped while a batch waited for the store: nothing is acked."""


@dataclass
class SourceState:
    up: bool = False
    problem: str | None = "not connected yet"


class Worker:
    """Consumes `sources` into `tally` (an engine or a RemoteTallyboard)."""

    def __init__(self, tally: Any, sources: Sequence[Source], kept: KeptMessages,
                 metrics: QueueMetrics, *, space: str = "default", batch: int = BATCH,
                 max_items: int = MAX_ITEMS) -> None:
        self.tally = tally
        self.sources = list(sources)
        self.kept = kept
        self.metrics = metrics
        self.space = space
        self.batch = batch
        self.max_items = max_items
        self.states = {s.name: SourceState() for s in self.sources}
        self._stop = asyncio.Event()

    def problems(self) -> list[str]:
        """What keeps the worker from consuming now (for /readyz)."""
        return [f"{name}: {st.problem}" for name, st in self.states.items() if not st.up]

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; the batch in hand is finished (or left unacked)."""
        self._stop = stop
        await asyncio.gather(*(self._consume(s) for s in self.sources))

    async def _consume(self, source: Source) -> None:
        wait = FIRST_WAIT
        state = self.states[source.name]
        up = self.metrics.up.labels(source.name)
        while not self._stop.is_set():
            try:
                await source.connect()
                await source.subscribe(self.batch)
                state.up, state.problem, wait = True, None, FIRST_WAIT
                up.set(1)
                log.info("consuming %s", source.name)
                await self._drain(source)
            except Stopped:
                pass
            except Exception as exc:  # the broker, its client, or a bug: never the end
                state.up, state.problem = False, f"{type(exc).__name__}: {exc}"
                up.set(0)
                self.metrics.reconnects.labels(source.name).inc()
                log.warning("cannot consume %s (%s); trying again in %.0f s", source.name,
                            state.problem, wait, exc_info=not isinstance(exc, source.FAILURES))
            finally:
                await source.close()
            if await _stopped_within(self._stop, wait):
                break
            wait = min(wait * 2, LONGEST_WAIT)
        state.up, state.problem = False, "stopped"
        up.set(0)

    async def _drain(self, source: Source) -> None:
        """Fetch and handle batches: up to `batch` messages, fewer when messages hold
        many items (so that a batch is about BATCH_ITEMS items, whatever the messages'
        size: the worker's memory stays bounded by items as well as by messages)."""
        read_lag = 0.0
        per_message = 1.0  # items per message, as recently seen
        while not self._stop.is_set():
            most = max(1, min(self.batch, int(BATCH_ITEMS / per_message)))
            got = await source.fetch(most, 0.5)
            if got:
                items = await self.handle(source, got)
                per_message = 0.7 * per_message + 0.3 * max(1.0, items / len(got))
            if time.monotonic() - read_lag >= LAG_EVERY:
                read_lag = time.monotonic()
                lag = await source.pending()
                if lag is not None:
                    self.metrics.pending.labels(source.name).set(lag)

    async def handle(self, source: Source, got: list[Delivery]) -> int:
        """Apply a fetched batch, keep what cannot be applied, then ack all of it; the
        number of items the batch held."""
        name = source.name
        self.metrics.consumed.labels(name).inc(len(got))
        self.metrics.batch.labels(name).observe(len(got))
        again = sum(d.redelivered for d in got)
        if again:
            self.metrics.redelivered.labels(name).inc(again)
        started = time.perf_counter()
        good, bad = await asyncio.to_thread(_decoded, got)  # the loop serves HTTP meanwhile
        for chunk in _chunks(good, self.max_items):
            await self._apply(name, chunk, bad)
        if bad:
            rows = [(name, d.origin, reason, d.body) for d, reason in bad]
            await self._patiently(name, self.kept.keep, rows)
            self.metrics.invalid.labels(name).inc(len(bad))
            for d, reason in bad:
                log.warning("kept message %s from %s: %s", d.origin, name, reason)
        self.metrics.apply_seconds.labels(name).observe(time.perf_counter() - started)
        await source.ack(got)
        return sum(len(m) for m in good)

    async def _apply(self, name: str, chunk: list[Items],
                     bad: list[tuple[Delivery, str]]) -> None:
        """Apply `chunk` durably; a message the engine refuses moves to `bad`."""
        while chunk:
            try:
                accepted, duplicates = await self._patiently(name, self._record, chunk)
            except Refused as refused:
                culprit = refused.culprit or (chunk[0] if len(chunk) == 1 else None)
                if culprit is None:  # a refusal that names no message: find it by halves
                    await self._halves(name, chunk, bad)
                    return
                bad.append((culprit.delivery, _reason(refused.error, refused.index)))
                chunk = [m for m in chunk if m is not culprit]
                continue
            except Exception as exc:  # a message that breaks the engine must not block
                if len(chunk) > 1:
                    await self._halves(name, chunk, bad)
                    return
                log.exception("applying message %s from %s failed", chunk[0].delivery.origin,
                              name)
                bad.append((chunk[0].delivery, f"internal error: {type(exc).__name__}: {exc}"))
                return
            self.metrics.applied.labels(name).inc(accepted)
            self.metrics.duplicates.labels(name).inc(duplicates)
            return

    async def _halves(self, name: str, chunk: list[Items],
                      bad: list[tuple[Delivery, str]]) -> None:
        middle = len(chunk) // 2
        await self._apply(name, chunk[:middle], bad)
        await self._apply(name, chunk[middle:], bad)

    def _record(self, chunk: list[Items]) -> tuple[int, int]:
        """Record the events of `chunk`, then its presence operations (each call all or
        nothing and durable when it returns); (accepted, duplicates)."""
        accepted = duplicates = 0
        for phase, call in (("events", self.tally.record_many), ("ops", self.tally.presence)):
            items = [item for m in chunk for item in getattr(m, phase)]
            if not items:
                continue
            try:
                got = call(items, space=self.space)
            except POISON as exc:
                raise Refused(exc, *_owner(chunk, phase, exc)) from exc
            accepted, duplicates = accepted + got.accepted, duplicates + got.duplicates
        return accepted, duplicates

    async def _patiently(self, name: str, call: Any, *args: Any) -> Any:
        """`call(*args)` off the event loop, again and again (with backoff) while the store
        cannot take it; Stopped if the worker is stopped meanwhile."""
        wait = FIRST_WAIT
        while True:
            try:
                return await asyncio.to_thread(call, *args)
            except TallyboardError as exc:
                log.warning("the store refused a batch from %s (%s); trying again in %.0f s",
                            name, exc, wait)
            if await _stopped_within(self._stop, wait):
                raise Stopped
            wait = min(wait * 2, LONGEST_WAIT)


def _decoded(got: list[Delivery]) -> tuple[list[Items], list[tuple[Delivery, str]]]:
    """The messages that decode, and those that do not with why."""
    good: list[Items] = []
    bad: list[tuple[Delivery, str]] = []
    for d in got:
        try:
            good.append(decode(d))
        except BadMessage as exc:
            bad.append((d, str(exc)))
    return good, bad


def _chunks(messages: list[Items], most: int) -> list[list[Items]]:
    """Consecutive runs of whole messages of at most `most` items (a bigger message
    alone)."""
    chunks: list[list[Items]] = []
    size = most
    for m in messages:
        if size + len(m) > most:
            chunks.append([])
            size = 0
        chunks[-1].append(m)
        size += len(m)
    return chunks


def _owner(chunk: list[Items], phase: str, exc: TallyboardError
           ) -> tuple[Items | None, int | None]:
    """The message of `chunk` whose item the engine named by its index in the call's
    `phase` items (events, or presence operations), and that item's index in the
    message (as the message's producer counts)."""
    index = exc.details.get("index")
    if not isinstance(index, int):
        return None, None
    ends, total = [], 0
    for m in chunk:
        total += len(getattr(m, phase))
        ends.append(total)
    at = bisect.bisect_right(ends, index)
    if at >= len(chunk):
        return None, None
    culprit = chunk[at]
    nth = index - (ends[at] - len(getattr(culprit, phase)))
    return culprit, culprit.position(phase, nth)


def _reason(exc: TallyboardError, index: int | None) -> str:
    """What a kept message's reason says: the engine's code and message, and the item
    (its index in the message) and field it names."""
    where = [f"item {index}"] if index is not None else []
    if exc.details.get("field"):
        where.append(f"field {exc.details['field']}")
    return f"{exc.code}: {exc.message}" + (f" ({', '.join(where)})" if where else "")


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True
