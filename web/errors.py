"""One error type carrying a status and a message, rendered as JSON or HTML in one place."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from flightlog.schema.engine_errors import error_kind
from flightlog.schema.store import StoreError

log = logging.getLogger("flightlog.web")


class ApiError(Exception):
    def __init__(self, status: int, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.headers: dict[str, str] = {}  # sent with the error (Retry-After on a 429 …)


def wants_html(request: web.Request) -> bool:
    path = request.path
    if path.startswith("/api/") or path.startswith("/loki/") or path.startswith("/v1/") or "_bulk" in path:
        return False
    return "text/html" in request.headers.get("Accept", "")


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except ApiError as exc:
        response = error_response(request, exc.status, exc.message, **exc.details)
        response.headers.update(exc.headers)
        return response
    except web.HTTPException:
        raise
    except StoreError as exc:
        # The engine quotes values in its messages (rows of any tenant a query touched): the
        # client is told the kind of error, the log gets the text.
        log.warning("store error on %s %s: %s", request.method, request.path, exc)
        return error_response(request, 503, f"the store could not answer ({error_kind(exc)}); the server log has the details")
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(request, 500, "internal error; the server log has the details")


def error_response(request: web.Request, status: int, message: str, **details: Any) -> web.Response:
    if wants_html(request):
        from flightlog.web.pages import render_error

        return render_error(request, status, message)
    return web.json_response({"error": message, **details}, status=status)
