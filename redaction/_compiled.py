"""Rules compiled for one engine: name sets, RE2 gates, anchored pattern search.

``_RuleSet`` turns the rule objects of a config (plus a namespace's extra rules) into what
the engine looks things up in; ``_spans`` finds validated pattern hits in a text by trying
each regex only at its anchors; ``_gate`` builds the one RE2 search (``_Gate``) that tells
which of an entry's heads and JSON bodies could hold anything beyond its headers. Texts a
search found clean are remembered, the last one of each length (``seen``): the same text
again (a static page, the same heads) is known clean without a search; no other text is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, ClassVar

import re2

from redaction._rules import BUILTIN_PATTERNS, NameRule, PatternRule, Rule, normalize
from redaction._validators import VALIDATORS

_URL_HEADERS = frozenset({":path", "location", "referer", "contentlocation"})  # normalized

# Anchor map (same length as the text): digits, spaces, dashes and + → '0' (card numbers
# come in groups), capitals → 'A', the rest as is.
_SHAPE = bytearray(range(256))
for _c in b"0123456789 -+":
    _SHAPE[_c] = ord("0")
for _c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    _SHAPE[_c] = ord("A")
_SHAPE_TABLE = bytes(_SHAPE)
_LEFT_MAX = 64

FAST_KEYS = frozenset(
    {
        "method", "path", "query", "version", "host", "headers", "content_type", "body",
        "body_encoding", "body_size", "body_truncated", "status", "reason",
    }
)  # fmt: skip
"""The keys of an HTTP request/response map (as the HTTP/1 and HTTP/2 parsers make them)
that the engine's fast path knows; a message with any other key takes the full path."""
_FAST_FIELDS = frozenset(normalize(k) for k in FAST_KEYS)
FAST_PLAIN, FAST_RULE, FAST_AUTH, FAST_URL, FAST_NO = 0, 1, 2, 3, 4
_CLEAN_MAX = 8192
_CLEAN_LEN = 256  # (User-Agent, Accept-*: the repeated ones; memory at most ~2.5 MB)
_SEEN_MAX = 256
_SEEN_LEN = 8192  # (a static page, the heads of the same exchange: at most ~2 MB of
# characters, ~8 MB if all were 4-byte ones, per rule set; pairs of namespaces with the same
# rules share one)
_LEFT_RUNS: dict[str, re.Pattern[str]] = {}

_Link = tuple[Any, Any, str]  # (parent link, display key: str | int, normalized key or "")


