"""`flightlog chatops add-slack|list|remove`: which chat workspaces may ask, for which tenant.

    flightlog chatops add-slack --team T0123ABCD --tenant acme --signing-secret-file slack.secret \
        --bot-token-file slack.token --channels C0INCIDENT,C0DEPLOYS --silencers U0ONCALL
    flightlog chatops add-slack --team mm-team-id --tenant acme --mattermost-token-file mm.token
    flightlog chatops list
    flightlog chatops remove T0123ABCD

A workspace answers with its tenant's lines only. Secrets are read from files so they stay out
of the shell history and the process list. Adding a team that exists replaces it. Like API keys,
the workspaces are a file in the data directory (the running server picks a change up on its
next request) or, with --clickhouse-url, the server's chatops_workspaces table. docs/chatops.md
walks through creating the Slack app.
"""

from __future__ import annotations

import argparse
import sys

import orjson
from flightlog.schema.chatops_workspaces import WorkspaceProblem, new_workspace, read_secret_file, workspace_source
from flightlog.web.store_options import add_store_options, store_settings


def _ids(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "chatops",
        help="connect Slack or Mattermost workspaces to tenants",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="chatops_action", required=True)

    add = actions.add_parser("add-slack", help="connect a workspace (or replace its settings)")
    add.add_argument("--team", required=True, help="the Slack team id (T…) or the Mattermost team id")
    add.add_argument("--tenant", required=True, help="the tenant whose lines this workspace may see")
    add.add_argument("--signing-secret-file", default="", help="a file holding the Slack app's signing secret")
    add.add_argument("--bot-token-file", default="", help="a file holding the bot token (xoxb-…) for link unfurls")
    add.add_argument("--mattermost-token-file", default="",
                     help="a file holding the token of a Mattermost slash command (instead of a Slack secret)")
    add.add_argument("--channels", type=_ids, default=[], help="only these channel ids, comma-separated (default: any)")
    add.add_argument("--silencers", type=_ids, default=[],
                     help="user ids allowed to press 'silence this alert for 1 h', comma-separated")

    listing = actions.add_parser("list", help="list connected workspaces (never their secrets)")
    listing.add_argument("--json", action="store_true", help="one JSON object a line")

    remove = actions.add_parser("remove", help="disconnect a workspace")
    remove.add_argument("team", help="the team id")

    add_store_options((add, listing, remove), run)


def run(args: argparse.Namespace) -> int:
    settings = store_settings(args)
    try:
        if args.chatops_action == "add-slack":
            workspace = new_workspace(
                args.team,
                args.tenant,
                signing_secret=read_secret_file(args.signing_secret_file, "--signing-secret-file")
                if args.signing_secret_file else "",
                bot_token=read_secret_file(args.bot_token_file, "--bot-token-file") if args.bot_token_file else "",
                mattermost_token=read_secret_file(args.mattermost_token_file, "--mattermost-token-file")
                if args.mattermost_token_file else "",
                channels=args.channels,
                silencers=args.silencers,
            )
            workspace_source(settings).put(workspace)
            where = f"channels {', '.join(workspace.channels)}" if workspace.channels else "any channel"
            print(f"workspace {workspace.team} → tenant {workspace.tenant} ({where})")
        elif args.chatops_action == "list":
            records = workspace_source(settings).load()
            if args.json:
                for w in records:
                    print(orjson.dumps(w.public()).decode())
            elif not records:
                print("no workspaces: connect one with `flightlog chatops add-slack`")
            else:
                print(f"{'TEAM':<16} {'TENANT':<16} {'VIA':<10} {'UNFURLS':<8} CHANNELS")
                for w in records:
                    via = "slack" if w.signing_secret else "mattermost"
                    print(f"{w.team:<16} {w.tenant:<16} {via:<10} {'yes' if w.bot_token else 'no':<8} "
                          f"{','.join(w.channels) or 'any'}")
        else:
            removed = workspace_source(settings).remove(args.team)
            print(f"removed workspace {removed.team} (tenant {removed.tenant})")
    except WorkspaceProblem as exc:
        print(f"flightlog chatops: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the store or the file could not be reached
        print(f"flightlog chatops: {exc}", file=sys.stderr)
        return 1
    return 0
