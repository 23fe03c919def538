# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the pure scaling policy (plugins/module_utils/policy.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.k3s.autoscaler.plugins.module_utils import policy
from ansible_collections.k3s.autoscaler.plugins.module_utils.policy import (
    ConfigError, MetricsError, decide, select_candidates, validate_config, validate_metrics)

NOW = 1_700_000_000.0
BASE = {"min_nodes": 1, "max_nodes": 10, "pending_pods_threshold": 5}
NEVER = {"version": 1, "last_scale_up": None, "last_scale_down": None, "events": []}


def node(name, iid, cpu=10.0, mem=10.0, req_cpu=0.5, req_mem=1 << 30, ready=True, pods=3, unsched=False):
    return {"name": name, "provider_id": "aws:///us-east-1a/%s" % iid if iid else "k3s://%s" % name,
            "instance_id": iid, "instance_type": "t3.medium", "ready": ready, "unschedulable": unsched,
            "allocatable_cpu_cores": 2.0, "allocatable_memory_bytes": 4 << 30,
            "requested_cpu_cores": req_cpu, "requested_memory_bytes": req_mem, "pods": pods,
            "cpu_percent": cpu, "memory_percent": mem}


DETAIL = [node("cp", None), node("w1", "i-1"), node("w2", "i-2")]


def low(nodes=3, **extra):
    m = {"nodes": nodes, "pending_pods": 0, "avg_cpu": 5.0, "avg_memory": 8.0}
    m.update(extra)
    return m


def run(metrics, state="never", now=NOW, detail="default", **cfg):
    state = dict(NEVER) if state == "never" else state
    detail = [dict(n) for n in DETAIL] if detail == "default" else detail
    c = dict(BASE)
    c.update(cfg)
    return decide(metrics, c, state, now, nodes_detail=detail)


# ---------------------------------------------------------------- seed rule

def test_high_pending_scales_up():
    r = run({"nodes": 3, "pending_pods": 7, "avg_cpu": 90.0, "avg_memory": 90.0})
    assert r["decision"] == "scale_up"
    assert r["count"] == 1
    assert r["desired_nodes"] == 4
    assert r["current_nodes"] == 3
    assert r["reason"] == "scale_up: 7 pending pods > threshold 5 and 3 nodes < max_nodes 10"
    assert r["blocked_by"] == []
    assert r["candidates"] == []
    assert r["actionable"] is True


def test_pending_equal_to_threshold_does_not_scale_up():
    r = run({"nodes": 3, "pending_pods": 5, "avg_cpu": 50.0, "avg_memory": 50.0})
    assert r["decision"] == "no_action"
    assert r["reason"] == ("no_action: 5 pending pods <= threshold 5 and avg_cpu 50% >= cpu_threshold 20% and "
                           "avg_memory 50% >= memory_threshold 20%")


def test_scale_up_at_max_nodes_is_blocked_and_names_max_nodes():
    r = run({"nodes": 10, "pending_pods": 7})
    assert r["decision"] == "no_action"
    assert r["count"] == 0
    assert r["blocked_by"] == ["max_nodes"]
    assert "max_nodes 10" in r["reason"]
    assert r["reason"] == "no_action: 7 pending pods > threshold 5 but 10 nodes >= max_nodes 10"
    assert r["desired_nodes"] == 10
    assert r["actionable"] is False


def test_scale_up_step_is_capped_by_max_nodes():
    r = run({"nodes": 8, "pending_pods": 50}, max_scale_up_step=5)
    assert (r["decision"], r["count"], r["desired_nodes"]) == ("scale_up", 2, 10)


def test_low_cpu_and_memory_scales_down_least_utilised_first():
    detail = [node("cp", None, cpu=1, mem=1, req_cpu=0.0, req_mem=0),
              node("w1", "i-1", cpu=15, mem=10, req_cpu=1.0),
              node("w2", "i-2", cpu=2, mem=3, req_cpu=0.2, req_mem=1 << 28)]
    r = run(low(), detail=detail)
    assert r["decision"] == "scale_down"
    assert r["count"] == 1
    assert r["desired_nodes"] == 2
    assert r["reason"] == ("scale_down: avg_cpu 5% < cpu_threshold 20% and avg_memory 8% < memory_threshold 20% "
                           "and 3 nodes > min_nodes 1")
    assert [c["instance_id"] for c in r["candidates"]] == ["i-2", "i-1"]
    assert r["candidates"][0]["requests_percent"] == pytest.approx(10.0)  # max(0.2/2, 0.25/4)*100
    assert r["candidates"][0]["name"] == "w2"


