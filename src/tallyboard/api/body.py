"""Request bodies: one JSON object, a JSON array, or NDJSON; with the size limits of SPEC §3."""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import BadRequest, TooLarge

MAX_BYTES = 10 * 1024 * 1024
MAX_EVENTS = 10_000
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")


def parse_items(body: bytes, content_type: str | None, max_items: int = MAX_EVENTS) -> list[Any]:
    """The list of raw items in `body`; BadRequest if empty or malformed, TooLarge if big."""
    if len(body) > MAX_BYTES:
        raise TooLarge(f"body is over {MAX_BYTES} bytes; split it into smaller requests")
    if not body.strip():
        raise BadRequest("the body is empty; send a JSON object, a JSON array or NDJSON")
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype in NDJSON_TYPES:
        items = []
        for n, line in enumerate(body.splitlines(), start=1):
            if line.strip():
                try:
                    items.append(orjson.loads(line))
                except orjson.JSONDecodeError as exc:
                    raise BadRequest(f"line {n} is not valid JSON: {exc}", line=n) from None
    else:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None
        items = parsed if isinstance(parsed, list) else [parsed]
    if not items:
        raise BadRequest("the body holds no events")
    if len(items) > max_items:
        raise TooLarge(f"{len(items)} items in one request; the limit is {max_items}")
    return items
