# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""metrics_common: providerID parsing, number checks, result assembly."""

import pytest

from ansible_collections.k3s.autoscaler.plugins.module_utils.metrics_common import (
    MetricsError,
    assemble_result,
    checked_number,
    new_node,
    parse_provider_id,
)


@pytest.mark.parametrize("pid, expected", [
    ("aws:///us-east-1a/i-0123456789abcdef0", ("us-east-1a", "i-0123456789abcdef0")),
    ("aws:////i-0123456789abcdef0", (None, "i-0123456789abcdef0")),
    ("aws:///eu-west-1c/i-12345678", ("eu-west-1c", "i-12345678")),
    ("k3s://node-a", (None, None)),
    ("gce://project/zone/vm", (None, None)),
    ("aws:///us-east-1a/not-an-instance", (None, None)),
    ("", (None, None)),
    (None, (None, None)),
])
def test_parse_provider_id(pid, expected):
    assert parse_provider_id(pid) == expected


@pytest.mark.parametrize("value", ["NaN", "+Inf", "-Inf", "abc", None, "-1"])
def test_checked_number_rejects(value):
    with pytest.raises(MetricsError) as err:
        checked_number(value, "q", "promql", "series x")
    assert err.value.query_name == "q" and err.value.query == "promql" and "series x" in err.value.reason


def test_checked_number_accepts_and_allows_negative_when_asked():
    assert checked_number("1.5", "q", "p", "w") == 1.5
    assert checked_number("-2", "q", "p", "w", allow_negative=True) == -2.0


def test_error_to_dict():
    err = MetricsError("nodes", "kube_node_info", "empty")
    assert err.to_dict() == dict(msg="k3s_metrics: nodes [kube_node_info]: empty", query_name="nodes",
                                 query="kube_node_info", reason="empty")


def _node(name, ready=True, cpu=None, mem=None, alloc_cpu=2.0, alloc_mem=100, cordoned=False):
    n = new_node(name)
    n.update(ready=ready, cpu_percent=cpu, memory_percent=mem, allocatable_cpu_cores=alloc_cpu,
             allocatable_memory_bytes=alloc_mem, unschedulable=cordoned)
    return n


def test_assemble_averages_over_ready_nodes_only():
    nodes = [_node("b", cpu=30.0, mem=10.0), _node("a", cpu=10.0, mem=20.0, cordoned=True),
             _node("c", ready=False, cpu=99.0, mem=99.0)]
    r = assemble_result(nodes, [], 0, 3.0, 50, "prometheus", {}, 1.0)
    m = r["metrics"]
    assert m["avg_cpu"] == 20.0 and m["avg_memory"] == 15.0
    assert m["cpu_requests_percent"] == 75.0 and m["memory_requests_percent"] == 25.0
    assert (m["nodes"], m["ready_nodes"], m["cordoned_nodes"]) == (3, 2, 1)
    assert [n["name"] for n in r["nodes_detail"]] == ["a", "b", "c"]


def test_requests_percent_may_exceed_100():
    r = assemble_result([_node("a", cpu=1.0, mem=1.0)], [], 0, 5.0, 300, "prometheus", {}, 1.0)
    assert r["metrics"]["cpu_requests_percent"] == 250.0 and r["metrics"]["memory_requests_percent"] == 300.0


def test_missing_usage_is_warned_not_guessed():
    r = assemble_result([_node("a", cpu=40.0, mem=40.0), _node("b")], [], 0, 0.0, 0, "prometheus", {}, 1.0)
    assert r["metrics"]["avg_cpu"] == 40.0
    assert any("b" in w and "cpu_percent" in w for w in r["warnings"])


def test_no_usage_on_any_ready_node_is_error():
    with pytest.raises(MetricsError) as err:
        assemble_result([_node("a")], [], 0, 0.0, 0, "prometheus", {}, 1.0,
                        usage_sources={"cpu_percent": ("node_cpu_percent", "PROMQL")})
    assert err.value.query_name == "node_cpu_percent" and err.value.query == "PROMQL"


def test_usage_unavailable_omits_averages():
    r = assemble_result([_node("a")], [], 0, 0.0, 0, "kubernetes", {}, 1.0, usage_available=False)
    assert "avg_cpu" not in r["metrics"] and "avg_memory" not in r["metrics"]


def test_no_ready_nodes_gives_null_not_numbers():
    r = assemble_result([_node("a", ready=False)], [], 0, 1.0, 1, "prometheus", {}, 1.0)
    m = r["metrics"]
    assert m["avg_cpu"] is None and m["cpu_requests_percent"] is None and m["memory_requests_percent"] is None
    assert r["warnings"]