class _RuleSet:
    """Rules compiled for lookup: name sets per kind and the active patterns."""

    __slots__ = (
        "headers",
        "query",
        "form",
        "fields",
        "json_names",
        "json_paths",
        "patterns",
        "keys",
        "hint_set",
        "hinted",
        "unhinted",
        "gate",
        "plain_headers",
        "body_set",
        "body_names",
        "header_kinds",
        "looks",
        "hinted_value",
        "fast",
        "fast_kinds",
        "clean_values",
        "seen_texts",
    )

    def __init__(self, rules: Iterable[Rule]) -> None:
        names: dict[str, set[str]] = {k: set() for k in ("header", "query", "form", "field")}
        json_names: set[str] = set()
        json_paths: dict[str, list[tuple[str, ...]]] = {}
        patterns: dict[str, PatternRule] = {}
        for rule in rules:
            if isinstance(rule, NameRule):
                if rule.kind == "json":
                    if len(rule.key) == 1:
                        json_names.add(rule.key[0])
                    else:
                        json_paths.setdefault(rule.key[-1], []).append(rule.key[:-1])
                else:
                    names[rule.kind].add(rule.key[0])
            else:
                patterns[rule.name] = rule
        self.headers = frozenset(names["header"])
        self.query = frozenset(names["query"])
        self.form = frozenset(names["form"])
        self.fields = frozenset(names["field"])
        self.json_names = frozenset(json_names)
        self.json_paths = {k: tuple(v) for k, v in json_paths.items()}
        self.patterns = tuple(patterns.values())
        # JSON key names whose absence from a body proves no key there is sensitive; a
        # name that holds another (accesstoken holds token) is left out
        words = sorted({*self.json_names, *self.json_paths}, key=len)
        minimal: list[str] = []
        for w in words:
            if not any(m in w for m in minimal):
                minimal.append(w)
        # every pattern's hint in one RE2 set: one linear pass tells which may hit
        self.hinted = tuple(p for p in self.patterns if p.hint)
        self.unhinted = tuple(p for p in self.patterns if not p.hint)
        self.hint_set: _AnyOf | None = (
            _AnyOf([p.hint for p in self.hinted]) if self.hinted else None
        )
        self.gate = _gate(self)
        # a replaced value in which a gate's hint is found: the echo check skips the texts
        # the gate found clean (the JWT's and the e-mail's hints: the usual echo values)
        echo_hints = [p.hint for p in self.hinted if p.name in ("jwt", "email")]
        self.hinted_value: re.Pattern[str] | None = (
            re.compile("|".join(echo_hints), re.ASCII) if echo_hints and self.gate else None
        )
        """Python-regex twin of the JWT and e-mail hints (both searched by the gate in
        heads and bodies alike)."""
        self.fast = self.gate is not None and not (self.fields & _FAST_FIELDS)
        """Whether HTTP-shaped messages may take the engine's fast path: every pattern
        has a hint and no field rule names one of their keys."""
        self.fast_kinds: dict[Any, int] = {}
        """Raw header name → ``fast_kind``'s answer (a bounded cache)."""
        self.clean_values: set[str] = set()
        """Head strings (header values, methods, hosts...) in which the fast path's search
        found nothing, so that a value seen again isn't searched again (bounded: cleared
        when full)."""
        self.seen_texts: dict[int, str] = {}
        """``maybe``'s texts in which no hint matched, the last one of each length (see
        ``_Gate.seen``)."""
        self.plain_headers: set[Any] = set()
        """Raw header names known to need no rule by name (a bounded cache)."""
        self.looks: dict[tuple[int, ...], tuple[tuple[PatternRule, ...], bool]] = {}
        """``body_look``'s answer per set of members found."""
        self.header_kinds: dict[Any, int] = {}
        """Raw header name → what it needs by name: 0 nothing, 1 its rule or URL query,
        2 an auth header's rule (``Authorization``: the scheme is kept); a bounded cache."""
        # a body's one look: every pattern hint, then the JSON key names as written
        self.body_set: _AnyOf | None = None
        self.body_names = len(self.hinted)
        if self.hinted or minimal:
            members = [p.hint for p in self.hinted]
            if minimal:
                members.append("(?i)" + "|".join(_flex(w) for w in minimal))
            self.body_set = _AnyOf(members)
        self.keys: dict[str, int] = {}
        """Raw JSON key → 0 (not sensitive), 1 (a sensitive name), 2 (the last segment of
        a dotted path): a cache, so that a key seen before costs one dict lookup."""

    def header_kind(self, name: Any) -> int:
        nk = normalize(name) if type(name) is str else ""
        if nk in self.headers:
            kind = 2 if nk in ("authorization", "proxyauthorization") else 1
        else:
            kind = 1 if nk in _URL_HEADERS else 0
        if len(self.header_kinds) < 4096:
            self.header_kinds[name] = kind
            if not kind:
                self.plain_headers.add(name)
        return kind

    def fast_kind(self, name: Any) -> int:
        """What a header needs by name on the fast path: ``FAST_PLAIN`` (nothing),
        ``FAST_RULE`` (its rule), ``FAST_AUTH`` (an auth header's rule, the scheme kept),
        ``FAST_URL`` (a URL header: its query, if any, is the full path's), ``FAST_NO``
        (a name that isn't a string: the full path)."""
        if type(name) is not str:
            return FAST_NO
        nk = normalize(name)
        if nk in self.headers:
            kind = FAST_AUTH if nk in ("authorization", "proxyauthorization") else FAST_RULE
        else:
            kind = FAST_URL if nk in _URL_HEADERS else FAST_PLAIN
        if len(self.fast_kinds) >= 4096:
            self.fast_kinds.clear()
        self.fast_kinds[name] = kind
        if kind == FAST_PLAIN and len(self.plain_headers) < 4096:
            self.plain_headers.add(name)  # (what ``Engine.apply`` tells the paths apart by)
        return kind

    def remember_clean(self, values: list[str]) -> None:
        """Add head strings the fast path's search found nothing in (those up to
        ``_CLEAN_LEN`` characters: at most ``_CLEAN_MAX`` of them are kept)."""
        clean = self.clean_values
        if len(clean) + len(values) > _CLEAN_MAX:
            clean.clear()
        for v in values:
            if len(v) <= _CLEAN_LEN:
                clean.add(v)

    def body_look(
        self, text: str, raw: bytes | None = None
    ) -> tuple[tuple[PatternRule, ...], bool]:
        """One pass over a body (``raw``: its UTF-8 bytes, if at hand): the patterns whose
        hint matches, and whether a sensitive JSON key name may be there."""
        if self.body_set is None:
            return self.unhinted, False
        if raw is None:
            raw = text.encode("utf-8", "surrogateescape")
        idx = self.body_set.Match(raw, likely=True)
        if not idx:
            return self.unhinted, False
        key = tuple(idx)
        look = self.looks.get(key)
        if look is None:
            hinted = self.hinted
            n = self.body_names
            maybe = tuple(hinted[i] for i in sorted(idx) if i < n) + self.unhinted
            look = self.looks[key] = (maybe, n in idx)  # (few: subsets of the members)
        return look

    def maybe(self, text: str) -> tuple[PatternRule, ...]:
        """The patterns whose hint matches somewhere in ``text`` (and those without one)."""
        if self.hint_set is None:
            return self.unhinted
        n = len(text)
        seen = self.seen_texts
        if seen.get(n) == text:
            return self.unhinted  # the same text as one the hints matched nowhere in
        idx = self.hint_set.Match(text.encode("utf-8", "surrogateescape"))
        if not idx:
            if n <= _SEEN_LEN:
                if len(seen) >= _SEEN_MAX:
                    seen.clear()
                seen[n] = text
            return self.unhinted
        hinted = self.hinted
        return tuple(hinted[i] for i in sorted(idx)) + self.unhinted

    def key_class(self, key: str) -> int:
        nk = normalize(key)
        c = 1 if nk in self.json_names else 2 if nk in self.json_paths else 0
        if len(self.keys) < 65536:  # bounded; past it, keys are classified each time
            self.keys[key] = c
        return c


