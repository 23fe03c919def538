"""Unit tests for module_utils/run_metrics.py: the autoscaler's own metrics (textfile / Pushgateway)."""
import os

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.k3s.autoscaler.plugins.module_utils import run_metrics


def _samples(text):
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("cluster", "node_group"))))] = s.value
    return out


def test_registry_holds_every_series_with_values():
    reg = run_metrics.build_registry("prod", "general", "scale_up", now=1000.0, started_at=995.5, desired_nodes=4,
                                     current_nodes=3, pending_pods=7, totals={"scale_up": 5, "scale_down": 2})
    s = _samples(run_metrics.render(reg))
    assert s[("k3s_autoscaler_decision", (("decision", "scale_up"),))] == 1
    assert s[("k3s_autoscaler_decision", (("decision", "scale_down"),))] == 0
    assert s[("k3s_autoscaler_decision", (("decision", "no_action"),))] == 0
    assert s[("k3s_autoscaler_desired_nodes", ())] == 4
    assert s[("k3s_autoscaler_current_nodes", ())] == 3
    assert s[("k3s_autoscaler_pending_pods", ())] == 7
    assert s[("k3s_autoscaler_scale_events_total", (("direction", "scale_up"),))] == 5
    assert s[("k3s_autoscaler_scale_events_total", (("direction", "scale_down"),))] == 2
    assert s[("k3s_autoscaler_last_run_timestamp_seconds", ())] == 1000.0
    assert s[("k3s_autoscaler_run_duration_seconds", ())] == pytest.approx(4.5)
    assert s[("k3s_autoscaler_run_error", ())] == 0


def test_unknown_values_are_absent_not_zero():
    reg = run_metrics.build_registry("c", "g", "no_action", now=10, started_at=9, error=True)
    s = _samples(run_metrics.render(reg))
    assert not any(k[0] == "k3s_autoscaler_desired_nodes" for k in s)
    assert s[("k3s_autoscaler_run_error", ())] == 1


@pytest.mark.parametrize("kwargs, message", [
    (dict(decision="grow", now=2, started_at=1), "decision must be one of"),
    (dict(decision="no_action", now=1, started_at=2), "started_at"),
])
def test_bad_input_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        run_metrics.build_registry("c", "g", **kwargs)


def test_export_writes_textfile_atomically(tmp_path):
    path = tmp_path / "sub" / "k3s_autoscaler.prom"
    reg = run_metrics.build_registry("c", "g", "scale_down", now=2, started_at=1)
    run_metrics.export(reg, path=str(path))
    assert _samples(path.read_text())[("k3s_autoscaler_decision", (("decision", "scale_down"),))] == 1
    assert os.listdir(path.parent) == ["k3s_autoscaler.prom"]  # no temp file left behind
    with pytest.raises(ValueError, match=r"\.prom"):
        run_metrics.export(reg, path=str(tmp_path / "metrics.txt"))


def _holder_text(runs=None):
    reg = run_metrics.build_registry("c", "g", "scale_up", now=2000.0, started_at=1990.0, desired_nodes=4,
                                     current_nodes=3, pending_pods=5, totals={"scale_up": 7}, runs=runs)
    return run_metrics.render(reg)


def test_runs_counter_by_outcome_is_exported_from_the_state_runs_map():
    state = run_metrics.record_run(run_metrics.record_run({}, "completed"), "skipped")
    assert run_metrics.run_totals(state) == {"completed": 1, "error": 0, "skipped": 1}
    s = _samples(_holder_text(runs=run_metrics.run_totals(state)))
    assert s[("k3s_autoscaler_runs_total", (("outcome", "skipped"),))] == 1
    assert s[("k3s_autoscaler_runs_total", (("outcome", "completed"),))] == 1
    assert s[("k3s_autoscaler_runs_total", (("outcome", "error"),))] == 0
    # no state file -> no runs series (never a made-up 0)
    assert not any(k[0] == "k3s_autoscaler_runs_total" for k in _samples(_holder_text()))


