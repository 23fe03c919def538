"""Kubernetes label and field selectors (the ``labelSelector`` / ``fieldSelector`` query strings).

Label selectors (``metadata.labels``): ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``,
``k`` (exists), ``!k`` (does not exist); terms are AND-ed with commas.
Field selectors: ``path=v``, ``path==v``, ``path!=v``; comma-AND. A missing field compares as the
empty string (``spec.nodeName=`` selects unbound pods), booleans as ``true``/``false``.
Structured ``LabelSelector`` objects (``matchLabels`` / ``matchExpressions``, as used by
PodDisruptionBudget ``spec.selector``) are supported by :func:`match_label_selector_object`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from local_cluster.kubeapi_errors import BadRequest


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op == "=":
            return present and labels[self.key] == self.values[0]
        if self.op == "!=":
            return not present or labels[self.key] != self.values[0]
        if self.op == "in":
            return present and labels[self.key] in self.values
        if self.op == "notin":
            return not present or labels[self.key] not in self.values
        raise AssertionError(self.op)  # pragma: no cover


_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*([A-Za-z0-9_.-]*)\s*$")


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    terms, depth, cur = [], 0, []
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    terms.append("".join(cur))
    return [t for t in (t.strip() for t in terms) if t]


def parse_label_selector(selector: str | None) -> tuple[Requirement, ...]:
    """Parse a ``labelSelector`` string; raises :class:`BadRequest` naming the bad term."""
    if not selector:
        return ()
    reqs = []
    for term in _split_terms(selector):
        m = _EQ_RE.match(term)
        if m:
            key, op, value = m.groups()
            reqs.append(Requirement(key, "!=" if op == "!=" else "=", (value,)))
            continue
        m = _SET_RE.match(term)
        if m:
            neg, key, setop, values = m.groups()
            if setop:
                if neg:
                    raise BadRequest(f"unable to parse requirement {term!r} in labelSelector")
                vals = tuple(v.strip() for v in values.split(",") if v.strip())
                reqs.append(Requirement(key, setop, vals))
            else:
                reqs.append(Requirement(key, "!exists" if neg else "exists"))
            continue
        raise BadRequest(
            f"unable to parse requirement {term!r} in labelSelector {selector!r}: use k=v, k!=v, "
            "k in (a,b), k notin (a,b), k or !k")
    return tuple(reqs)


def match_labels(reqs: tuple[Requirement, ...], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    return all(r.matches(labels) for r in reqs)


def match_label_selector_object(selector: dict[str, Any] | None, labels: dict[str, str] | None) -> bool:
    """Match a structured ``metav1.LabelSelector``. An empty selector ``{}`` matches everything;
    ``None`` matches nothing (as for PodDisruptionBudget with no selector)."""
    if selector is None:
        return False
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}.get(expr.get("operator"))
        if op is None:
            raise BadRequest(f"invalid matchExpressions operator {expr.get('operator')!r} "
                             "(expected In, NotIn, Exists, DoesNotExist)")
        if not Requirement(expr.get("key", ""), op, tuple(expr.get("values") or ())).matches(labels):
            return False
    return True


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    op: str  # "=" or "!="
    value: str

    def matches(self, obj: dict[str, Any]) -> bool:
        actual = field_value(obj, self.path)
        return (actual == self.value) if self.op == "=" else (actual != self.value)


def field_value(obj: dict[str, Any], path: str) -> str:
    """Value of a dotted path rendered as the apiserver does for field selectors."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
        if cur is None:
            return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, (dict, list)):
        return ""
    return str(cur)


def parse_field_selector(selector: str | None, supported: tuple[str, ...] | None = None,
                         resource: str = "") -> tuple[FieldRequirement, ...]:
    """Parse a ``fieldSelector`` string; unknown field labels raise :class:`BadRequest` like the real API."""
    if not selector:
        return ()
    reqs = []
    for term in _split_terms(selector):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*?)\s*$", term)
        if not m:
            raise BadRequest(f"invalid fieldSelector term {term!r}: use field=value, field==value or field!=value")
        path, op, value = m.groups()
        if supported is not None and path not in supported:
            raise BadRequest(
                f'field label not supported: {path!r} for {resource or "this resource"} '
                f"(supported: {', '.join(supported)})")
        reqs.append(FieldRequirement(path, "!=" if op == "!=" else "=", value))
    return tuple(reqs)


def match_fields(reqs: tuple[FieldRequirement, ...], obj: dict[str, Any]) -> bool:
    return all(r.matches(obj) for r in reqs)
