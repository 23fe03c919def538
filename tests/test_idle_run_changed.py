"""A run that decides no_action changes nothing and says so: the play recap reports changed=0 (the run lock and the
run-metrics textfile are the run's own bookkeeping, not changes), and a second idle run does the same."""
import json

from bad_input_support import FakePrometheus
from test_public_report_cases import Site


def _run_result(proc):
    """(recap changed count, the decision) from the json stdout callback's output."""
    doc = json.loads(proc.stdout)
    changed = [t["task"]["name"] for play in doc["plays"] for t in play["tasks"]
               if t["hosts"].get("local", {}).get("changed")]
    decision = [t["hosts"]["local"].get("decision") for play in doc["plays"] for t in play["tasks"]
                if t["task"]["name"].endswith(": Decide")]
    return doc["stats"]["local"]["changed"], changed, decision[-1] if decision else None


def test_no_action_runs_report_changed_0_and_still_write_their_metrics(tmp_path):
    site = Site(tmp_path, 3)
    # 3 nodes at 50 % CPU and memory, nothing pending: threshold holds (no_action)
    with FakePrometheus(results=site.results(3, pending=0), rate_window="1m") as prom:
        for _ in range(2):
            proc = site.run(prom.url)
            assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
            count, changed_tasks, decision = _run_result(proc)
            assert decision == "no_action"
            assert count == 0 and changed_tasks == [], changed_tasks
    assert site.textfile_decision() == "no_action"  # the metrics were written all the same
