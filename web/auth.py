"""Who is calling: API keys → `request["tenant"]`, scopes, UI login sessions, CSRF.

Every route declares the scope it needs where it is registered (flightlog.schema.route_table);
once any key exists:

- `public` routes (health, static files, the login page, protocol probes) need no key;
- `ingest` routes need an `ingest` or `admin` key;
- `read` routes (query API, pages, /metrics), and paths no route matches, need a `read` or `admin` key;
- `admin` routes need an `admin` key.

A key comes as `Authorization: Bearer <key>` (our API, `flightlog send`, OTLP exporters'
headers), as the password of basic auth (Loki and Elasticsearch clients; the user name is
ignored), as `Authorization: ApiKey <key or base64(id:key)>` (Elasticsearch clients), or as
`X-API-Key`. The web UI logs in once with a read key and then carries a session cookie
(HttpOnly, SameSite=Strict); sessions live in this process and die with the key's revocation.

Tenancy: `request["tenant"]` is the key's tenant. Only an admin key may name another, with
`X-Scope-OrgID` (Loki's header) or `X-Flightlog-Tenant`; other keys' headers are ignored.

CSRF: a POST that rides on the session cookie must carry the session's token (form field
`csrf_token` or header `X-CSRF-Token`); requests with a key in a header cannot be forged by
another site. Any POST whose Origin (or Sec-Fetch-Site) says it came from another site is
refused, which also covers a server running open with no sessions at all.

With no keys the server runs open (one tenant, `default`) — allowed on loopback or with
`--insecure` only; otherwise every protected request is refused until a key exists (the
`serve` command refuses to start in that case, see web/cli.py).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web
from flightlog.ingest.ratelimit import CURRENT, RATE_LIMITER, KeyContext, RateLimiter
from flightlog.schema.api_keys import ApiKey, KeyRing, key_source
from flightlog.schema.app_state import SETTINGS, STORE
from flightlog.schema.refusal import Refusal, retry_after_header
from flightlog.schema.route_table import add_route, needs_of
from flightlog.web.errors import wants_html

SESSION_COOKIE = "flightlog_session"
LOGIN_CSRF_COOKIE = "flightlog_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
TENANT_HEADERS = ("X-Scope-OrgID", "X-Flightlog-Tenant")
MAX_SESSIONS = 10_000


@dataclass
class Session:
    id: str
    key_hash: str
    key_id: str
    tenant: str
    scope: str
    csrf: str
    expires: float


class Auth:
    """Per-app auth state: the key ring, the UI sessions, whether the server may run open."""

    def __init__(self, ring: KeyRing, settings: Any) -> None:
        self.ring = ring
        self.settings = settings
        self.sessions: dict[str, Session] = {}
        self.open_allowed = bool(settings.insecure) or is_loopback(settings.host)

    def refresh(self) -> None:
        self.ring.refresh()

    @property
    def running_open(self) -> bool:
        return not self.ring.ever_had_keys

    def new_session(self, key: ApiKey) -> Session:
        now = time.time()
        if len(self.sessions) >= MAX_SESSIONS:
            for sid in [s.id for s in self.sessions.values() if s.expires < now] or list(self.sessions)[:100]:
                self.sessions.pop(sid, None)
        session = Session(
            id=secrets.token_urlsafe(32),
            key_hash=key.hash,
            key_id=key.id,
            tenant=key.tenant,
            scope=key.scope,
            csrf=secrets.token_urlsafe(32),
            expires=now + self.settings.session_hours * 3600,
        )
        self.sessions[session.id] = session
        return session

    def session_of(self, request: web.Request) -> tuple[Session, ApiKey] | None:
        sid = request.cookies.get(SESSION_COOKIE)
        if not sid:
            return None
        session = self.sessions.get(sid)
        if session is None:
            return None
        key = self.ring._by_hash.get(session.key_hash)
        if key is None or session.expires < time.time():  # revoked, or expired
            self.sessions.pop(sid, None)
            return None
        return session, key


AUTH = web.AppKey("auth", Auth)

# The request being handled, for templates (csrf_token(), the login link) rendered in its task.
_REQUEST: contextvars.ContextVar[web.Request | None] = contextvars.ContextVar("flightlog_request", default=None)


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def setup_auth(app: web.Application, with_pages: bool) -> None:
    """Install the key ring, the rate limiter and (with pages) the login routes and template globals."""
    settings = app[SETTINGS]
    app[RATE_LIMITER] = RateLimiter(settings.key_lines_per_second, settings.key_requests_per_second)
    app.cleanup_ctx.append(_keyring_context)
    if with_pages:
        add_route(app, "GET", "/login", login_page, scope="public", name="login")
        add_route(app, "POST", "/login", login_submit, scope="public")
        add_route(app, "POST", "/logout", logout, scope="read")
        _install_template_globals()


async def _keyring_context(app: web.Application):
    settings = app[SETTINGS]
    loop = asyncio.get_running_loop()
    source = key_source(settings, app.get(STORE))
    ring = KeyRing(source)
    await loop.run_in_executor(None, ring.reload)
    app[AUTH] = Auth(ring, settings)
    task = None
    if settings.clickhouse_url:
        task = asyncio.create_task(_reload_table(app[AUTH]))
    yield
    if task is not None:
        task.cancel()


async def _reload_table(auth: Auth) -> None:
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(getattr(auth.ring.source, "reload_seconds", 5.0))
        try:
            await loop.run_in_executor(None, auth.ring.reload)
        except Exception:  # the server is away; the last view of the keys stays
            pass


# --- the middleware ---------------------------------------------------------------------------


def needed_scope(request: web.Request) -> str | None:
    """The scope the matched route declared ("ingest", "read", "alerts", "admin"), or None for a public one."""
    scope = needs_of(request).scope
    return None if scope == "public" else scope


def presented_key(request: web.Request) -> str | None:
    """The key in whichever header form the client uses; None when there is none."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer" and value:
        return value
    if scheme == "basic" and value:
        decoded = _b64(value)
        if decoded is not None:
            user, _, password = decoded.partition(":")
            return password or user or None
    if scheme == "apikey" and value:
        if value.startswith("flk_"):
            return value
        decoded = _b64(value)
        if decoded is not None:
            # elasticsearch-py sends base64("<id>:<api_key>"); the key is after the colon
            return decoded.rpartition(":")[2] or None
        return value
    return request.headers.get("X-API-Key") or None


