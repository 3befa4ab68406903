"""What a build or a deploy is to the query service: its id column, whether a tenant has one,
and the service/host/level filters of its lines. Shared by trails and correlate (which
trails calls for an expanded trail), so neither imports the other."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flightlog.schema.refusal import Refusal
from flightlog.schema.store import Store


@dataclass(frozen=True)
class Kind:
    name: str  # "build"
    column: str  # the logs column holding its id: "build_id"
    other_column: str  # the id it correlates with: "deploy_id"
    other_key: str  # where a summary lists those: "deploys"


KINDS: dict[str, Kind] = {
    "build": Kind("build", "build_id", "deploy_id", "deploys"),
    "deploy": Kind("deploy", "deploy_id", "build_id", "builds"),
}


def kind_of(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown kind {name!r}; choose from {sorted(KINDS)}") from None


def _not_found(k: Kind, entity_id: str) -> Refusal:
    return Refusal(404, f"no {k.name} {entity_id!r}: no line carries {k.column}={entity_id}")


def exists(store: Store, tenant: str, kind: str, entity_id: str) -> bool:
    k = kind_of(kind)
    result = store.query(
        "SELECT 1 FROM trail_lines WHERE tenant = {tenant:String} AND kind = {kind:String} "
        "AND id = {id:String} LIMIT 1",
        {"tenant": tenant, "kind": k.name, "id": entity_id},
    )
    return bool(result.rows)


def line_filters(
    params: dict[str, Any], services: Sequence[str] = (), hosts: Sequence[str] = (), levels: Sequence[str] = ()
) -> str:
    return _in_filter("service", services, params) + _in_filter("host", hosts, params) + _in_filter(
        "level", levels, params
    )


def _in_filter(column: str, values: Sequence[str], params: dict[str, Any]) -> str:
    if not values:
        return ""
    params[f"f_{column}"] = list(values)
    return f" AND {column} IN {{f_{column}:Array(String)}}"
