"""CEL text -> our AST: cel-python's Lark parser gives the tree with positions; this
module resolves fields, folds constants, checks types and enforces the limits."""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import lark
from celpy.celparser import CELParser
from celpy.evaluation import celbytes, celstr

from hub.query import ast as a
from hub.query import typecheck as tc
from hub.query.catalog import (
    BOOL,
    BYTES,
    DOUBLE,
    DYN,
    FUNCTIONS,
    INT,
    LIST,
    MACROS,
    MAP,
    STRING,
    resolve_field,
)
from hub.query.errors import QueryError
from hub.query.regex import check_pattern

__all__ = ["MAX_DEPTH", "MAX_LIST", "MAX_NODES", "MAX_TEXT", "parse_query"]

MAX_TEXT = 4096
"""Longest query, in characters."""
MAX_DEPTH = 32
"""Deepest nesting of sub-expressions."""
MAX_NODES = 1000
"""Most syntax nodes in one query."""
MAX_LIST = 256
"""Most items in a list literal."""
MAX_REGEXES = 16
"""Most ``matches()`` calls in one query."""

_Tree = lark.Tree[Any]
NULL = "null"
_ORDER_DOMAINS = {"string", "number", "timestamp"}
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_REL = {
    "relation_eq": "==",
    "relation_ne": "!=",
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_in": "in",
}
_PASS = {
    "expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication",
    "unary", "member", "primary",
}  # fmt: skip
_STR_METHODS = ("startsWith", "endsWith", "contains", "matches")


@dataclass
class _Ref:
    """An identifier path not yet resolved: ``src.labels["app"]``."""

    parts: list[tuple[str | int, bool, int]]  # (name or key, is_index, position)
    pos: int


@dataclass
class _ListLit:
    items: list[a.Const]
    pos: int


