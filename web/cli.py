"""The `flightlog` command: `serve` (every role), `ingest` and `query` (one role each)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import signal
import sys
from collections.abc import Iterable, Sequence

from aiohttp import web
from flightlog.schema.settings import SETTINGS, Settings, env_name, flag
from flightlog.schema.store import StoreError

ROLES = {
    "serve": ({"ingest", "query"}, "run ingest, query and the web UI in one process (embedded store by default)"),
    "ingest": ({"ingest"}, "run the ingest role only (scale-out: needs --clickhouse-url)"),
    "query": ({"query"}, "run the query API and web UI only (scale-out: needs --clickhouse-url)"),
}


def installed_version() -> str:
    """The version pip installed (pyproject.toml's), or "unknown" when run from a bare checkout."""
    try:
        return importlib.metadata.version("flightlog")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flightlog", description="Log aggregation and correlation server.")
    parser.add_argument("--version", action="version", version=f"flightlog {installed_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in ROLES.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_setting_flags(sub)
    for register in _extra_commands():
        register(commands)
    return parser


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    for setting in SETTINGS:
        option = "--" + setting.name.replace("_", "-")
        # argparse formats help with %: a literal one ("90% of RAM") must be doubled
        text = setting.help.replace("%", "%%")
        if setting.type is flag:  # an on/off switch: `--insecure`, no value
            parser.add_argument(option, dest=setting.name, action="store_const", const=True, default=None,
                                help=f"{text} (env {env_name(setting.name)}=1)")
            continue
        parser.add_argument(
            option,
            dest=setting.name,
            type=setting.type,
            default=None,
            help=f"{text} (default {setting.default!r}; env {env_name(setting.name)})",
        )


def _extra_commands() -> Iterable:
    """Subcommands other parts contribute (send, keys …), each a `register(subparsers)`."""
    registers = []
    for module_name in ("flightlog.ingest.send_cli", "flightlog.web.api_keys_cli", "flightlog.web.hooks_cli",
                        "flightlog.web.chatops_cli"):
        try:
            module = __import__(module_name, fromlist=["register"])
        except ModuleNotFoundError:
            continue
        registers.append(module.register)
    return registers


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is not None:
        return handler(args)
    roles, _ = ROLES[args.command]
    try:
        settings = Settings.from_values(vars(args))
    except ValueError as exc:  # SettingsError, or a FLIGHTLOG_* variable of the wrong type
        print(f"flightlog {args.command}: {exc}", file=sys.stderr)
        return 2
    if args.command != "serve" and not settings.clickhouse_url:
        print(f"flightlog {args.command}: the single-role command needs --clickhouse-url "
              "(the embedded store belongs to one process: use `flightlog serve`)", file=sys.stderr)
        return 2
    refusal = open_server_refusal(settings) or rules_refusal(settings, args.command)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    try:
        _install_uvloop()
        asyncio.run(run_server(settings, roles))
    except StoreError as exc:
        print(f"flightlog: cannot open the store: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"flightlog: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def open_server_refusal(settings: Settings) -> str | None:
    """Why the server must not start (no keys, not on loopback, no --insecure), or None."""
    from flightlog.web.auth import is_loopback

    if settings.insecure or is_loopback(settings.host):
        return None
    if settings.clickhouse_url:
        return None  # keys live in the server's table; checked once the store is open (run_server)
    from flightlog.schema.api_keys import KeyFile

    if KeyFile(settings.data_dir).load():
        return None
    return (
        f"flightlog: refusing to listen on {settings.host} with no API keys: anyone who can reach it could read "
        "and write every line.\n  Create a key first:  flightlog keys create --tenant <name> --scope admin\n"
        "  or bind to 127.0.0.1, or pass --insecure to run open on purpose."
    )


def rules_refusal(settings: Settings, command: str) -> str | None:
    """Why the --rules file cannot be used (each bad field named), or None."""
    from flightlog.query.alerts.api import check_alertmanager_url, load_file_rules
    from flightlog.query.alerts.rules import RuleError

    if command == "ingest":
        return None  # the evaluator runs with the query role
    try:
        load_file_rules(settings)
        if settings.alertmanager_url:
            check_alertmanager_url(settings.alertmanager_url)
    except RuleError as exc:
        where = f"--rules {settings.rules}" if settings.rules else "--alertmanager-url"
        return f"flightlog {command}: {where}: " + "\n  ".join(f"{e['field']}: {e['reason']}" for e in exc.errors)
    return None


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency everywhere but Windows
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def run_server(settings: Settings, roles: set[str]) -> None:
    from flightlog.web.server import create_app

    app = create_app(settings, roles)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=10)
    await runner.setup()
    try:
        from flightlog.web.auth import AUTH

        auth = app[AUTH]
        if auth.running_open and not auth.open_allowed:
            raise StoreError(f"refusing to listen on {settings.host}: the api_keys table holds no keys "
                             "(create one with `flightlog keys create`, or pass --insecure)")
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(banner(settings, roles, site), flush=True)
        await stop.wait()
        print("flightlog: shutting down: flushing buffered lines and closing the store", flush=True)
    finally:
        # Stops accepting, lets running handlers finish, then runs the cleanups: the batcher
        # flushes, the store closes.
        await runner.cleanup()


def banner(settings: Settings, roles: set[str], site: web.TCPSite) -> str:
    host = settings.host if settings.host not in ("0.0.0.0", "::") else "127.0.0.1"
    port = site._server.sockets[0].getsockname()[1] if site._server and site._server.sockets else settings.port
    store = settings.clickhouse_url.split("@")[-1] if settings.clickhouse_url else f"embedded chDB at {settings.data_dir}"
    lines = [f"flightlog {'+'.join(sorted(roles))} ready on {store}"]
    if "query" in roles:
        lines.append(f"  UI:     http://{host}:{port}/")
        lines.append(f"  alerts: http://{host}:{port}/alerts" + (f" ({settings.rules})" if settings.rules else ""))
    if "ingest" in roles:
        lines.append(f"  ingest: POST http://{host}:{port}/api/v1/logs")
    lines.append(auth_line(site))
    return "\n".join(lines)


def auth_line(site: web.TCPSite) -> str:
    from flightlog.web.auth import AUTH

    auth = site._runner.app.get(AUTH)
    if auth is None:
        return "  auth:   unknown"
    if auth.running_open:
        where = "on loopback" if not auth.settings.insecure else "--insecure"
        return (f"  auth:   OPEN ({where}): no API keys, anyone who can connect reads and writes every line; "
                "`flightlog keys create` turns keys on")
    return f"  auth:   API keys required ({auth.ring.active_count} active)"


if __name__ == "__main__":
    sys.exit(main())