def _b64(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


@web.middleware
async def auth_middleware(request: web.Request, handler):
    auth = request.app[AUTH]
    auth.refresh()
    token = _REQUEST.set(request)
    try:
        return await _authorise(request, handler, auth)
    finally:
        _REQUEST.reset(token)


async def _authorise(request: web.Request, handler, auth: Auth):
    scope = needed_scope(request)
    text = presented_key(request)
    if text is None:
        # A key in a header cannot be forged by another site's page; without one, a browser
        # may be posting on its own (a session cookie, or an open server that needs no key).
        _refuse_cross_site(request)
    if auth.running_open:
        if scope is not None and not auth.open_allowed:
            return _denied(request, 401, "this server has no API keys and is not on loopback: create a key with "
                                         "`flightlog keys create`")
        return await _run(request, handler, None)
    key: ApiKey | None = None
    if text is not None:
        key = auth.ring.lookup(text)
        if key is None and scope is not None:
            return _denied(request, 401, "the API key is not valid (unknown or revoked)")
    else:
        found = auth.session_of(request)
        if found is not None:
            session, key = found
            request["session"] = session
            if scope is not None and request.method not in ("GET", "HEAD", "OPTIONS"):
                await _check_csrf(request, session)
    if scope is None:
        if key is not None:
            request["key"] = key
            request["tenant"] = key.tenant
        return await handler(request)
    if key is None:
        if wants_html(request) and request.method == "GET" and "login" in request.app.router.named_resources():
            raise web.HTTPSeeOther(f"/login?next={_quote_next(request.path_qs)}")
        return _denied(request, 401, f"an API key with scope {scope} is required: send Authorization: Bearer <key>")
    if not key.allows(scope):
        return _denied(request, 403, f"key {key.id} has scope {key.scope}; this needs scope {scope}")
    return await _run(request, handler, key)


async def _run(request: web.Request, handler, key: ApiKey | None):
    await _read_small_body(request)
    if key is not None:
        request["key"] = key
        request["tenant"] = _tenant(request, key)
        limiter = request.app[RATE_LIMITER]
        wait = limiter.check_request(key)
        if wait:
            return _too_many(request, f"key {key.id} is over its limit of requests per second", wait)
        context = KeyContext(key, limiter)
        token = CURRENT.set(context)
        try:
            response = await handler(request)
        finally:
            CURRENT.reset(token)
        if context.retry_after is not None and response.status == 429:
            response.headers.update(retry_after_header(context.retry_after))
        return response
    return await handler(request)


def _tenant(request: web.Request, key: ApiKey) -> str:
    if key.scope == "admin":
        for header in TENANT_HEADERS:
            value = request.headers.get(header, "").strip()
            if value:
                return value
    return key.tenant


async def _read_small_body(request: web.Request) -> None:
    """Bodies of non-ingest requests (forms, SQL) are read here, within the body time limit;
    ingest reads its own (flightlog.ingest.routes.read_body) so its memory budget applies first."""
    if request.method not in ("POST", "PUT", "PATCH") or not request.body_exists:
        return
    if needs_of(request).budget == "ingest":
        return
    try:
        async with asyncio.timeout(request.app[SETTINGS].body_timeout):
            await request.read()
    except TimeoutError:
        raise Refusal(408, "the request body did not arrive in time") from None
    except web.HTTPRequestEntityTooLarge:
        raise Refusal(413, "the request body is too large") from None


def _refuse_cross_site(request: web.Request) -> None:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if request.headers.get("Sec-Fetch-Site", "") in ("cross-site", "same-site"):
        raise Refusal(403, "cross-site request refused")
    origin = request.headers.get("Origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        raise Refusal(403, "cross-site request refused: Origin does not match the server")
    if origin == "null":
        raise Refusal(403, "cross-site request refused: opaque Origin")


async def _check_csrf(request: web.Request, session: Session) -> None:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        await _read_small_body(request)
        form = await request.post()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent, session.csrf):
        raise Refusal(403, "the form's CSRF token is missing or stale; reload the page and try again")


def _denied(request: web.Request, status: int, message: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="flightlog"'} if status == 401 else {}
    if "_bulk" in request.path or request.path.startswith("/es"):
        headers["X-Elastic-Product"] = "Elasticsearch"
    return web.Response(
        body=orjson.dumps({"error": message}), status=status, content_type="application/json", headers=headers
    )


def _too_many(request: web.Request, message: str, wait: float) -> web.Response:
    response = _denied(request, 429, message + "; retry after the Retry-After seconds")
    response.headers.update(retry_after_header(wait))
    return response


def _quote_next(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


# --- login, logout, template helpers ----------------------------------------------------------


def _safe_next(value: str) -> str:
    """`value` when it is a path on this server, else "/".

    Browsers drop tabs and newlines anywhere in a URL and read a backslash as a slash, so
    "/\t/evil.com" or "/\\evil.com" would leave for another host: any control character,
    whitespace or backslash refuses the value, and what is left must be a path with no
    scheme and no host ("//evil.com")."""
    if not value.startswith("/") or value.startswith("//"):
        return "/"
    if any(ch.isspace() or ch == "\\" or not ch.isprintable() for ch in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


async def login_page(request: web.Request) -> web.Response:
    from flightlog.web.pages import render

    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        title="Log in",
        next=_safe_next(request.query.get("next", "/")),
        login_csrf=token,
        error=None,
        running_open=request.app[AUTH].running_open,
    )
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", path="/login",
                        secure=request.secure)
    return response


async def login_submit(request: web.Request) -> web.Response:
    from flightlog.web.pages import render

    auth = request.app[AUTH]
    await _read_small_body(request)
    form = await request.post()
    next_path = _safe_next(str(form.get("next", "/")))
    sent, expected = str(form.get(CSRF_FIELD, "")), request.cookies.get(LOGIN_CSRF_COOKIE, "")
    key = auth.ring.lookup(str(form.get("key", "")).strip())
    error = None
    if not expected or not hmac.compare_digest(sent, expected):
        error = "The login form expired; try again."
    elif key is None:
        error = "That key is not valid (unknown or revoked)."
    elif not key.allows("read"):
        error = f"That key has scope {key.scope}; the UI needs a read key."
    if error is not None:
        token = secrets.token_urlsafe(32)
        response = render(request, "login.html", status=401, title="Log in", next=next_path, login_csrf=token,
                          error=error, running_open=auth.running_open)
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", path="/login",
                            secure=request.secure)
        return response
    session = auth.new_session(key)
    response = web.HTTPSeeOther(next_path)
    response.set_cookie(SESSION_COOKIE, session.id, httponly=True, samesite="Strict", path="/",
                        secure=request.secure, max_age=auth.settings.session_hours * 3600)
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/login")
    raise response


async def logout(request: web.Request) -> web.Response:
    session = request.get("session")
    if session is not None:
        request.app[AUTH].sessions.pop(session.id, None)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


def csrf_token() -> str:
    """The CSRF token for forms on the page being rendered ('' when there is no session)."""
    request = _REQUEST.get()
    session = request.get("session") if request is not None else None
    return session.csrf if session is not None else ""


def auth_state() -> dict[str, Any]:
    """For base.html: whether to show a login or a logout link."""
    request = _REQUEST.get()
    if request is None or AUTH not in request.app:
        return {"open": True, "session": False, "tenant": ""}
    auth = request.app[AUTH]
    session = request.get("session")
    return {
        "open": auth.running_open,
        "session": session is not None,
        "tenant": request.get("tenant", ""),
        "csrf": session.csrf if session is not None else "",
    }


def _install_template_globals() -> None:
    from flightlog.web.pages import environment

    env = environment()
    env.globals["csrf_token"] = csrf_token
    env.globals["auth_state"] = auth_state