def test_cpu_low_but_memory_high_is_no_action():
    r = run(low(avg_memory=20.0))
    assert r["decision"] == "no_action"
    assert r["blocked_by"] == []
    assert "avg_memory 20% >= memory_threshold 20%" in r["reason"]


def test_scale_down_at_min_nodes_is_blocked_and_names_min_nodes():
    r = run(low(nodes=2), min_nodes=2)
    assert r["decision"] == "no_action"
    assert r["blocked_by"] == ["min_nodes"]
    assert r["reason"].endswith("but 2 nodes <= min_nodes 2")
    assert r["desired_nodes"] == 2


@pytest.mark.parametrize("metrics, missing", [
    (low(avg_cpu=None), "avg_cpu"),
    ({"nodes": 3, "pending_pods": 0, "avg_memory": 5.0}, "avg_cpu"),
    (low(avg_cpu=float("nan")), "avg_cpu"),
    (low(avg_memory=float("nan")), "avg_memory"),
    ({"nodes": 3, "pending_pods": 0}, "avg_cpu and avg_memory"),
])
def test_missing_or_nan_utilisation_never_scales_down(metrics, missing):
    r = run(metrics)
    assert r["decision"] == "no_action"
    assert r["blocked_by"] == ["missing_metrics"]
    assert r["reason"] == ("no_action: 0 pending pods <= threshold 5 and %s unknown (missing or NaN), so scale_down "
                           "is impossible (uncertain data never causes a scaling action)" % missing)


def test_missing_cpu_does_not_prevent_scale_up():
    r = run({"nodes": 3, "pending_pods": 9, "avg_cpu": None})
    assert r["decision"] == "scale_up"


# ---------------------------------------------------------------- bounds

def test_below_min_nodes_scales_up_toward_min_bounded_by_step():
    r = run({"nodes": 1, "pending_pods": 0}, min_nodes=5, max_scale_up_step=2)
    assert (r["decision"], r["count"]) == ("scale_up", 2)
    assert r["desired_nodes"] == 5  # the target, within [min, max]
    assert r["reason"] == "scale_up: 1 nodes < min_nodes 5; adding 2 toward min_nodes (max_scale_up_step 2)"


def test_above_max_nodes_scales_down_toward_max():
    r = run(low(nodes=12, avg_cpu=90.0), max_nodes=10)
    assert (r["decision"], r["count"]) == ("scale_down", 1)
    assert r["desired_nodes"] == 10
    assert r["reason"] == "scale_down: 12 nodes > max_nodes 10; removing 1 toward max_nodes"
    assert r["candidates"]


# ---------------------------------------------------------------- candidates

def test_no_candidates_blocks_scale_down():
    r = run(low(), detail=[node("cp", None), node("w1", "i-1", ready=False)])
    assert r["decision"] == "no_action"
    assert r["blocked_by"] == ["no_candidates"]
    assert r["candidates"] == []
    assert "none of 2 nodes in nodes_detail is Ready with an instance_id" in r["reason"]


def test_without_nodes_detail_scale_down_is_blocked():
    r = run(low(), detail=None)
    assert r["blocked_by"] == ["no_candidates"]
    assert "nodes_detail not provided" in r["reason"]


