"""Chat workspaces allowed to ask flightlog, each mapped to one tenant: stored like API keys.

A Slack workspace (team id `T…`) or a Mattermost team is added with
`flightlog chatops add-slack --team T123 --tenant acme --signing-secret-file F`; only requests
from a workspace added here are answered, and only with its tenant's lines. Where they live
follows schema/api_keys.py, for the same reasons: `<data_dir>/chatops.json` (mode 0600, written
under a lock, replaced atomically, re-read when it changes) with the embedded store, the
`chatops_workspaces` table (migration 0080) with a ClickHouse server.

Unlike an API key, a Slack signing secret cannot be kept as a hash: every request's HMAC is
computed with it. The bot token (for `chat.unfurl`) is kept as given too. A Mattermost slash
command token is only compared, so only its SHA-256 is kept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from flightlog.schema.api_keys import check_new
from flightlog.schema.record_file import RecordFile

FILE_NAME = "chatops.json"
_TEAM = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CHANNEL = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class WorkspaceProblem(Exception):
    """A workspace operation cannot be done (bad team id, no secret, unknown team …)."""


@dataclass(frozen=True)
class Workspace:
    team: str
    tenant: str
    signing_secret: str = ""  # Slack: requests are HMAC-signed with it
    bot_token: str = ""  # Slack: for chat.unfurl; empty: links are not unfurled
    mattermost_token_hash: str = ""  # Mattermost: sha256 of the slash command's token
    channels: tuple[str, ...] = ()  # empty: any channel of the workspace
    silencers: tuple[str, ...] = ()  # user ids allowed to press "silence this alert for 1 h"
    created_at: str = ""

    def allows_channel(self, channel: str) -> bool:
        return not self.channels or channel in self.channels

    def mattermost_token_matches(self, token: str) -> bool:
        if not self.mattermost_token_hash or not token:
            return False
        return hmac.compare_digest(_sha256(token), self.mattermost_token_hash)

    def public(self) -> dict[str, Any]:
        """What `chatops list` shows: never a secret, only whether one is set."""
        return {
            "team": self.team, "tenant": self.tenant, "slack": bool(self.signing_secret),
            "unfurls": bool(self.bot_token), "mattermost": bool(self.mattermost_token_hash),
            "channels": list(self.channels), "silencers": list(self.silencers), "created_at": self.created_at,
        }


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def new_workspace(
    team: str,
    tenant: str,
    *,
    signing_secret: str = "",
    bot_token: str = "",
    mattermost_token: str = "",
    channels: Sequence[str] = (),
    silencers: Sequence[str] = (),
) -> Workspace:
    """A checked workspace record; raises WorkspaceProblem naming the flag that is wrong."""
    if not _TEAM.match(team):
        raise WorkspaceProblem(f"--team: {team!r} is not a team id (like T0123ABCD)")
    try:
        check_new(tenant, "read")
    except Exception as exc:
        raise WorkspaceProblem(f"--tenant: {exc}") from None
    if not signing_secret and not mattermost_token:
        raise WorkspaceProblem("give --signing-secret-file (Slack) or --mattermost-token-file (Mattermost)")
    for flag, values in (("--channels", channels), ("--silencers", silencers)):
        for value in values:
            if not _CHANNEL.match(value):
                raise WorkspaceProblem(f"{flag}: {value!r} is not a Slack id (like C0123ABCD)")
    return Workspace(
        team=team,
        tenant=tenant,
        signing_secret=signing_secret,
        bot_token=bot_token,
        mattermost_token_hash=_sha256(mattermost_token) if mattermost_token else "",
        channels=tuple(channels),
        silencers=tuple(silencers),
        created_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
    )


def read_secret_file(path: str, what: str) -> str:
    """The secret in a file (one line, surrounding whitespace dropped): secrets stay off argv."""
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise WorkspaceProblem(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    if not text or "\n" in text:
        raise WorkspaceProblem(f"{what}: {path} must hold the secret alone on one line")
    return text


class WorkspaceSource(Protocol):
    def load(self) -> list[Workspace]: ...
    def put(self, workspace: Workspace) -> None: ...
    def remove(self, team: str) -> Workspace: ...
    def changed(self) -> bool: ...


def _from_dict(item: dict[str, Any]) -> Workspace:
    item = dict(item)
    item["channels"] = tuple(item.get("channels") or ())
    item["silencers"] = tuple(item.get("silencers") or ())
    return Workspace(**item)


class WorkspaceFile(RecordFile[Workspace]):
    """Workspaces of an embedded deployment, in `<data_dir>/chatops.json` (mode 0600)."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(Path(data_dir) / FILE_NAME, "workspaces", _from_dict)

    def put(self, workspace: Workspace) -> None:
        """Add the workspace, or replace the one with the same team id."""
        with self._locked():
            self._write([r for r in self._read() if r.team != workspace.team] + [workspace])

    def remove(self, team: str) -> Workspace:
        with self._locked():
            records = self._read()
            found = [r for r in records if r.team == team]
            if not found:
                raise WorkspaceProblem(f"no workspace {team!r}; `flightlog chatops list` shows them")
            self._write([r for r in records if r.team != team])
            return found[0]


