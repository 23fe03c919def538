"""The autoscale role refuses autoscale_* variables it does not know (a typo in inventory or on the command line,
e.g. ``-e autoscale_max_node=3``, would otherwise be silently ignored by Ansible), before it reads or changes
anything. Its list of the names it sets itself (roles/autoscale/vars/main.yml) must match its tasks exactly."""
import glob
import os

import yaml

from bad_input_support import mock_ec2, run_playbook

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE = os.path.join(REPO, "collections", "ansible_collections", "k3s", "autoscaler", "roles", "autoscale")
SHARED_KNOBS = {"autoscale_check_interval"}  # inventory knob read by the timer / manifests roles


def _run(tmp_path, **extra):
    """The autoscale playbook (local inventory) with paths in tmp_path, a mock EC2 store there and a Prometheus URL
    where nothing listens. Returns (exit code, stdout + stderr, store path)."""
    store = str(tmp_path / "ec2.sqlite")
    mock_ec2(store).close()
    ev = dict(extra, autoscale_state_file=str(tmp_path / "state" / "state.json"),
              autoscale_textfile_path=str(tmp_path / "textfile" / "k3s_autoscaler.prom"),
              autoscale_ec2_mock={"store": store}, autoscale_prometheus_url="http://127.0.0.1:9")
    proc = run_playbook(ev, env={"LOCAL_CLUSTER_DIR": str(tmp_path)})
    return proc.returncode, proc.stdout + proc.stderr, store


def _names_set_by(task_list, found):
    for task in task_list or []:
        for key in ("block", "rescue", "always"):
            _names_set_by(task.get(key), found)
        if isinstance(task.get("register"), str):
            found.add(task["register"])
        for module in ("ansible.builtin.set_fact", "set_fact"):
            if isinstance(task.get(module), dict):
                found.update(k for k in task[module] if k != "cacheable")
        loop_var = (task.get("loop_control") or {}).get("loop_var")
        if loop_var:
            found.add(loop_var)
        found.update(task.get("vars") or {})
    return found


def test_internal_names_list_matches_the_tasks():
    found = set()
    for path in glob.glob(os.path.join(ROLE, "tasks", "*.yml")):
        with open(path) as f:
            _names_set_by(yaml.safe_load(f), found)
    found = {n for n in found if n.startswith("autoscale_") and not n.startswith("autoscale__")}
    with open(os.path.join(ROLE, "vars", "main.yml")) as f:
        listed = set(yaml.safe_load(f)["autoscale__facts"])
    with open(os.path.join(ROLE, "meta", "argument_specs.yml")) as f:
        options = set(yaml.safe_load(f)["argument_specs"]["main"]["options"])
    assert listed - SHARED_KNOBS == found - options, (
        "vars/main.yml autoscale__facts is out of date: missing %s, extra %s"
        % (sorted(found - options - listed), sorted(listed - SHARED_KNOBS - found)))
    assert not listed & options, "an option is also listed as an internal name: %s" % sorted(listed & options)


def test_a_misspelt_variable_fails_the_run_before_anything_is_read_or_changed(tmp_path):
    # typos of max_nodes and scale_down_cooldown
    rc, out, store = _run(tmp_path, autoscale_max_node=3, autoscale_scaledown_cooldown=0)
    assert rc == 2, out[-3000:]
    assert "autoscale_max_node, autoscale_scaledown_cooldown: not an option of role k3s.autoscaler.autoscale" \
        in out, out[-3000:]
    assert "Refuse autoscale_* variables" in out
    # it stopped at the first task: no lock, no metrics query, no state, no instance
    assert "Take the run lock" not in out and "Collect" not in out, out[-3000:]
    assert not os.path.exists(tmp_path / "state") and not os.path.exists(tmp_path / "textfile")
    assert mock_ec2(store).list_instances() == []


def test_known_variables_pass_the_check(tmp_path):
    # a correctly spelt run gets past the check (it then fails on the unreachable Prometheus, holding)
    rc, out, _store = _run(tmp_path, autoscale_max_nodes=3, autoscale_scale_down_cooldown=0,
                           autoscale_check_interval=30)
    assert "not an option of role" not in out, out[-3000:]
    assert "Take the run lock" in out, out[-3000:]


