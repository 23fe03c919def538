"""Run safety of the autoscale playbook against a local cluster (scenario ``high``: pending pods that need new
nodes): the run lock (held -> clean skip, stale -> recovered), EC2 throttling retried, capacity errors backing
the node group off across runs, and the intents an interrupted run leaves (pending_launch completed from its
launch-id tag and never launched again, unresolved launch held then expired, pending_removal uncordoned)."""
import json
import os
import re
import subprocess
import sys
import time
import uuid

import pytest

from e2e_harness import Cluster, requires_stack

from ansible_collections.k3s.autoscaler.plugins.module_utils import lock

pytestmark = [pytest.mark.integration, pytest.mark.prometheus, requires_stack]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster("high", tmp_path_factory.mktemp("run-safety")).start()
    try:
        c.wait_ready()
        yield c
    finally:
        c.stop()


@pytest.fixture
def c(cluster):
    """The shared cluster with a fresh state file, no lock and no injected EC2 failure."""
    for p in (cluster.state_file, cluster.state_file + ".runlock"):
        if os.path.exists(p):
            os.unlink(p)
    cluster.ec2().clear_failures()
    yield cluster
    cluster.ec2().clear_failures()


def ev(**kw):
    base = {"autoscale_min_nodes": 1, "autoscale_max_nodes": 6, "autoscale_scale_up_cooldown": 0,
            "autoscale_max_scale_up_step": 1, "autoscale_ec2_retry_delay": 1, "autoscale_launch_timeout": 60}
    base.update(("autoscale_" + k, v) for k, v in kw.items())
    return base


def dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def ids(c):
    return set(c.instances())


def write_state(c, **extra):
    st = {"version": 1, "last_scale_up": None, "last_scale_down": None, "events": [],
          "totals": {"scale_up": 0, "scale_down": 0}}
    st.update(extra)
    os.makedirs(os.path.dirname(c.state_file), exist_ok=True)
    with open(c.state_file, "w") as f:
        json.dump(st, f)


def test_second_run_while_lock_held_skips_cleanly(c):
    path = c.state_file + ".runlock"
    held = lock.acquire(path, holder_pid=os.getpid())  # a live "other run"
    before = ids(c)
    if os.path.exists(c.textfile):
        os.unlink(c.textfile)
    run = c.playbook(ev())
    assert run.rc == 0, run.describe()
    assert run.summary.startswith("skipped: lock held - another run holds the lock %s: pid %d" % (path, os.getpid()))
    assert not run.ran("Decide") and not run.ran("Collect cluster metrics")
    assert ids(c) == before
    # its only trace: k3s_autoscaler_runs_total{outcome="skipped"} (no decision gauges: it decided nothing)
    with open(c.textfile) as f:
        text = f.read()
    assert re.search(r'^k3s_autoscaler_runs_total\{[^}]*outcome="skipped"[^}]*\} 1\.0$', text, re.M), text
    assert "k3s_autoscaler_decision" not in text, text
    st = c.read_state()
    assert st["runs"]["skipped"] == 1 and not st["events"] and "pending_launch" not in st, st
    assert lock.release(path, held["token"])["status"] == "released"  # the skipped run left our lock alone


def test_stale_lock_recovered_and_capacity_error_backs_off_across_runs(c):
    dead = dead_pid()
    lock.acquire(c.state_file + ".runlock", holder_pid=dead)
    c.ec2().inject_failure("InsufficientInstanceCapacity", "run_instances", next_calls=1)
    before = ids(c)
    run = c.playbook(ev())
    assert "recovered stale lock of pid %d" % dead in run.stdout
    assert run.rc != 0 and ids(c) == before
    assert "InsufficientInstanceCapacity" in run.stdout and "node group backed off" in run.stdout
    st = c.read_state()
    assert st["backoff"]["default"]["failures"] == 1 and "pending_launch" not in st
    assert os.path.getsize(c.state_file + ".runlock") == 0  # released in the always: block
    # the next run wants scale_up again but the node group is backed off: no_action, and it says so
    run = c.playbook(ev())
    assert run.rc == 0, run.describe()
    assert ids(c) == before
    assert "backed off for" in run.summary and "InsufficientInstanceCapacity" in run.summary, run.summary
    assert "decision=no_action" in run.summary


