"""End-to-end tests of the main job (issue 3, acceptance 2): ``ansible-playbook playbooks/autoscale.yml``
against the local simulated k3s cluster (``python -m local_cluster up``: emulated Kubernetes API, fake
kubelet/scheduler, SQLite mock EC2, real Prometheus), one cluster per scenario, all started at once so
their Prometheus warm-ups overlap.

Order matters: ``boundary`` runs first because its pending pods go away at scenario t=120 s.
"""
import os
import time

import pytest

from e2e_harness import (BOOT_SECONDS, JOIN_SECONDS, Watcher, assert_cordon_drain_then_terminate,
                         provider_instance, requires_stack, wait_for)

pytestmark = [pytest.mark.integration, pytest.mark.prometheus, requires_stack]



def scenario_vars(cluster, **overrides):
    """The scenario's suggested autoscaler settings (cluster.json["autoscaler"]) as role variables."""
    cfg = cluster.info["autoscaler"]
    ev = {"autoscale_min_nodes": cfg["min_nodes"], "autoscale_max_nodes": cfg["max_nodes"],
          "autoscale_pending_pods_threshold": cfg["pending_pods_threshold"],
          "autoscale_cpu_threshold": cfg["cpu_threshold"], "autoscale_memory_threshold": cfg["memory_threshold"]}
    ev.update({"autoscale_" + k: v for k, v in overrides.items()})
    return ev


def ok(run):
    assert run.rc == 0, run.describe()
    assert run.stats.get("failures", 0) == 0 and run.stats.get("unreachable", 0) == 0, run.describe()
    return run


def snapshot(cluster):
    """What a user can see: instance states, agent Nodes (name -> (instance_id, unschedulable)), workload pods."""
    nodes = {}
    for n in cluster.agent_nodes():
        nodes[n.metadata.name] = (provider_instance(n.spec.provider_id)[1], bool(n.spec.unschedulable))
    return {"instances": {iid: i["state"]["name"] for iid, i in cluster.instances().items()}, "nodes": nodes}


def assert_nothing_launched_or_cordoned(run):
    names = run.task_names
    assert not any(n.startswith(("Launch", "Cordon", "Terminate", "Record the scale")) for n in names), names


# --------------------------------------------------------------------------------------------------
# boundary: at max_nodes with pending pods
# --------------------------------------------------------------------------------------------------
def test_boundary_at_max_nodes_with_pending_pods_is_no_action(clusters):
    c = clusters["boundary"]
    cfg = c.info["autoscaler"]
    wait_for(lambda: len(c.pending_pods()) > 0, 30, "pending pods in the boundary scenario")
    before = snapshot(c)
    assert len(before["nodes"]) == cfg["max_nodes"] == 3

    run = ok(c.playbook(scenario_vars(c, scale_up_cooldown=0, scale_down_cooldown=0)))

    metrics = run.result("Collect cluster metrics")["metrics"]
    assert metrics["pending_pods"] > 0 and metrics["nodes"] == 3
    d = run.decision
    assert d["decision"] == "no_action", d["reason"]
    assert "max_nodes" in d["reason"] and "max_nodes" in d["blocked_by"], d
    assert d["desired_nodes"] == 3
    assert_nothing_launched_or_cordoned(run)
    assert snapshot(c) == before
    assert c.textfile_decision() == "no_action"


# --------------------------------------------------------------------------------------------------
# normal: no scaling over several cycles
# --------------------------------------------------------------------------------------------------
def test_normal_load_no_scaling_over_cycles(clusters):
    c = clusters["normal"]
    wait_for(lambda: not c.pending_pods(), 30, "all normal-scenario pods scheduled")
    before = snapshot(c)
    assert len(before["nodes"]) == 2 and set(before["instances"].values()) == {"running"}
    # cooldowns 0: a no_action here is the policy's answer to the load, not a cooldown hold
    ev = scenario_vars(c, scale_up_cooldown=0, scale_down_cooldown=0)
    for cycle in range(3):
        run = ok(c.playbook(ev))
        d = run.decision
        assert d["decision"] == "no_action", (cycle, d["reason"])
        assert d["blocked_by"] == [], (cycle, d)  # nothing wanted, nothing blocked
        assert d["reason"].startswith("no_action: 0 pending pods <= threshold 0"), d["reason"]
        assert d["desired_nodes"] == 2
        assert_nothing_launched_or_cordoned(run)
        assert "decision=no_action" in run.summary
        assert c.textfile_decision() == "no_action"
        assert snapshot(c) == before, cycle
    assert len(c.running_ids()) == 2


