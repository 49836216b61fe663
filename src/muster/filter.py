"""``?filter=`` expressions: a reimplementation of hashicorp/go-bexpr for JSON-like data.

Grammar (go-bexpr)::

    Input      := "(" Or ")" | Or                    (surrounding whitespace allowed)
    Or         := And "or" Or | And                  ("or"/"and" need whitespace around them)
    And        := Not "and" And | Not
    Not        := "not" Not | Group
    Group      := "(" Or ")" | Match
    Match      := Selector ("=="|"!="|"contains"|"not contains"|"matches"|"not matches") Value
                | Selector ("is empty"|"is not empty")
                | Value ("in"|"not in") Selector
    Selector   := Ident ("." Ident | "[" String "]" | "." Digits)*  |  '"' ("/" PtrChars)* '"'
    Value      := Selector | Number | String             (a bare word is a value: Status == passing)

Values are kept as raw text and coerced to the type of the datum they are compared with
(bool via Go ParseBool, ints via ParseInt, floats, strings), exactly as bexpr does, so
``Service.Port == "80"`` and ``Service.Port == 80`` are the same test.

Parsing mirrors the PEG rule by rule, including the parser generator's (pigeon) error
reporting: the error for an invalid expression is the same text Consul puts after
``Failed to create boolean expression evaluator: `` (e.g. ``1:6 (5): no match found,
expected: "!=", ".", "==", "[", [ \\t\\r\\n] or [a-zA-Z0-9_]``).

Evaluation follows bexpr's rules: a key missing from a map gives the operator's
"not present" answer (``==`` false, ``!=`` true, ``is empty`` true, ...); ``in``/``contains``
test list membership, map key presence or substring.  Muster extension (docs/compat/http.md#filtering):
a selector that passes *through* a list (``Checks.Status`` on a list of checks) is evaluated
for every element and matches if any element does.

Two error types:
  * :class:`FilterError` -- the expression is invalid (HTTP 500 ``Failed to create boolean
    expression evaluator: <str(err)>``); raised by :func:`compile_filter`.
  * :class:`FilterEvalError` -- the expression is valid but cannot be applied to the data
    (type mismatch, bad regex); raised by :meth:`Filter.matches`; HTTP 500 with ``str(err)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from muster.goparse import parse_bool, parse_float, parse_int, unquote_interpreted
from muster.goparse import quote as go_quote

__all__ = [
    "Filter",
    "FilterError",
    "FilterEvalError",
    "apply_filter",
    "compile_filter",
]


class FilterError(ValueError):
    """Invalid filter expression.  ``str(err)`` is bexpr's parser message, without prefix."""


class FilterEvalError(ValueError):
    """A valid expression failed while being evaluated against a datum."""


# ---------------------------------------------------------------------------------------
# AST
# ---------------------------------------------------------------------------------------

EQ, NE, IN, NOT_IN, EMPTY, NOT_EMPTY, MATCHES, NOT_MATCHES = (
    "==", "!=", "in", "not in", "is empty", "is not empty", "matches", "not matches",
)
# Answer when the selected key is absent from its map (bexpr's NotPresentDisposition).
_NOT_PRESENT = {EQ: False, NE: True, IN: False, NOT_IN: True, EMPTY: True, NOT_EMPTY: False,
                MATCHES: False, NOT_MATCHES: True}


@dataclass(frozen=True)
class _Selector:
    path: tuple[str, ...]
    pointer: bool  # written as a JSON pointer ("/a/b")

    def __str__(self) -> str:
        return ("/" if self.pointer else ".").join(self.path)


@dataclass(frozen=True)
class _Match:
    selector: _Selector
    op: str
    value: str | None  # raw text; None for is (not) empty


@dataclass(frozen=True)
class _Not:
    operand: _Node


@dataclass(frozen=True)
class _Bin:
    op: str  # "and" | "or"
    left: _Node
    right: _Node


_Node = _Match | _Not | _Bin


# ---------------------------------------------------------------------------------------
# Parser (a hand translation of go-bexpr's grammar.peg with pigeon's error bookkeeping)
# ---------------------------------------------------------------------------------------