def test_candidate_ordering_and_exclusions():
    detail = [
        node("b", "i-b", cpu=1, mem=1, req_cpu=0.4),          # 20% requests
        node("a", "i-a", cpu=50, mem=50, req_cpu=0.4),        # 20% requests, busier
        node("cp", None, cpu=0, mem=0, req_cpu=0),            # control plane: never
        node("dead", "i-dead", cpu=0, mem=0, req_cpu=0, ready=False),  # NotReady: excluded
        node("idle", "i-idle", cpu=30, mem=30, req_cpu=0.1, req_mem=0),  # 5% requests
        dict(node("unk", "i-unk"), allocatable_cpu_cores=None),  # requests unknown: last
        node("tie", "i-tie", cpu=1, mem=1, req_cpu=0.4, pods=1),  # same as b but fewer pods
    ]
    names = [c["name"] for c in select_candidates(detail)]
    assert names == ["idle", "tie", "b", "a", "unk"]
    assert select_candidates(detail)[-1]["requests_percent"] is None


def test_candidates_keep_cordoned_nodes():
    assert [c["name"] for c in select_candidates([node("c", "i-c", unsched=True)])] == ["c"]


# ---------------------------------------------------------------- cooldowns

def test_scale_up_cooldown_blocks_then_expires():
    st_ = dict(NEVER, last_scale_up=NOW - 100)
    r = run({"nodes": 3, "pending_pods": 7}, state=st_)
    assert r["decision"] == "no_action"
    assert r["blocked_by"] == ["cooldown"]
    assert r["cooldowns"]["scale_up"] == pytest.approx(200.0)
    assert r["reason"] == ("no_action: scale_up wanted (7 pending pods > threshold 5 and 3 nodes < max_nodes 10) "
                           "but blocked by cooldown: 200s remaining of scale_up_cooldown 300s since last_scale_up")
    r = run({"nodes": 3, "pending_pods": 7}, state=st_, now=NOW + 200)
    assert r["decision"] == "scale_up"
    assert r["cooldowns"]["scale_up"] == 0.0


def test_scale_down_cooldown_blocks_then_expires():
    st_ = dict(NEVER, last_scale_down=NOW - 1)
    r = run(low(), state=st_)
    assert (r["decision"], r["blocked_by"]) == ("no_action", ["cooldown"])
    assert "599s remaining of scale_down_cooldown 600s" in r["reason"]
    assert r["candidates"]  # still reported for visibility
    assert run(low(), state=st_, now=NOW + 599)["decision"] == "scale_down"


def test_scale_down_is_also_guarded_after_a_scale_up():
    st_ = dict(NEVER, last_scale_up=NOW - 400)
    r = run(low(), state=st_)
    assert (r["decision"], r["blocked_by"]) == ("no_action", ["cooldown"])
    assert r["cooldowns"] == {"scale_up": 0.0, "scale_down": pytest.approx(200.0)}
    # a scale_up is not blocked by a recent scale_down
    r = run({"nodes": 3, "pending_pods": 7}, state=dict(NEVER, last_scale_down=NOW - 1))
    assert r["decision"] == "scale_up"


def test_future_timestamp_blocks_for_full_cooldown_with_warning():
    r = run({"nodes": 3, "pending_pods": 7}, state=dict(NEVER, last_scale_up=NOW + 3600))
    assert r["blocked_by"] == ["cooldown"]
    assert r["cooldowns"]["scale_up"] == 300.0
    assert any("in the future" in w for w in r["warnings"])


def test_no_state_means_no_cooldowns_and_says_so():
    r = run({"nodes": 3, "pending_pods": 7}, state=None)
    assert r["decision"] == "scale_up"
    assert r["reason"].endswith("(no state_file: cooldowns not enforced)")
    assert any("cooldowns" in w and "NOT enforced" in w for w in r["warnings"])
    assert r["inputs"]["state_file_used"] is False


def test_dry_run_and_check_mode_are_not_actionable():
    r = run({"nodes": 3, "pending_pods": 7}, dry_run=True)
    assert (r["decision"], r["dry_run"], r["actionable"]) == ("scale_up", True, False)
    r = run({"nodes": 3, "pending_pods": 7}, check_mode=True)
    assert (r["decision"], r["actionable"]) == ("scale_up", False)


def test_inputs_record_numbers_and_config():
    r = run({"nodes": 3, "pending_pods": 7, "avg_cpu": 12.5}, state=dict(NEVER, last_scale_down=NOW - 5))
    assert r["inputs"]["metrics"]["avg_cpu"] == 12.5
    assert r["inputs"]["metrics"]["avg_memory"] is None
    assert r["inputs"]["config"]["cpu_threshold"] == 20.0
    assert r["inputs"]["last_scale_down"] == NOW - 5
    assert r["inputs"]["now"] == NOW
    assert r["policy"] == "threshold"