def test_unreachable_prometheus_holds_and_fails_the_run(clusters):
    """Uncertain inputs (here: no Prometheus at the URL) never become a scaling action: the run holds
    (no_action), records run_error=1 in the textfile, and exits non-zero with an error naming the URL."""
    c = clusters["normal"]
    before = snapshot(c)
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    run = c.playbook(scenario_vars(c, scale_up_cooldown=0, scale_down_cooldown=0, prometheus_url=dead,
                                   prometheus_timeout=2))
    assert run.rc != 0, run.describe()
    assert run.result("Collect cluster metrics").get("failed") is True
    assert not run.ran("Decide")
    held = run.result("Hold (no_action) because the inputs are uncertain")
    assert held is not None and held["ansible_facts"]["autoscale_decision"]["decision"] == "no_action"
    failed = run.result("Fail the run when the inputs were uncertain")
    assert failed["failed"] is True and "127.0.0.1:9" in failed["msg"] and "prometheus_url" in failed["msg"], failed
    assert_nothing_launched_or_cordoned(run)
    assert snapshot(c) == before
    assert c.textfile_decision() == "no_action"
    errors = [v for (name, _l), v in c.read_textfile().items() if name == "k3s_autoscaler_run_error"]
    assert errors == [1.0]


def test_normal_kubectl_nodes_match_ec2(clusters):
    assert_kubectl_matches_ec2(clusters["normal"])


# --------------------------------------------------------------------------------------------------
# high: --check first (changes nothing), then the real scale_up; nodes join; pending pods get scheduled
# --------------------------------------------------------------------------------------------------
HIGH_VARS = dict(max_scale_up_step=3, scale_up_cooldown=0, scale_down_cooldown=600)


def test_check_mode_scale_up_changes_nothing(clusters):
    c = clusters["high"]
    wait_for(lambda: len(c.pending_pods()) > 0, 30, "pending pods in the high scenario")
    before = snapshot(c)
    assert not os.path.exists(c.state_file) and not os.path.exists(c.textfile)

    run = ok(c.playbook(scenario_vars(c, **HIGH_VARS), check=True))

    d = run.decision
    assert d["decision"] == "scale_up" and d["count"] == 3, d["reason"]
    assert "check mode: nothing changed" in run.summary
    assert snapshot(c) == before  # no new instance, no cordon
    assert not any(unsched for _iid, unsched in before["nodes"].values())
    assert not os.path.exists(c.state_file), "check mode wrote the state file"
    assert not os.path.exists(c.textfile), "check mode wrote the run-metrics textfile"


def test_high_load_scale_up_nodes_join_and_pending_pods_schedule(clusters):
    c = clusters["high"]
    before_ids = set(c.instances())
    assert len(c.pending_pods()) > 0

    run = ok(c.playbook(scenario_vars(c, **HIGH_VARS)))

    d = run.decision
    assert d["decision"] == "scale_up" and d["count"] == 3, d["reason"]
    assert d["reason"].startswith("scale_up: "), d["reason"]
    names = run.task_names
    assert any(n.startswith("Launch 3 node(s)") for n in names), names
    assert run.result("Launch 3 node(s) through the mock EC2")["changed"] is True
    instances = c.instances()
    new_ids = set(instances) - before_ids
    assert len(new_ids) == 3
    event = c.read_state()["events"][-1]
    assert event["direction"] == "scale_up" and set(event["instance_ids"]) == new_ids
    assert c.textfile_decision() == "scale_up"
    desired = [v for (name, _l), v in c.read_textfile().items() if name == "k3s_autoscaler_desired_nodes"]
    assert desired == [4.0]

    def joined():
        out = {}
        for n in c.agent_nodes():
            az, iid = provider_instance(n.spec.provider_id)
            ready = any(cond.type == "Ready" and cond.status == "True" for cond in n.status.conditions or [])
            if iid in new_ids and ready:
                out[iid] = (az, n.metadata.name)
        return out if set(out) == new_ids else None

    nodes = wait_for(joined, BOOT_SECONDS + JOIN_SECONDS + 30, "the 3 launched instances to join as Ready Nodes")
    for iid, (az, name) in nodes.items():
        inst = c.instances()[iid]
        assert inst["state"]["name"] == "running"
        assert az == inst["placement"]["availability_zone"]  # providerID aws:///<az>/<instance_id>
        assert name == inst["private_dns_name"]

    wait_for(lambda: not c.pending_pods(), 30, "pending pods to be scheduled on the new nodes")
    pods = c.workload_pods()
    assert len(pods) == 12 and all(p.status.phase == "Running" for p in pods)
    assert {p.spec.node_name for p in pods} & {name for _az, name in nodes.values()}

    # the next cycle sees no pending pods: no further scale_up (no over-provisioning)
    run2 = ok(c.playbook(scenario_vars(c, **HIGH_VARS)))
    assert run2.result("Collect cluster metrics")["metrics"]["pending_pods"] == 0
    assert run2.decision["decision"] == "no_action", run2.decision["reason"]
    assert set(c.instances()) == before_ids | new_ids


