# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Found by the chaos harness (issue 6): kube_node_role / kube_node_labels series that lost their ``node`` label
were silently ignored, so the control plane counted as an agent node. Now they fail naming the query."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

import pytest

from ansible_collections.k3s.autoscaler.plugins.module_utils import metrics_prometheus as mp
from ansible_collections.k3s.autoscaler.plugins.module_utils.metrics_common import MetricsError


def _series(labels, value="1"):
    return {"metric": labels, "value": [time.time(), value]}


@pytest.mark.parametrize("broken", ["node_role", "node_labels"])
def test_series_without_node_label_is_an_error_naming_the_query(monkeypatch, broken):
    answers = {
        "nodes": [_series({"node": "k3s-server"}), _series({"node": "agent-1", "provider_id": "aws:///az/i-1"})],
        "freshness": [_series({}, "1")],
        "node_role": [_series({"node": "k3s-server", "role": "control-plane"})],
        "node_labels": [_series({"node": "agent-1"})],
    }
    answers[broken] = [_series({})]  # every label dropped

    def query(self, name, promql, at):
        if name not in answers:
            raise AssertionError("stopped after %s; reached %s" % (broken, name))
        return answers[name]

    monkeypatch.setattr(mp._Client, "query", query)
    with pytest.raises(MetricsError) as err:
        mp.collect_prometheus("http://127.0.0.1:9", rate_window="1m")
    msg = str(err.value)
    assert broken in msg and mp.DEFAULT_QUERIES[broken] in msg and "has no 'node' label" in msg