@pytest.mark.parametrize("runs, message", [
    ([1], "'runs' must be an object"),
    ({"skipped": -1}, r"runs.skipped must be an integer >= 0"),
    ({"error": "3"}, r"runs.error must be an integer >= 0"),
])
def test_bad_runs_map_is_an_error_naming_the_field(runs, message):
    with pytest.raises(ValueError, match=message):
        run_metrics.run_totals({"runs": runs})
    with pytest.raises(ValueError, match="outcome must be one of"):
        run_metrics.record_run({}, "crashed")


def test_skipped_merge_replaces_only_the_runs_family_and_keeps_the_holders_gauges():
    holder = _holder_text(runs={"completed": 4, "error": 1, "skipped": 0})
    before = _samples(holder)
    skipped = run_metrics.build_runs_registry("c", "g", {"completed": 4, "error": 1, "skipped": 1})
    text, warning = run_metrics.merge_text(holder, skipped)
    assert warning is None
    after = _samples(text)  # parses: no family appears twice (the _created family is replaced too)
    assert after[("k3s_autoscaler_runs_total", (("outcome", "skipped"),))] == 1
    for key, value in before.items():
        if key[0].startswith("k3s_autoscaler_runs_"):
            continue
        assert after[key] == value, key  # the decision, desired_nodes, timestamps... untouched
    assert after[("k3s_autoscaler_decision", (("decision", "scale_up"),))] == 1
    assert text.count("# TYPE k3s_autoscaler_runs_total counter") == 1
    assert text.count("# TYPE k3s_autoscaler_runs_created gauge") == 1
    # no textfile yet: only the runs family
    only, warning = run_metrics.merge_text(None, skipped)
    assert warning is None and {k[0] for k in _samples(only)} <= {"k3s_autoscaler_runs_total",
                                                                  "k3s_autoscaler_runs_created"}


def test_skipped_merge_over_an_unparseable_textfile_warns_and_writes_the_runs_family_only():
    skipped = run_metrics.build_runs_registry("c", "g", {"skipped": 2})
    text, warning = run_metrics.merge_text("k3s_autoscaler_decision{decision=\"scale_up\" 1\n", skipped)
    assert "not valid exposition text" in warning and "k3s_autoscaler_runs" in warning
    assert _samples(text)[("k3s_autoscaler_runs_total", (("outcome", "skipped"),))] == 2


def _count_run(path, state_file, outcome):
    """What k3s_run_metrics does: inside the textfile lock, count the run in the state file, then export."""
    from ansible_collections.k3s.autoscaler.plugins.module_utils.state import update_state
    with run_metrics.textfile_lock(path):
        runs = run_metrics.run_totals(update_state(state_file, lambda st: run_metrics.record_run(st, outcome)))
        if outcome == "skipped":
            reg = run_metrics.build_runs_registry("c", "g", runs)
        else:
            reg = run_metrics.build_registry("c", "g", "scale_down", now=3000.0, started_at=2999.0, runs=runs)
        run_metrics.export(reg, path=path, merge=outcome == "skipped")


def test_concurrent_skipped_runs_and_a_holder_never_lose_a_count_or_the_holders_decision(tmp_path):
    import multiprocessing
    path = str(tmp_path / "textfile" / "k3s_autoscaler.prom")
    state_file = str(tmp_path / "state.json")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_count_run, args=(path, state_file, "completed" if i == 5 else "skipped"))
             for i in range(12)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    s = _samples(open(path).read())
    assert s[("k3s_autoscaler_runs_total", (("outcome", "skipped"),))] == 11
    assert s[("k3s_autoscaler_runs_total", (("outcome", "completed"),))] == 1
    assert s[("k3s_autoscaler_decision", (("decision", "scale_down"),))] == 1  # the holder's, never clobbered
    assert sorted(os.listdir(os.path.dirname(path))) == ["k3s_autoscaler.prom", "k3s_autoscaler.prom.lock"]