def assert_kubectl_matches_ec2(c):
    """kubectl get nodes -o json == the control plane + every running instance older than the join time."""
    def agree():
        items = c.kubectl_nodes()
        instances = c.instances()
        now = time.time()
        running = {iid for iid, i in instances.items() if i["state"]["name"] == "running"}
        # ids of running instances launched long enough ago to have joined (launch_time is whole seconds)
        old = {iid for iid in running
               if now - _epoch(instances[iid]["launch_time"]) > BOOT_SECONDS + JOIN_SECONDS + 3}
        agents = {}
        others = []
        for n in items:
            pi = provider_instance(n["spec"].get("providerID"))
            if pi:
                agents[pi[1]] = n
            else:
                others.append(n)
        return (items, instances, running, old, agents, others) if old <= set(agents) <= running else None

    items, instances, running, old, agents, others = wait_for(agree, 30, "kubectl nodes == running instances")
    assert [n["metadata"]["name"] for n in others] == ["k3s-server"]
    assert others[0]["spec"]["providerID"] == "k3s://k3s-server"
    assert set(agents) == running, (sorted(agents), sorted(running))
    for iid, n in agents.items():
        inst = instances[iid]
        assert n["metadata"]["name"] == inst["private_dns_name"]
        assert n["spec"]["providerID"] == "aws:///%s/%s" % (inst["placement"]["availability_zone"], iid)
    assert len(items) == len(running) + 1


def _epoch(launch_time):
    from datetime import datetime
    return datetime.fromisoformat(launch_time).timestamp()


def test_high_kubectl_nodes_match_ec2(clusters):
    c = clusters["high"]
    assert len(c.running_ids()) == 4  # 1 initial + 3 launched above
    assert_kubectl_matches_ec2(c)


# --------------------------------------------------------------------------------------------------
# low: warm-up / cooldown holds, scale_down with cordon + drain before terminate, down to min_nodes
# --------------------------------------------------------------------------------------------------
LOW_COOLDOWN = 20
LOW_VARS = dict(scale_up_cooldown=0, scale_down_cooldown=LOW_COOLDOWN)


def run_until(c, ev, decision, timeout, check=False, each=None):
    """Run the playbook until its decision is ``decision``; every other run must be a no_action hold.
    Returns (the run, [reasons of the runs before])."""
    deadline = time.monotonic() + timeout
    held = []
    while True:
        run = ok(c.playbook(ev, check=check))
        if each:
            each(run)
        d = run.decision
        if d["decision"] == decision:
            return run, held
        assert d["decision"] == "no_action", d["reason"]
        held.append(d["reason"])
        assert time.monotonic() < deadline, "no %s within %ss; reasons: %s" % (decision, timeout, held)
        time.sleep(1)  # pacing between cycles, not an assertion


