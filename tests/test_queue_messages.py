"""A queue message's items, without a broker: decoding, stable ids, and naming the
message (and its item) behind an index the engine reports for a whole call."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tallyboard.errors import InvalidEvent
from tallyboard.queue.messages import BadMessage, Items, decode
from tallyboard.queue.sources import MAX_ID, Delivery, stable_id
from tallyboard.queue.worker import _chunks, _owner


def delivery(body: bytes, origin: str = "rs:k:1-0") -> Delivery:
    return Delivery(body, origin, False)


def test_one_object_an_array_and_ndjson_decode_alike() -> None:
    one = {"metric": "p", "member": "a"}
    for body in (orjson.dumps(one), orjson.dumps([one]), orjson.dumps(one) + b"\n"):
        assert decode(delivery(body)).events == [{**one, "id": "rs:k:1-0:0"}]
    lines = b'{"metric": "p", "member": "a"}\n{"type": "join", "room": "r", "member": "a"}\n'
    got = decode(delivery(lines))
    assert [e["id"] for e in got.events] == ["rs:k:1-0:0"]
    assert [o["id"] for o in got.ops] == ["rs:k:1-0:1"] and got.op_at == [1]


def test_a_producers_id_is_kept() -> None:
    got = decode(delivery(b'[{"metric": "p", "member": "a", "id": "mine"}]'))
    assert got.events[0]["id"] == "mine"


@pytest.mark.parametrize(("body", "why"), [(b"", "empty"), (b"  \n", "empty"),
                                           (b"nope", "not valid JSON"), (b"[]", "no events")])
def test_what_is_not_tallyboard_json_is_a_bad_message(body: bytes, why: str) -> None:
    with pytest.raises(BadMessage, match=why):
        decode(delivery(body))


def test_ids_from_long_coordinates_stay_within_an_id_and_stable() -> None:
    origin = "js:" + "S" * 200 + ":12"
    first, again = stable_id(origin, 3), stable_id(origin, 3)
    assert first == again and len(first) <= MAX_ID and first != stable_id(origin, 4)
    assert stable_id("js:S:12", 3) == "js:S:12:3"


messages = st.lists(st.lists(st.booleans(), min_size=1, max_size=6), min_size=1, max_size=8)


def built(shapes: list[list[bool]]) -> list[Items]:
    """Messages whose items are presence operations where the shape says True."""
    found = []
    for n, shape in enumerate(shapes):
        items = [{"type": "join", "room": "r", "member": f"{n}-{i}"} if op else
                 {"metric": "p", "member": f"{n}-{i}"} for i, op in enumerate(shape)]
        found.append(decode(delivery(orjson.dumps(items), f"o{n}")))
    return found


@given(messages, st.data())
def test_an_index_in_a_call_names_its_message_and_item(shapes: list[list[bool]],
                                                       data: st.DataObject) -> None:
    chunk = built(shapes)
    for phase in ("events", "ops"):
        flat = [(m, item) for m in chunk for item in getattr(m, phase)]
        if not flat:
            continue
        index = data.draw(st.integers(0, len(flat) - 1))
        culprit, nth = _owner(chunk, phase, InvalidEvent("bad", index, "member"))
        message, item = flat[index]
        assert culprit is message
        assert nth is not None
        assert orjson.loads(message.delivery.body)[nth]["member"] == item["member"]


@given(st.lists(st.integers(1, 30), max_size=30), st.integers(1, 40))
def test_chunks_keep_messages_whole_in_order_and_small(sizes: list[int], most: int) -> None:
    chunk = [Items(delivery(b"x"), events=[{}] * n) for n in sizes]
    got = _chunks(chunk, most)
    assert [m for c in got for m in c] == chunk
    for c in got:
        assert len(c) == 1 or sum(len(m) for m in c) <= most
