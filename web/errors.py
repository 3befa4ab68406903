"""One error type carrying a status and a message, rendered as JSON or HTML in one place."""

from __future__ import annotations

from typing import Any

from aiohttp import web


class ApiError(Exception):
    def __init__(self, status: int, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


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
        if wants_html(request):
            from flightlog.web.pages import render_error

            return render_error(request, exc.status, exc.message)
        body: dict[str, Any] = {"error": exc.message, **exc.details}
        return web.json_response(body, status=exc.status)