_WS = "[ \\t\\r\\n]"
_ALPHA = "[a-zA-Z]"
_ALNUM = "[a-zA-Z0-9_]"
_DIGIT = "[0-9]"
_NZDIGIT = "[1-9]"
_PTRCHAR = "[\\pL\\pN-_.~|]"


def _is_ws(c: str) -> bool:
    return c in " \t\r\n"


def _is_alpha(c: str) -> bool:
    return ("a" <= c <= "z") or ("A" <= c <= "Z")


def _is_alnum(c: str) -> bool:
    return _is_alpha(c) or ("0" <= c <= "9") or c == "_"


def _is_digit(c: str) -> bool:
    return "0" <= c <= "9"


def _is_ptrchar(c: str) -> bool:
    # \pL (letters) and \pN (numbers: Nd, Nl, No) plus - _ . ~ |  (pigeon's class is
    # written "-_." which is a literal '-' then '_' and '.').
    return c.isalpha() or c.isnumeric() or c in "-_.~|"


_Result = tuple[Any, int] | None


class _Parser:
    """Backtracking parser with pigeon's "farthest failure" expectation tracking."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.n = len(text)
        self.max_pos = -1
        self.expected: list[str] = []
        self.invert = False
        self.errors: list[tuple[int, str, str]] = []  # (pos, rule display name, message)
        self.rules: list[str] = []
        # Memo for OrExpression.  The grammar's error alternatives re-parse the same span, which
        # is exponential in parenthesis depth without it.  Safe: a re-parse would only repeat
        # failure records at positions already recorded (or now below the farthest failure)
        # and errors that are de-duplicated anyway.
        self._or_memo: dict[tuple[int, bool], _Result] = {}

    # ---- pigeon bookkeeping -----------------------------------------------------------

    def _fail_at(self, ok: bool, pos: int, want: str) -> None:
        if ok != self.invert:
            return
        if pos < self.max_pos:
            return
        if pos > self.max_pos:
            self.max_pos = pos
            self.expected = []
        self.expected.append("!" + want if self.invert else want)

    def _err(self, pos: int, msg: str) -> None:
        self.errors.append((pos, self.rules[-1] if self.rules else "", msg))

    def _rule(self, name: str, fn: Callable[[int], _Result], pos: int) -> _Result:
        self.rules.append(name)
        try:
            return fn(pos)
        finally:
            self.rules.pop()

    # ---- terminals --------------------------------------------------------------------

    def lit(self, pos: int, text: str) -> int | None:
        want = go_quote(text)
        if self.s.startswith(text, pos):
            self._fail_at(True, pos, want)
            return pos + len(text)
        self._fail_at(False, pos, want)
        return None

    def cls(self, pos: int, want: str, pred: Callable[[str], bool]) -> int | None:
        if pos < self.n and pred(self.s[pos]):
            self._fail_at(True, pos, want)
            return pos + 1
        self._fail_at(False, pos, want)
        return None

    def any_char(self, pos: int) -> int | None:
        if pos < self.n:
            self._fail_at(True, pos, ".")
            return pos + 1
        self._fail_at(False, pos, ".")
        return None

    def not_(self, pos: int, fn: Callable[[int], Any]) -> bool:
        """PEG ``!X``: True when X fails at pos (never consumes)."""
        self.invert = not self.invert
        try:
            result = fn(pos)
        finally:
            self.invert = not self.invert
        return result is None

    def eof(self, pos: int) -> bool:
        return self.not_(pos, self.any_char)

    def ws(self, pos: int) -> int | None:
        """``_ <- [ \\t\\r\\n]+``"""
        p = self.cls(pos, _WS, _is_ws)
        if p is None:
            return None
        while True:
            q = self.cls(p, _WS, _is_ws)
            if q is None:
                return p
            p = q

    def opt_ws(self, pos: int) -> int:
        p = self.ws(pos)
        return pos if p is None else p

    # ---- rules ------------------------------------------------------------------------

    def parse(self) -> _Node:
        try:
            result = self._input(0)
        except RecursionError:
            raise FilterError("expression is too deeply nested") from None
        if self.errors:
            raise FilterError(self._format_errors())
        if result is None:
            raise FilterError(self._format_no_match())
        node: _Node = result[0]
        return node

    def _input(self, pos: int) -> _Result:
        # _? "(" _? OrExpression _? ")" _? EOF
        p: int | None = self.opt_ws(pos)
        assert p is not None
        p = self.lit(p, "(")
        if p is not None:
            p = self.opt_ws(p)
            r = self._or(p)
            if r is not None:
                q: int | None = self.opt_ws(r[1])
                assert q is not None
                q = self.lit(q, ")")
                if q is not None:
                    q = self.opt_ws(q)
                    if self.eof(q):
                        return r[0], q
        # _? OrExpression _? EOF
        p = self.opt_ws(pos)
        r = self._or(p)
        if r is not None:
            q = self.opt_ws(r[1])
            if self.eof(q):
                return r[0], q
        return None

    def _or(self, pos: int) -> _Result:
        key = (pos, self.invert)
        if key not in self._or_memo:
            self._or_memo[key] = self._or_uncached(pos)
        return self._or_memo[key]

    def _or_uncached(self, pos: int) -> _Result:
        left = self._and(pos)
        if left is None:
            return None
        p = self.ws(left[1])
        if p is not None:
            p = self.lit(p, "or")
            if p is not None:
                p = self.ws(p)
                if p is not None:
                    right = self._or(p)
                    if right is not None:
                        return _Bin("or", left[0], right[0]), right[1]
        return left

    def _and(self, pos: int) -> _Result:
        left = self._not(pos)
        if left is None:
            return None
        p = self.ws(left[1])
        if p is not None:
            p = self.lit(p, "and")
            if p is not None:
                p = self.ws(p)
                if p is not None:
                    right = self._and(p)
                    if right is not None:
                        return _Bin("and", left[0], right[0]), right[1]
        return left

    def _not(self, pos: int) -> _Result:
        p = self.lit(pos, "not")
        if p is not None:
            p = self.ws(p)
            if p is not None:
                inner = self._not(p)
                if inner is not None:
                    node = inner[0]
                    # "not not X" is X (bexpr collapses double negation)
                    return (node.operand if isinstance(node, _Not) else _Not(node)), inner[1]
        return self._rule("grouping", self._group, pos)

    def _group(self, pos: int) -> _Result:
        p = self.lit(pos, "(")
        if p is not None:
            r = self._or(self.opt_ws(p))
            if r is not None:
                q = self.lit(self.opt_ws(r[1]), ")")
                if q is not None:
                    return r[0], q
        m = self._rule("match", self._match, pos)
        if m is not None:
            return m
        # error alternative: "(" _? OrExpression _? !")" &{ Unmatched parentheses }
        p = self.lit(pos, "(")
        if p is not None:
            r = self._or(self.opt_ws(p))
            if r is not None:
                q = self.opt_ws(r[1])
                if self.not_(q, lambda x: self.lit(x, ")")):
                    self._err(q, "Unmatched parentheses")
        return None

    def _match(self, pos: int) -> _Result:
        r = self._match_sel_op_value(pos)
        if r is not None:
            return r
        r = self._match_sel_op(pos)
        if r is not None:
            return r
        return self._match_value_op_sel(pos)

    def _selector(self, pos: int) -> _Result:
        return self._rule("selector", self._selector_body, pos)

    def _value(self, pos: int) -> _Result:
        return self._rule("value", self._value_body, pos)

    def _match_sel_op_value(self, pos: int) -> _Result:
        sel = self._selector(pos)
        if sel is None:
            return None
        op = self._binary_op(sel[1])
        if op is None:
            return None
        val = self._value(op[1])
        if val is None:
            return None
        return _Match(sel[0], op[0], val[0]), val[1]

    def _binary_op(self, pos: int) -> tuple[str, int] | None:
        # MatchEqual / MatchNotEqual / MatchContains / MatchNotContains / MatchMatches / MatchNotMatches
        for op, token in ((EQ, "=="), (NE, "!=")):
            p = self.lit(self.opt_ws(pos), token)
            if p is not None:
                return op, self.opt_ws(p)
        for op, words in ((IN, ("contains",)), (NOT_IN, ("not", "contains")), (MATCHES, ("matches",)),
                          (NOT_MATCHES, ("not", "matches"))):
            p = self._words(pos, words)
            if p is not None:
                q = self.ws(p)
                if q is not None:
                    return op, q
        return None

    def _words(self, pos: int, words: tuple[str, ...]) -> int | None:
        """``_ w1 _ w2 ...`` (mandatory whitespace before each word)."""
        p: int | None = pos
        for w in words:
            assert p is not None
            p = self.ws(p)
            if p is None:
                return None
            p = self.lit(p, w)
            if p is None:
                return None
        return p

    def _match_sel_op(self, pos: int) -> _Result:
        sel = self._selector(pos)
        if sel is None:
            return None
        p = self._words(sel[1], ("is", "empty"))
        if p is not None:
            return _Match(sel[0], EMPTY, None), p
        p = self._words(sel[1], ("is", "not", "empty"))
        if p is not None:
            return _Match(sel[0], NOT_EMPTY, None), p
        return None

    def _in_op(self, pos: int) -> tuple[str, int] | None:
        p = self._words(pos, ("in",))
        if p is not None:
            q = self.ws(p)
            if q is not None:
                return IN, q
        p = self._words(pos, ("not", "in"))
        if p is not None:
            q = self.ws(p)
            if q is not None:
                return NOT_IN, q
        return None

    def _match_value_op_sel(self, pos: int) -> _Result:
        val = self._value(pos)
        if val is None:
            return None
        op = self._in_op(val[1])
        if op is None:
            return None
        sel = self._selector(op[1])
        if sel is not None:
            return _Match(sel[0], op[0], val[0]), sel[1]
        # error alternative: Value (MatchIn / MatchNotIn) !Selector &{ Invalid selector }
        val = self._value(pos)
        if val is not None:
            op = self._in_op(val[1])
            if op is not None and self.not_(op[1], self._selector):
                self._err(op[1], "Invalid selector")
        return None

    def _identifier(self, pos: int) -> tuple[str, int] | None:
        p = self.cls(pos, _ALPHA, _is_alpha)
        if p is None:
            return None
        while True:
            q = self.cls(p, _ALNUM, _is_alnum)
            if q is None:
                return self.s[pos:p], p
            p = q

    def _selector_body(self, pos: int) -> _Result:
        ident = self._identifier(pos)
        if ident is not None:
            path = [ident[0]]
            p = ident[1]
            while True:
                seg = self._selector_or_index(p)
                if seg is None:
                    break
                path.append(seg[0])
                p = seg[1]
            return _Selector(tuple(path), pointer=False), p
        # '"' JsonPointerSegment* '"'
        p0 = self.lit(pos, '"')
        if p0 is None:
            return None
        parts: list[str] = []
        p = p0
        while True:
            q = self.lit(p, "/")
            if q is None:
                break
            r = self.cls(q, _PTRCHAR, _is_ptrchar)
            if r is None:
                break
            while True:
                t = self.cls(r, _PTRCHAR, _is_ptrchar)
                if t is None:
                    break
                r = t
            parts.append(self.s[q:r])
            p = r
        end = self.lit(p, '"')
        if end is None:
            return None
        unescaped: list[str] = []
        for part in parts:
            if re.search(r"~(?![01])", part):
                self._err(pos, f"error validating json pointer: invalid JSON pointer escape in {part!r}")
                break
            unescaped.append(part.replace("~1", "/").replace("~0", "~"))
        return _Selector(tuple(unescaped), pointer=True), end

    def _selector_or_index(self, pos: int) -> tuple[str, int] | None:
        p = self.lit(pos, ".")
        if p is not None:
            ident = self._identifier(p)
            if ident is not None:
                return ident
        idx = self._rule("index", self._index, pos)
        if idx is not None:
            return idx
        p = self.lit(pos, ".")
        if p is not None:
            q = self.cls(p, _DIGIT, _is_digit)
            if q is not None:
                while True:
                    r = self.cls(q, _DIGIT, _is_digit)
                    if r is None:
                        break
                    q = r
                return self.s[p:q], q
        return None

    def _index(self, pos: int) -> _Result:
        p = self.lit(pos, "[")
        if p is not None:
            s = self._string(self.opt_ws(p))
            if s is not None:
                q = self.lit(self.opt_ws(s[1]), "]")
                if q is not None:
                    return s[0], q
        # "[" _? !StringLiteral &{ Invalid index }
        p = self.lit(pos, "[")
        if p is not None:
            p = self.opt_ws(p)
            if self.not_(p, self._string):
                self._err(p, "Invalid index")
                return None
        # "[" _? StringLiteral _? !"]" &{ Unclosed index expression }
        p = self.lit(pos, "[")
        if p is not None:
            s = self._string(self.opt_ws(p))
            if s is not None:
                q = self.opt_ws(s[1])
                if self.not_(q, lambda x: self.lit(x, "]")):
                    self._err(q, "Unclosed index expression")
        return None

    def _value_body(self, pos: int) -> _Result:
        sel = self._selector(pos)
        if sel is not None:
            selector: _Selector = sel[0]
            if selector.pointer:
                # A quoted word that also parses as a JSON pointer is still a string value.
                return self.s[pos + 1: sel[1] - 1], sel[1]
            return str(selector), sel[1]
        num = self._rule("number", self._number, pos)
        if num is not None:
            return num
        return self._string(pos)

    def _integer_or_float(self, pos: int) -> int | None:
        p = self.lit(pos, "0")
        if p is None:
            p = self.cls(pos, _NZDIGIT, lambda c: "1" <= c <= "9")
            if p is None:
                return None
            while True:
                q = self.cls(p, _DIGIT, _is_digit)
                if q is None:
                    break
                p = q
        q = self.lit(p, ".")
        if q is not None:
            r = self.cls(q, _DIGIT, _is_digit)
            if r is not None:
                while True:
                    t = self.cls(r, _DIGIT, _is_digit)
                    if t is None:
                        break
                    r = t
                return r
        return p

    def _after_numbers(self, pos: int) -> int | None:
        # &(_ / EOF / ")")
        if self.ws(pos) is not None or self.eof(pos) or self.lit(pos, ")") is not None:
            return pos
        return None

    def _number(self, pos: int) -> _Result:
        start = pos
        p = self.lit(pos, "-")
        p = pos if p is None else p
        end = self._integer_or_float(p)
        if end is None:
            return None
        if self._after_numbers(end) is not None:
            return self.s[start:end], end
        # "-"? IntegerOrFloat !AfterNumbers &{ Invalid number literal }
        p2 = self.lit(pos, "-")
        p2 = pos if p2 is None else p2
        end2 = self._integer_or_float(p2)
        if end2 is not None and self.not_(end2, self._after_numbers):
            self._err(end2, "Invalid number literal")
        return None

    def _string(self, pos: int) -> _Result:
        return self._rule("string", self._string_body, pos)

    def _quoted_run(self, pos: int, quote: str) -> int:
        """``(!quote .)*`` starting at pos; returns the end."""
        p = pos
        while True:
            if not self.not_(p, lambda x: self.lit(x, quote)):
                return p
            q = self.any_char(p)
            if q is None:
                return p
            p = q

    def _string_body(self, pos: int) -> _Result:
        for quote in ("`", '"'):
            p = self.lit(pos, quote)
            if p is None:
                continue
            body_end = self._quoted_run(p, quote)
            end = self.lit(body_end, quote)
            if end is None:
                continue
            body = self.s[p:body_end]
            if quote == "`":
                return body.replace("\r", ""), end
            try:
                return unquote_interpreted(body), end
            except ValueError as exc:
                self._err(pos, str(exc))
                return "", end
        # ('`' RawStringChar* / '"' DoubleStringChar*) EOF &{ Unterminated string literal }
        for quote in ("`", '"'):
            p = self.lit(pos, quote)
            if p is None:
                continue
            body_end = self._quoted_run(p, quote)
            if self.eof(body_end):
                self._err(body_end, "Unterminated string literal")
                return None
            return None
        return None

    # ---- error text -------------------------------------------------------------------

    def _position(self, pos: int) -> str:
        line = 1 + self.s.count("\n", 0, pos + 1 if pos < self.n else pos)
        if pos < self.n and self.s[pos] == "\n":
            col = 0
        else:
            col = pos - self.s.rfind("\n", 0, pos)
        offset = len(self.s[:pos].encode("utf-8"))
        return f"{line}:{col} ({offset})"

    def _format_no_match(self) -> str:
        expected = set(self.expected)
        eof = "!." in expected
        expected.discard("!.")
        items = sorted(expected, key=lambda x: x.encode("utf-8"))
        if eof:
            items.append("EOF")
        if not items:
            listing = ""
        elif len(items) == 1:
            listing = items[0]
        else:
            listing = ", ".join(items[:-1]) + " or " + items[-1]
        return f"{self._position(max(self.max_pos, 0))}: no match found, expected: {listing}"

    def _format_errors(self) -> str:
        seen: list[str] = []
        for pos, rule, msg in self.errors:
            text = f"{self._position(pos)}: rule {rule}: {msg}" if rule else f"{self._position(pos)}: {msg}"
            if text not in seen:
                seen.append(text)
        return "\n".join(seen)


# ---------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------


class _Missing:
    """Marker for a selector that hit a missing map key (or JSON null)."""


_MISSING = _Missing()


def _go_kind(v: object) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list | tuple):
        return "slice"
    if isinstance(v, Mapping):
        return "map"
    return type(v).__name__


def _coerce_for(datum: object, raw: str) -> object:
    """Convert the expression's raw value to the datum's type (bexpr getMatchExprValue), with
    Go's strconv as bexpr does: ``ParseBool``, ``ParseInt(raw, 0, 64)``, ``ParseFloat(raw, 64)``."""
    if isinstance(datum, bool):
        return parse_bool(raw)
    if isinstance(datum, int):
        return parse_int(raw)
    if isinstance(datum, float):
        return parse_float(raw)
    return raw


