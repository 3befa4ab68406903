"""The search language: text → tree → parameterised SQL condition.

    service:api  host:web-1  build_id:b1  deploy_id:d1  trace_id:t  span_id:s  request_id:r
    attrs.http.status:500     a key of the attrs map (attrs.<key>:value)
    service:api*              a prefix;  service:*  the field is set (attrs.k:* — the key exists)
    level:>=warn              level at or above warn (also >, <=, <, =)
    -service:api  NOT x       negation of the next term or group (`-` right before a letter,
                              digit, _, " or ( ; `foo-bar` and `--x` are words)
    timeout                   a bare word: a token of the message, any case; timeo* a token prefix
    "connection refused"      a phrase: consecutive tokens of the message, any case
    a b   a AND b             both;   a OR b   either;   ( … )   grouping
    host:"web 1"              a quoted value; inside quotes \\" is a quote and \\\\ a backslash

AND binds tighter than OR (`a b OR c` is `(a b) OR c`). `OR`, `AND`, `NOT` are keywords only in
capitals; quote them to search for the word. Every value becomes a query parameter: the SQL text
is built only from the grammar, never from what the user typed. Errors carry the 1-based
position of the offending character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Union

from flightlog.schema.fields import ID_COLUMNS, LEVELS

FIELDS = ("service", "host", "level", "build_id", "deploy_id", "trace_id", "span_id", "request_id")
# Filters on these find a handful of lines anywhere in time (bloom-indexed ids).
ID_FIELDS = frozenset(ID_COLUMNS)
ATTRS_PREFIX = "attrs."
MAX_QUERY_CHARS = 10_000
MAX_DEPTH = 50

_TOKEN = re.compile(r"[A-Za-z0-9]+")  # ClickHouse's token characters: ASCII letters and digits
_FIELD_PREFIX = re.compile(r"([A-Za-z_][A-Za-z0-9_]*(?:\.[^\s:()\"]+)?):")
_COMPARISON = re.compile(r"(>=|<=|>|<|=)")
_KEYWORDS = frozenset({"OR", "AND", "NOT"})
_WORD_END = frozenset("()")


class QuerySyntaxError(ValueError):
    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.message = message
        self.position = position


# ---- the tree -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldMatch:
    """field op value. op: '=' | 'prefix' | 'exists' | '>=' | '>' | '<=' | '<' (level only)."""

    field: str  # one of FIELDS, or "attrs" with `key`
    op: str
    value: str
    position: int
    key: str | None = None


@dataclass(frozen=True)
class TextMatch:
    """Text the message must contain: a token, a token prefix, or a phrase of tokens."""

    text: str
    position: int
    quoted: bool = False
    prefix: bool = False


@dataclass(frozen=True)
class Not:
    node: Node
    position: int


@dataclass(frozen=True)
class And:
    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    nodes: tuple[Node, ...]


Node = Union[FieldMatch, TextMatch, Not, And, Or]  # noqa: UP007 (a runtime alias)


# ---- tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tok:
    kind: str  # "(" ")" "OR" "AND" "NOT" "-" "field" "text"
    position: int  # 1-based
    text: str = ""
    quoted: bool = False
    name: str = ""  # for "field": the field name; text is the value
    value_position: int = 0


def _tokens(q: str) -> list[_Tok]:
    out: list[_Tok] = []
    i, n = 0, len(q)
    while i < n:
        ch = q[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "()":
            out.append(_Tok(ch, i + 1))
            i += 1
            continue
        if ch == "-" and i + 1 < n and (q[i + 1].isalnum() or q[i + 1] in '_"('):
            out.append(_Tok("-", i + 1))
            i += 1
            continue
        start = i
        prefix = _FIELD_PREFIX.match(q, i)
        if prefix:
            name = prefix.group(1)
            i = prefix.end()
            if i >= n or q[i].isspace() or q[i] in _WORD_END:
                raise QuerySyntaxError(f"empty value for {name}:", i + 1)
            if q[i] == '"':
                value, i = _quoted(q, i)
                quoted = True
            else:
                value, i = _bare(q, i)
                quoted = False
            out.append(_Tok("field", start + 1, value, quoted, name, prefix.end() + 1))
            continue
        if ch == '"':
            value, i = _quoted(q, i)
            out.append(_Tok("text", start + 1, value, True))
            continue
        value, i = _bare(q, i)
        out.append(_Tok(value if value in _KEYWORDS else "text", start + 1, value))
    return out


def _bare(q: str, i: int) -> tuple[str, int]:
    start = i
    while i < len(q) and not q[i].isspace() and q[i] not in _WORD_END:
        if q[i] == '"':
            raise QuerySyntaxError("a quote inside a word; put a space before the quote or quote the whole word", i + 1)
        i += 1
    return q[start:i], i


def _quoted(q: str, i: int) -> tuple[str, int]:
    opening = i
    i += 1
    out: list[str] = []
    while i < len(q):
        ch = q[i]
        if ch == "\\" and i + 1 < len(q) and q[i + 1] in '"\\':
            out.append(q[i + 1])
            i += 2
            continue
        if ch == '"':
            i += 1
            if i < len(q) and not q[i].isspace() and q[i] not in _WORD_END:
                raise QuerySyntaxError("text right after a closing quote; separate terms with a space", i + 1)
            return "".join(out), i
        out.append(ch)
        i += 1
    raise QuerySyntaxError("unclosed quote", opening + 1)


# ---- the parser -----------------------------------------------------------------------------


class _Parser:
    def __init__(self, q: str) -> None:
        self.q = q
        self.toks = _tokens(q)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def end_position(self) -> int:
        return len(self.q) + 1

    def parse(self) -> Node | None:
        if not self.toks:
            return None
        node = self.parse_or()
        tok = self.peek()
        if tok is not None:  # only a stray ')' stops parse_or early
            raise QuerySyntaxError("a ')' without its '('", tok.position)
        return node

    def parse_or(self) -> Node | None:
        parts = [self.parse_and()]
        while (tok := self.peek()) is not None and tok.kind == "OR":
            self.i += 1
            nxt = self.peek()
            if nxt is None or nxt.kind in (")", "OR", "AND"):
                raise QuerySyntaxError("a term is missing after OR", nxt.position if nxt else self.end_position())
            parts.append(self.parse_and())
        kept = [p for p in parts if p is not None]
        if len(kept) < len(parts):
            return None if not kept else _or(kept)  # an OR with an empty side (`"" OR a`) is all lines
        return _or(kept)

    def parse_and(self) -> Node | None:
        items: list[Node] = []
        first = self.peek()
        if first is None or first.kind in (")", "OR", "AND"):
            where = first.position if first else self.end_position()
            raise QuerySyntaxError(f"a term is missing before {first.kind if first else 'the end'}", where)
        while (tok := self.peek()) is not None and tok.kind not in (")", "OR"):
            if tok.kind == "AND":
                self.i += 1
                nxt = self.peek()
                if nxt is None or nxt.kind in (")", "OR", "AND"):
                    raise QuerySyntaxError("a term is missing after AND", nxt.position if nxt else self.end_position())
                continue
            node = self.parse_unary()
            if node is not None:  # an empty phrase ("") constrains nothing
                items.append(node)
        if not items:
            return None
        return items[0] if len(items) == 1 else And(tuple(items))

    def parse_unary(self) -> Node | None:
        tok = self.peek()
        assert tok is not None
        if tok.kind in ("-", "NOT"):  # `-` only where a term begins: `foo-bar` is one word
            self.i += 1
            nxt = self.peek()
            if nxt is None or nxt.kind in (")", "OR", "AND"):
                raise QuerySyntaxError(f"nothing to negate after {tok.text or tok.kind}", tok.position)
            inner = self.parse_unary()
            if inner is None:
                raise QuerySyntaxError("nothing to negate", tok.position)
            return Not(inner, tok.position)
        return self.parse_primary()

    def parse_primary(self) -> Node | None:
        tok = self.peek()
        assert tok is not None
        self.i += 1
        if tok.kind == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise QuerySyntaxError(f"more than {MAX_DEPTH} nested parentheses", tok.position)
            nxt = self.peek()
            if nxt is not None and nxt.kind == ")":
                raise QuerySyntaxError("empty parentheses", tok.position)
            if nxt is None:
                raise QuerySyntaxError("a '(' without its ')'", tok.position)
            node = self.parse_or()
            close = self.peek()
            if close is None or close.kind != ")":
                raise QuerySyntaxError("a '(' without its ')'", tok.position)
            self.i += 1
            self.depth -= 1
            return node
        if tok.kind == "field":
            return _field(tok)
        if tok.kind == "text":
            if tok.quoted:
                return TextMatch(tok.text, tok.position, quoted=True) if tok.text.strip() else None
            if tok.text.endswith("*") and len(tok.text) > 1 and _TOKEN.search(tok.text[:-1]):
                return TextMatch(tok.text[:-1], tok.position, prefix=True)
            return TextMatch(tok.text, tok.position)
        raise QuerySyntaxError(f"unexpected {tok.kind}", tok.position)  # pragma: no cover


def _or(parts: list[Node]) -> Node:
    return parts[0] if len(parts) == 1 else Or(tuple(parts))


def _field(tok: _Tok) -> FieldMatch:
    name, value, at = tok.name, tok.text, tok.value_position
    key = None
    if name.startswith(ATTRS_PREFIX):
        key = name[len(ATTRS_PREFIX) :]
        name = "attrs"
    elif name not in FIELDS:
        raise QuerySyntaxError(
            f"unknown field {name!r} (known: {', '.join(FIELDS)}, attrs.<key>; quote the text to search for it)",
            tok.position,
        )
    if value == "":
        raise QuerySyntaxError(f"empty value for {tok.name}:", at)
    op = "="
    if not tok.quoted:
        comparison = _COMPARISON.match(value)
        if comparison:
            if name != "level":
                raise QuerySyntaxError(f"{tok.name}: compares only by equality; >= and friends are for level", at)
            op = comparison.group(1)
            value = value[comparison.end() :]
            at += comparison.end()
            if not value:
                raise QuerySyntaxError(f"a level is missing after {op}", at)
        elif value == "*":
            return FieldMatch(name, "exists", "", tok.position, key)
        elif value.endswith("*"):
            op, value = "prefix", value[:-1]
    if name == "level":
        if op == "prefix":
            value = value.lower()
        elif value.lower() not in LEVELS:
            raise QuerySyntaxError(f"level {value!r} is not one of {', '.join(LEVELS)}", at)
        else:
            value = value.lower()
    return FieldMatch(name, op, value, tok.position, key)


def parse(q: str) -> Node | None:
    """The tree for `q` (None when it constrains nothing); raises QuerySyntaxError."""
    if len(q) > MAX_QUERY_CHARS:
        raise QuerySyntaxError(f"longer than {MAX_QUERY_CHARS} characters", MAX_QUERY_CHARS + 1)
    return _Parser(q).parse()


# ---- facts about a tree ---------------------------------------------------------------------


def requires_id(node: Node | None) -> bool:
    """True when every line the query can match carries a given id (build_id:x, trace_id:y …):
    such a query finds a handful of lines anywhere in time, so it may search all retained time."""
    if isinstance(node, FieldMatch):
        return node.field in ID_FIELDS and node.op == "="
    if isinstance(node, And):
        return any(requires_id(n) for n in node.nodes)
    if isinstance(node, Or):
        return all(requires_id(n) for n in node.nodes)
    return False


# ---- SQL ------------------------------------------------------------------------------------


class _Params:
    def __init__(self, params: dict[str, Any], prefix: str) -> None:
        self.params = params
        self.prefix = prefix
        self.n = 0

    def add(self, value: Any, type_: str = "String") -> str:
        name = f"{self.prefix}p{self.n}"
        self.n += 1
        self.params[name] = value
        return "{" + name + ":" + type_ + "}"


def to_sql(node: Node | None, params: dict[str, Any], prefix: str = "q_") -> str:
    """A SQL boolean expression over `logs` columns for the tree; values go into `params`
    under names starting with `prefix` (so several queries can share one statement)."""
    if node is None:
        return "1"
    return _sql(node, _Params(params, prefix))


def _sql(node: Node, p: _Params) -> str:
    if isinstance(node, And):
        return "(" + " AND ".join(_sql(n, p) for n in node.nodes) + ")"
    if isinstance(node, Or):
        return "(" + " OR ".join(_sql(n, p) for n in node.nodes) + ")"
    if isinstance(node, Not):
        return f"NOT {_sql(node.node, p)}"
    if isinstance(node, FieldMatch):
        return _field_sql(node, p)
    return _text_sql(node, p)


def _field_sql(f: FieldMatch, p: _Params) -> str:
    if f.field == "attrs":
        key = p.add(f.key)
        if f.op == "exists":
            return f"mapContains(attrs, {key})"
        column = f"attrs[{key}]"
    else:
        column = f.field
        if f.op == "exists":
            return f"({column} != '')"
    if f.op == "=":
        return f"({column} = {p.add(f.value)})"
    if f.op == "prefix":
        return f"startsWith({column}, {p.add(f.value)})"
    # level comparisons: the set of levels on that side, so `level` stays a plain IN
    at = LEVELS.index(f.value)
    chosen = {
        ">=": LEVELS[at:],
        ">": LEVELS[at + 1 :],
        "<=": LEVELS[: at + 1],
        "<": LEVELS[:at],
    }[f.op]
    return f"(level IN {p.add(list(chosen), 'Array(String)')})"


def ascii_lower(text: str) -> str:
    # ClickHouse's lower() folds ASCII only; fold the needle the same way so they meet.
    return "".join(c.lower() if c.isascii() else c for c in text)


def _text_sql(term: TextMatch, p: _Params) -> str:
    text = term.text
    if _TOKEN.fullmatch(text) and not term.prefix:
        return f"hasToken(lower(message), {p.add(ascii_lower(text))})"
    # Every whole token inside the text is a token of the message (lets the token index skip
    # granules), and the text occurs with token boundaries at its ends (no right boundary for
    # a prefix). The last token of a prefix is partial, so it is not required whole.
    tokens = _TOKEN.findall(text)
    whole = tokens[:-1] if term.prefix and _TOKEN.match(text[-1]) else tokens
    conditions = [f"hasToken(lower(message), {p.add(t)})" for t in dict.fromkeys(ascii_lower(t) for t in whole)]
    left = "'(^|[^a-zA-Z0-9])'" if _TOKEN.match(text[0]) else "''"
    right = "'($|[^a-zA-Z0-9])'" if _TOKEN.match(text[-1]) and not term.prefix else "''"
    conditions.append(f"match(message, concat('(?i)', {left}, regexpQuoteMeta({p.add(text)}), {right}))")
    return conditions[0] if len(conditions) == 1 else "(" + " AND ".join(conditions) + ")"
