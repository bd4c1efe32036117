"""Every error tallyboard raises, one tree, each with the HTTP status and code it maps to.

::

    TallyboardError
    ├── BadQuery          400  bad_query       a query parameter is missing or wrong
    ├── BadRequest        400  bad_request     empty body, malformed JSON
    ├── Unauthorized      401  unauthorized    missing or unknown API key
    ├── Forbidden         403  forbidden       scope or space not allowed
    ├── NotFound          404  not_found       unknown metric or route (also a LookupError)
    ├── Conflict          409  conflict        calendar/dimension change on a metric with data
    │   ├── OutOfOrder    409  out_of_order    presence older than what was seen for it
    │   └── DataInUse     409  data_in_use     another process writes this embedded log
    ├── TooLarge          413  too_large       more than 10,000 events or 10 MiB
    ├── UnsupportedMediaType  415  unsupported_media_type  a body not sent as JSON/NDJSON
    ├── MisdirectedRequest    421  misdirected_request  Host is not the server's own name
    ├── InvalidEvent      422  invalid_event   one event of a batch is invalid (index, field)
    └── RetryLater                             transient: carries retry_after
        ├── RateLimited       429  rate_limited    too many requests from this client
        ├── Busy              503  busy            too many writes waiting
        └── StoreUnavailable  503  store_unavailable  the log cannot take it now
"""

from __future__ import annotations

from typing import Any


class TallyboardError(Exception):
    """Base of every tallyboard error; `status` and `code` say how the API reports it."""

    status = 500
    code = "internal"
    transient = False

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body: ``{"error": {"code", "message", ...details}}``."""
        return {"error": {"code": self.code, "message": self.message, **self.details}}


class BadQuery(TallyboardError, ValueError):
    status = 400
    code = "bad_query"

    def __init__(self, message: str, param: str | None = None, **details: Any) -> None:
        if param is not None:
            details["param"] = param
        super().__init__(message, **details)


class BadRequest(TallyboardError, ValueError):
    status = 400
    code = "bad_request"


class Unauthorized(TallyboardError):
    status = 401
    code = "unauthorized"


class Forbidden(TallyboardError):
    status = 403
    code = "forbidden"


class NotFound(TallyboardError, LookupError):
    status = 404
    code = "not_found"


class Conflict(TallyboardError):
    status = 409
    code = "conflict"


class OutOfOrder(Conflict):
    """A presence operation older than one already applied for that member and room."""

    code = "out_of_order"


class DataInUse(Conflict):
    """Another process holds the embedded log's writer lock (`pid`, and `url` when it is
    a server): a second writer would diverge from it."""

    code = "data_in_use"


class TooLarge(TallyboardError):
    status = 413
    code = "too_large"


class UnsupportedMediaType(TallyboardError):
    """A body sent with a media type its route does not take (a web page's cross-site
    form or text/plain post, which browsers send without asking the server first)."""

    status = 415
    code = "unsupported_media_type"


class MisdirectedRequest(TallyboardError):
    """The Host header names another server: a DNS-rebinding page, or a misrouted proxy."""

    status = 421
    code = "misdirected_request"


class InvalidEvent(TallyboardError, ValueError):
    """One event of a request is invalid; none of the request was applied."""

    status = 422
    code = "invalid_event"

    def __init__(self, message: str, index: int, field: str) -> None:
        super().__init__(message, index=index, field=field)
        self.index = index
        self.field = field


class RetryLater(TallyboardError):
    """A transient refusal: nothing was applied, and `retry_after` seconds say when to
    ask again (the API's Retry-After)."""

    transient = True

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(RetryLater):
    status = 429
    code = "rate_limited"


class Busy(RetryLater):
    """The server already has as many writes waiting as it takes; nothing was applied.
    Retry later rather than queue behind a burst without end."""

    status = 503
    code = "busy"


class StoreUnavailable(RetryLater):
    """The durable log could not take the write; nothing was applied. Retry later."""

    status = 503
    code = "store_unavailable"