def test_ratio_looking_threshold_warns():
    r = run(low(), cpu_threshold=0.2)
    assert any("cpu_threshold 0.2 is a percent 0-100, not a ratio: 20 means 20 %; did you mean 20?" == w for w in r["warnings"])


def test_decide_is_pure_and_does_not_mutate_inputs():
    m = {"nodes": 3, "pending_pods": 0, "avg_cpu": float("nan"), "avg_memory": 1.0}
    cfg = dict(BASE)
    st_ = dict(NEVER)
    detail = [dict(n) for n in DETAIL]
    a = decide(m, cfg, st_, NOW, nodes_detail=detail)
    b = decide(m, cfg, st_, NOW, nodes_detail=detail)
    assert a == b
    assert cfg == BASE and st_ == NEVER and detail == DETAIL and math.isnan(m["avg_cpu"])


def test_validated_config_is_reused():
    cfg = validate_config(BASE)
    assert validate_config(cfg) is cfg
    assert decide(low(), cfg, NEVER, NOW, nodes_detail=DETAIL)["decision"] == "scale_down"


def test_register_policy_adds_a_policy_and_bounds_still_apply(monkeypatch):
    monkeypatch.setitem(policy.POLICIES, "always_up", lambda m, c, nd, pd: {
        "decision": "scale_up", "count": 99, "reason": "scale_up: always", "blocked_by": []})
    r = run({"nodes": 9, "pending_pods": 0}, policy="always_up")
    assert (r["decision"], r["count"], r["desired_nodes"], r["policy"]) == ("scale_up", 1, 10, "always_up")
    r = run({"nodes": 10, "pending_pods": 0}, policy="always_up")
    assert r["blocked_by"] == ["max_nodes"]
    assert r["reason"] == "no_action: scale_up wanted (always) but 10 nodes >= max_nodes 10"


# ---------------------------------------------------------------- config validation