class Filter:
    """A compiled filter expression.  Immutable and safe to share between requests."""

    def __init__(self, expression: str, ast: _Node | None) -> None:
        self.expression = expression
        self._ast = ast
        self._regex_cache: dict[str, re.Pattern[str]] = {}

    def __repr__(self) -> str:
        return f"Filter({self.expression!r})"

    def matches(self, obj: object) -> bool:
        """Evaluate against one datum (a JSON-like dict).  Raises :class:`FilterEvalError`."""
        if self._ast is None:
            return True
        try:
            return self._eval(self._ast, obj)
        except RecursionError:
            raise FilterEvalError("expression is too deeply nested to evaluate") from None

    __call__ = matches

    def _eval(self, node: _Node, obj: object) -> bool:
        if isinstance(node, _Bin):
            if node.op == "and":
                return self._eval(node.left, obj) and self._eval(node.right, obj)
            return self._eval(node.left, obj) or self._eval(node.right, obj)
        if isinstance(node, _Not):
            return not self._eval(node.operand, obj)
        return self._eval_match(node, obj)

    def _resolve(self, sel: _Selector, obj: object) -> list[object]:
        """Values the selector reaches; lists crossed mid-path fan out (one value per element).

        A missing map key or JSON null yields ``_MISSING`` for that branch.
        """
        current: list[object] = [obj]
        for i, part in enumerate(sel.path):
            nxt: list[object] = []
            for v in current:
                self._step(v, part, sel, i, nxt)
            current = nxt
        return current

    def _step(self, v: object, part: str, sel: _Selector, i: int, out: list[object]) -> None:
        if isinstance(v, _Missing) or v is None:
            out.append(_MISSING)
        elif isinstance(v, Mapping):
            out.append(v.get(part, _MISSING))
        elif isinstance(v, list | tuple):
            if part.isdigit() and part.isascii():
                idx = int(part)
                # An index past the end is treated like a missing map key, so one short
                # list does not turn the whole request into an error.
                out.append(v[idx] if idx < len(v) else _MISSING)
            else:
                for element in v:
                    self._step(element, part, sel, i, out)
        else:
            raise FilterEvalError(
                f"error finding value in datum: /{'/'.join(sel.path[: i + 1])} at part {i}: "
                f"cannot select {part!r} from a {_go_kind(v)} value"
            )

    def _eval_match(self, m: _Match, obj: object) -> bool:
        values = self._resolve(m.selector, obj)
        return any(self._apply(m, v) for v in values)

    def _apply(self, m: _Match, v: object) -> bool:
        if isinstance(v, _Missing) or v is None:
            return _NOT_PRESENT[m.op]
        op = m.op
        if op in (EQ, NE):
            result = self._equal(m, v)
            return result if op == EQ else not result
        if op in (IN, NOT_IN):
            result = self._contains(m, v)
            return result if op == IN else not result
        if op in (EMPTY, NOT_EMPTY):
            if not isinstance(v, str | list | tuple | Mapping):
                raise FilterEvalError(f"Cannot perform is empty operations on type {_go_kind(v)} for selector: "
                                      f'"{m.selector}"')
            result = len(v) == 0
            return result if op == EMPTY else not result
        result = self._regex_match(m, v)
        return result if op == MATCHES else not result

    def _equal(self, m: _Match, v: object) -> bool:
        assert m.value is not None
        if not isinstance(v, bool | int | float | str):
            raise FilterEvalError("unable to find suitable primitive comparison function for matching")
        try:
            want = _coerce_for(v, m.value)
        except ValueError as exc:
            raise FilterEvalError(f"error getting match value in expression: {exc}") from None
        return want == v

    def _contains(self, m: _Match, v: object) -> bool:
        assert m.value is not None
        raw = m.value
        if isinstance(v, Mapping):
            return raw in v
        if isinstance(v, list | tuple):
            for element in v:
                if element is None or not isinstance(element, bool | int | float | str):
                    continue
                try:
                    if _coerce_for(element, raw) == element:
                        return True
                except ValueError:
                    continue  # mixed-type list: skip elements the value cannot be converted to
            return False
        if isinstance(v, str):
            return raw in v
        raise FilterEvalError(
            f'Cannot perform in/contains operations on type {_go_kind(v)} for selector: "{m.selector}"'
        )

    def _regex_match(self, m: _Match, v: object) -> bool:
        assert m.value is not None
        if not isinstance(v, str):
            raise FilterEvalError(f"Value of type {_go_kind(v)} is not convertible to []byte")
        pattern = self._regex_cache.get(m.value)
        if pattern is None:
            try:
                pattern = re.compile(m.value)
            except re.error as exc:
                raise FilterEvalError(f'Failed to compile regular expression "{m.value}": {exc}') from None
            self._regex_cache[m.value] = pattern
        return pattern.search(v) is not None


