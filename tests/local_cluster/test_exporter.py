import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from local_cluster.exporter import MetricsServer, label_name, render
from local_cluster.kubelet import CONTROL_PLANE_NAME
from local_cluster.simulation import NODE_BASE_CPU, NODE_BASE_MEMORY
from tests.local_cluster.sim_fixtures import advance, make_sim, scenario

MI = 1024 * 1024


def samples(sim, path="/metrics"):
    out = {}
    for fam in text_string_to_metric_families(render(sim, path).decode()):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


@pytest.fixture
def sim_setup(tmp_path):
    sc = scenario(workloads=[{"name": "web", "cpu": "500m", "memory": "256Mi", "replicas": 5,
                              "usage": {"cpu": "400m", "memory": "100Mi"}}])
    return make_sim(tmp_path, sc)


def test_kube_state_metrics_pod_series(sim_setup):
    sim, clock, store, ec2 = sim_setup
    m = samples(sim)
    pods = {p["metadata"]["name"]: p for p in store.list("v1", "Pod", "default")}
    assert len(pods) == 5
    running = [n for n, p in pods.items() if p["status"]["phase"] == "Running"]
    pending = [n for n, p in pods.items() if p["status"]["phase"] == "Pending"]
    assert len(running) == 4 and len(pending) == 1  # a 2-core m5.large holds four 500m pods
    phase = {(lbl["pod"], lbl["phase"]): v for lbl, v in m["kube_pod_status_phase"]}
    for name in running:
        assert phase[(name, "Running")] == 1.0 and phase[(name, "Pending")] == 0.0
        assert {ph for (pod, ph) in phase if pod == name} == {"Pending", "Succeeded", "Failed", "Unknown", "Running"}
    for name in pending:
        assert phase[(name, "Pending")] == 1.0
    assert sorted(lbl["pod"] for lbl, v in m["kube_pod_status_unschedulable"]) == sorted(pending)
    uid = pods[running[0]]["metadata"]["uid"]
    req = [(lbl, v) for lbl, v in m["kube_pod_container_resource_requests"] if lbl["pod"] == running[0]]
    assert sorted((lbl["resource"], lbl["unit"], v) for lbl, v in req) == [("cpu", "core", 0.5),
                                                                          ("memory", "byte", 256.0 * MI)]
    assert all(lbl["uid"] == uid and lbl["namespace"] == "default" and lbl["container"] == "main"
               and lbl["node"] == pods[running[0]]["spec"]["nodeName"] for lbl, _ in req)
    pending_req = [lbl for lbl, _ in m["kube_pod_container_resource_requests"] if lbl["pod"] == pending[0]]
    assert all(lbl["node"] == "" for lbl in pending_req)
    owner = [lbl for lbl, _ in m["kube_pod_owner"] if lbl["pod"] == running[0]][0]
    rs = pods[running[0]]["metadata"]["ownerReferences"][0]["name"]
    assert owner == {"namespace": "default", "pod": running[0], "uid": uid, "owner_kind": "ReplicaSet",
                     "owner_name": rs, "owner_is_controller": "true"}
    info = [lbl for lbl, _ in m["kube_pod_info"] if lbl["pod"] == running[0]][0]
    assert info["node"] == pods[running[0]]["spec"]["nodeName"] and info["created_by_kind"] == "ReplicaSet"
    created = [v for lbl, v in m["kube_pod_created"] if lbl["pod"] == running[0]][0]
    assert created == int(clock())


