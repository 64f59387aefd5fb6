"""Label and field selectors, parsed from query strings or LabelSelector objects."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from tests.kubeapi.meta import Obj, bad_request

Matcher = Callable[[Obj], bool]
_SET_RE = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\((.*)\)\s*$")


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside the parentheses of a set term."""
    terms, depth, current = [], 0, ""
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    terms.append(current)
    return [t.strip() for t in terms if t.strip()]


def _label_term(term: str) -> Callable[[Mapping[str, str]], bool]:
    if m := _SET_RE.match(term):
        key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    for op in ("!=", "==", "="):
        if op in term:
            key, value = (part.strip() for part in term.split(op, 1))
            if op == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: labels.get(key) == value
    if term.startswith("!"):
        key = term[1:].strip()
        return lambda labels: key not in labels
    if re.fullmatch(r"[A-Za-z0-9./_-]+", term):
        return lambda labels: term in labels
    raise bad_request(f"unable to parse requirement: {term!r}")


def parse_labels(text: str | None) -> Callable[[Mapping[str, str]], bool]:
    """A predicate over a label map from `a=b,c!=d,e in (f,g),!h`."""
    tests = [_label_term(t) for t in _split_terms(text or "")]
    return lambda labels: all(t(labels) for t in tests)


def match_selector(selector: Obj | None, labels: Mapping[str, str]) -> bool:
    """Whether a LabelSelector object (matchLabels/matchExpressions) matches; empty matches all."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], set(expr.get("values") or [])
        if op in ("In", "NotIn") and (labels.get(key) in values) != (op == "In"):
            return False
        if op in ("Exists", "DoesNotExist") and (key in labels) != (op == "Exists"):
            return False
    return True


def _field(obj: Obj, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def parse_fields(text: str | None) -> Matcher:
    """A predicate over an object from `metadata.name=x,status.phase!=Running`."""
    tests: list[Matcher] = []
    for term in _split_terms(text or ""):
        negate = "!=" in term
        op = "!=" if negate else ("==" if "==" in term else "=")
        if op not in term:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        path, value = (part.strip() for part in term.split(op, 1))
        tests.append(_field_test(path, value, negate))
    return lambda obj: all(t(obj) for t in tests)


def _field_test(path: str, value: str, negate: bool) -> Matcher:
    return lambda obj: (_field(obj, path) == value) != negate


def matcher(label_selector: str | None, field_selector: str | None) -> Matcher:
    labels = parse_labels(label_selector)
    fields = parse_fields(field_selector)
    return lambda obj: labels(obj.get("metadata", {}).get("labels") or {}) and fields(obj)
