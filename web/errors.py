"""The one mapping of a Refusal (flightlog.schema.refusal) to HTTP: JSON or an HTML page, with its headers."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from flightlog.schema.engine_errors import error_kind
from flightlog.schema.refusal import Refusal
from flightlog.schema.store import StoreError

log = logging.getLogger("flightlog.web")


def wants_html(request: web.Request) -> bool:
    path = request.path
    if path.startswith("/api/") or path.startswith("/loki/") or path.startswith("/v1/") or "_bulk" in path:
        return False
    return "text/html" in request.headers.get("Accept", "")


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except Refusal as exc:
        return error_response(request, exc.status, exc.message, headers=exc.headers(), **exc.details)
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


def error_response(
    request: web.Request, status: int, message: str, headers: dict[str, str] | None = None, **details: Any
) -> web.Response:
    if wants_html(request):
        from flightlog.web.pages import render_error

        response = render_error(request, status, message)
        response.headers.update(headers or {})
        return response
    return web.json_response({"error": message, **details}, status=status, headers=headers)
