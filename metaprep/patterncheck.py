"""Is a tokenizer pattern from a model directory safe to run on every input text?

Two ways a pattern can hurt: capture groups make ``re.findall`` return tuples instead of tokens,
and nested repetition (``(a+)+``, ``(\\w|\\d)+``) makes Python's backtracking engine take time
exponential in the length of a failing match, so one crafted line would stall a server. The check
reads the parsed pattern and refuses any repetition whose body can itself repeat or branch,
except in the one shape that stays linear: each round starts with a separator character no
repetition inside can match, like the default ``\\w+(?:[-'’]\\w+)*``. Conservative by design: a
refused pattern may be harmless, but an accepted one does bounded work per character.
Standard library only (the runtime imports it).
"""

from __future__ import annotations

import importlib
import re
from typing import Any

# re's own parser (private modules, so imported by name; the public sre_* aliases are deprecated)
C: Any = importlib.import_module("re._constants")
P: Any = importlib.import_module("re._parser")

__all__ = ["pattern_problem"]

_REPEATS = (C.MAX_REPEAT, C.MIN_REPEAT)
_MAX_SEPARATOR_CHARS = 4096
_CATEGORY = {
    C.CATEGORY_WORD: lambda ch: ch.isalnum() or ch == "_",
    C.CATEGORY_DIGIT: str.isdecimal,
    C.CATEGORY_SPACE: str.isspace,
    C.CATEGORY_LINEBREAK: lambda ch: ch == "\n",
}
_NEGATED = {
    C.CATEGORY_NOT_WORD: C.CATEGORY_WORD,
    C.CATEGORY_NOT_DIGIT: C.CATEGORY_DIGIT,
    C.CATEGORY_NOT_SPACE: C.CATEGORY_SPACE,
    C.CATEGORY_NOT_LINEBREAK: C.CATEGORY_LINEBREAK,
}


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is refused, or None when it is accepted."""
    try:
        compiled = re.compile(pattern)
        tree = P.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        return f"does not compile ({exc})"
    if compiled.groups:
        return (f"has {compiled.groups} capture group(s); use (?:...) so findall returns "
                "tokens")
    plain_flags = not compiled.flags & (re.IGNORECASE | re.ASCII | re.LOCALE)
    return _visit(list(tree), plain_flags)


def _children(op: Any, av: Any) -> list[list[Any]]:
    """The sub-patterns of one parsed node."""
    if op in _REPEATS or op == getattr(C, "POSSESSIVE_REPEAT", None):
        return [list(av[2])]
    if op == C.SUBPATTERN:
        return [list(av[3])]
    if op == C.BRANCH:
        return [list(b) for b in av[1]]
    if op in (C.ASSERT, C.ASSERT_NOT):
        return [list(av[1])]
    if op == getattr(C, "ATOMIC_GROUP", None):
        return [list(av)]
    if op == C.GROUPREF_EXISTS:
        return [list(b) for b in av[1:] if b is not None]
    return []


def _visit(nodes: list[Any], plain_flags: bool) -> str | None:
    for op, av in nodes:
        if op in (C.GROUPREF, C.GROUPREF_EXISTS):
            return "has a back-reference"
        if op in _REPEATS and av[1] > 1:
            body = list(av[2])
            if _can_repeat(body) and not _separated(body, plain_flags):
                return ("has nested repetition (a repeated part that can itself repeat or "
                        "branch), which can take exponential time on one line")
        for child in _children(op, av):
            problem = _visit(child, plain_flags)
            if problem:
                return problem
    return None


def _can_repeat(nodes: list[Any]) -> bool:
    for op, av in nodes:
        if (op in _REPEATS and av[1] > 1) or op == C.BRANCH:
            return True
        if any(_can_repeat(child) for child in _children(op, av)):
            return True
    return False


def _separated(body: list[Any], plain_flags: bool) -> bool:
    """The body starts with a separator character set that nothing after it can match."""
    while len(body) == 1 and body[0][0] == C.SUBPATTERN:
        body = list(body[0][1][3])
    if not plain_flags or len(body) < 2:
        return False
    separator = _chars(body[0])
    return separator is not None and not any(_matches(body[1:], ch) for ch in separator)


def _chars(node: Any) -> list[str] | None:
    """The characters a LITERAL or a [...] of literals and small ranges matches, else None."""
    op, av = node
    if op == C.LITERAL:
        return [chr(av)]
    if op != C.IN:
        return None
    out: list[str] = []
    for item_op, item in av:
        if item_op == C.LITERAL:
            out.append(chr(item))
        elif item_op == C.RANGE and item[1] - item[0] < _MAX_SEPARATOR_CHARS:
            out.extend(chr(c) for c in range(item[0], item[1] + 1))
        else:
            return None
        if len(out) > _MAX_SEPARATOR_CHARS:
            return None
    return out


def _in_set(items: list[Any], ch: str) -> bool:
    negate = bool(items) and items[0][0] == C.NEGATE
    hit = any(_item_matches(op, av, ch) for op, av in items[negate:])
    return hit != negate


def _item_matches(op: Any, av: Any, ch: str) -> bool:
    if op == C.LITERAL:
        return ch == chr(av)
    if op == C.RANGE:
        return av[0] <= ord(ch) <= av[1]
    if op == C.CATEGORY:
        if av in _NEGATED:
            return not _CATEGORY[_NEGATED[av]](ch)
        test = _CATEGORY.get(av)
        return True if test is None else bool(test(ch))  # unknown category: assume it matches
    return True  # anything unforeseen: assume it matches (refuses, never wrongly accepts)


def _matches(nodes: list[Any], ch: str) -> bool:
    """Whether any character matcher anywhere in ``nodes`` can match ``ch``."""
    for op, av in nodes:
        if op == C.LITERAL and ch == chr(av):
            return True
        if op == C.NOT_LITERAL and ch != chr(av):
            return True
        if op == C.ANY or (op == C.IN and _in_set(list(av), ch)):
            return True
        if op == C.CATEGORY and _item_matches(op, av, ch):
            return True
        if any(_matches(child, ch) for child in _children(op, av)):
            return True
    return False
