"""End-to-end tests of the ``binpacking`` policy through the main job (``ansible-playbook playbooks/autoscale.yml``)
against the local simulated k3s cluster (emulated Kubernetes API, fake kubelet/scheduler, mock EC2, real
Prometheus): request-sized scale-up, instances on the way counted (nothing launched twice while nodes boot),
and scale-down of unneeded nodes (cordon, drain through the eviction API, terminate) with the state file's
``unneeded`` map, also of a second node group (its own min_nodes kept). Own clusters (``high``, ``low``,
``normal``), so it does not disturb test_autoscale_e2e.py's."""
import os
import time

import pytest
import yaml

from e2e_harness import (JOIN_SECONDS, GONE, prom_query, provider_instance, requires_stack, started_clusters,
                         wait_for)

ARGSPEC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       "collections/ansible_collections/k3s/autoscaler/roles/autoscale/meta/argument_specs.yml")


def _role_offers_binpacking():
    with open(ARGSPEC) as f:
        spec = yaml.safe_load(f)
    return "binpacking" in spec["argument_specs"]["main"]["options"]["autoscale_policy"].get("choices", [])


pytestmark = [pytest.mark.integration, pytest.mark.prometheus, requires_stack,
              pytest.mark.skipif(not _role_offers_binpacking(), reason="the autoscale role does not offer "
                                                                       "autoscale_policy: binpacking yet")]

SLOW_BOOT = 40  # seconds an instance stays "pending" in the mock EC2 (so a second run sees it on the way)


@pytest.fixture(scope="module")
def bp_clusters(tmp_path_factory):
    with started_clusters(("high", "low", "normal"), tmp_path_factory) as running:
        yield running


def bp_vars(cluster, **overrides):
    cfg = cluster.info["autoscaler"]
    ev = {"autoscale_policy": "binpacking", "autoscale_min_nodes": cfg["min_nodes"],
          "autoscale_max_nodes": cfg["max_nodes"], "autoscale_cpu_threshold": cfg["cpu_threshold"],
          "autoscale_memory_threshold": cfg["memory_threshold"], "autoscale_max_scale_up_step": 5,
          "autoscale_instance_type": cluster.info.get("instance_type") or "m5.large",
          "autoscale_kubeconfig": cluster.kubeconfig, "autoscale_new_pod_scale_up_delay": 0}
    ev.update({"autoscale_" + k: v for k, v in overrides.items()})
    return ev


def ok(run):
    assert run.rc == 0, run.describe()
    assert run.stats.get("failures", 0) == 0, run.describe()
    return run


def test_scale_up_is_sized_by_binpacking_and_counts_instances_on_the_way(bp_clusters):
    c = bp_clusters["high"]
    before = set(c.instances())
    wait_for(lambda: len(c.pending_pods()) == 9, 30, "the 9 pods that do not fit the first agent to be pending")
    slow = {"store": c.info["ec2_store"], "boot_seconds": SLOW_BOOT}
    run = ok(c.playbook(bp_vars(c, ec2_mock=slow)))
    d = run.decision
    # 9 pending pods of 500m on m5.large (2 CPU, 10m DaemonSet overhead): 3 per node -> 3 nodes, one launch
    assert (d["decision"], d["count"], d["node_group"]) == ("scale_up", 3, "default"), d["reason"]
    assert d["explain"]["scale_up"]["chosen"]["pods"] == 9
    assert "least-waste" in d["reason"] and "m5.large" in d["reason"]
    new_ids = set(c.instances()) - before
    assert len(new_ids) == 3
    for iid in new_ids:
        assert c.instances()[iid]["tags"]["k3s-autoscaler/node-group"] == "default"
    event = c.read_state()["events"][-1]
    assert (event["direction"], set(event["instance_ids"]), event.get("node_group")) == ("scale_up", new_ids,
                                                                                       "default")

    # while they boot, the next run counts them and launches nothing
    run2 = ok(c.playbook(bp_vars(c, ec2_mock=slow)))
    d2 = run2.decision
    assert d2["decision"] == "no_action", d2["reason"]
    assert {r["instance_id"] for r in d2["explain"]["in_flight"]} == new_ids
    assert len(d2["explain"]["scale_up"]["fit_in_flight"]) == 9
    assert set(c.instances()) == before | new_ids

    def joined():
        ids = {provider_instance(n.spec.provider_id)[1] for n in c.agent_nodes()}
        return new_ids <= ids
    wait_for(joined, SLOW_BOOT + JOIN_SECONDS + 30, "the 3 instances to join")
    wait_for(lambda: not c.pending_pods(), 30, "the pending pods to be scheduled")