def _spans(
    patterns: tuple[PatternRule, ...], text: str, hit: list[PatternRule] | None = None
) -> list[tuple[int, int]]:
    """Validated ``(start, end)`` spans of secrets in ``text``, sorted, not overlapping.

    Each pattern's regex is tried only at its anchors (found with ``str.find`` /
    ``bytes.find``, which run at C speed) instead of being searched through the text.
    """
    found: list[tuple[int, int]] = []
    shaped: bytes | None = None
    for p in patterns:
        matches: list[re.Match[str]] = []
        if p.anchors:
            for anchor in p.anchors:
                i = text.find(anchor)
                while i != -1:
                    start = i - p.back
                    if p.left:  # back over the characters the match may start with
                        run = _LEFT_RUNS.get(p.left)
                        if run is None:
                            run = _LEFT_RUNS[p.left] = re.compile(f"[{re.escape(p.left)}]*")
                        floor = max(0, i - _LEFT_MAX)
                        start -= run.match(text[floor:start][::-1]).end()  # type: ignore[union-attr]
                    if start >= 0:
                        m = p.regex.match(text, start)
                        if m is not None:
                            matches.append(m)
                    i = text.find(anchor, i + 1)
        elif p.shapes:
            if shaped is None:
                # one byte per character ('?' for non-ASCII), so indices line up with text
                shaped = text.encode("ascii", "replace").translate(_SHAPE_TABLE)
            starts = p.starts
            for x in p.shapes:
                shape = x.encode()
                i = shaped.find(shape)
                while i != -1:
                    if starts and not text.startswith(starts, i):
                        i = shaped.find(shape, i + 1)
                        continue
                    m = p.regex.match(text, i)
                    if m is not None:
                        matches.append(m)
                        i = shaped.find(shape, max(m.end(), i + 1))
                    else:
                        i = shaped.find(shape, i + 1)
        else:
            matches.extend(p.regex.finditer(text))
        if not matches:
            continue
        validate = VALIDATORS[p.validator]
        for m in matches:
            value = m.group(p.group)
            if not value:
                continue
            span = validate(value)
            if span is not None:
                base = m.start(p.group)
                found.append((base + span[0], base + span[1]))
                if hit is not None and (not hit or hit[-1] is not p):
                    hit.append(p)
    if len(found) > 1:
        found.sort()
        merged = [found[0]]
        for start, end in found[1:]:
            if start < merged[-1][1]:  # overlapping hits: one replacement covers both
                if end > merged[-1][1]:
                    merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        return merged
    return found


