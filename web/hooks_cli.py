"""`flightlog hooks add-github|add-gitlab|list|revoke`: webhook secrets, one tenant each.

    openssl rand -hex 32 > github-secret
    flightlog hooks add-github --tenant acme --secret-file github-secret
    flightlog hooks add-gitlab --tenant acme --secret-file gitlab-token
    flightlog hooks list
    flightlog hooks revoke 3f9a1c2b7d10

Put the same secret in the GitHub webhook's "Secret" field (payload URL
https://<flightlog>/hooks/github, content type application/json) or the GitLab webhook's
"Secret token" (URL https://<flightlog>/hooks/gitlab). The secret is read from a file (or
stdin with `--secret-file -`) so it never appears in a process list or a shell history.
Where secrets live: flightlog.schema.hook_secrets (a file in the data directory, or the
server's hook_secrets table with --clickhouse-url); a running server picks a change up itself.
"""

from __future__ import annotations

import argparse
import sys

import orjson
from flightlog.schema.api_keys import KeyProblem
from flightlog.schema.hook_secrets import hook_source, new_hook_secret
from flightlog.web.store_options import add_store_options, store_settings


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "hooks",
        help="add, list and revoke CI webhook secrets (GitHub, GitLab)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="hooks_action", required=True)
    adders = []
    for provider in ("github", "gitlab"):
        add = actions.add_parser(f"add-{provider}", help=f"register a {provider} webhook secret for a tenant")
        add.add_argument("--tenant", required=True, help="the tenant whose builds and deploys these events are")
        add.add_argument("--secret-file", required=True, help="file holding the secret (`-`: stdin)")
        add.add_argument("--name", default="", help="a name to recognise it by")
        add.set_defaults(provider=provider)
        adders.append(add)
    listing = actions.add_parser("list", help="list webhook secrets (never the secrets themselves)")
    listing.add_argument("--json", action="store_true", help="one JSON object a line")
    listing.add_argument("--all", action="store_true", help="include revoked ones")
    revoke = actions.add_parser("revoke", help="revoke a webhook secret by id")
    revoke.add_argument("id", help="its id (from `hooks list`)")
    add_store_options((*adders, listing, revoke), run)


def _read_secret(path: str) -> str:
    if path == "-":
        return sys.stdin.read().strip()
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def run(args: argparse.Namespace) -> int:
    settings = store_settings(args)
    try:
        source = hook_source(settings)
        if args.hooks_action.startswith("add-"):
            try:
                secret = _read_secret(args.secret_file)
            except OSError as exc:
                print(f"flightlog hooks: cannot read {args.secret_file}: {exc.strerror or exc}", file=sys.stderr)
                return 2
            record = new_hook_secret(args.tenant, args.provider, secret, args.name)
            source.add(record)
            print(f"{args.provider} webhook secret {record.id} for tenant {record.tenant} added; "
                  f"point the webhook at /hooks/{args.provider}")
        elif args.hooks_action == "list":
            records = [r for r in source.load() if args.all or r.active]
            if args.json:
                for r in records:
                    print(orjson.dumps(r.public()).decode())
            elif not records:
                print("no webhook secrets: /hooks/github and /hooks/gitlab refuse every delivery")
            else:
                print(f"{'ID':<13} {'PROVIDER':<9} {'TENANT':<16} {'CREATED':<24} {'REVOKED':<24} NAME")
                for r in records:
                    print(f"{r.id:<13} {r.provider:<9} {r.tenant:<16} {r.created_at:<24} {r.revoked_at or '-':<24} {r.name}")
        else:
            record = source.revoke(args.id)
            print(f"revoked {record.provider} webhook secret {record.id} (tenant {record.tenant})")
    except KeyProblem as exc:
        print(f"flightlog hooks: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the store or the file could not be reached
        print(f"flightlog hooks: {exc}", file=sys.stderr)
        return 1
    return 0