def test_local_inventory_without_cluster_json_names_the_missing_file(tmp_path):
    # LOCAL_CLUSTER_DIR pointing where no local cluster runs: no silent fallback to some Prometheus on :9090
    ev = {"autoscale_state_file": str(tmp_path / "state" / "state.json"),
          "autoscale_textfile_path": str(tmp_path / "textfile" / "k3s_autoscaler.prom")}
    proc = run_playbook(ev, args=["--check"], env={"LOCAL_CLUSTER_DIR": str(tmp_path / "not-a-cluster")})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert "autoscale_prometheus_url: no %s/cluster.json to read it from" % (tmp_path / "not-a-cluster") in out, \
        out[-3000:]
    assert "Take the run lock" not in out and not os.path.exists(tmp_path / "state")


def test_preflight_refuses_settings_that_contradict_each_other_before_the_run(tmp_path):
    """min_nodes > max_nodes, a percent written as a ratio-out-of-range, a ratio written as a percent: each fails
    at the preflight task, naming the variable, before the lock, the metrics or EC2 (one run, all checked)."""
    cases = [({"autoscale_min_nodes": 5, "autoscale_max_nodes": 3},
              "autoscale_min_nodes (5) must be >= 0 and <= autoscale_max_nodes (3)"),
             ({"autoscale_cpu_threshold": 150}, "autoscale_cpu_threshold (150"),
             ({"autoscale_scale_down_utilization_threshold": 50},
              "autoscale_scale_down_utilization_threshold (50"),
             ({"autoscale_max_scale_up_step": 0}, "autoscale_max_scale_up_step (0) must be >= 1"),
             ({"autoscale_scale_up_cooldown": -5, "autoscale_drain_timeout": -1},
              "autoscale_scale_up_cooldown, autoscale_drain_timeout: seconds must be >= 0")]
    for bad, message in cases:
        rc, out, store = _run(tmp_path, **bad)
        assert rc == 2 and message in out, (bad, out[-3000:])
        assert "Preflight" in out and "Take the run lock" not in out, (bad, out[-3000:])
    assert not os.path.exists(tmp_path / "state") and mock_ec2(store).list_instances() == []


def test_preflight_names_max_nodes_below_1_and_percent_thresholds_written_as_ratios(tmp_path):
    """max_nodes -1 is named as such (not only as "min_nodes must be <= max_nodes"); a CPU/memory threshold
    between 0 and 1 is a ratio where a percent is expected (0.2 would mean 0.2 %). One run, every item checked."""
    rc, out, store = _run(tmp_path, autoscale_max_nodes=-1, autoscale_cpu_threshold=0.2,
                          autoscale_memory_threshold=0.5)
    assert rc == 2, out[-3000:]
    for message in ("autoscale_max_nodes (-1) must be >= 1",
                    "autoscale_cpu_threshold (0.2) is a percent 0-100, not a ratio: 20 means 20 %",
                    "autoscale_memory_threshold (0.5) is a percent 0-100, not a ratio: 20 means 20 %"):
        assert message in out, (message, out[-3000:])
    # the max_nodes item comes before the min/max one
    assert out.index("autoscale_max_nodes (-1) must be >= 1") < out.index("autoscale_min_nodes (1) must be >= 0")
    assert "Take the run lock" not in out and not os.path.exists(tmp_path / "state")
    assert mock_ec2(store).list_instances() == []


def test_preflight_allows_percent_thresholds_0_and_1(tmp_path):
    """0 (and 1 %) are percents, not ratios: the run gets past the preflight (then holds on the closed Prometheus)."""
    rc, out, _store = _run(tmp_path, autoscale_max_nodes=1, autoscale_cpu_threshold=0, autoscale_memory_threshold=1)
    # the lock task runs only when every preflight item held
    assert "Preflight" in out and "Take the run lock" in out, out[-3000:]
