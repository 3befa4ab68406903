"""Answers to chat commands: the same query functions the pages and the API call, turned into
Slack Block Kit by flightlog.query.slack_blocks (which escapes everything that came from logs
and keeps within Slack's limits).

Each function takes the store, the tenant the workspace maps to, what was asked, and the base
URL links point at; it returns a message (`{"text", "blocks"}`) and raises nothing the asker
did not cause: an unknown id or a bad query is an answer that says so (`Answer.problem`).
Everything here blocks on the store: the HTTP side runs it in the store's threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from flightlog.query import histogram, kinds, search, trails
from flightlog.query import slack_blocks as sb
from flightlog.query.chatops.commands import USAGE, Command
from flightlog.query.lines import Cursor
from flightlog.query.querylang import QuerySyntaxError
from flightlog.query.timefmt import NS_PER_S, format_ns, now_ns, parse_ns
from flightlog.schema.id_paths import id_segment
from flightlog.schema.refusal import Refusal
from flightlog.schema.store import Store

HOSTS_SHOWN = 20
NEWEST_SHOWN = 5
LINES_PER_PAGE = 20
TOP_MESSAGES = 3
MAX_LINE_CHARS = 400
MAX_SPARK_BUCKETS = 120
SPARKS = "▁▂▃▄▅▆▇█"
STATUS_EMOJI = {"ok": ":large_green_circle:", "success": ":large_green_circle:", "failed": ":red_circle:"}

# action_ids of the interactive buttons (flightlog.query.chatops.interactions answers them)
NEXT_LINES = "flightlog_next_lines"
FIRST_ERROR = "flightlog_first_error"
SILENCE = "flightlog_silence_1h"
LINK = "flightlog_link"  # a button that only opens a URL: Slack still reports the click


@dataclass
class Answer:
    """A message and whether it is a refusal the asker alone should see."""

    message: dict[str, Any]
    problem: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def problem(text: str) -> Answer:
    """An answer saying what was wrong with the question (escaped: it may quote the asker)."""
    return Answer(sb.message(text, [sb.section(f":warning: {sb.escape(text)}")]), problem=True)


# --- links --------------------------------------------------------------------------------------


def trail_url(base: str, kind: str, entity_id: str) -> str:
    return f"{base}/{kind}s/{id_segment(entity_id)}"


def line_url(base: str, kind: str, entity_id: str, ref: str) -> str:
    return f"{trail_url(base, kind, entity_id)}?{urlencode({'at': ref})}#L{ref}"


def search_url(base: str, query: str, window: str) -> str:
    return f"{base}/search?{urlencode({'q': query, 'from': window})}"


def _value(data: dict[str, Any]) -> str:
    """A button's value: compact JSON (Slack allows 2,000 characters)."""
    return orjson.dumps(data).decode()[:2000]


def _action(text: str, action_id: str, data: dict[str, Any], style: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "button", "text": sb.plain(text, sb.MAX_BUTTON_TEXT), "action_id": action_id,
                               "value": _value(data)}
    if style in ("primary", "danger"):
        element["style"] = style
    return element


def line_text(line: dict[str, Any]) -> str:
    """One log line as a row of text: time, level, service/host, message (clipped)."""
    text = f"{line['ts'][11:23]} {line['level']:<5} {line['service']}/{line['host']} {line['message']}"
    return text if len(text) <= MAX_LINE_CHARS else text[: MAX_LINE_CHARS - 1] + sb.ELLIPSIS


def _context(tenant: str, *more: str) -> dict[str, Any]:
    return sb.context([f"flightlog · tenant {sb.escape(tenant)}", *more])


# --- help ---------------------------------------------------------------------------------------


def help_answer(command_name: str = "/flightlog") -> Answer:
    rows = "\n".join(f"`{command_name} {sb.escape(usage)}`  {sb.escape(what)}" for usage, what in USAGE)
    blocks = [
        sb.section("*Ask flightlog from here*\n" + rows),
        sb.context(["Add `-q` to see the answer alone; without it the channel sees it too."]),
    ]
    return Answer(sb.message("flightlog commands", blocks))


# --- build / deploy -----------------------------------------------------------------------------


def first_error(store: Store, tenant: str, kind: str, entity_id: str) -> dict[str, Any] | None:
    found = trails.trail(store, tenant, kind, entity_id, limit=1, levels=("error", "fatal"))
    return found["lines"][0] if found["lines"] else None


