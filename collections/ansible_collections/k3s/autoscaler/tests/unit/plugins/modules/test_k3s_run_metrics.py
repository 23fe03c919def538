# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""k3s_run_metrics run as Ansible runs it: outcome=skipped (run lock held) counts the run in the state file and
rewrites only k3s_autoscaler_runs_total, keeping the lock holder's gauges; check mode writes nothing."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from prometheus_client.parser import text_string_to_metric_families

from module_runner import run_module


def _samples(path):
    with open(path) as f:
        return dict(((s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k == "decision" or k == "outcome"))),
                     s.value) for fam in text_string_to_metric_families(f.read()) for s in fam.samples)


def test_skipped_run_counts_itself_and_keeps_the_holders_decision(tmp_path):
    path = str(tmp_path / "textfile" / "k3s_autoscaler.prom")
    sf = str(tmp_path / "state.json")
    base = {"path": path, "cluster": "c", "node_group": "g", "started_at": 1.0, "state_file": sf}
    holder = run_module("k3s_run_metrics", dict(base, decision="scale_up", desired_nodes=4))
    assert holder["outcome"] == "completed" and holder["runs"] == {"completed": 1, "error": 0, "skipped": 0}
    before = _samples(path)

    chk = run_module("k3s_run_metrics", dict(base, outcome="skipped"), check=True)
    assert chk["runs"]["skipped"] == 1 and _samples(path) == before  # check mode: nothing written
    with open(sf) as f:
        assert json.load(f)["runs"]["skipped"] == 0

    res = run_module("k3s_run_metrics", dict(base, outcome="skipped"))
    assert res["changed"] and res["runs"] == {"completed": 1, "error": 0, "skipped": 1}, res
    after = _samples(path)
    assert after[("k3s_autoscaler_runs_total", (("outcome", "skipped"),))] == 1
    assert after[("k3s_autoscaler_decision", (("decision", "scale_up"),))] == 1
    assert after[("k3s_autoscaler_desired_nodes", ())] == 4
    assert after[("k3s_autoscaler_last_run_timestamp_seconds", ())] == before[
        ("k3s_autoscaler_last_run_timestamp_seconds", ())]
    with open(sf) as f:
        assert json.load(f)["runs"] == {"completed": 1, "error": 0, "skipped": 1}
    # the holder's next full write carries the skipped count (the counter never goes backwards)
    nxt = run_module("k3s_run_metrics", dict(base, decision="no_action", error="prometheus down"))
    assert nxt["outcome"] == "error"
    s = _samples(path)
    assert s[("k3s_autoscaler_runs_total", (("outcome", "skipped"),))] == 1
    assert s[("k3s_autoscaler_runs_total", (("outcome", "error"),))] == 1
    assert s[("k3s_autoscaler_decision", (("decision", "no_action"),))] == 1
    assert sorted(os.listdir(tmp_path / "textfile")) == ["k3s_autoscaler.prom", "k3s_autoscaler.prom.lock"]


def test_skipped_needs_a_state_file_and_others_need_a_decision(tmp_path):
    path = str(tmp_path / "k3s_autoscaler.prom")
    res = run_module("k3s_run_metrics", {"path": path, "cluster": "c", "node_group": "g", "started_at": 1.0,
                                         "outcome": "skipped"})
    assert res.get("failed") and "outcome=skipped needs state_file" in res["msg"]
    res = run_module("k3s_run_metrics", {"path": path, "cluster": "c", "node_group": "g", "started_at": 1.0})
    assert res.get("failed") and "decision is required" in res["msg"]
    assert not os.path.exists(path)