def _path_match(link: _Link, nk: str, rs: _RuleSet) -> bool:
    """Whether the keys leading to ``nk`` end with one of the dotted paths ending in ``nk``
    (list levels are transparent: ``items.card.number`` matches ``card.number``)."""
    for prefix in rs.json_paths[nk]:
        node: Any = link
        ok = True
        for want in reversed(prefix):
            while node is not None and not node[2]:
                node = node[0]  # skip list indices and the root
            if node is None or node[2] != want:
                ok = False
                break
            node = node[0]
        if ok:
            return True
    return False


def _display(link: _Link) -> str:
    parts: list[str] = []
    node: Any = link
    while node is not None:
        key = node[1]
        if node[0] is None:
            parts.append(str(key))
        elif isinstance(key, int):
            parts.append(f"[{key}]")
        else:
            parts.append(f".{key}")
        node = node[0]
    return "".join(reversed(parts))


def _flex(name: str) -> str:
    """RE2 for a normalized name as it may be written: any case, ``-``/``_`` anywhere."""
    return "[-_]*".join(re.escape(c) for c in name)


_UNANCHORED = re2._re2.RE2.Anchor.UNANCHORED
_NO_SPAN = (-1, -1)


class _AnyOf:
    """Which of some RE2 regexes match a text: one linear pass over the text for "none"
    (the usual answer), then each regex alone only when something matched.

    "None" comes from a plain RE2 search, never from an ``re2.Set`` alone: a set whose
    DFA runs out of memory answers "no match" without saying so (the Python binding drops
    the error), and a gate must never miss. A plain search falls back to another engine
    instead, so its answer is always right; the set then tells which members matched, and
    if it has nothing to say, each member is searched alone."""

    __slots__ = ("one", "set", "each")

    def __init__(self, members: list[str]) -> None:
        self.one = re2.compile("|".join(f"(?:{m})" for m in members))
        self.set = re2.Set.SearchSet(re2.Options())
        for m in members:
            self.set.Add(m)
        self.set.Compile()
        self.each = tuple(re2.compile(m) for m in members)

    def Match(self, data: bytes, likely: bool = False) -> list[int] | None:  # noqa: N802
        """The members that match (None: none). ``likely``: a match is expected (a gate
        found one), so the set is asked first and the plain search only if it says none."""
        if likely:
            found = self.set.Match(data)
            if found:
                return list(found)
        # the plain search, called below the wrapper (no generator, no match object)
        if self.one._regexp.Match(_UNANCHORED, data, 0, len(data))[0] == _NO_SPAN:
            return None
        found = [] if likely else self.set.Match(data)  # empty only if its DFA gave up
        if found:
            return list(found)
        return [i for i, r in enumerate(self.each) if r.search(data) is not None]