def run_until_scale_down(c, ev, timeout):
    """Run the playbook until it decides scale_down; every run before must be a no_action hold."""
    deadline = time.monotonic() + timeout
    held = []
    while True:
        run = ok(c.playbook(ev))
        d = run.decision
        if d["decision"] == "scale_down":
            return run
        assert d["decision"] == "no_action", d["reason"]
        held.append(d["reason"])
        assert time.monotonic() < deadline, held
        time.sleep(1)  # pacing between cycles, not an assertion


def test_idle_nodes_are_unneeded_then_removed_with_cordon_drain_terminate(bp_clusters):
    c = bp_clusters["low"]
    ev = bp_vars(c, scale_down_unneeded_time=0, scale_down_delay_after_add=0)
    assert len(c.agent_nodes()) == 3
    # right after Prometheus starts, CPU rates look high and the per-node usage rule holds
    run = run_until_scale_down(c, ev, 120)
    d = run.decision
    # 3 agents, 2 small web pods: every node is unneeded; min_nodes 1 leaves room for 2 removals
    assert d["count"] == 2 and len(d["candidates"]) == 2, d["reason"]
    assert sum(1 for cand in d["candidates"] if not cand["empty"]) <= 1
    names = run.task_names
    for cand in d["candidates"]:
        i_drain = next(i for i, n in enumerate(names) if n.startswith("Cordon and drain %s through" % cand["name"]))
        i_term = next(i for i, n in enumerate(names) if n.startswith("Terminate instance %s" % cand["instance_id"]))
        assert i_drain < i_term, names
        assert c.instances()[cand["instance_id"]]["state"]["name"] in GONE
    state = c.read_state()
    downs = [e for e in state["events"] if e["direction"] == "scale_down"]
    assert sorted(n for e in downs for n in e["node_names"]) == sorted(cand["name"] for cand in d["candidates"])
    assert not set(state.get("unneeded", {})) & {cand["name"] for cand in d["candidates"]}
    wait_for(lambda: len(c.agent_nodes()) == 1, 30, "terminated nodes removed from the API")
    wait_for(lambda: not c.pending_pods() and all(p.status.phase == "Running" for p in c.workload_pods()),
             30, "the drained web pods to run on the remaining node")
    # at min_nodes: nothing more to remove
    run = ok(c.playbook(ev))
    assert run.decision["decision"] == "no_action", run.decision["reason"]



def _launch_batch_instances(c, count):
    """Launch ``count`` running c5.large instances of node group ``batch`` straight into the cluster's mock EC2
    (as an earlier run in that group would have), with the agent user_data that joins this cluster."""
    from ansible_collections.k3s.autoscaler.plugins.module_utils.ec2_mock import MockEC2
    from local_cluster.simulation import DEFAULT_IMAGE_ID
    user_data = ("#!/bin/sh\nset -eu\nexport K3S_URL=%s\nexport K3S_TOKEN=%s\n"
                 "curl -sfL https://get.k3s.io | sh -s - agent --node-label k3s-autoscaler/node-group=batch\n"
                 % (c.info["k3s_url"], c.info["k3s_token"]))
    ec2 = MockEC2(store=c.info["ec2_store"], region=c.info["region"], boot_seconds=0)
    try:
        instances, _ = ec2.run_instances(count, {
            "instance_type": "c5.large", "image_id": DEFAULT_IMAGE_ID, "user_data": user_data,
            "tags": {"Name": "%s-batch" % c.info["cluster_name"], "k3s-autoscaler/cluster": c.info["cluster_name"],
                     "k3s-autoscaler/node-group": "batch"}})
    finally:
        ec2.close()
    return {i["instance_id"] for i in instances}


