"""HTTP/1.1 protocol errors in the API's JSON error shape.

uvicorn answers a request it cannot parse (a request line or header beyond the parser's
limits, such as a 100 KB URL; a malformed or duplicated Content-Length; bytes after a body
that are no request) itself, before any route runs, with a plain-text 400. These
protocol classes answer the same 400 as ``{"error": {"code": "bad_request", ...}}``; pass
`json_errors_protocol()` to uvicorn as ``http=``.
"""

from __future__ import annotations

import asyncio

import h11
import orjson
from uvicorn.protocols.http.h11_impl import H11Protocol

MESSAGE = ("the request is not valid HTTP/1.1: a malformed or over-long request line or "
           "header, or a body that does not match its Content-Length; the connection is "
           "closed")
BODY = orjson.dumps({"error": {"code": "bad_request", "message": MESSAGE}})


class JSONErrorsH11(H11Protocol):
    """uvicorn's h11 protocol, answering unparsable requests in JSON."""

    def send_400_response(self, msg: str) -> None:
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(BODY)).encode()), (b"connection", b"close")]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                      h11.Data(data=BODY), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()


def json_errors_protocol() -> type[asyncio.Protocol]:
    """The protocol class uvicorn's ``http="auto"`` would pick (httptools when installed,
    else h11), answering unparsable requests in JSON."""
    try:
        from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
    except ImportError:  # httptools is not installed
        return JSONErrorsH11

    class JSONErrorsHttpTools(HttpToolsProtocol):
        """uvicorn's httptools protocol, answering unparsable requests in JSON."""

        def send_400_response(self, msg: str) -> None:
            content = [STATUS_LINE[400]]
            for name, value in self.server_state.default_headers:
                content.extend([name, b": ", value, b"\r\n"])
            content.extend([b"content-type: application/json\r\n",
                            b"content-length: %d\r\n" % len(BODY),
                            b"connection: close\r\n\r\n", BODY])
            self.transport.write(b"".join(content))
            self.transport.close()

    return JSONErrorsHttpTools