@dataclass
class _Parser:
    text: str
    nodes: int = 0
    regexes: int = 0

    # -- entry ----------------------------------------------------------------------

    def run(self) -> a.Predicate:
        CELParser()  # loads the grammar once per process
        lark_parser = CELParser.CEL_PARSER
        assert lark_parser is not None
        try:
            tree = lark_parser.parse(self.text)
        except lark.exceptions.UnexpectedToken as exc:
            tok = exc.token
            if tok.type == "$END":
                raise QueryError(
                    "unexpected end of query", len(self.text), _expected(exc.expected)
                ) from None
            raise QueryError(
                f"unexpected {tok.value!r}", _tok_pos(tok, self.text), _expected(exc.expected)
            ) from None
        except lark.exceptions.UnexpectedCharacters as exc:
            at = int(exc.pos_in_stream or 0)
            ch = self.text[at : at + 1]
            raise QueryError(f"unexpected character {ch!r}", at) from None
        except lark.exceptions.LarkError as exc:  # pragma: no cover - other syntax errors
            raise QueryError(f"syntax error: {exc}", 0) from None
        return self.pred(self.visit(tree, 0))

    # -- tree walking ---------------------------------------------------------------

    def visit(self, tree: _Tree, depth: int) -> Any:
        while tree.data in _PASS and len(tree.children) == 1:
            child = tree.children[0]
            if not isinstance(child, lark.Tree):  # pragma: no cover - grammar guarantees
                break
            tree = child
        pos = _pos(tree)
        if depth > MAX_DEPTH:
            raise QueryError(f"expression nested too deeply (limit {MAX_DEPTH})", pos)
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise QueryError(f"expression too large (limit {MAX_NODES} nodes)", pos)
        handler = getattr(self, "v_" + tree.data, None)
        if handler is None:
            raise QueryError(f"{tree.data.replace('_', ' ')} is not supported", pos)
        return handler(tree, depth + 1)

    def v_expr(self, tree: _Tree, depth: int) -> Any:
        raise QueryError(
            "the conditional operator ?: is not supported", _pos(tree), "use && and ||"
        )

    def _chain(self, tree: _Tree, kind: str, depth: int) -> list[a.Predicate]:
        items: list[_Tree] = []
        node = tree
        while node.data == kind and len(node.children) == 2:
            items.append(node.children[1])
            node = node.children[0]
        items.append(node)
        return [self.pred(self.visit(t, depth)) for t in reversed(items)]

    def v_conditionalor(self, tree: _Tree, depth: int) -> a.Predicate:
        return a.Or(tuple(self._chain(tree, "conditionalor", depth)), _pos(tree))

    def v_conditionaland(self, tree: _Tree, depth: int) -> a.Predicate:
        return a.And(tuple(self._chain(tree, "conditionaland", depth)), _pos(tree))

    def v_relation(self, tree: _Tree, depth: int) -> Any:
        op_tree, right_tree = tree.children
        op = _REL[op_tree.data]
        left = self.visit(op_tree.children[0], depth)
        right = self.visit(right_tree, depth)
        pos = _pos(right_tree)
        if pos == 0:  # true/false literals carry no position (celpy's lexer callback)
            after = self.text.find(op, getattr(op_tree.children[0].meta, "end_pos", 0) or 0)
            pos = after + len(op) if after >= 0 else 0
            while pos < len(self.text) and self.text[pos].isspace():
                pos += 1
        if op == "in":
            return self.membership(left, right, pos)
        return self.compare(op, left, right, pos)

    def _arith(self, tree: _Tree, kind: str, depth: int) -> Any:
        ops: list[tuple[str, _Tree]] = []
        node = tree
        while node.data == kind and len(node.children) == 2:
            op_tree = node.children[0]
            ops.append((op_tree.data.rsplit("_", 1)[1], node.children[1]))
            node = op_tree.children[0]
        acc = self.operand(self.visit(node, depth))
        for op, right_tree in reversed(ops):
            right = self.operand(self.visit(right_tree, depth))
            acc = tc.fold(op, acc, right, _pos(right_tree))
        return acc

    def v_addition(self, tree: _Tree, depth: int) -> Any:
        return self._arith(tree, "addition", depth)

    def v_multiplication(self, tree: _Tree, depth: int) -> Any:
        return self._arith(tree, "multiplication", depth)

    def v_unary(self, tree: _Tree, depth: int) -> Any:
        op_tree, arg_tree = tree.children
        arg = self.visit(arg_tree, depth)
        if op_tree.data == "unary_not":
            inner = self.pred(arg)
            if isinstance(inner, a.BoolConst):
                return a.BoolConst(not inner.value, _pos(tree))
            return a.Not(inner, _pos(tree))
        return tc.fold("neg", self.operand(arg), None, _pos(tree))

    def _member(self, tree: _Tree, depth: int) -> _Ref:
        """A chain of ``.name`` and ``[key]`` over an identifier, walked iteratively."""
        steps: list[_Tree] = []
        node = tree
        while True:
            while node.data in ("member", "primary") and len(node.children) == 1:
                node = node.children[0]
            if node.data in ("member_dot", "member_index"):
                steps.append(node)
                node = node.children[0]
                continue
            break
        base = self.visit(node, depth)
        if not isinstance(base, _Ref):
            raise QueryError("only fields have members", _pos(node))
        parts = list(base.parts)
        for step in reversed(steps):
            if step.data == "member_dot":
                name = step.children[1]
                parts.append((str(name), False, _tok_pos(name, self.text)))
            else:
                key = self.operand(self.visit(step.children[1], depth))
                if not isinstance(key, a.Const) or key.type not in (STRING, INT):
                    raise QueryError(
                        "a key must be a string or integer literal", _pos(step.children[1])
                    )
                parts.append((key.value, True, key.pos))
        return _Ref(parts, base.pos)

    def v_member_dot(self, tree: _Tree, depth: int) -> _Ref:
        return self._member(tree, depth)

    def v_member_index(self, tree: _Tree, depth: int) -> _Ref:
        return self._member(tree, depth)

    def v_member_dot_arg(self, tree: _Tree, depth: int) -> Any:
        receiver = self.visit(tree.children[0], depth)
        name_tok = tree.children[1]
        args = self._args(tree.children[2] if len(tree.children) > 2 else None, depth)
        return self.call(str(name_tok), receiver, args, _tok_pos(name_tok, self.text))

    def v_ident_arg(self, tree: _Tree, depth: int) -> Any:
        name_tok = tree.children[0]
        args = self._args(tree.children[1] if len(tree.children) > 1 else None, depth)
        return self.call(str(name_tok), None, args, _tok_pos(name_tok, self.text))

    def _args(self, exprlist: Any, depth: int) -> list[tuple[Any, int]]:
        if exprlist is None:
            return []
        return [(self.visit(t, depth), _pos(t)) for t in exprlist.children]

    def v_ident(self, tree: _Tree, depth: int) -> _Ref:
        tok = tree.children[0]
        return _Ref([(str(tok), False, _tok_pos(tok, self.text))], _pos(tree))

    def v_paren_expr(self, tree: _Tree, depth: int) -> Any:
        return self.visit(tree.children[0], depth)

    def v_list_lit(self, tree: _Tree, depth: int) -> _ListLit:
        items: list[a.Const] = []
        if tree.children:
            exprs = tree.children[0].children
            if len(exprs) > MAX_LIST:
                raise QueryError(f"list too long ({len(exprs)} > {MAX_LIST} items)", _pos(tree))
            for t in exprs:
                item = self.operand(self.visit(t, depth))
                if not isinstance(item, a.Const):
                    raise QueryError("list items must be literals", _pos(t))
                items.append(item)
        return _ListLit(items, _pos(tree))

    def v_map_lit(self, tree: _Tree, depth: int) -> Any:
        raise QueryError("map literals are not supported", _pos(tree))

    def v_member_object(self, tree: _Tree, depth: int) -> Any:
        raise QueryError("message construction is not supported", _pos(tree))

    def v_literal(self, tree: _Tree, depth: int) -> a.Const:
        tok = tree.children[0]
        assert isinstance(tok, lark.Token)
        pos = _tok_pos(tok, self.text)
        kind, text = tok.type, str(tok)
        try:
            if kind in ("INT_LIT", "UINT_LIT"):
                value = int(text.rstrip("uU"), 0)
                tc.check_int(value, pos)
                return a.Const(value, INT, pos)
            if kind == "FLOAT_LIT":
                f = float(text)
                if not math.isfinite(f):
                    raise QueryError("number out of range", pos)
                return a.Const(f, DOUBLE, pos)
            if kind in ("STRING_LIT", "MLSTRING_LIT"):
                s = str(celstr(tok))
                s.encode("utf-8")  # lone surrogates from \u escapes
                return a.Const(s, STRING, pos)
            if kind == "BYTES_LIT":
                return a.Const(bytes(celbytes(tok)), BYTES, pos)
            if kind == "BOOL_LIT":
                return a.Const(text == "true", BOOL, pos)
            if kind == "NULL_LIT":
                return a.Const(None, NULL, pos)
        except (ValueError, UnicodeError, OverflowError) as exc:
            raise QueryError(f"invalid literal {text[:40]!r}: {exc}", pos) from None
        raise QueryError(f"unsupported literal {text[:40]!r}", pos)  # pragma: no cover

    # -- values and predicates ------------------------------------------------------

    def field(self, ref: _Ref) -> a.Field:
        if len(ref.parts) > 10:
            raise QueryError("field path too deep (limit 10 parts)", ref.pos)
        names: list[str] = []
        for value, is_index, _ in ref.parts:
            if is_index:
                break
            names.append(str(value))
        spec, rest = resolve_field(names, ref.pos)
        keys: list[tuple[str | int, int]] = [(n, ref.pos) for n in rest]
        keys += [(v, p) for v, _, p in ref.parts[len(names) :]]
        typ = spec.type
        out: list[str | int] = []
        for key, pos in keys:
            if typ == MAP:
                if not isinstance(key, str):
                    raise QueryError(f"{spec.name} keys are strings", pos)
                if spec.name.endswith(".headers"):
                    key = key.lower()
                typ = STRING
            elif spec.json and typ in (DYN, LIST):
                typ = DYN
            else:
                raise QueryError(f"{spec.name} is a {typ}; it has no member {key!r}", pos)
            if isinstance(key, int) and key < 0:
                raise QueryError("negative index", pos)
            out.append(key)
        if len(out) > 8:
            raise QueryError("field path too deep", ref.pos)
        return a.Field(spec, tuple(out), typ, ref.pos)

    def operand(self, x: Any) -> a.Operand:
        if isinstance(x, _Ref):
            if len(x.parts) == 1 and x.parts[0][0] in MACROS:
                raise QueryError(
                    f'{x.parts[0][0]!r} is a condition (proto == "{x.parts[0][0]}"), not a value',
                    x.pos,
                )
            return self.field(x)
        if isinstance(x, a.Field | a.Size | a.Const | a.NowOffset):
            return x
        if isinstance(x, _ListLit):
            raise QueryError("a list is only allowed on the right of 'in'", x.pos)
        raise QueryError("a condition is not a value here", _node_pos(x))

    def pred(self, x: Any) -> a.Predicate:
        if isinstance(x, _Ref) and len(x.parts) == 1 and x.parts[0][0] in MACROS:
            name = str(x.parts[0][0])
            proto = self.field(_Ref([("proto", False, x.pos)], x.pos))
            return a.Compare("==", proto, a.Const(name, STRING, x.pos), "string", x.pos)
        if isinstance(x, _Ref):
            x = self.field(x)
        if isinstance(x, a.Field):
            if x.type in (BOOL, DYN):
                return a.Truth(x, x.pos)
            raise QueryError(
                f"{x.spec.name} is a {x.type}, not a condition",
                x.pos,
                "compare it: ==, !=, <, in [...], startsWith(...)",
            )
        if isinstance(x, a.Const):
            if x.type == BOOL:
                return a.BoolConst(bool(x.value), x.pos)
            raise QueryError(f"a {x.type} literal is not a condition", x.pos)
        if isinstance(x, a.Size | a.NowOffset | _ListLit):
            raise QueryError("not a condition", _node_pos(x))
        return x  # type: ignore[no-any-return]

    def compare(self, op: str, left: Any, right: Any, pos: int) -> a.Predicate:
        lhs, rhs = self.operand(left), self.operand(right)
        if isinstance(lhs, a.Const | a.NowOffset) and not isinstance(rhs, a.Const | a.NowOffset):
            lhs, rhs, op = rhs, lhs, _FLIP[op]
        if isinstance(rhs, a.Const) and rhs.type == NULL:
            if op not in ("==", "!="):
                raise QueryError("null only compares with == or !=", pos)
            if not isinstance(lhs, a.Field):
                raise QueryError("only fields compare with null", pos)
            exists = a.Exists(lhs, pos)
            return exists if op == "!=" else a.Not(exists, pos)
        if isinstance(lhs, a.Const | a.NowOffset):
            return a.BoolConst(tc.const_compare(op, lhs, rhs, pos), pos)
        domain = tc.domain(lhs, rhs, pos)
        if op not in ("==", "!=") and domain not in _ORDER_DOMAINS:
            raise QueryError(f"{op} does not apply to {domain} values", pos, "use == or !=")
        return a.Compare(op, lhs, tc.convert(rhs, domain), domain, pos)

    def membership(self, left: Any, right: Any, pos: int) -> a.Predicate:
        lhs = self.operand(left)
        if isinstance(right, _ListLit):
            if isinstance(lhs, a.NowOffset):
                raise QueryError("now() in a list is not supported", pos)
            if not right.items:
                return a.BoolConst(False, pos)
            if isinstance(lhs, a.Const):
                return a.BoolConst(
                    any(tc.const_compare("==", lhs, it, it.pos) for it in right.items), pos
                )
            domains = {tc.domain(lhs, it, it.pos) for it in right.items}
            if len(domains) != 1:
                raise QueryError("list items must all have one type", pos)
            domain = domains.pop()
            values = tuple(tc.convert(it, domain).value for it in right.items)  # type: ignore[union-attr]
            return a.InList(lhs, values, domain, pos)
        rhs = self.operand(right)
        if not isinstance(rhs, a.Field):
            raise QueryError("'in' needs a list literal, a map or a list field on its right", pos)
        if rhs.type not in (MAP, LIST, DYN):
            raise QueryError(
                f"{rhs.spec.name} is a {rhs.type}; 'in' needs a list or a map", rhs.pos
            )
        if not (isinstance(lhs, a.Const) and lhs.type == STRING):
            raise QueryError(
                f"'in' {rhs.spec.name} needs a string literal on its left", _node_pos(lhs)
            )
        key = str(lhs.value)
        if rhs.type == MAP:
            if rhs.spec.name.endswith(".headers"):
                key = key.lower()
            return a.HasKey(rhs, key, pos)
        if rhs.type == LIST:
            return a.ListHas(rhs, key, pos)
        # dyn: a JSON object (key) or list (item), decided per entry
        return a.Or((a.HasKey(rhs, key, pos), a.ListHas(rhs, key, pos)), pos)

    def call(self, name: str, receiver: Any, args: list[tuple[Any, int]], pos: int) -> Any:
        if receiver is not None and name in _STR_METHODS:
            return self.str_test(name, receiver, args, pos)
        if receiver is None and name == "matches" and len(args) == 2:
            return self.str_test(name, args[0][0], args[1:], pos)
        if name == "size":
            if receiver is not None:
                args = [(receiver, pos), *args]
            if len(args) != 1:
                raise QueryError("size() takes one argument", pos)
            target = self.operand(args[0][0])
            if isinstance(target, a.Const):
                if target.type not in (STRING, BYTES):
                    raise QueryError(f"size() of a {target.type}", pos)
                return a.Const(len(target.value), INT, pos)
            if not isinstance(target, a.Field) or target.type not in (
                STRING,
                BYTES,
                MAP,
                LIST,
                DYN,
            ):
                raise QueryError("size() needs a string, body, list or map field", pos)
            return a.Size(target, pos)
        if receiver is not None:
            raise QueryError(f"unknown method {name!r}", pos, _suggest_fn(name))
        if name == "has":
            if len(args) != 1 or not isinstance(args[0][0], _Ref):
                raise QueryError("has() takes one field", pos)
            return a.Exists(self.field(args[0][0]), pos)
        if name == "now":
            if args:
                raise QueryError("now() takes no argument", pos)
            return a.NowOffset(timedelta(0), pos)
        if name in ("duration", "timestamp"):
            if len(args) != 1:
                raise QueryError(f"{name}() takes one string", pos)
            arg = self.operand(args[0][0])
            if not isinstance(arg, a.Const) or arg.type != STRING:
                raise QueryError(f"{name}() takes a string literal", args[0][1])
            return tc.time_literal(name, arg.value, args[0][1])
        raise QueryError(f"unknown function {name!r}", pos, _suggest_fn(name))

    def str_test(self, name: str, receiver: Any, args: list[tuple[Any, int]], pos: int) -> Any:
        if len(args) != 1:
            raise QueryError(f"{name}() takes one argument", pos)
        target = self.operand(receiver)
        arg = self.operand(args[0][0])
        arg_pos = args[0][1]
        if not isinstance(arg, a.Const) or arg.type not in (STRING, BYTES):
            raise QueryError(f"{name}() takes a string literal", arg_pos)
        if name == "matches":
            if arg.type != STRING:
                raise QueryError("matches() takes a string pattern", arg_pos)
            self.regexes += 1
            if self.regexes > MAX_REGEXES:
                raise QueryError(f"too many matches() (limit {MAX_REGEXES})", pos)
            check_pattern(arg.value, arg_pos)
        if isinstance(target, a.Const):
            if target.type not in (STRING, BYTES):
                raise QueryError(f"{name}() on a {target.type}", pos)
            return a.BoolConst(tc.const_str_test(name, target.value, arg.value), pos)
        if not isinstance(target, a.Field) or target.type not in (STRING, DYN, BYTES):
            what = target.type if isinstance(target, a.Field) else "value"
            raise QueryError(f"{name}() needs a string field, not a {what}", pos)
        value: str | bytes = arg.value
        if target.type == BYTES and name != "matches" and isinstance(value, str):
            value = value.encode("utf-8")
        elif target.type != BYTES and isinstance(value, bytes):
            raise QueryError(f"{name}() on text takes a string", arg_pos)
        return a.StrTest(name, target, value, pos)