def _span(first_ts: str, last_ts: str) -> str:
    seconds = (parse_ns(last_ts) - parse_ns(first_ts)) / NS_PER_S
    length = f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"
    return f"{first_ts[:19].replace('T', ' ')} → {last_ts[11:19]} UTC ({length})"


def trail_answer(store: Store, tenant: str, kind: str, entity_id: str, base: str, *, compact: bool = False) -> Answer:
    """`build <id>` / `deploy <id>`: status, span, services, hosts (gone marked), levels, first
    error, and buttons to the trail and the first error. `compact`: the shorter unfurl."""
    try:
        summ = trails.summary(store, tenant, kind, entity_id)
    except Refusal as exc:
        if exc.status == 404:
            return problem(f"No {kind} {entity_id} in tenant {tenant}: no line carries that id.")
        raise
    err = first_error(store, tenant, kind, entity_id)
    status = summ["status"]
    title = f"{kind.capitalize()} {entity_id} · {status}"
    levels = ", ".join(f"{lv} {n}" for lv, n in summ["levels"].items()) or "none"
    fields = [
        ("Status", status),
        ("Span", _span(summ["first_ts"], summ["last_ts"])),
        ("Lines", f"{summ['lines']} ({levels})"),
        ("Services", ", ".join(summ["services"])),
    ]
    other = kinds.KINDS[kind].other_key
    if summ.get(other):
        fields.append((other.capitalize(), ", ".join(summ[other][:10]) + (" …" if len(summ[other]) > 10 else "")))
    lead = f"{STATUS_EMOJI.get(status, ':white_circle:')} *{sb.escape(kind.capitalize())} {sb.escape(entity_id)}* " \
           f"is *{sb.escape(status)}*"
    blocks: list[dict[str, Any]] = [sb.header(title), sb.section(lead, fields)]
    hosts = summ["hosts"]
    if hosts and not compact:
        rows = []
        for h in hosts[:HOSTS_SHOWN]:
            mark = " :ghost: _gone_" if h["gone"] else ""
            errors = f", {h['errors']} errors" if h["errors"] else ""
            rows.append(f"• `{sb.escape(h['host'])}` {sb.escape(h['service'])}: {h['lines']} lines{errors}{mark}")
        rows = sb.fit_rows(rows, len(hosts), "hosts", sb.MAX_SECTION_CHARS - 100)
        gone = f", {summ['gone_hosts']} gone" if summ["gone_hosts"] else ""
        blocks.append(sb.section(f"*Hosts* ({summ['host_count']}{gone})\n" + "\n".join(rows)))
    buttons = [sb.button("Open the trail", trail_url(base, kind, entity_id), style="primary", action_id=LINK + "_trail")]
    if err is not None:
        blocks.append(sb.section("*First error*"))
        blocks.append(sb.code_lines([line_text(err)]))
        buttons.append(sb.button("Go to the first error", line_url(base, kind, entity_id, err["ref"]),
                                 action_id=LINK + "_error"))
    else:
        blocks.append(sb.section("_No error or fatal line._"))
    if not compact:
        buttons.append(_action("Next 20 lines", NEXT_LINES, {"k": kind, "id": entity_id, "c": None}))
        if err is not None:
            buttons.append(_action("Show first error", FIRST_ERROR, {"k": kind, "id": entity_id}))
    blocks.append(sb.actions(buttons))
    blocks.append(_context(tenant))
    return Answer(sb.message(f"{title}: {summ['lines']} lines, {levels}", blocks))


def next_lines_answer(store: Store, tenant: str, kind: str, entity_id: str, cursor: str | None, base: str) -> Answer:
    """The next LINES_PER_PAGE lines of a trail after `cursor`, with a button for the ones after."""
    try:
        page = trails.trail(store, tenant, kind, entity_id, limit=LINES_PER_PAGE,
                            cursor=Cursor.decode(cursor) if cursor else None)
    except Refusal as exc:
        return problem(exc.message)
    lines = page["lines"]
    where = "the first" if not cursor else "the next"
    blocks: list[dict[str, Any]] = [
        sb.section(f"*{sb.escape(kind.capitalize())} {sb.escape(entity_id)}*: {where} {len(lines)} lines"),
    ]
    if lines:
        blocks.append(sb.code_lines([line_text(line) for line in lines]))
    else:
        blocks.append(sb.section("_No more lines._"))
    buttons = [sb.button("Open the trail", trail_url(base, kind, entity_id), action_id=LINK + "_trail")]
    if page["next_cursor"]:
        buttons.append(_action("Next 20 lines", NEXT_LINES, {"k": kind, "id": entity_id, "c": page["next_cursor"]}))
    blocks.append(sb.actions(buttons))
    blocks.append(_context(tenant))
    return Answer(sb.message(f"{kind} {entity_id}: {len(lines)} lines", blocks))


