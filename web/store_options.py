"""The options every admin command (`keys`, `hooks`, `chatops`) takes to find the store its
records live in: a data directory (embedded) or a ClickHouse server."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable

from flightlog.schema.settings import Settings, env_name


def add_store_options(parsers: Iterable[argparse.ArgumentParser], handler: Callable[[argparse.Namespace], int]) -> None:
    for sub in parsers:
        sub.add_argument("--data-dir", default=None, help=f"data directory (env {env_name('data_dir')})")
        sub.add_argument("--clickhouse-url", default=None, help=f"ClickHouse server (env {env_name('clickhouse_url')})")
        sub.set_defaults(handler=handler)


def store_settings(args: argparse.Namespace) -> Settings:
    """Settings from those options, the environment filling what they leave out."""
    return Settings.from_values({"data_dir": args.data_dir, "clickhouse_url": args.clickhouse_url})