class _Gate:
    """What can't hold anything to replace, in one RE2 search per entry: the JSON encodings
    of the heads (each message without its body) and the text of the JSON bodies, each
    kind with its own members. Each text is put behind a mark of its kind (``\\x02`` head,
    ``\\x01`` body) and ended by a NUL; a member matches only between its kind's mark and
    the next NUL (``\\x02[^\\x00]*?(?:...)``), so the one DFA pass keeps the kinds apart.
    The search resumes after each text that matched, to tell which of them did."""

    __slots__ = (
        "regexp",
        "heads",
        "rest",
        "cards",
        "body",
        "fast",
        "names",
        "seen",
        "fast_body",
    )

    HEAD: ClassVar[bytes] = b"\x02"
    BODY: ClassVar[bytes] = b"\x01"

    def __init__(
        self,
        head: list[str],
        body: list[str],
        cards: PatternRule | None = None,
        hints: list[str] | None = None,
        names: str = "",
        marked_names: str = "",
    ) -> None:
        def alt(members: list[str]) -> str:
            return "|".join(f"(?:{m})" for m in members)

        # lazy: a match ends at the first member found, and so does the search
        self.regexp = re2.compile(
            rf"\x02[^\x00]*?(?:{alt(head)})|\x01[^\x00]*?(?:{alt(body)})"
        )._regexp
        self.heads: Any = re2.compile(alt(head))._regexp
        """The head members alone, over one JSON encoding of heads (no mark: it holds no
        NUL, no raw control character and only valid UTF-8, so this answers as
        ``regexp`` over ``\\x02 heads \\0`` does, without the copy)."""
        self.body: Any = re2.compile(alt(body))._regexp
        """The body members alone, searched over one JSON body's UTF-8 bytes (no mark)."""
        # the engine's fast path: head strings joined by line breaks (no JSON encoding)
        never = r"[^\x00-\x{10ffff}]"
        fast = [*(hints or []), *([names] if names else [])]
        self.fast: Any = re2.compile(alt(fast) if fast else never)._regexp
        """The patterns' hints and the sensitive query names (``names``)."""
        self.names: Any = re2.compile(names or never)._regexp
        """``names`` alone: a query parameter with a sensitive name."""
        # ``fast`` and ``body`` in one search (one call less: a call costs ~1 us, more than
        # the DFA over a few hundred bytes): ``\x02 heads \0 \x01 body \0``; the query
        # names' ``^`` is the head's mark there (``marked_names``)
        head_fast = [f"\\x02[^\\x00]*?(?:{alt(hints)})"] if hints else []
        if marked_names:
            head_fast.append(marked_names)
        self.fast_body: Any = re2.compile(
            alt([*head_fast, f"\\x01[^\\x00]*?(?:{alt(body)})"])
        )._regexp
        """``fast`` over a mark ``\\x02`` and the head strings, ``body`` over a mark
        ``\\x01`` and a JSON body (each ended by a NUL, none inside, valid UTF-8)."""
        # the head members but the card number's hint: a head only that hint flags (a hex
        # request id, a timestamp: a digit run) is checked for cards right away
        self.cards = cards
        self.seen: dict[int, bytes] = {}
        """Heads ``heads_clean`` found clean, the last one of each length (at most
        ``_SEEN_MAX`` lengths, each up to ``_SEEN_LEN`` bytes): the same bytes again (a
        static page's exchange, its heads the same until the ``Date`` header's second
        changes) are known clean with one lookup and one comparison, no search. Exact: only
        bytes equal to ones this gate's search found clean are taken for clean."""
        self.rest: Any = None
        if cards is not None:
            others = [m for m in head if m != cards.hint]
            self.rest = re2.compile(rf"\x02[^\x00]*?(?:{alt(others)})")._regexp

    def fast_and_body(self, data: bytes, raw: bytes) -> tuple[bool, bool]:
        """``(fast members nowhere in data, body members nowhere in raw)`` in one search
        (usually): ``data`` and ``raw`` hold no NUL and are valid UTF-8 (the marks'
        ``[^\\x00]*?`` neither crosses a NUL nor an invalid byte)."""
        buf = b"".join((b"\x02", data, b"\0\x01", raw, b"\0"))
        end = len(buf)
        at = self.fast_body.Match(_UNANCHORED, buf, 0, end)[0][0]
        if at < 0:
            return True, True  # the usual answer
        body_at = len(data) + 2
        if at >= body_at:
            return True, False
        # found in the head strings (or from a \x01 in them: a false alarm, never a miss)
        return False, self.fast_body.Match(_UNANCHORED, buf, body_at, end)[0][0] < 0

    def heads_clean(self, heads: bytes) -> bool:
        """Whether no head member matches in ``heads`` (JSON-encoded heads, an inline body
        in them) but in digit runs that are no card number (``no_card``)."""
        n = len(heads)
        seen = self.seen
        if seen.get(n) == heads:
            return True
        if self.heads.Match(_UNANCHORED, heads, 0, n)[0][0] >= 0:
            if not self.no_card(heads):
                return False
        if n <= _SEEN_LEN:
            if len(seen) >= _SEEN_MAX:
                seen.clear()
            seen[n] = heads
        return True

    def no_card(self, head: bytes) -> bool:
        """Whether a head the search flagged holds nothing but digit runs that no card
        number is found in: no other head member matches it, and the card pattern with
        its validator (as the full look runs it) finds nothing in its text. Runs in a
        head's JSON encoding are those of its strings and numbers (quotes, colons and
        commas bound them), but for ``\\uXXXX`` escapes: a head with one is not
        dismissed."""
        if self.rest is None or b"\\u" in head:
            return False
        if self.rest.Match(_UNANCHORED, b"\x02" + head + b"\0", 0, len(head) + 2)[0][0] >= 0:
            return False
        return not _spans((self.cards,), head.decode("utf-8", "replace"))  # type: ignore[arg-type]

    def which(self, pieces: list[bytes]) -> list[int]:
        """The texts a member of their kind matches in (their indices), given as
        ``[mark, text, b"\\0", mark, text, b"\\0", ...]``; no text may hold a NUL. The
        search resumes at the text after each one that matched: usually one RE2 call."""
        data = b"".join(pieces)
        end = len(data)
        match = self.regexp.Match
        start = match(_UNANCHORED, data, 0, end)[0][0]
        if start < 0:
            return []  # the usual answer
        found: list[int] = []
        bound = 0
        k = -1
        while start >= 0:
            while bound <= start:
                k += 1
                bound += len(pieces[3 * k + 1]) + 2
            found.append(k)
            if bound >= end:
                break
            start = match(_UNANCHORED, data, bound, end)[0][0]
        return found