class WorkspaceTable:
    """Workspaces of a server deployment, in the `chatops_workspaces` table."""

    COLUMNS = (
        "team, tenant, signing_secret, bot_token, mattermost_token_hash, channels, silencers, "
        "toString(created_at) AS created_at"
    )

    def __init__(self, store: Any, reload_seconds: float = 5.0) -> None:
        self.store = store
        self.reload_seconds = reload_seconds

    def changed(self) -> bool:
        return False  # reloaded by a background task, never on a request (see flightlog.web.auth)

    def load(self) -> list[Workspace]:
        result = self.store.query(f"SELECT {self.COLUMNS} FROM chatops_workspaces FINAL WHERE removed = 0 ORDER BY team")
        return [_from_dict(row) for row in result.dicts()]

    def _insert(self, workspace: Workspace, removed: int) -> None:
        row = asdict(workspace)
        row["channels"] = list(workspace.channels)
        row["silencers"] = list(workspace.silencers)
        row["created_at"] = (workspace.created_at or "1970-01-01T00:00:00Z").rstrip("Z").replace("T", " ")
        row["removed"] = removed
        row["version"] = time.time_ns()
        self.store.insert_rows("chatops_workspaces", [row])

    def put(self, workspace: Workspace) -> None:
        self._insert(workspace, 0)

    def remove(self, team: str) -> Workspace:
        found = [r for r in self.load() if r.team == team]
        if not found:
            raise WorkspaceProblem(f"no workspace {team!r}; `flightlog chatops list` shows them")
        self._insert(found[0], 1)
        return found[0]


def workspace_source(settings: Any, store: Any = None) -> WorkspaceSource:
    """Where this deployment's workspaces live (see the module docstring)."""
    if settings.clickhouse_url:
        if store is None:
            from flightlog.schema.open import open_store

            store = open_store(settings)
        return WorkspaceTable(store)
    return WorkspaceFile(settings.data_dir)


@dataclass
class Workspaces:
    """The server's view: lookup by team id, reloaded when the source changes."""

    source: WorkspaceSource
    _by_team: dict[str, Workspace] = field(default_factory=dict)
    _loaded: bool = False

    def reload(self) -> None:
        self._by_team = {w.team: w for w in self.source.load()}
        self._loaded = True

    def refresh(self) -> None:
        """Reload when the source may have changed; a failed reload keeps the last view."""
        if self._loaded and not self.source.changed():
            return
        try:
            self.reload()
        except Exception:
            if not self._loaded:
                raise

    def get(self, team: str) -> Workspace | None:
        return self._by_team.get(team)

    def all(self) -> list[Workspace]:
        return list(self._by_team.values())