def test_throttling_is_retried_within_the_run(c):
    c.ec2().inject_failure("RequestLimitExceeded", "run_instances", next_calls=2)
    before = ids(c)
    run = c.playbook(ev())
    assert run.rc == 0, run.describe()
    new = ids(c) - before
    assert len(new) == 1
    launch = run.result("Launch 1 node(s) through the mock EC2")
    assert launch["attempts"] == 3 and launch["changed"], launch
    st = c.read_state()
    assert st["events"][-1]["instance_ids"] == sorted(new) and "pending_launch" not in st
    lid = c.instances()[next(iter(new))]["tags"]["k3s-autoscaler/launch-id"]
    assert len(lid) == 32


def test_interrupted_launch_is_completed_not_repeated(c):
    lid = uuid.uuid4().hex
    write_state(c, pending_launch={"launch_id": lid, "count": 1, "node_group": "default", "created": time.time() - 5,
                                   "reason": "scale_up: killed run"})
    # what the killed run's RunInstances left behind
    inst, _ = c.ec2().run_instances(1, {"instance_type": "m5.large", "image_id": "ami-0123456789abcdef0",
                                        "tags": {"k3s-autoscaler/cluster": "local",
                                                 "k3s-autoscaler/node-group": "default",
                                                 "k3s-autoscaler/launch-id": lid}})
    before = ids(c)
    run = c.playbook(ev(scale_up_cooldown=300))
    assert run.rc == 0, run.describe()
    assert "recorded the scale_up instead of deciding again" in run.stdout
    assert ids(c) == before  # nothing launched again: the cooldown of the completed launch applies
    assert run.decision["decision"] == "no_action" and "cooldown" in run.decision["blocked_by"]
    st = c.read_state()
    assert "pending_launch" not in st and st["events"][-1]["instance_ids"] == [inst[0]["instance_id"]]
    assert st["last_scale_up"] is not None


def test_unresolved_launch_holds_then_expires(c):
    lid = uuid.uuid4().hex
    write_state(c, pending_launch={"launch_id": lid, "count": 1, "node_group": "default", "created": time.time(),
                                   "reason": ""})
    before = ids(c)
    run = c.playbook(ev(max_nodes=len(before)))  # at max: whatever happens next, nothing is launched
    assert run.rc != 0 and "holding instead of deciding again" in run.stdout
    assert not run.ran("Decide")
    assert c.read_state()["pending_launch"]["launch_id"] == lid
    write_state(c, pending_launch={"launch_id": lid, "count": 1, "node_group": "default",
                                   "created": time.time() - 120, "reason": ""})
    run = c.playbook(ev(max_nodes=len(before)))
    assert "never happened" in run.stdout and run.ran("Decide")
    assert "pending_launch" not in c.read_state() and ids(c) == before


def test_interrupted_removal_uncordons_the_node(c):
    node = next(n for n in c.agent_nodes() if not n.spec.unschedulable)
    iid = node.spec.provider_id.rsplit("/", 1)[-1]
    c.core().patch_node(node.metadata.name, {"spec": {"unschedulable": True}})
    write_state(c, pending_removal={"node": node.metadata.name, "instance_id": iid, "cordoned_at": time.time() - 30,
                                    "reason": "scale_down: killed run"})
    run = c.playbook(ev(max_nodes=len(ids(c))))
    assert "uncordoning the node" in run.stdout, run.describe()
    assert run.ran("Resume an interrupted scale-down")
    assert not c.core().read_node(node.metadata.name).spec.unschedulable
    assert "pending_removal" not in c.read_state()