def _gate(rs: _RuleSet) -> _Gate | None:
    """The one search over an entry's heads (their JSON encodings, headers already
    redacted by name) and its JSON bodies (their text) that matches wherever the rest of
    the engine could find something. None when some rule can't be gated (a custom
    pattern without a hint): then every entry takes the full path.

    In a head: a pattern's hint, a sensitive query/form/field name, a URL header with a
    query, and whatever hides content from those (percent-encoding, ``+``, backslash
    escapes, base64, multipart). In a JSON body: a pattern's hint, a sensitive key name as
    a key (``"Access-Token":``), and a backslash (escapes could hide either)."""
    if rs.unhinted:
        return None
    hints = [p.hint for p in rs.hinted]
    head = list(hints)
    keys = sorted({*rs.json_names, *rs.json_paths})
    if keys:  # \"password\": in a short JSON body searched inside its head's encoding
        head.append(  # (whitespace before the colon is escaped there too: \n, \t)
            r'(?i)\\"[-_]*(?:' + "|".join(_flex(n) for n in keys) + r')[-_]*\\"(?:\s|\\[nrt])*:'
        )
    params = sorted(rs.query | rs.form)
    if params:  # a=1&token=... in the query, a URL; around the name, whatever the
        # query's look drops (``str.strip``: whitespace, raw or JSON-escaped) or ignores
        # (``-``/``_``): ``?_token=``, ``& token =``
        space = r"(?:[-_ ]|\\[tnrbf]|\\u00[01][0-9A-Fa-f]|\x{85}|\p{Z})*"
        head.append(rf"(?i)[?&\"]{space}(?:" + "|".join(_flex(n) for n in params) + rf"){space}=")
    if rs.fields:  # "password": as a key of the request/response maps, at any depth
        head.append(r'(?i)"[-_]*(?:' + "|".join(_flex(n) for n in rs.fields) + ')[-_]*":')
    head += [
        r'(?i)"(?:location|referer|:path|content-location)":"[^"]*\?',
        r"%[0-9A-Fa-f]{2}",  # percent-encoded: decoded later
        r"\+",  # a space in a query or form ("Bearer+abc..."): decoded later
        r"\\\\",  # a backslash in the original text (JSON escapes)
        r'_encoding":"base64"',
        r"(?i)multipart/",
    ]
    body = list(hints)
    if keys:
        body.append(r'(?i)"[-_]*(?:' + "|".join(_flex(n) for n in keys) + r')[-_]*"\s*:')
    body.append(r"\\")
    # the fast path's query names over head strings joined by line breaks, as the
    # query's look finds them: after a text's start, a line break, ``?`` or ``&``
    names = marked_names = ""
    if rs.query:
        raw_space = r"(?:[-_\s\x0b\x1c-\x1f\x{85}]|\p{Z})*"
        core = rf"{raw_space}(?:" + "|".join(_flex(n) for n in rs.query) + rf"){raw_space}="
        names = rf"(?i)(?:^|[\n?&]){core}"
        marked_names = rf"(?i)\x02(?:[^\x00]*[\n?&])?{core}"
    card = BUILTIN_PATTERNS["card"]
    cards = card if any(p is card for p in rs.hinted) else None
    return _Gate(head, body, cards, hints, names, marked_names)