# -- helpers ------------------------------------------------------------------------


def _pos(tree: Any) -> int:
    if isinstance(tree, lark.Token):
        return int(tree.start_pos or 0)
    meta = getattr(tree, "meta", None)
    if meta is None or meta.empty or getattr(meta, "start_pos", None) is None:
        return 0
    return int(meta.start_pos)


def _tok_pos(tok: Any, text: str) -> int:
    pos = getattr(tok, "start_pos", None)
    return int(pos) if pos is not None else len(text)


def _node_pos(x: Any) -> int:
    return int(getattr(x, "pos", 0))


_TOKEN_NAMES = {
    "IDENT": "a field", "INT_LIT": "a number", "UINT_LIT": "a number",
    "FLOAT_LIT": "a number", "STRING_LIT": "a string", "MLSTRING_LIT": "a string",
    "BYTES_LIT": "bytes", "BOOL_LIT": "true/false", "NULL_LIT": "null",
}  # fmt: skip


def _token_name(name: str) -> str:
    if name in _TOKEN_NAMES:
        return _TOKEN_NAMES[name]
    lark_parser = CELParser.CEL_PARSER
    try:
        pattern = lark_parser.get_terminal(name).pattern if lark_parser else None
    except KeyError:
        pattern = None
    if pattern is not None and pattern.type == "str":
        return repr(pattern.value)
    return name.lower()


