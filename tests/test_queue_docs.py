"""docs/queues.md's producers, run as written against the machine's brokers (each on a
stream, key or queue of its own), then consumed by a worker: what each example publishes
is what the worker counts.

Convention: a fenced ``python`` block under "## Producers" whose first line is a comment
naming its broker (``# Redis Streams``, ``# NATS JetStream``, ``# RabbitMQ``) is run; the
names ``events`` / ``EVENTS`` in it are replaced with the test's own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import tallyboard
from queue_support import Queue
from test_queue import board, consume

DOC = Path(__file__).resolve().parents[1] / "docs" / "queues.md"
KINDS = {"# Redis Streams": "redis", "# NATS JetStream": "nats", "# RabbitMQ": "amqp"}

pytestmark = pytest.mark.slow


def examples() -> dict[str, str]:
    producers = DOC.read_text().split("## Producers", 1)[1].split("\n## ", 1)[0]
    found = {}
    for block in re.findall(r"```python\n(.*?)```", producers, re.S):
        first = block.splitlines()[0]
        for heading, kind in KINDS.items():
            if first.startswith(heading):
                found[kind] = block
    return found


def test_every_broker_has_a_producer_example() -> None:
    assert sorted(examples()) == sorted(KINDS.values())


@pytest.mark.parametrize("kind", sorted(KINDS.values()))
def test_a_producer_example_is_counted_by_the_worker(kind: str) -> None:
    q = Queue(kind)
    code = examples()[kind]
    if kind == "nats":
        code = code.replace('"EVENTS"', f'"{q.name}"').replace('["events"]', f'["{q.subject}"]')
        code = code.replace('publish("events"', f'publish("{q.subject}"')
    else:
        code = code.replace('"events"', f'"{q.name}"')
    assert q.name in code, code
    try:
        exec(compile(code, f"docs/queues.md ({kind})", "exec"), {"__name__": "docs"})
        tb = tallyboard.open("memory://")
        want = {"alice": 1 if kind == "nats" else 5}
        consume(tb, [q.url()], lambda w: board(tb) == want, settle=0.3)
        assert board(tb) == want
    finally:
        q.drop()