def test_idle_node_of_a_second_node_group_is_removed_down_to_that_groups_min_nodes(bp_clusters):
    c = bp_clusters["normal"]
    default_ids = {provider_instance(n.spec.provider_id)[1] for n in c.agent_nodes()}
    assert len(default_ids) == 2
    batch_ids = _launch_batch_instances(c, 2)

    def batch_nodes_rated():
        joined = {provider_instance(n.spec.provider_id)[1]: n.metadata.name for n in c.agent_nodes()}
        if not batch_ids <= set(joined):
            return False
        rated = {s["metric"]["nodename"] for s in prom_query(
            c.info["prometheus_url"], 'rate(node_cpu_seconds_total{mode="idle"}[1m]) * on(instance) '
                                      'group_left(nodename) node_uname_info')}
        return {joined[i] for i in batch_ids} <= rated
    wait_for(batch_nodes_rated, 60, "the 2 batch instances to join and have a CPU rate in Prometheus")

    # default is at its own min_nodes (2): only the idle batch nodes may go, and batch keeps its min_nodes 1
    groups = [{"name": "default", "instance_type": "m5.large", "min_nodes": 2, "max_nodes": 4},
              {"name": "batch", "instance_type": "c5.large", "min_nodes": 1, "max_nodes": 3}]
    ev = bp_vars(c, node_groups=groups, min_nodes=1, scale_down_unneeded_time=0, scale_down_delay_after_add=0)
    # right after the nodes join, their CPU rates can look high and hold the scale-down
    run = run_until_scale_down(c, ev, 60)
    d = run.decision
    assert d["count"] == 1 and d["node_group"] == "batch", d["reason"]
    cand = d["candidates"][0]
    assert cand["instance_id"] in batch_ids and cand["node_group"] == "batch" and cand["empty"], cand
    assert "group batch at its min_nodes" in d["reason"], d["reason"]
    # the guard counted the candidate's own group and min_nodes, and let it go
    guard = run.result("Guard the removal")
    assert guard["proceed"] is True, guard
    assert (guard["node_group"], guard["min_nodes"], guard["live"]) == ("batch", 1, 2), guard
    names = run.task_names
    i_drain = next(i for i, n in enumerate(names) if n.startswith("Cordon and drain %s through" % cand["name"]))
    i_term = next(i for i, n in enumerate(names) if n.startswith("Terminate instance %s" % cand["instance_id"]))
    assert i_drain < i_term, names
    after = c.instances()
    assert after[cand["instance_id"]]["state"]["name"] in GONE
    kept = batch_ids - {cand["instance_id"]}
    assert {iid for iid in kept | default_ids if after[iid]["state"]["name"] == "running"} == kept | default_ids
    event = c.read_state()["events"][-1]
    assert (event["direction"], event["instance_ids"], event["node_names"], event.get("node_group")) == (
        "scale_down", [cand["instance_id"]], [cand["name"]], "batch")
    assert "Uncordon" not in " ".join(names)
    wait_for(lambda: len(c.agent_nodes()) == 3, 30, "the terminated batch node removed from the API")
    # both groups at their min_nodes: nothing more to remove
    run = ok(c.playbook(ev))
    assert run.decision["decision"] == "no_action", run.decision["reason"]
    assert {i for i, x in c.instances().items() if x["state"]["name"] == "running"} == kept | default_ids
