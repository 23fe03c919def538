# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ONE place where a value that is not PromQL (inventory: cluster name, node group, ...) becomes
part of a PromQL expression.

Public API:

* :func:`promql_label_value` - any text -> a PromQL double-quoted string literal that Prometheus
  parses back to exactly that text (quotes, backslashes, newlines, control characters and
  unicode are escaped; nothing can close the string or the selector: no query injection).
* :func:`promql_label_matcher` - ``name``, ``value``, ``op`` -> ``name="escaped"`` (``op`` one of
  ``=``, ``!=``; regex operators are refused because a value would be a pattern, not a value).
* :func:`check_label_value` - the stricter inventory rule: a Kubernetes label value
  (``[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?``; cluster names and node groups also become
  node labels and EC2 tags). ``scripts/validate_inventories.py`` applies the same rule.

Errors are :class:`PromQLValueError` (a ``ValueError``) naming the field.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
K8S_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_SIMPLE_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


class PromQLValueError(ValueError):
    """A value cannot be used in PromQL. ``field`` names the option/variable it came from."""

    def __init__(self, field, message):
        self.field = field
        self.message = message
        super(PromQLValueError, self).__init__("%s: %s" % (field, message))


def promql_label_value(value, field="label value"):
    """Return ``value`` as a PromQL double-quoted string literal (including the quotes).

    :param value: text (``str``); anything else is refused (no implicit ``str()`` of None/lists).
    :param field: name used in errors, e.g. ``autoscale_cluster_name``.
    :raises PromQLValueError: not a string, or not encodable as UTF-8 (lone surrogates).
    """
    if not isinstance(value, str):
        raise PromQLValueError(field, "must be a string, got %s %r" % (type(value).__name__, value))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PromQLValueError(field, "is not valid unicode text (%s)" % exc)
    out = []
    for ch in value:
        if ch in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)  # printable ASCII and any other unicode character: literal (UTF-8)
    return '"%s"' % "".join(out)


def promql_label_matcher(name, value, op="=", field=None):
    """``name<op>"value"`` with the value escaped by :func:`promql_label_value`.

    :raises PromQLValueError: bad label name, an operator other than ``=``/``!=``, or a bad value.
    """
    if not isinstance(name, str) or not LABEL_NAME.match(name):
        raise PromQLValueError(field or "label name", "%r is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)"
                               % (name,))
    if op not in ("=", "!="):
        raise PromQLValueError(field or name, "operator %r is not allowed; use = or != (regex matchers would "
                                              "treat the value as a pattern)" % (op,))
    return "%s%s%s" % (name, op, promql_label_value(value, field or name))


def check_label_value(value, field):
    """Return ``value`` if it is a Kubernetes label value, else raise PromQLValueError naming ``field``."""
    if not isinstance(value, str) or not K8S_LABEL_VALUE.match(value):
        raise PromQLValueError(field, "%r is not a valid Kubernetes label value (1-63 characters of A-Z a-z 0-9 "
                                      "- _ . starting and ending with a letter or digit)" % (value,))
    return value