def _selectors(node: _Node) -> list[_Selector]:
    if isinstance(node, _Bin):
        return _selectors(node.left) + _selectors(node.right)
    if isinstance(node, _Not):
        return _selectors(node.operand)
    return [node.selector]


def compile_filter(expr: str, valid_fields: Collection[str] | None = None) -> Filter:
    """Parse a bexpr expression.  Raises :class:`FilterError` (message = bexpr's text).

    ``valid_fields``: the top-level field names of the object type being filtered.  bexpr
    rejects selectors naming a struct field that does not exist; since our data are dicts
    (which may omit empty fields) the caller states the type's fields and we check the
    first selector segment against them.  Deeper segments are not checked, because map
    fields (``Meta``, ``NodeMeta``, ``TaggedAddresses``) legitimately accept any key.

    An empty expression yields a filter that matches everything (Consul skips filtering).
    """
    if expr == "":
        return Filter(expr, None)
    ast = _Parser(expr).parse()
    if valid_fields is not None:
        allowed = set(valid_fields)
        for sel in _selectors(ast):
            if sel.path and sel.path[0] not in allowed:
                raise FilterError(f'Selector "{sel}" is not valid')
    return Filter(expr, ast)


_T = TypeVar("_T")


@overload
def apply_filter(expr: str | Filter, items: list[_T], valid_fields: Collection[str] | None = None) -> list[_T]: ...


@overload
def apply_filter(
    expr: str | Filter, items: dict[str, _T], valid_fields: Collection[str] | None = None
) -> dict[str, _T]: ...


def apply_filter(
    expr: str | Filter, items: list[_T] | dict[str, _T], valid_fields: Collection[str] | None = None
) -> list[_T] | dict[str, _T]:
    """Filter a list (keeping order) or a dict's values (keeping keys and order), like
    bexpr's Filter.Execute on a slice or map.  ``expr`` may be precompiled."""
    flt = expr if isinstance(expr, Filter) else compile_filter(expr, valid_fields)
    if isinstance(items, dict):
        return {k: v for k, v in items.items() if flt.matches(v)}
    return [v for v in items if flt.matches(v)]
