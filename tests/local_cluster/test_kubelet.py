from local_cluster.kubelet import CONTROL_PLANE_NAME, parse_user_data, user_data_joins
from tests.local_cluster.sim_fixtures import K3S_URL, TOKEN, advance, joining_user_data, launch, make_sim, scenario

MIB = 1024 * 1024


def test_parse_user_data_quoted_and_unquoted_and_labels():
    ud = ("export K3S_URL='http://127.0.0.1:1'\nexport K3S_TOKEN=abc\n"
          "sh -s - agent --node-label 'k3s-autoscaler/node-group=gpu' --node-label a=b\n")
    parsed = parse_user_data(ud)
    assert parsed["K3S_URL"] == "http://127.0.0.1:1" and parsed["K3S_TOKEN"] == "abc"
    assert parsed["labels"] == {"k3s-autoscaler/node-group": "gpu", "a": "b"}
    assert not user_data_joins(ud, "http://127.0.0.1:1", "abd")
    assert not user_data_joins(None, K3S_URL, TOKEN)


def test_control_plane_and_initial_node_shape(tmp_path):
    sim, clock, store, ec2 = make_sim(tmp_path)
    cp = store.get("v1", "Node", CONTROL_PLANE_NAME)
    assert cp["spec"]["providerID"] == "k3s://k3s-server"
    assert cp["spec"]["taints"] == [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    assert cp["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] == "true"
    assert cp["metadata"]["labels"]["node-role.kubernetes.io/master"] == "true"
    [inst] = ec2.list_instances(filters={"instance-state-name": "running"})
    assert inst["tags"]["k3s-autoscaler/cluster"] == "local"  # the autoscaler can find and terminate it
    node = store.get("v1", "Node", inst["private_dns_name"])
    az = inst["placement"]["availability_zone"]
    assert node["spec"]["providerID"] == f"aws:///{az}/{inst['instance_id']}"
    labels = node["metadata"]["labels"]
    assert labels["node.kubernetes.io/instance-type"] == "m5.large"
    assert labels["topology.kubernetes.io/zone"] == az
    assert labels["kubernetes.io/hostname"] == inst["private_dns_name"]
    assert node["status"]["capacity"]["cpu"] == "2000m"
    assert node["status"]["capacity"]["memory"] == f"{8192 * 1024}Ki"
    assert node["status"]["allocatable"]["memory"] == f"{(8192 - 100) * 1024}Ki"  # minus eviction-hard 100Mi
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready[0]["status"] == "True"


def test_right_token_joins_after_join_seconds_wrong_token_never(tmp_path):
    sim, clock, store, ec2 = make_sim(tmp_path, join_seconds=10, boot_seconds=5)
    good = launch(ec2, joining_user_data())
    bad = launch(ec2, joining_user_data(token="wrong"))
    other = launch(ec2, joining_user_data(url="http://10.9.9.9:6443"))
    advance(sim, clock, 14)  # running at t=5, joins at t>=15
    assert not store.exists("v1", "Node", good["private_dns_name"])
    advance(sim, clock, 2)
    assert store.exists("v1", "Node", good["private_dns_name"])
    advance(sim, clock, 60)
    assert not store.exists("v1", "Node", bad["private_dns_name"])
    assert not store.exists("v1", "Node", other["private_dns_name"])
    assert len(store.list("v1", "Node")) == 3


def test_terminated_instance_node_goes_not_ready_then_removed_and_pods_come_back(tmp_path):
    sc = scenario(workloads=[{"name": "web", "cpu": "500m", "memory": "256Mi", "replicas": 2}],
                  daemonsets=[{"name": "svclb", "cpu": "10m", "memory": "16Mi"}])
    sim, clock, store, ec2 = make_sim(tmp_path, sc, remove_grace=30)
    [inst] = ec2.list_instances()
    name = inst["private_dns_name"]
    web_pods = {p["metadata"]["name"] for p in store.list("v1", "Pod", "default", field_selector=f"spec.nodeName={name}")}
    assert len(web_pods) == 2
    ec2.terminate_instances([inst["instance_id"]])
    advance(sim, clock, 1)
    node = store.get("v1", "Node", name)
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"][0]
    assert ready["status"] == "Unknown" and ready["reason"] == "NodeStatusUnknown"
    assert {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"} in [
        {k: t[k] for k in ("key", "effect")} for t in node["spec"]["taints"]]
    advance(sim, clock, 25)
    assert store.exists("v1", "Node", name)
    advance(sim, clock, 6)
    assert not store.exists("v1", "Node", name)
    pods = store.list("v1", "Pod", "default")
    assert len(pods) == 2 and {p["metadata"]["name"] for p in pods}.isdisjoint(web_pods)
    assert all(p["status"]["phase"] == "Pending" for p in pods)
    assert {c["reason"] for p in pods for c in p["status"]["conditions"]} == {"Unschedulable"}
    # the DaemonSet pod of the removed node is gone too; only the control plane's remains
    ds = store.list("v1", "Pod", "kube-system")
    assert [p["spec"]["nodeName"] for p in ds] == [CONTROL_PLANE_NAME]


def test_daemonset_pod_created_per_node_including_control_plane(tmp_path):
    sc = scenario(daemonsets=[{"name": "svclb", "cpu": "10m", "memory": "16Mi"}], initial_nodes=2)
    sim, clock, store, ec2 = make_sim(tmp_path, sc)
    ds_pods = store.list("v1", "Pod", "kube-system")
    assert len(ds_pods) == 3
    assert all(p["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet" for p in ds_pods)
    assert store.exists("apps/v1", "DaemonSet", "svclb", "kube-system")  # kubectl drain looks it up
    assert {p["spec"]["nodeName"] for p in ds_pods} == {n["metadata"]["name"] for n in store.list("v1", "Node")}


def test_stopped_instance_also_goes_not_ready(tmp_path):
    sim, clock, store, ec2 = make_sim(tmp_path)
    [inst] = ec2.list_instances()
    ec2.stop_instances([inst["instance_id"]])
    advance(sim, clock, 1)
    assert sim.nodes[inst["private_dns_name"]].ready == "Unknown"
