"""A run that finds the run lock held (k3s_run_lock status=held) ends cleanly AND leaves a trace in the run
metrics: k3s_autoscaler_runs_total{outcome="skipped"} counts it, while the lock holder's gauges (its last
decision) in the textfile stay as they were. Runs the real playbook (playbooks/autoscale.yml)."""
import json
import os

from prometheus_client.parser import text_string_to_metric_families

from bad_input_support import run_playbook

from ansible_collections.k3s.autoscaler.plugins.module_utils import lock, run_metrics


def _samples(path):
    with open(path) as f:
        return dict(((s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k in ("decision", "outcome")))),
                     s.value) for fam in text_string_to_metric_families(f.read()) for s in fam.samples)


def test_lock_held_run_counts_skipped_and_keeps_the_holders_gauges(tmp_path):
    state_file = str(tmp_path / "state" / "state.json")
    textfile = str(tmp_path / "textfile" / "k3s_autoscaler.prom")
    os.makedirs(os.path.dirname(state_file))
    with open(state_file, "w") as f:
        json.dump({"version": 1, "last_scale_up": None, "last_scale_down": None, "events": [],
                   "runs": {"completed": 2, "error": 0, "skipped": 0}}, f)
    # the holder: this test process holds the run lock and wrote its last decision
    held = lock.acquire(state_file + ".runlock", holder_pid=os.getpid())
    assert held["status"] == "acquired"
    reg = run_metrics.build_registry("local", "default", "scale_up", now=2000.0, started_at=1990.0, desired_nodes=4,
                                     runs={"completed": 2, "error": 0, "skipped": 0})
    run_metrics.export(reg, path=textfile)
    before = _samples(textfile)
    ev = {"autoscale_state_file": state_file, "autoscale_textfile_path": textfile,
          "autoscale_prometheus_url": "http://127.0.0.1:9", "autoscale_ec2_mock": {"store": str(tmp_path / "ec2")}}
    for n in (1, 2):
        proc = run_playbook(ev, env={"LOCAL_CLUSTER_DIR": str(tmp_path)})
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-3000:]
        assert "skipped: lock held" in out and "Collect cluster metrics" not in out, out[-3000:]
        after = _samples(textfile)
        assert after[("k3s_autoscaler_runs_total", (("outcome", "skipped"),))] == n
        assert after[("k3s_autoscaler_runs_total", (("outcome", "completed"),))] == 2
        for key, value in before.items():
            if not key[0].startswith("k3s_autoscaler_runs_"):
                assert after[key] == value, key  # decision scale_up, desired_nodes 4, last run timestamp
        with open(state_file) as f:
            assert json.load(f)["runs"] == {"completed": 2, "error": 0, "skipped": n}
    # the lock is still the holder's
    assert lock.inspect(state_file + ".runlock")["holder"]["token"] == held["token"]
    lock.release(state_file + ".runlock", held["token"])
    assert not os.path.exists(str(tmp_path / "ec2"))