CFG_ERRORS = [
    ({"min_nodes": 5, "max_nodes": 3},
     "invalid config min_nodes: min_nodes (5) must be <= max_nodes (3); lower min_nodes or raise max_nodes"),
    ({"min_nodes": -1, "max_nodes": 3},
     "invalid config min_nodes: min_nodes must be >= 0, got -1; negative values are not allowed"),
    ({"min_nodes": 0, "max_nodes": -3},
     "invalid config max_nodes: max_nodes must be >= 0, got -3; negative values are not allowed"),
    ({"max_nodes": 3},
     "invalid config min_nodes: min_nodes is required; set it to an integer >= 0"),
    ({"min_nodes": "1", "max_nodes": 3},
     "invalid config min_nodes: min_nodes must be an integer, got str '1'; set it to a whole number such as 1"),
    ({"min_nodes": True, "max_nodes": 3},
     "invalid config min_nodes: min_nodes must be an integer, got bool True; set it to a whole number such as 1"),
    ({"min_nodes": 1.5, "max_nodes": 3},
     "invalid config min_nodes: min_nodes must be an integer, got float 1.5; set it to a whole number such as 1"),
    ({"min_nodes": 1, "max_nodes": 3, "pending_pods_threshold": -1},
     "invalid config pending_pods_threshold: pending_pods_threshold must be >= 0, got -1; "
     "negative values are not allowed"),
    ({"min_nodes": 1, "max_nodes": 3, "cpu_threshold": 150},
     "invalid config cpu_threshold: cpu_threshold must be a percent between 0 and 100, got 150; it is a percent, "
     "not a ratio (use 20 for 20%)"),
    ({"min_nodes": 1, "max_nodes": 3, "memory_threshold": -0.5},
     "invalid config memory_threshold: memory_threshold must be a percent between 0 and 100, got -0.5; it is a "
     "percent, not a ratio (use 20 for 20%)"),
    ({"min_nodes": 1, "max_nodes": 3, "cpu_threshold": float("nan")},
     "invalid config cpu_threshold: cpu_threshold must be a finite number (percent 0-100), got nan"),
    ({"min_nodes": 1, "max_nodes": 3, "memory_threshold": "20%"},
     "invalid config memory_threshold: memory_threshold must be a number (percent 0-100), got str '20%'"),
    ({"min_nodes": 1, "max_nodes": 3, "scale_up_cooldown": -1},
     "invalid config scale_up_cooldown: scale_up_cooldown must be >= 0 seconds, got -1; use 0 to disable the "
     "cooldown"),
    ({"min_nodes": 1, "max_nodes": 3, "scale_down_cooldown": float("inf")},
     "invalid config scale_down_cooldown: scale_down_cooldown must be a finite number (seconds), got inf"),
    ({"min_nodes": 1, "max_nodes": 3, "max_scale_up_step": 0},
     "invalid config max_scale_up_step: max_scale_up_step must be >= 1, got 0; the step is the number of nodes "
     "added per scale_up, use 1 or more"),
    ({"min_nodes": 1, "max_nodes": 3, "policy": "magic"},
     "invalid config policy: unknown policy 'magic'; choose one of: binpacking, threshold"),
    ({"min_nodes": 1, "max_nodes": 3, "dry_run": "yes"},
     "invalid config dry_run: dry_run must be a boolean (true/false), got str 'yes'"),
    ({"min_nodes": 1, "max_nodes": 3, "cpu_treshold": 20},
     "invalid config cpu_treshold: unknown config key 'cpu_treshold'; valid keys are: check_mode, cpu_threshold, "
     "daemonset_overhead, dry_run, instance_type, max_empty_bulk_delete, max_node_provision_time, max_nodes, "
     "max_scale_up_step, memory_threshold, min_nodes, new_pod_scale_up_delay, node_group, node_groups, "
     "node_reservation, pending_pods_threshold, policy, scale_down_cooldown, scale_down_delay_after_add, "
     "scale_down_unneeded_time, scale_down_utilization_threshold, scale_up_cooldown"),
    ("min=1", "invalid config config: config must be a dict, got str"),
]


@pytest.mark.parametrize("cfg, message", CFG_ERRORS)
def test_invalid_config_is_rejected_with_exact_message(cfg, message):
    with pytest.raises(ConfigError) as exc:
        validate_config(cfg)
    assert str(exc.value) == message
    # decide validates before anything else, even with bad metrics
    with pytest.raises(ConfigError):
        decide({"bogus": 1}, cfg, None, NOW)


def test_valid_config_is_normalised():
    c = validate_config({"min_nodes": 2.0, "max_nodes": 4, "cpu_threshold": 35, "scale_up_cooldown": None})
    assert c["min_nodes"] == 2 and isinstance(c["min_nodes"], int)
    assert c["cpu_threshold"] == 35.0 and isinstance(c["cpu_threshold"], float)
    assert c["scale_up_cooldown"] == 300.0
    assert c["max_scale_up_step"] == 1 and c["policy"] == "threshold" and c["dry_run"] is False


# ---------------------------------------------------------------- metrics validation

