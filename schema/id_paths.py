"""Build and deploy ids as one URL path segment, whatever they contain.

An id is stored as the client sent it: `{`, `}`, `/`, `%`, spaces, unicode and all. In a URL
it is one percent-encoded segment (`/builds/a%2Fb`), and routes match any segment
(`ID_PATTERN`; aiohttp's default refuses `{` and `}`). Two ids cannot be a segment as they
are: "." and ".." are dot segments, which browsers and HTTP clients resolve away, even
percent-encoded. They, and any id made of one or two dots and then tildes, get one more
tilde in the URL, which `id_from_segment` takes off again.
"""

from __future__ import annotations

import re
from urllib.parse import quote

ID_PATTERN = r"[^/]+"
_DOTS = re.compile(r"\.{1,2}~*")


def id_segment(entity_id: str) -> str:
    """The path segment that names `entity_id`, percent-encoded."""
    text = str(entity_id)
    if _DOTS.fullmatch(text):
        text += "~"
    return quote(text, safe="")


def id_from_segment(segment: str) -> str:
    """The id a (decoded) path segment names: `id_segment` undone."""
    if _DOTS.fullmatch(segment) and segment.endswith("~"):
        return segment[:-1]
    return segment
