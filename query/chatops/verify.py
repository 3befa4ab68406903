"""Is this request really from the chat workspace it names? Slack signatures, Mattermost tokens.

Slack signs every request: `X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:{timestamp}:{raw body}">`
with the app's signing secret; slack_sdk's SignatureVerifier computes it and compares in
constant time. We add what Slack asks of a receiver and a verifier alone cannot do:

- a timestamp more than 5 minutes away from our clock is refused as stale;
- a signature already accepted is refused as a replay while it could still pass the clock
  (a captured request cannot be sent again within its 5 minutes). The memory of seen
  signatures is per process, bounded, and forgets a signature once its timestamp is stale.

Mattermost's Slack-compatible slash commands send no signature; they carry the command's
token in the body, compared against the stored hash in constant time.

Nothing a request asks for runs before `verify` has accepted it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from flightlog.schema.chatops_workspaces import Workspace
from slack_sdk.signature import SignatureVerifier

MAX_SKEW_S = 5 * 60
MAX_REMEMBERED = 100_000


class NotVerified(Exception):
    """The request is not shown to come from the workspace (HTTP 401, nothing run).

    `reason`: missing, stale, forged or replayed."""

    def __init__(self, message: str, reason: str = "forged") -> None:
        super().__init__(message)
        self.reason = reason


class ReplayGuard:
    """Signatures accepted in the last MAX_SKEW_S seconds, to refuse the same request twice."""

    def __init__(self, clock: Callable[[], float] = time.time, limit: int = MAX_REMEMBERED) -> None:
        self.clock = clock
        self.limit = limit
        self._seen: OrderedDict[str, float] = OrderedDict()  # signature → when it goes stale

    def first_time(self, signature: str, timestamp: int) -> bool:
        now = self.clock()
        while self._seen:
            stale_at = next(iter(self._seen.values()))
            if stale_at > now and len(self._seen) < self.limit:
                break
            self._seen.popitem(last=False)
        if signature in self._seen:
            return False
        self._seen[signature] = timestamp + MAX_SKEW_S
        return True


def verify_slack(
    workspace: Workspace,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    guard: ReplayGuard,
) -> None:
    """Accept the request or raise NotVerified saying why (stale, forged, replayed)."""
    if not workspace.signing_secret:
        raise NotVerified(f"workspace {workspace.team} has no Slack signing secret (it was added for Mattermost)", "missing")
    if not timestamp or not signature:
        raise NotVerified("X-Slack-Request-Timestamp and X-Slack-Signature are required", "missing")
    try:
        stamp = int(timestamp)
    except ValueError:
        raise NotVerified("X-Slack-Request-Timestamp is not a number", "missing") from None
    now = guard.clock()
    if abs(now - stamp) > MAX_SKEW_S:
        raise NotVerified("the request is stale: its timestamp is more than 5 minutes from this server's clock", "stale")

    class _Clock:
        def now(self) -> float:
            return now

    verifier = SignatureVerifier(workspace.signing_secret, clock=_Clock())
    try:
        valid = verifier.is_valid(body, timestamp, signature)
    except UnicodeDecodeError:  # slack_sdk decodes the body as UTF-8; Slack never sends anything else
        raise NotVerified("the body is not UTF-8, so Slack did not sign it") from None
    if not valid:
        raise NotVerified("the signature does not match this workspace's signing secret")
    if not guard.first_time(signature, stamp):
        raise NotVerified("this signed request was already received (a replay)", "replayed")


def slack_signer_of(workspaces: list[Workspace], body: bytes, timestamp: str | None, signature: str | None,
                    guard: ReplayGuard) -> Workspace:
    """The workspace whose secret signed a request that names none (Slack's url_verification)."""
    for workspace in workspaces:
        if not workspace.signing_secret:
            continue
        try:
            verify_slack(workspace, body, timestamp, signature, guard)
        except NotVerified as exc:
            if exc.reason != "forged":
                raise
            continue
        return workspace
    raise NotVerified("no connected workspace's signing secret matches the signature")


def verify_mattermost(workspace: Workspace, token: str) -> None:
    if not workspace.mattermost_token_matches(token):
        raise NotVerified("the Mattermost token does not match this team's slash command")
