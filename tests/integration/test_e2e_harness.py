"""Fast self-tests of the end-to-end harness (no cluster): the checks the e2e tests rely on really fail
when the playbook output or the observed order is wrong."""
import json

import pytest

from e2e_harness import PlaybookRun, assert_cordon_drain_then_terminate, provider_instance

NODE, IID, OTHER = "ip-10-0-0-4.ec2.internal", "i-0123456789abcdef0", "ip-10-0-16-4.ec2.internal"
ROLE = "k3s.autoscaler.autoscale : "
GOOD_TASKS = ["Collect cluster metrics", "Decide", "Scale down", "Pick the removal candidate (least utilised first)",
              "Cordon and drain %s through the eviction API" % NODE, "Terminate instance %s (mock EC2)" % IID,
              "Terminate instance %s" % IID, "Record the scale-down in the state file", "Summary"]


class _Proc:
    def __init__(self, stdout, returncode=0):
        self.stdout, self.stderr, self.returncode = stdout, "", returncode


def playbook_output(task_names, decision_state="scale_down"):
    tasks = []
    for name in task_names:
        res = {"changed": name.startswith(("Cordon", "Terminate", "Record"))}
        if name == "Decide":
            res.update(decision=decision_state, candidates=[{"name": NODE, "instance_id": IID}], blocked_by=[])
        tasks.append({"task": {"name": ROLE + name}, "hosts": {"local": res}})
    body = {"plays": [{"play": {"name": "Autoscale k3s node groups"}, "tasks": tasks}],
            "stats": {"local": {"failures": 0}}}
    return "[WARNING]: something before the json\n" + json.dumps(body)


class FakeCluster:
    def __init__(self, state="shutting-down"):
        self.state = state

    def instances(self):
        return {IID: {"state": {"name": self.state}}}

    def read_state(self):
        return {"events": [{"direction": "scale_down", "instance_ids": [IID], "node_names": [NODE]}]}


class FakeWatcher:
    def __init__(self, snaps):
        self.errors = []
        self.snapshots = [{"ec2_before": {IID: before}, "ec2_after": {IID: after},
                           "nodes": {NODE: {"instance_id": IID, "unschedulable": cordoned},
                                     OTHER: {"instance_id": "i-1", "unschedulable": False}},
                           "pods": {NODE: pods} if pods else {}} for before, after, cordoned, pods in snaps]


GOOD_SNAPS = [("running", "running", False, ["web-1"]), ("running", "running", True, ["web-1"]),
              ("running", "running", True, []), ("running", "shutting-down", True, []),
              ("shutting-down", "shutting-down", True, [])]


def test_playbook_run_parses_json_callback_and_strips_role_prefix():
    run = PlaybookRun(["ansible-playbook"], _Proc(playbook_output(GOOD_TASKS)))
    assert run.task_names == GOOD_TASKS
    assert run.decision["decision"] == "scale_down"
    assert run.ran("Cordon and drain") and not run.ran("Launch")
    assert run.stats == {"failures": 0}


def test_good_order_passes():
    run = PlaybookRun(["x"], _Proc(playbook_output(GOOD_TASKS)))
    assert assert_cordon_drain_then_terminate(FakeCluster(), run, FakeWatcher(GOOD_SNAPS)) == (NODE, IID)


def test_terminate_task_before_drain_task_fails():
    tasks = list(GOOD_TASKS)
    i, j = tasks.index("Cordon and drain %s through the eviction API" % NODE), tasks.index("Terminate instance %s" % IID)
    tasks[i], tasks[j] = tasks[j], tasks[i]
    run = PlaybookRun(["x"], _Proc(playbook_output(tasks)))
    with pytest.raises(AssertionError):
        assert_cordon_drain_then_terminate(FakeCluster(), run, FakeWatcher(GOOD_SNAPS))


@pytest.mark.parametrize("snaps", [
    # terminated while pods were still on the node
    [("running", "running", False, ["web-1"]), ("shutting-down", "shutting-down", True, ["web-1"])],
    # terminated before the cordon
    [("running", "running", False, []), ("shutting-down", "shutting-down", False, []),
     ("shutting-down", "shutting-down", True, [])],
    # never seen cordoned+drained while still running
    [("running", "running", False, ["web-1"]), ("shutting-down", "shutting-down", True, [])],
], ids=["pods-left", "not-cordoned", "no-running-cordoned-snapshot"])
def test_wrong_observed_order_fails(snaps):
    run = PlaybookRun(["x"], _Proc(playbook_output(GOOD_TASKS)))
    with pytest.raises(AssertionError):
        assert_cordon_drain_then_terminate(FakeCluster(), run, FakeWatcher(snaps))


def test_instance_still_running_fails():
    run = PlaybookRun(["x"], _Proc(playbook_output(GOOD_TASKS)))
    with pytest.raises(AssertionError):
        assert_cordon_drain_then_terminate(FakeCluster(state="running"), run, FakeWatcher(GOOD_SNAPS))


def test_provider_instance():
    assert provider_instance("aws:///us-east-1a/i-0123456789abcdef0") == ("us-east-1a", "i-0123456789abcdef0")
    assert provider_instance("k3s://k3s-server") is None
    assert provider_instance(None) is None
