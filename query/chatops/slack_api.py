"""ChatOps over HTTP: Slack's slash commands, interactivity and events (and Mattermost's
Slack-compatible slash commands).

POST /chatops/slack/commands      `/flightlog build 1234` (form-encoded, Slack signs it)
POST /chatops/slack/interactions  button presses (form field `payload`, JSON; signed)
POST /chatops/slack/events        url_verification, and link_shared → chat.unfurl (JSON; signed)

These paths need no API key: they carry a Slack signature (or a Mattermost token) instead,
checked against the workspace the body names (flightlog.query.chatops.verify) before anything
runs; a request that fails the check gets a 401 and nothing else. The workspace decides the
tenant. Slack waits 3 s for an answer: a command whose answer is ready within
`chatops_answer_within_ms` is answered in the response; otherwise the response acknowledges
it and the answer is POSTed to the request's `response_url` when ready. Button presses are
always acknowledged at once and answered through their `response_url`. Every call to Slack
goes through slack_sdk (AsyncWebhookClient for response URLs, AsyncWebClient for chat.unfurl).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from aiohttp import web
from flightlog.query import slack_blocks as sb
from flightlog.query.alerts import silences
from flightlog.query.alerts.api import ALERTS, public_url
from flightlog.query.alerts.rules import RuleError
from flightlog.query.chatops import answers, commands, mattermost, unfurls
from flightlog.query.chatops.verify import NotVerified, ReplayGuard, slack_signer_of, verify_mattermost, verify_slack
from flightlog.query.slots_api import run_query
from flightlog.query.timefmt import format_ns
from flightlog.schema.app_state import SETTINGS, STORE
from flightlog.schema.chatops_workspaces import Workspace, Workspaces, workspace_source
from flightlog.schema.refusal import Refusal
from flightlog.schema.route_table import add_route
from flightlog.schema.settings import Settings
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

log = logging.getLogger("flightlog.chatops")

PATHS = ("/chatops/slack/commands", "/chatops/slack/interactions", "/chatops/slack/events")
MAX_BODY_BYTES = 1024 * 1024  # Slack's payloads are a few KB
SLACK_HOOKS_HOST = "hooks.slack.com"
SEEN_EVENTS = 10_000
COULD_NOT_ANSWER = "flightlog could not answer this time; the server's log has the details."
BUSY = "flightlog is busy with this workspace's queries; ask again in a moment."


class ChatOps:
    """The workspaces, the replay guard and the answers still being worked on, of one app."""

    def __init__(self, settings: Settings, workspaces: Workspaces) -> None:
        self.settings = settings
        self.workspaces = workspaces
        self.guard = ReplayGuard()
        self.tasks: set[asyncio.Task] = set()
        self.base = public_url(settings)
        self.seen_events: OrderedDict[str, None] = OrderedDict()

    def spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a chat answer failed", exc_info=task.exception())

    def web_client(self, workspace: Workspace) -> AsyncWebClient:
        return AsyncWebClient(token=workspace.bot_token, base_url=self.settings.slack_api_url, timeout=10)

    def response_url_allowed(self, url: str, via_mattermost: bool) -> bool:
        """Slack's response URLs are on hooks.slack.com (or the Slack API host this server is
        pointed at); a Mattermost one is on that Mattermost server, which we cannot know."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        if via_mattermost:
            return True
        api = urlsplit(self.settings.slack_api_url)
        return (parts.scheme == "https" and parts.hostname == SLACK_HOOKS_HOST) or (
            (parts.scheme, parts.netloc) == (api.scheme, api.netloc)
        )

    def first_event(self, event_id: str) -> bool:
        if not event_id:
            return True
        if event_id in self.seen_events:
            return False
        self.seen_events[event_id] = None
        while len(self.seen_events) > SEEN_EVENTS:
            self.seen_events.popitem(last=False)
        return True


CHATOPS = web.AppKey("chatops", ChatOps)


def setup_chatops(app: web.Application) -> None:
    app.cleanup_ctx.append(_chatops_context)
    # public: no API key; each request carries a Slack signature or Mattermost token instead,
    # checked against the workspace it names before anything runs
    add_route(app, "POST", PATHS[0], commands_handler, scope="public")
    add_route(app, "POST", PATHS[1], interactions_handler, scope="public")
    add_route(app, "POST", PATHS[2], events_handler, scope="public")


async def _chatops_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    workspaces = Workspaces(workspace_source(settings, app.get(STORE)))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, workspaces.reload)
    app[CHATOPS] = chat = ChatOps(settings, workspaces)
    reload_task = None
    if settings.clickhouse_url:
        reload_task = asyncio.create_task(_reload_table(workspaces))
    yield
    if reload_task is not None:
        reload_task.cancel()
    for task in list(chat.tasks):
        task.cancel()
    if chat.tasks:
        await asyncio.gather(*chat.tasks, return_exceptions=True)