def test_kube_state_metrics_node_series(sim_setup):
    sim, clock, store, ec2 = sim_setup
    m = samples(sim, "/metrics/kube-state-metrics")
    assert "node_cpu_seconds_total" not in m
    [inst] = ec2.list_instances()
    agent = inst["private_dns_name"]
    info = {lbl["node"]: lbl for lbl, v in m["kube_node_info"]}
    assert set(info) == {agent, CONTROL_PLANE_NAME}
    assert info[agent]["provider_id"] == f"aws:///{inst['placement']['availability_zone']}/{inst['instance_id']}"
    assert info[CONTROL_PLANE_NAME]["provider_id"] == "k3s://k3s-server"
    assert {"kernel_version", "os_image", "container_runtime_version", "kubelet_version", "internal_ip"} <= set(info[agent])
    assert sorted((l["node"], l["role"]) for l, v in m["kube_node_role"]) == [
        (CONTROL_PLANE_NAME, "control-plane"), (CONTROL_PLANE_NAME, "master")]
    labels = {l["node"]: l for l, v in m["kube_node_labels"]}
    assert labels[agent][label_name("node.kubernetes.io/instance-type")] == "m5.large"
    assert "label_node_kubernetes_io_instance_type" in labels[agent]
    cond = {(l["node"], l["condition"], l["status"]): v for l, v in m["kube_node_status_condition"]}
    assert cond[(agent, "Ready", "true")] == 1.0 and cond[(agent, "Ready", "false")] == 0.0
    assert cond[(agent, "Ready", "unknown")] == 0.0
    alloc = {(l["node"], l["resource"], l["unit"]): v for l, v in m["kube_node_status_allocatable"]}
    cap = {(l["node"], l["resource"], l["unit"]): v for l, v in m["kube_node_status_capacity"]}
    assert alloc[(agent, "cpu", "core")] == 2.0 and cap[(agent, "memory", "byte")] == 8192.0 * MI
    assert alloc[(agent, "memory", "byte")] == (8192.0 - 100) * MI
    assert {l["node"]: v for l, v in m["kube_node_spec_unschedulable"]} == {agent: 0.0, CONTROL_PLANE_NAME: 0.0}
    assert {l["node"] for l, v in m["kube_node_created"]} == {agent, CONTROL_PLANE_NAME}
    # cordon through the API shows up
    store.patch("v1", "Node", agent, {"spec": {"unschedulable": True}})
    sim.tick()
    m = samples(sim)
    assert {l["node"]: v for l, v in m["kube_node_spec_unschedulable"]}[agent] == 1.0


def test_node_exporter_counters_integrate_usage(sim_setup):
    sim, clock, store, ec2 = sim_setup
    [inst] = ec2.list_instances()
    agent = inst["private_dns_name"]
    before = samples(sim, "/metrics/node-exporter")
    advance(sim, clock, 10)
    m = samples(sim, "/metrics/node-exporter")
    assert "kube_node_info" not in m

    def cpu_total(ms, mode):
        return sum(v for l, v in ms["node_cpu_seconds_total"] if l["instance"] == f"{agent}:9100" and l["mode"] == mode)

    # 4 running pods x 0.4 cores for 10 s, plus the node base
    assert cpu_total(m, "user") - cpu_total(before, "user") == pytest.approx(16.0)
    assert cpu_total(m, "system") - cpu_total(before, "system") == pytest.approx(NODE_BASE_CPU * 10)
    assert cpu_total(m, "idle") - cpu_total(before, "idle") == pytest.approx(20 - 16 - NODE_BASE_CPU * 10)
    cpus = {l["cpu"] for l, v in m["node_cpu_seconds_total"] if l["instance"] == f"{agent}:9100"}
    assert cpus == {"0", "1"}
    total = {l["instance"]: v for l, v in m["node_memory_MemTotal_bytes"]}
    avail = {l["instance"]: v for l, v in m["node_memory_MemAvailable_bytes"]}
    assert total[f"{agent}:9100"] == 8192.0 * MI
    assert avail[f"{agent}:9100"] == 8192.0 * MI - NODE_BASE_MEMORY - 4 * 100 * MI
    uname = {l["instance"]: l for l, v in m["node_uname_info"]}
    assert uname[f"{agent}:9100"]["nodename"] == agent
    assert uname[f"{CONTROL_PLANE_NAME}:9100"]["nodename"] == CONTROL_PLANE_NAME


def test_metrics_server_paths(sim_setup):
    sim = sim_setup[0]
    server = MetricsServer(sim).start()
    try:
        body = urllib.request.urlopen(server.url, timeout=5).read().decode()
        assert "kube_node_info{" in body and "node_uname_info{" in body
        ksm = urllib.request.urlopen(server.url + "/kube-state-metrics", timeout=5).read().decode()
        assert "kube_node_info{" in ksm and "node_uname_info" not in ksm
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/nope", timeout=5)
    finally:
        server.stop()


def test_fast_exposition_is_byte_identical_to_prometheus_client(sim_setup):
    from prometheus_client import generate_latest

    from local_cluster.exporter import generate_fast, registries
    sim, clock, store, ec2 = sim_setup
    advance(sim, clock, 3)
    for path, registry in registries(sim).items():
        assert generate_fast(registry) == generate_latest(registry), path
