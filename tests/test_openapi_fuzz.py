"""schemathesis against /openapi.json: the document tells the truth (issue 12, item 5).

Every operation is fuzzed from the document (coverage and fuzzing phases, positive and
negative cases) and then driven statefully through its links, in process over ASGI, with
a fixed number of examples and no randomness, so a run is the same every time. It fails
on any 5xx, any response the document does not describe, any schema-valid request that is
refused and any schema-violating request that is accepted. The only refusals of valid
requests allowed are those an operation lists under ``x-beyond-schema`` (rules no schema
can state, such as ``start`` after ``end``): the test reads them from the document itself.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings

from api_helpers import TEST_HOSTS
from tallyboard.api import create_app
from tallyboard.api.body import NDJSON_TYPES
from tallyboard.api.schemas import BEYOND_SCHEMA
from tallyboard.engine import Tallyboard
from tallyboard.settings import Settings
from tallyboard.stores import MemoryLog

ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429"]  # schemathesis' own defaults
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "415", "422", "428", "429"]
EXAMPLES = 10  # per operation and phase: the whole module stays well under 90 s


def beyond_schema(document: dict[str, Any]) -> list[dict[str, Any]]:
    """One schemathesis operation config per operation whose document lists refusals
    beyond the schema: those statuses become acceptable answers to valid requests."""
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            extra = sorted(code for code, response in operation["responses"].items()
                           if BEYOND_SCHEMA in response)
            if extra:
                found.append({
                    "include-name": f"{method.upper()} {path}",
                    "checks": {"positive_data_acceptance": {
                        "expected-statuses": ACCEPTED + extra}}})
    return found


@schemathesis.serializer(*NDJSON_TYPES)
def ndjson(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    """The document's NDJSON bodies are arrays of items, sent one JSON text per line."""
    items = value if isinstance(value, list) else [value]
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


app = create_app(Tallyboard(MemoryLog()), Settings(allowed_hosts=TEST_HOSTS))
config = schemathesis.Config.from_dict({
    "seed": 12,
    # 413: more items than a request may carry is what the document says a too-long array is
    "checks": {"negative_data_rejection": {"expected-statuses": [*REJECTED, "413"]}},
    "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True},
               "fuzzing": {"enabled": True}, "stateful": {"enabled": True}},
    "operations": beyond_schema(app.openapi()),
})
schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


@schema.parametrize()
@settings(suppress_health_check=list(HealthCheck), deadline=None)
def test_every_operation_answers_as_documented(case: schemathesis.Case) -> None:
    case.call_and_validate()


Stateful = schema.as_state_machine()
TestLinkedOperations = Stateful.TestCase
TestLinkedOperations.settings = settings(max_examples=EXAMPLES, stateful_step_count=6,
                                         derandomize=True, database=None, deadline=None,
                                         suppress_health_check=list(HealthCheck))