def first_error_answer(store: Store, tenant: str, kind: str, entity_id: str, base: str) -> Answer:
    try:
        err = first_error(store, tenant, kind, entity_id)
    except Refusal as exc:
        return problem(exc.message)
    if err is None:
        return problem(f"{kind.capitalize()} {entity_id} has no error or fatal line.")
    blocks = [
        sb.section(f"*First error of {sb.escape(kind)} {sb.escape(entity_id)}* on `{sb.escape(err['host'])}` "
                   f"({sb.escape(err['service'])}) at {sb.escape(err['ts'])}"),
        sb.code_lines([err["message"]]),
        sb.actions([sb.button("Open it in the trail", line_url(base, kind, entity_id, err["ref"]),
                              action_id=LINK + "_error")]),
        _context(tenant),
    ]
    return Answer(sb.message(f"first error of {kind} {entity_id}", blocks))


# --- search -------------------------------------------------------------------------------------


def sparkline(counts: Sequence[int]) -> str:
    top = max(counts, default=0)
    if top == 0:
        return SPARKS[0] * len(counts)
    return "".join(SPARKS[min(len(SPARKS) - 1, (n * (len(SPARKS) - 1) + top - 1) // top)] if n else SPARKS[0]
                   for n in counts)


def search_answer(store: Store, tenant: str, query: str, window: str, window_s: int, base: str,
                  now: int | None = None) -> Answer:
    """`search <query> [window]`: count, a per-minute sparkline, the newest lines, a link."""
    try:
        parsed = search.parse_query(query)
    except QuerySyntaxError as exc:
        return problem(f"The query does not parse: {exc}")
    until = now_ns() if now is None else now
    since = until - window_s * NS_PER_S
    buckets = min(MAX_SPARK_BUCKETS, max(1, window_s // 60))
    hist = histogram.histogram(store, tenant, parsed, since_ns=since, until_ns=until, buckets=buckets)
    newest = search.search(store, tenant, parsed, since_ns=since, until_ns=until, limit=NEWEST_SHOWN)
    total = hist["total"]
    step = hist["step_seconds"]
    per = "minute" if step == 60 else f"{step / 60:g} minutes" if step > 60 else f"{step:g} seconds"
    spark = sparkline([b["total"] for b in hist["buckets"]])
    url = search_url(base, query, window)
    blocks: list[dict[str, Any]] = [
        sb.section(f":mag: *{total}* lines match `{sb.escape(query)}` in the last {sb.escape(window)}",
                   [("Lines", str(total)), ("Peak", f"{hist['max']} per {per}")]),
        sb.section(f"`{spark}`\none mark per {per}, {format_ns(since)[11:16]} → {format_ns(until)[11:16]} UTC"),
    ]
    if newest["lines"]:
        blocks.append(sb.section(f"*Newest {len(newest['lines'])}*"))
        blocks.append(sb.code_lines([line_text(line) for line in newest["lines"]]))
    blocks.append(sb.actions([sb.button("Open the search", url, style="primary", action_id=LINK + "_search")]))
    blocks.append(_context(tenant))
    return Answer(sb.message(f"{total} lines match {query} in the last {window}", blocks))


# --- errors -------------------------------------------------------------------------------------


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def top_messages(store: Store, tenant: str, parsed: search.ParsedQuery, since: int, until: int, limit: int
                 ) -> dict[str, Any]:
    """→ {total, values: [{value, count}]}: how many lines match, and their `limit` commonest
    messages (the facet sidebar's shape; message is no facet field, being free text)."""
    params: dict[str, Any] = {"n": limit}
    where = search.match_condition(tenant, parsed, since, until, params)
    if not limit:
        total = store.query(f"SELECT count() FROM logs WHERE {where}", params).rows[0][0]
        return {"total": int(total), "values": []}
    result = store.query(
        f"SELECT message, n, sum(n) OVER () FROM (SELECT message, count() AS n FROM logs WHERE {where} "
        "GROUP BY message) ORDER BY n DESC, message LIMIT {n:UInt32}",
        params,
    )
    return {"total": int(result.rows[0][2]) if result.rows else 0,
            "values": [{"value": m, "count": int(n)} for m, n, _ in result.rows]}


def errors_answer(store: Store, tenant: str, service: str, window: str, window_s: int, base: str,
                  now: int | None = None) -> Answer:
    """`errors <service> [window]`: error and fatal lines now against the window before, and the
    three commonest messages now."""
    query = f"service:{_quoted(service)} level:>=error"
    parsed = search.parse_query(query)
    until = now_ns() if now is None else now
    since = until - window_s * NS_PER_S
    current = top_messages(store, tenant, parsed, since, until, TOP_MESSAGES)
    before = top_messages(store, tenant, parsed, since - window_s * NS_PER_S, since, 0)
    now_n, then_n = current["total"], before["total"]
    if then_n:
        change = f"{(now_n - then_n) / then_n * 100:+.0f}%"
    else:
        change = "new" if now_n else "none before either"
    arrow = ":arrow_upper_right:" if now_n > then_n else ":arrow_lower_right:" if now_n < then_n else ":left_right_arrow:"
    blocks: list[dict[str, Any]] = [
        sb.section(f"{arrow} *{now_n}* errors from `{sb.escape(service)}` in the last {sb.escape(window)}",
                   [("Now", str(now_n)), (f"The {window} before", str(then_n)), ("Change", change)]),
    ]
    if current["values"]:
        rows = [f"{v['count']}× {v['value']}" for v in current["values"]]
        blocks.append(sb.section(f"*Top {len(rows)} messages*"))
        blocks.append(sb.code_lines(rows))
    blocks.append(sb.actions([sb.button("Open these errors", search_url(base, query, window), style="primary",
                                        action_id=LINK + "_search")]))
    blocks.append(_context(tenant))
    return Answer(sb.message(f"{now_n} errors from {service} in the last {window} ({then_n} before)", blocks))


# --- alerts -------------------------------------------------------------------------------------


def alerts_answer(tenant: str, firing: Sequence[dict[str, Any]], base: str) -> Answer:
    """`alerts`: the groups firing now (as /api/v1/alerts lists them), each with a link and a
    button to silence it for an hour."""
    if not firing:
        blocks = [sb.section(":large_green_circle: Nothing is firing."), _context(tenant)]
        return Answer(sb.message("nothing is firing", blocks))
    blocks: list[dict[str, Any]] = [sb.header(f"{len(firing)} alerts firing")]
    for alert in firing:
        labels = ", ".join(f"{k}={v}" for k, v in alert["labels"].items())
        text = f":red_circle: *{sb.escape(alert['rule'])}*" + (f" · {sb.escape(labels)}" if labels else "")
        text += f"\nvalue {alert['value']:g} since {sb.escape(alert['since'])}"
        blocks.append(sb.section(text))
        blocks.append(sb.actions([
            sb.button("Open the rule", f"{base}/alerts/rules/{quote(alert['rule'], safe='')}", action_id=LINK + "_rule"),
            _action("Silence for 1 h", SILENCE, {"rule": alert["rule"], "m": alert["labels"]}, style="danger"),
        ]))
    blocks.append(_context(tenant))
    return Answer(sb.message(f"{len(firing)} alerts firing", blocks))


# --- dispatch -----------------------------------------------------------------------------------


def answer(store: Store, tenant: str, command: Command, base: str, firing: Sequence[dict[str, Any]] = (),
           command_name: str = "/flightlog") -> Answer:
    """The answer to a parsed command (`alerts` answers from `firing`, gathered by the caller)."""
    if command.name in ("build", "deploy"):
        return trail_answer(store, tenant, command.name, command.arg, base)
    if command.name == "search":
        return search_answer(store, tenant, command.arg, command.window, command.window_s, base)
    if command.name == "errors":
        return errors_answer(store, tenant, command.arg, command.window, command.window_s, base)
    if command.name == "alerts":
        return alerts_answer(tenant, firing, base)
    return help_answer(command_name)