METRICS_ERRORS = [
    ({"pending_pods": 1}, "nodes",
     "invalid metrics nodes: metrics.nodes is required (an integer count >= 0); pass the 'metrics' return of "
     "k3s.autoscaler.k3s_metrics"),
    ({"nodes": 3}, "pending_pods",
     "invalid metrics pending_pods: metrics.pending_pods is required (an integer count >= 0); pass the 'metrics' "
     "return of k3s.autoscaler.k3s_metrics"),
    ({"nodes": -1, "pending_pods": 0}, "nodes",
     "invalid metrics nodes: metrics.nodes must be an integer count >= 0, got -1"),
    ({"nodes": "3", "pending_pods": 0}, "nodes",
     "invalid metrics nodes: metrics.nodes must be an integer count >= 0, got str '3'"),
    ({"nodes": 3, "pending_pods": float("nan")}, "pending_pods",
     "invalid metrics pending_pods: metrics.pending_pods must be an integer count >= 0, got float nan"),
    ({"nodes": 3, "pending_pods": 0, "ready_nodes": -2}, "ready_nodes",
     "invalid metrics ready_nodes: metrics.ready_nodes must be an integer count >= 0, got -2"),
    ({"nodes": 3, "pending_pods": 0, "avg_cpu": "high"}, "avg_cpu",
     "invalid metrics avg_cpu: metrics.avg_cpu must be a number (percent 0-100) or null when unknown, "
     "got str 'high'"),
    ({"nodes": 3, "pending_pods": 0, "avg_memory": float("inf")}, "avg_memory",
     "invalid metrics avg_memory: metrics.avg_memory must be a finite percent >= 0, got inf; check the query "
     "that produced it in k3s_metrics"),
    ({"nodes": 3, "pending_pods": 0, "avg_cpu": -3.0}, "avg_cpu",
     "invalid metrics avg_cpu: metrics.avg_cpu must be a finite percent >= 0, got -3.0; check the query "
     "that produced it in k3s_metrics"),
    ([3, 0], "metrics",
     "invalid metrics metrics: metrics must be a dict (the 'metrics' return of k3s.autoscaler.k3s_metrics), "
     "got list"),
]


@pytest.mark.parametrize("metrics, field, message", METRICS_ERRORS)
def test_invalid_metrics_are_rejected_naming_the_key(metrics, field, message):
    with pytest.raises(MetricsError) as exc:
        decide(metrics, BASE, NEVER, NOW)
    assert exc.value.field == field
    assert str(exc.value) == message


def test_bad_state_timestamp_is_rejected():
    with pytest.raises(MetricsError) as exc:
        decide(low(), BASE, dict(NEVER, last_scale_up="yesterday"), NOW)
    assert exc.value.field == "state.last_scale_up"


def test_validate_metrics_accepts_whole_floats_and_nan_percent():
    m = validate_metrics({"nodes": 3.0, "pending_pods": 0, "avg_cpu": float("nan"), "avg_memory": 120.0})
    assert m["nodes"] == 3 and m["avg_cpu"] is None and m["avg_memory"] == 120.0


# ---------------------------------------------------------------- properties

@settings(max_examples=300, deadline=None)
@given(mn=st.integers(0, 20), span=st.integers(0, 20), nodes=st.integers(0, 50), pending=st.integers(0, 50),
       thr=st.integers(0, 10), step=st.integers(1, 5),
       cpu=st.one_of(st.none(), st.floats(0, 100)), mem=st.one_of(st.none(), st.floats(0, 100)),
       last_up=st.one_of(st.none(), st.floats(NOW - 2000, NOW + 10)),
       last_down=st.one_of(st.none(), st.floats(NOW - 2000, NOW + 10)),
       n_workers=st.integers(0, 4))
def test_decision_invariants(mn, span, nodes, pending, thr, step, cpu, mem, last_up, last_down, n_workers):
    cfg = {"min_nodes": mn, "max_nodes": mn + span, "pending_pods_threshold": thr, "max_scale_up_step": step}
    detail = [node("cp", None)] + [node("w%d" % i, "i-%d" % i) for i in range(n_workers)]
    r = decide({"nodes": nodes, "pending_pods": pending, "avg_cpu": cpu, "avg_memory": mem}, cfg,
               dict(NEVER, last_scale_up=last_up, last_scale_down=last_down), NOW, nodes_detail=detail)
    assert mn <= r["desired_nodes"] <= mn + span
    assert r["decision"] in ("scale_up", "scale_down", "no_action")
    if r["decision"] == "no_action":
        assert r["count"] == 0
    if r["decision"] == "scale_up":
        assert 1 <= r["count"] <= step and nodes + r["count"] <= mn + span
        assert r["cooldowns"]["scale_up"] == 0
    if r["decision"] == "scale_down":
        assert r["count"] == 1 and nodes - 1 >= mn
        assert cpu is not None and mem is not None or nodes > mn + span
        assert r["candidates"] and all(c["instance_id"] for c in r["candidates"])
        assert r["cooldowns"]["scale_down"] == 0
    assert r["reason"].startswith(r["decision"] + ":")
