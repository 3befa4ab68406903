"""`flightlog keys create|list|revoke`: manage API keys (docs/security.md says more).

    flightlog keys create --tenant acme --scope ingest --name ci-shipper
    flightlog keys list
    flightlog keys revoke 3f9a1c2b7d10

The key is printed once, by `create`; only its hash is stored. With the embedded store the keys
are a file in the data directory, so these commands work while `flightlog serve` is running
(the server picks the change up on its next request). With --clickhouse-url they go to the
server's api_keys table (servers re-read it every few seconds).
"""

from __future__ import annotations

import argparse
import sys

import orjson
from flightlog.schema.api_keys import SCOPES, KeyProblem, key_source, new_key
from flightlog.web.store_options import add_store_options, store_settings


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "keys",
        help="create, list and revoke API keys",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="keys_action", required=True)

    create = actions.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--tenant", required=True, help="the tenant every line sent with this key belongs to")
    create.add_argument("--scope", required=True, choices=SCOPES, help="ingest: send lines; read: query and UI; "
                        "alerts: read, and manage alert rules and silences; admin: all, for any tenant")
    create.add_argument("--name", default="", help="a name to recognise the key by")
    create.add_argument("--lines-per-second", type=int, default=0, help="this key's line rate limit (0: server default)")
    create.add_argument("--requests-per-second", type=int, default=0,
                        help="this key's request rate limit (0: server default)")

    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--json", action="store_true", help="one JSON object a line")
    listing.add_argument("--all", action="store_true", help="include revoked keys")

    revoke = actions.add_parser("revoke", help="revoke a key by id (or by name when unique)")
    revoke.add_argument("key", help="the key's id (from `keys list`) or name")

    add_store_options((create, listing, revoke), run)


def run(args: argparse.Namespace) -> int:
    settings = store_settings(args)
    try:
        source = key_source(settings)
        if args.keys_action == "create":
            record, text = new_key(args.tenant, args.scope, args.name, args.lines_per_second, args.requests_per_second)
            source.add(record)
            print(text)
            print(
                f"key {record.id} for tenant {record.tenant}, scope {record.scope}: shown once, only its hash is kept",
                file=sys.stderr,
            )
        elif args.keys_action == "list":
            records = [r for r in source.load() if args.all or r.active]
            if args.json:
                for r in records:
                    print(orjson.dumps(r.public()).decode())
            elif not records:
                print("no keys: the server runs open on loopback (create one with `flightlog keys create`)")
            else:
                print(f"{'ID':<13} {'TENANT':<16} {'SCOPE':<7} {'CREATED':<24} {'REVOKED':<24} NAME")
                for r in records:
                    print(f"{r.id:<13} {r.tenant:<16} {r.scope:<7} {r.created_at:<24} {r.revoked_at or '-':<24} {r.name}")
        else:
            record = source.revoke(args.key)
            print(f"revoked key {record.id} ({record.name or 'no name'}, tenant {record.tenant})")
    except KeyProblem as exc:
        print(f"flightlog keys: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the store or the key file could not be reached
        print(f"flightlog keys: {exc}", file=sys.stderr)
        return 1
    return 0
