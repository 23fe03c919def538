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
