"""Fixtures for the ChatOps tests: a fake Slack (Web API and response URLs) on 127.0.0.1, two
connected workspaces mapped to two tenants that share a build id, and requests signed the way
Slack signs them (slack_sdk's SignatureVerifier)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from aiohttp import web
from flightlog.schema.chatops_workspaces import WorkspaceFile, new_workspace
from flightlog.schema.settings import Settings
from flightlog.web.server import create_app
from slack_sdk.models.blocks import Block
from slack_sdk.signature import SignatureVerifier

from tests.query.data import NS, insert, make_line

SECRET_A = "8f742231b10e8888abcd99yyyzzz85a5"
SECRET_B = "0b1e2d3c4b5a69788796a5b4c3d2e1f0"
BOT_TOKEN_A = "xoxb-test-token-a"
MM_TOKEN = "mattermost-slash-token"
PUBLIC = "http://flightlog.test"


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class FakeSlack:
    """Records every request; the Web API answers {"ok": true}, response URLs answer "ok"."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def on(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.event.clear()
                await self.event.wait()


@pytest.fixture
async def slack(aiohttp_server) -> FakeSlack:
    fake = FakeSlack()

    async def handle(request: web.Request) -> web.Response:
        fake.seen.append(Seen(request.path, dict(request.headers), await request.read()))
        fake.event.set()
        if request.path.startswith("/api/"):
            return web.json_response({"ok": True})
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = await aiohttp_server(app)
    fake.url = f"http://127.0.0.1:{server.port}"
    return fake


@pytest.fixture
def chat_settings(tmp_path, slack) -> Settings:
    return Settings.from_values({
        "data_dir": str(tmp_path / "data"), "batch_max_age_ms": 50, "public_url": PUBLIC,
        "slack_api_url": slack.url + "/api/",
    })


@pytest.fixture
def workspaces(chat_settings):
    """Workspace TA → tenant acme (any channel, unfurls, U0BOSS may silence), TB → tenant beta
    (channel CB only), MM → tenant acme through a Mattermost token."""
    source = WorkspaceFile(chat_settings.data_dir)
    source.put(new_workspace("TA", "acme", signing_secret=SECRET_A, bot_token=BOT_TOKEN_A, silencers=["U0BOSS"]))
    source.put(new_workspace("TB", "beta", signing_secret=SECRET_B, channels=["CB"]))
    source.put(new_workspace("MM", "acme", mattermost_token=MM_TOKEN))
    return source


@pytest.fixture
async def chat(aiohttp_client, chat_settings, store, workspaces):
    return await aiohttp_client(create_app(chat_settings, roles={"query"}, store=store))


_triggers = itertools.count(1)


def _trigger_id() -> str:
    """Slack gives every request its own trigger_id, so no two signed bodies are the same."""
    return f"{next(_triggers)}.{time.time_ns()}.trigger"


def signed(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature}


def command_body(text: str, team: str = "TA", channel: str = "CA", response_url: str = "", user: str = "U0ASK"
                 ) -> bytes:
    return urlencode({
        "token": "legacy-verification-token", "team_id": team, "team_domain": "example", "channel_id": channel,
        "channel_name": "incident", "user_id": user, "user_name": "asker", "command": "/flightlog", "text": text,
        "api_app_id": "A0APP", "response_url": response_url, "trigger_id": _trigger_id(),
    }).encode()


async def post_command(client, text: str, *, team: str = "TA", secret: str = SECRET_A, channel: str = "CA",
                       response_url: str = "", headers: dict[str, str] | None = None):
    body = command_body(text, team, channel, response_url)
    return await client.post("/chatops/slack/commands", data=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", **(headers if headers is not None else signed(body, secret))})


def interaction_body(action_id: str, value: str, *, team: str = "TA", user: str = "U0ASK", channel: str = "CA",
                     response_url: str = "") -> bytes:
    payload = {
        "type": "block_actions", "team": {"id": team, "domain": "example"}, "user": {"id": user},
        "channel": {"id": channel}, "container": {"type": "message", "is_ephemeral": False},
        "response_url": response_url, "trigger_id": _trigger_id(),
        "actions": [{"type": "button", "action_id": action_id, "value": value, "block_id": "b1", "action_ts": "1"}],
    }
    return urlencode({"payload": orjson.dumps(payload).decode()}).encode()


def parse_blocks(message: dict[str, Any]) -> list[Block]:
    """Every block as slack_sdk reads it, each checked against Slack's limits."""
    assert isinstance(message["blocks"], list) and 0 < len(message["blocks"]) <= 50
    blocks = [Block.parse(b) for b in message["blocks"]]
    for block in blocks:
        assert block is not None
        block.validate_json()
    return blocks


def texts(message: dict[str, Any]) -> str:
    """All the text a message shows (for checking what it contains); a message with blocks is
    parsed by slack_sdk on the way, so every answer a test looks at is checked."""
    if "blocks" in message:
        parse_blocks(message)
    found: list[str] = [message.get("text", "")]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(message.get("blocks", []))
    return "\n".join(found)


def write_lines(store, tenant: str, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    now = time.time_ns() - 60 * NS
    made = [make_line(now + i * 1_000_000, tenant=tenant, **fields) for i, fields in enumerate(lines)]
    insert(store, made)
    return made