def _expected(expected: set[str]) -> str:
    names = sorted({_token_name(e) for e in expected if not e.startswith("__")})
    return "expected " + " or ".join(names[:10]) if names else ""


def _suggest_fn(name: str) -> str:
    names = [f.name for f in FUNCTIONS]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    return "did you mean: " + ", ".join(close) if close else "functions: " + ", ".join(names)


def _precheck_nesting(text: str) -> None:
    """Reject deep bracket nesting and long runs of ``!``/``-`` before parsing: the parser
    would build a tree hundreds of levels deep first (seconds for 4 KiB of ``[[[[``)."""
    depth = run = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "\"'":  # skip a string literal (escapes as in the CEL lexer)
            quote = text[i : i + 3] if text[i : i + 3] in ('"""', "'''") else ch
            i += len(quote)
            while i < n and not text.startswith(quote, i):
                i += 2 if text[i] == "\\" else 1
            i += len(quote)
            run = 0
            continue
        if ch in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise QueryError(f"expression nested too deeply (limit {MAX_DEPTH})", i)
        elif ch in ")]}":
            depth = max(0, depth - 1)
        if ch in "!-":
            run += 1
            if run > MAX_DEPTH:
                raise QueryError(f"expression nested too deeply (limit {MAX_DEPTH})", i)
        elif not ch.isspace():
            run = 0
        i += 1


def parse_query(text: str) -> a.Predicate:
    """Parse and check one query; empty text is ``BoolConst(True)``."""
    if len(text) > MAX_TEXT:
        raise QueryError(f"query too long ({len(text)} > {MAX_TEXT} characters)", MAX_TEXT)
    if not text.strip():
        return a.BoolConst(True, 0)
    _precheck_nesting(text)
    return _Parser(text).run()