class TestLowLoad:
    def test_check_mode_scale_down_changes_nothing_then_scale_down(self, clusters):
        c = clusters["low"]
        ev = scenario_vars(c, **LOW_VARS)
        before = snapshot(c)
        assert len(before["nodes"]) == 3

        def unchanged(run):
            assert snapshot(c) == before, "check mode changed something"
            assert not os.path.exists(c.state_file) and not os.path.exists(c.textfile)

        # warm-up: right after Prometheus starts, rate(...[1m]) under-estimates idle time, so CPU looks high
        # and the policy holds; every such hold must say why (avg_cpu is not below the threshold).
        run, held = run_until(c, ev, "scale_down", timeout=120, check=True, each=unchanged)
        for reason in held:
            assert reason.startswith("no_action: 0 pending pods <= threshold 0") and "avg_cpu" in reason, reason
        assert run.decision["reason"].startswith("scale_down: avg_cpu "), run.decision["reason"]
        assert "check mode: nothing changed" in run.summary
        assert not any(unsched for _i, unsched in snapshot(c)["nodes"].values())

        with Watcher(c) as watcher:
            run = ok(c.playbook(ev))
        assert run.decision["decision"] == "scale_down", run.decision["reason"]
        node, iid = assert_cordon_drain_then_terminate(c, run, watcher)
        assert c.textfile_decision() == "scale_down"
        TestLowLoad.first = (node, iid)

    def test_second_scale_down_blocked_by_cooldown_then_allowed(self, clusters):
        c = clusters["low"]
        ev = scenario_vars(c, **LOW_VARS)
        # the blocked run uses a long cooldown: with LOW_COOLDOWN itself, a loaded machine can spend the whole
        # window between the previous scale_down and this run's decision, and the run is then (rightly) allowed
        run = ok(c.playbook(scenario_vars(c, scale_up_cooldown=0, scale_down_cooldown=3600)))
        d = run.decision
        assert d["decision"] == "no_action" and d["blocked_by"] == ["cooldown"], d
        assert "blocked by cooldown" in d["reason"] and "scale_down_cooldown" in d["reason"], d["reason"]
        assert_nothing_launched_or_cordoned(run)
        assert c.textfile_decision() == "no_action"

        last = c.read_state()["last_scale_down"]
        wait_for(lambda: time.time() > last + LOW_COOLDOWN + 0.5, LOW_COOLDOWN + 5, "the scale_down cooldown to pass")
        with Watcher(c) as watcher:
            run = ok(c.playbook(ev))
        assert run.decision["decision"] == "scale_down", run.decision["reason"]
        node, iid = assert_cordon_drain_then_terminate(c, run, watcher)
        assert (node, iid) != TestLowLoad.first
        assert len(c.running_ids()) == 1
        state = c.read_state()
        assert state["totals"]["scale_down"] == 2

    def test_at_min_nodes_while_idle_is_no_action(self, clusters):
        c = clusters["low"]
        # the terminated nodes' Node objects go away after --remove-grace
        wait_for(lambda: len(c.agent_nodes()) == 1, 30, "terminated nodes removed from the API")
        wait_for(lambda: not c.pending_pods(), 30, "no pending pods")
        before = snapshot(c)
        run = ok(c.playbook(scenario_vars(c, scale_up_cooldown=0, scale_down_cooldown=0)))
        d = run.decision
        assert d["decision"] == "no_action", d["reason"]
        assert "min_nodes" in d["reason"] and "min_nodes" in d["blocked_by"], d
        assert d["desired_nodes"] == 1
        assert_nothing_launched_or_cordoned(run)
        assert snapshot(c) == before


def test_drained_pods_are_rescheduled_on_another_node(clusters):
    c = clusters["low_spread"]

    def layout():
        pods = c.workload_pods()
        by_node = {}
        for p in pods:
            if p.status.phase == "Running":
                by_node.setdefault(p.spec.node_name, []).append(p.metadata.name)
        names = {p.metadata.name.rsplit("-", 2)[0] for p in pods}
        return by_node if names == {"small", "medium"} and len(by_node) == 2 and len(pods) == 2 else None

    by_node = wait_for(layout, 30, "one workload pod on each agent (hog gone)")
    with Watcher(c) as watcher:
        run, held = run_until(c, scenario_vars(c, scale_up_cooldown=0, scale_down_cooldown=0), "scale_down", 120)
    for reason in held:
        assert "avg_cpu" in reason, reason
    # run_until's last (real) run acted: what was on the drained node, and was it drained before terminate?
    node, _iid = assert_cordon_drain_then_terminate(c, run, watcher)
    drained = by_node[node]
    assert drained, "precondition: the drained node ran a workload pod"
    assert any(n.startswith("small-") for n in drained), by_node
    # the watcher saw the pod on the node before the drain, so the empty node at terminate is the drain's work
    assert any(set(drained) <= set(s["pods"].get(node, [])) for s in watcher.snapshots), "pod never seen on node"
    [other] = [n for n in by_node if n != node]

    def rescheduled():
        pods = c.workload_pods()
        return pods if (len(pods) == 2 and all(p.status.phase == "Running" for p in pods)
                        and all(p.spec.node_name == other for p in pods)) else None

    pods = wait_for(rescheduled, 30, "the drained pod Running on the other node")
    assert not set(p.metadata.name for p in pods) & set(drained)  # evicted pods were replaced by new ones
