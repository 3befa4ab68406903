"""Alert rules as pydantic models: what a rule is, and the one place that says when it is wrong.

A rule is validated whole when it arrives (API body, UI form, rules file), so a bad rule is
refused with the field path and the reason (`rules.0.window: …`) instead of failing later in
the scheduler. Search queries are parsed with the search page's own parser; annotation
templates are compiled in Jinja2's sandbox. SQL is checked by the console's guard when it first
runs (preview, evaluation): the guard needs the engine.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import jinja2
import orjson
import yaml
from flightlog.query.querylang import FIELDS, QuerySyntaxError
from flightlog.query.search import parse_query
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

KINDS = ("search", "sql", "build", "deploy")
MAX_GROUP_BY = 8
MAX_CHANNELS = 10
_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.:/-]{0,119}$")
# Prometheus label names: what Alertmanager and /metrics accept.
LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONDITION = re.compile(r"^\s*(count|value)\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")
OPERATORS = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}

_SANDBOX = ImmutableSandboxedEnvironment(autoescape=False, undefined=jinja2.ChainableUndefined)


class RuleError(ValueError):
    """A rule (or rules file) is invalid; `errors` lists each problem with its field path."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e['field']}: {e['reason']}" for e in errors) or "invalid rule")


def duration_seconds(text: str) -> int:
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 2h or 1d")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _duration(text: str) -> str:
    duration_seconds(text)
    return text


Duration = Annotated[str, AfterValidator(_duration)]


class Condition(BaseModel):
    metric: str
    op: str
    threshold: float

    def holds(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.threshold)

    def __str__(self) -> str:
        threshold = int(self.threshold) if self.threshold.is_integer() else self.threshold
        return f"{self.metric} {self.op} {threshold}"


def parse_condition(text: str) -> Condition:
    match = _CONDITION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a condition like `count > 20` or `value >= 0.5`")
    return Condition(metric=match.group(1), op=match.group(2), threshold=float(match.group(3)))


class Channel(BaseModel):
    """Where a rule's notifications go besides Alertmanager. The URL and secret are write-only."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["slack", "webhook", "apprise"]
    url: str = Field(min_length=1, max_length=2000)
    secret: str = Field("", max_length=500, description="HMAC-SHA256 key of the webhook signature header")

    @model_validator(mode="after")
    def _check_url(self) -> Channel:
        if self.type in ("slack", "webhook"):
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"a {self.type} channel needs an http(s) URL")
        if self.secret and self.type != "webhook":
            raise ValueError("only a webhook channel signs its body with a secret")
        return self

    @property
    def key(self) -> str:
        """A stable id of the destination (for its queue and metrics), not revealing the URL."""
        return self.type + ":" + hashlib.sha256(self.url.encode()).hexdigest()[:12]

    def public(self) -> dict[str, Any]:
        """What the API and the UI show: never the URL or the secret."""
        if self.type == "apprise":
            target = self.url.split(":", 1)[0]  # the service (discord, mailto …), not its tokens
        else:
            target = urlsplit(self.url).hostname or ""
        return {"type": self.type, "id": self.key, "target": target, "signed": bool(self.secret)}


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    kind: Literal["search", "sql", "build", "deploy"] = "search"
    query: str = Field("", max_length=100_000)
    window: Duration = "5m"
    condition: str = "count > 0"
    group_by: list[str] = Field(default_factory=list, max_length=MAX_GROUP_BY)
    for_: Duration = Field("0s", alias="for")
    interval: Duration = "1m"
    repeat_interval: Duration = "4h"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    channels: list[Channel] = Field(default_factory=list, max_length=MAX_CHANNELS)
    # deploy rules: also fire when a deploy's error rate in its first `deploy_minutes` is more
    # than `deploy_factor` times the rate of its services in the minutes before it
    deploy_minutes: int = Field(10, ge=1, le=1440)
    deploy_factor: float = Field(0.0, ge=0)
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("1 to 120 letters, digits, spaces or _ . : / -, starting with a letter or digit")
        return value

    @field_validator("interval")
    @classmethod
    def _check_interval(cls, value: str) -> str:
        if duration_seconds(value) < 5:
            raise ValueError("an interval shorter than 5s would only load the store")
        return value

    @field_validator("window")
    @classmethod
    def _check_window(cls, value: str) -> str:
        if not 1 <= duration_seconds(value) <= 31 * 86400:
            raise ValueError("a window between 1s and 31d")
        return value

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not LABEL_NAME.match(name) or name.startswith("__"):
                raise ValueError(f"label name {name!r} must be letters, digits and _ (not starting with a digit or __)")
        return value

    @field_validator("annotations")
    @classmethod
    def _check_templates(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not LABEL_NAME.match(name):
                raise ValueError(f"annotation name {name!r} must be letters, digits and _")
            try:
                _SANDBOX.from_string(text)
            except jinja2.TemplateSyntaxError as exc:
                raise ValueError(f"annotation {name}: template error on line {exc.lineno}: {exc.message}") from None
        return value

    @model_validator(mode="after")
    def _check_kind(self) -> Rule:
        condition = self.parsed_condition()  # raises with the reason
        if self.kind == "search":
            try:
                parse_query(self.query)
            except QuerySyntaxError as exc:
                raise ValueError(f"query: {exc}") from None
            if condition.metric != "count":
                raise ValueError("condition: a search rule compares `count`")
            for field in self.group_by:
                if field not in FIELDS and not (field.startswith("attrs.") and len(field) > 6):
                    raise ValueError(f"group_by: {field!r} is not one of {', '.join(FIELDS)} or attrs.<key>")
        elif self.kind == "sql":
            if not self.query.strip():
                raise ValueError("query: a sql rule needs one SELECT returning a `value` column")
            if condition.metric != "value":
                raise ValueError("condition: a sql rule compares `value` (the query's value column)")
            if self.group_by:
                raise ValueError("group_by: a sql rule groups by its own label columns")
        else:
            if self.query:
                try:
                    parse_query(self.query)
                except QuerySyntaxError as exc:
                    raise ValueError(f"query: {exc}") from None
        if len(set(self.group_by)) != len(self.group_by):
            raise ValueError("group_by: a field is listed twice")
        return self

    @field_validator("condition")
    @classmethod
    def _check_condition(cls, value: str) -> str:
        parse_condition(value)
        return value

    def parsed_condition(self) -> Condition:
        return parse_condition(self.condition)

    @property
    def interval_s(self) -> int:
        return duration_seconds(self.interval)

    @property
    def window_s(self) -> int:
        return duration_seconds(self.window)

    @property
    def for_s(self) -> int:
        return duration_seconds(self.for_)

    @property
    def repeat_s(self) -> int:
        return duration_seconds(self.repeat_interval)

    def stored(self) -> str:
        """The rule as JSON for the alert_rules table (secrets included: the table is ours)."""
        return self.model_dump_json(by_alias=True)

    def public(self) -> dict[str, Any]:
        """The rule as the API shows it: channels without their URLs or secrets."""
        data = self.model_dump(by_alias=True, exclude={"channels"})
        data["channels"] = [c.public() for c in self.channels]
        return data


def label_name(field: str) -> str:
    """A group_by field as a Prometheus label name (`attrs.http.status` → `attrs_http_status`)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", field)
    return name if LABEL_NAME.match(name) else "_" + name