async def _reload_table(workspaces: Workspaces) -> None:
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(getattr(workspaces.source, "reload_seconds", 5.0))
        try:
            await loop.run_in_executor(None, workspaces.reload)
        except Exception:  # the server is away; the last view stays
            pass


# --- reading and verifying ------------------------------------------------------------------------


async def _read(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY_BYTES, actual_size=request.content_length)
    async with asyncio.timeout(request.app[SETTINGS].body_timeout):
        body = await request.read()
    if len(body) > MAX_BODY_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY_BYTES, actual_size=len(body))
    return body


def _form(body: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


def _refused(exc: NotVerified, request: web.Request, team: str) -> web.Response:
    log.warning("chatops: refused a request on %s for team %r: %s", request.path, team, exc)
    return web.json_response({"error": str(exc), "reason": exc.reason}, status=401)


def _verify(chat: ChatOps, workspace: Workspace, request: web.Request, body: bytes, token: str) -> bool:
    """Raise NotVerified unless signed by the workspace; True when it came by Mattermost's token."""
    if "X-Slack-Signature" in request.headers or not workspace.mattermost_token_hash:
        verify_slack(workspace, body, request.headers.get("X-Slack-Request-Timestamp"),
                     request.headers.get("X-Slack-Signature"), chat.guard)
        return False
    verify_mattermost(workspace, token)
    return True


def _slack_answer(answer: answers.Answer, ephemeral: bool, via_mattermost: bool = False) -> dict[str, Any]:
    kind = "ephemeral" if ephemeral or answer.problem else "in_channel"
    if via_mattermost:  # Mattermost shows `text` as Markdown and ignores blocks
        return {"response_type": kind, "text": mattermost.markdown(answer.message)}
    return {"response_type": kind, **answer.message}


def _not_connected(team: str) -> web.Response:
    # Slack shows a 200 with text to the asker alone; nothing here can be verified, so it says
    # no more than how to connect.
    text = (f"This workspace ({team or 'unknown'}) is not connected to flightlog. An admin connects it with "
            f"`flightlog chatops add-slack --team {team or 'T…'} --tenant <tenant> --signing-secret-file <file>`.")
    return web.json_response({"response_type": "ephemeral", "text": sb.escape(text)})


def _channel_refused(channel: str, via_mattermost: bool = False) -> dict[str, Any]:
    return _slack_answer(answers.problem(f"flightlog does not answer in this channel ({channel}); "
                                         "ask in a channel the workspace was connected for."), True, via_mattermost)


# --- slash commands ---------------------------------------------------------------------------------


async def commands_handler(request: web.Request) -> web.Response:
    chat = request.app[CHATOPS]
    chat.workspaces.refresh()
    body = await _read(request)
    form = _form(body)
    team = form.get("team_id", "")
    workspace = chat.workspaces.get(team)
    if workspace is None:
        return _not_connected(team)
    try:
        via_mattermost = _verify(chat, workspace, request, body, form.get("token", ""))
    except NotVerified as exc:
        return _refused(exc, request, team)
    request["tenant"] = workspace.tenant  # the workspace decides the tenant (and its query slots)
    if not workspace.allows_channel(form.get("channel_id", "")):
        return web.json_response(_channel_refused(form.get("channel_id", ""), via_mattermost))
    try:
        command = commands.parse(form.get("text", ""))
    except commands.UsageError as exc:
        return web.json_response(_slack_answer(answers.problem(f"{exc}"), True, via_mattermost))
    work = asyncio.ensure_future(_answer(request, workspace, command, form.get("command") or "/flightlog"))
    budget = request.app[SETTINGS].chatops_answer_within_ms / 1000
    try:
        answer = await asyncio.wait_for(asyncio.shield(work), budget)
    except TimeoutError:
        response_url = form.get("response_url", "")
        if not chat.response_url_allowed(response_url, via_mattermost):
            work.cancel()
            return web.json_response(_slack_answer(answers.problem(
                "flightlog could not answer in time and the request named no Slack response URL to answer at."), True,
                via_mattermost))
        chat.spawn(_deliver_later(work, response_url, command.ephemeral, via_mattermost))
        return web.json_response({"response_type": "ephemeral",
                                  "text": ":hourglass_flowing_sand: flightlog is looking that up; the answer follows."})
    return web.json_response(_slack_answer(answer, command.ephemeral, via_mattermost))


async def _answer(request: web.Request, workspace: Workspace, command: commands.Command, command_name: str
                  ) -> answers.Answer:
    app = request.app
    chat = app[CHATOPS]
    firing = _firing(app, workspace.tenant) if command.name == "alerts" else []
    try:
        return await run_query(request, answers.answer, app[STORE], workspace.tenant, command, chat.base, firing,
                               command_name)
    except Refusal as exc:
        if exc.status == 429:
            return answers.problem(BUSY)
        raise
    except Exception:
        # the engine's error text can quote the query; the channel gets no more than that it failed
        log.exception("chatops: %s %r for tenant %s failed", command.name, command.arg, workspace.tenant)
        return answers.problem(COULD_NOT_ANSWER)


def _firing(app: web.Application, tenant: str) -> list[dict[str, Any]]:
    """The tenant's firing groups, from the evaluator the alerts API reads too."""
    service = app.get(ALERTS)
    if service is None:
        return []
    out = []
    for (t, rule), groups in service.evaluator.states.items():
        if t != tenant:
            continue
        for g in groups.values():
            if g.state == "firing":
                out.append({"rule": rule, "labels": dict(g.labels), "value": g.value,
                            "since": format_ns((g.fired_at_ms or g.active_since_ms) * 1_000_000)})
    return sorted(out, key=lambda a: (a["rule"], sorted(a["labels"].items())))


async def _post(response_url: str, body: dict[str, Any]) -> None:
    response = await AsyncWebhookClient(response_url, timeout=10).send_dict(body)
    if response.status_code >= 300:
        log.warning("chatops: the response URL answered %s: %s", response.status_code, response.body[:200])


async def _deliver_later(work: asyncio.Future, response_url: str, ephemeral: bool, via_mattermost: bool) -> None:
    answer = await work
    await _post(response_url, {**_slack_answer(answer, ephemeral, via_mattermost), "replace_original": False})


# --- interactivity ------------------------------------------------------------------------------


async def interactions_handler(request: web.Request) -> web.Response:
    chat = request.app[CHATOPS]
    chat.workspaces.refresh()
    body = await _read(request)
    try:
        payload = orjson.loads(_form(body).get("payload", ""))
        if not isinstance(payload, dict):
            raise ValueError
    except ValueError:
        return web.json_response({"error": "the body has no `payload` JSON object"}, status=400)
    team = str((payload.get("team") or {}).get("id", ""))
    workspace = chat.workspaces.get(team)
    if workspace is None:
        return web.json_response({"error": f"workspace {team!r} is not connected"}, status=401)
    try:
        via_mattermost = _verify(chat, workspace, request, body, str(payload.get("token", "")))
    except NotVerified as exc:
        return _refused(exc, request, team)
    request["tenant"] = workspace.tenant
    channel = str((payload.get("channel") or {}).get("id", ""))
    response_url = str(payload.get("response_url", ""))
    actions = payload.get("actions") or []
    if payload.get("type") != "block_actions" or not actions or not isinstance(actions[0], dict):
        return web.Response(status=200)
    action = actions[0]
    action_id = str(action.get("action_id", ""))
    if action_id.startswith(answers.LINK):
        return web.Response(status=200)  # the button opened a URL; Slack just tells us
    if not chat.response_url_allowed(response_url, via_mattermost):
        return web.json_response({"error": "the payload names no Slack response URL"}, status=400)
    if not workspace.allows_channel(channel):
        chat.spawn(_post(response_url, {**_channel_refused(channel), "replace_original": False}))
        return web.Response(status=200)
    ephemeral = bool((payload.get("container") or {}).get("is_ephemeral"))
    user = str((payload.get("user") or {}).get("id", ""))
    chat.spawn(_press(request, workspace, action_id, str(action.get("value", "")), user, response_url, ephemeral))
    return web.Response(status=200)


async def _press(request: web.Request, workspace: Workspace, action_id: str, value: str, user: str,
                 response_url: str, ephemeral: bool) -> None:
    try:
        data = orjson.loads(value)
        if not isinstance(data, dict):
            raise ValueError
    except ValueError:
        data = {}
    answer = await _press_answer(request, workspace, action_id, data, user)
    await _post(response_url, {**_slack_answer(answer, ephemeral), "replace_original": False})


async def _press_answer(request: web.Request, workspace: Workspace, action_id: str, data: dict[str, Any],
                        user: str) -> answers.Answer:
    app = request.app
    chat, store, tenant = app[CHATOPS], app[STORE], workspace.tenant
    kind, entity_id = str(data.get("k", "")), str(data.get("id", ""))
    try:
        if action_id in (answers.NEXT_LINES, answers.FIRST_ERROR) and kind not in ("build", "deploy"):
            return answers.problem("That button is from an answer this server cannot read.")
        if action_id == answers.NEXT_LINES:
            cursor = data.get("c") if isinstance(data.get("c"), str) else None
            return await run_query(request, answers.next_lines_answer, store, tenant, kind, entity_id, cursor,
                                   chat.base)
        if action_id == answers.FIRST_ERROR:
            return await run_query(request, answers.first_error_answer, store, tenant, kind, entity_id, chat.base)
        if action_id == answers.SILENCE:
            return await _silence(request, workspace, data, user)
    except Refusal as exc:
        if exc.status == 429:
            return answers.problem(BUSY)
        log.exception("chatops: button %s for tenant %s failed", action_id, tenant)
        return answers.problem(COULD_NOT_ANSWER)
    except Exception:
        log.exception("chatops: button %s for tenant %s failed", action_id, tenant)
        return answers.problem(COULD_NOT_ANSWER)
    return answers.problem("That button is not one flightlog knows.")


async def _silence(request: web.Request, workspace: Workspace, data: dict[str, Any], user: str) -> answers.Answer:
    app = request.app
    if user not in workspace.silencers:
        return answers.problem(f"User {user} may not silence alerts from this workspace: an admin adds "
                               f"`--silencers {user}` to `flightlog chatops add-slack`.")
    rule = str(data.get("rule", ""))
    matchers = data.get("m") if isinstance(data.get("m"), dict) else {}
    try:
        wanted = silences.parse_silence({"rule": rule, "matchers": {str(k): str(v) for k, v in matchers.items()},
                                         "for": "1h", "comment": f"from Slack by {user}"})
        silence = await run_query(request, silences.create, app[STORE], workspace.tenant, wanted,
                                  f"slack {workspace.team}/{user}")
    except RuleError as exc:
        return answers.problem("; ".join(f"{e['field']}: {e['reason']}" for e in exc.errors))
    service = app.get(ALERTS)
    if service is not None:
        service.evaluator.reschedule(workspace.tenant, silence.rule)
    labels = ", ".join(f"{k}={v}" for k, v in silence.matchers.items())
    text = f":no_bell: *{sb.escape(rule)}*" + (f" · {sb.escape(labels)}" if labels else "")
    text += f" is silenced until {sb.escape(silence.public()['until'])} (by {sb.escape(user)})."
    return answers.Answer(sb.message(f"{rule} silenced for 1 h", [sb.section(text)]))


# --- events: url_verification, link unfurls --------------------------------------------------------


async def events_handler(request: web.Request) -> web.Response:
    chat = request.app[CHATOPS]
    chat.workspaces.refresh()
    body = await _read(request)
    try:
        event = orjson.loads(body)
        if not isinstance(event, dict):
            raise ValueError
    except ValueError:
        return web.json_response({"error": "the body is not a JSON object"}, status=400)
    timestamp = request.headers.get("X-Slack-Request-Timestamp")
    signature = request.headers.get("X-Slack-Signature")
    if event.get("type") == "url_verification":
        try:
            slack_signer_of(chat.workspaces.all(), body, timestamp, signature, chat.guard)
        except NotVerified as exc:
            return _refused(exc, request, "")
        return web.json_response({"challenge": str(event.get("challenge", ""))})
    team = str(event.get("team_id", ""))
    workspace = chat.workspaces.get(team)
    if workspace is None:
        return web.json_response({"error": f"workspace {team!r} is not connected"}, status=401)
    try:
        verify_slack(workspace, body, timestamp, signature, chat.guard)
    except NotVerified as exc:
        return _refused(exc, request, team)
    request["tenant"] = workspace.tenant
    inner = event.get("event") or {}
    if (event.get("type") == "event_callback" and isinstance(inner, dict) and inner.get("type") == "link_shared"
            and chat.first_event(str(event.get("event_id", "")))):
        if workspace.bot_token and (inner.get("channel") == "COMPOSER" or workspace.allows_channel(
                str(inner.get("channel", "")))):
            chat.spawn(_unfurl(request, workspace, inner))
    return web.Response(status=200)


async def _unfurl(request: web.Request, workspace: Workspace, event: dict[str, Any]) -> None:
    app = request.app
    chat = app[CHATOPS]
    urls = [str(link.get("url", "")) for link in event.get("links") or [] if isinstance(link, dict)]
    found: dict[str, Any] = {}
    for url in urls[:5]:
        summary = await run_query(request, unfurls.unfurl, app[STORE], workspace.tenant, url, chat.base)
        if summary is not None:
            found[url] = summary
    if not found:
        return
    where: dict[str, Any] = {}
    if event.get("unfurl_id") and event.get("source"):
        where = {"unfurl_id": event["unfurl_id"], "source": event["source"]}
    else:
        where = {"channel": event.get("channel"), "ts": event.get("message_ts")}
    await chat.web_client(workspace).chat_unfurl(unfurls=found, **where)