def fingerprint(labels: dict[str, str]) -> str:
    """The identity of one alert group: a hash of its labels, order-independent."""
    return hashlib.sha256(orjson.dumps(labels, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def render_template(text: str, context: dict[str, Any]) -> str:
    """An annotation rendered in the sandbox; a runtime error becomes the annotation's text."""
    try:
        return _SANDBOX.from_string(text).render(**context)
    except Exception as exc:  # a template is user input; its failure must not stop the alert
        return f"(template error: {exc})"


def validation_errors(exc: ValidationError, prefix: tuple[Any, ...] = ()) -> list[dict[str, str]]:
    out = []
    for error in exc.errors(include_url=False):
        path = ".".join(str(p) for p in (*prefix, *error["loc"]))
        reason = error["msg"]
        reason = reason.removeprefix("Value error, ")
        out.append({"field": path or "(rule)", "reason": reason})
    return out


def parse_rule(data: Any) -> Rule:
    """A rule from a decoded JSON/YAML object; raises RuleError naming each bad field."""
    if not isinstance(data, dict):
        raise RuleError([{"field": "(rule)", "reason": "a rule is an object with at least name and query"}])
    try:
        return Rule.model_validate(data)
    except ValidationError as exc:
        raise RuleError(validation_errors(exc)) from None


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str = "default"
    rules: list[Rule] = Field(default_factory=list)


def parse_rules_file(text: str) -> RulesFile:
    """The `--rules FILE` YAML: `tenant:` (default `default`) and a list of `rules:`."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(file)"
        raise RuleError([{"field": where, "reason": f"not YAML: {getattr(exc, 'problem', exc)}"}]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RuleError([{"field": "(file)", "reason": "a rules file is a mapping with a `rules:` list"}])
    try:
        parsed = RulesFile.model_validate(data)
    except ValidationError as exc:
        raise RuleError(validation_errors(exc)) from None
    names = [r.name for r in parsed.rules]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise RuleError([{"field": f"rules.{i}.name", "reason": f"{name!r} is already the name of another rule"}])
    return parsed
