# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""k3s_metrics' daemonset_requests (the per-node DaemonSet overhead the binpacking policy reserves on new
nodes) against a REAL Prometheus scraping a fixture exporter."""

import time

import pytest

from prom_harness import ksm_text, node_exporter_text, sample

from ansible_collections.k3s.autoscaler.plugins.module_utils.metrics_prometheus import collect_prometheus

pytestmark = pytest.mark.prometheus

GI = 1024 ** 3
MI = 1024 ** 2
T0 = int(time.time())
NODES = [dict(name="node-a", provider_id="aws:///us-east-1a/i-0aaaaaaaaaaaaaaa1", cpu=4, memory=16 * GI),
         dict(name="node-b", provider_id="aws:///us-east-1a/i-0bbbbbbbbbbbbbbb2", cpu=4, memory=16 * GI)]
HOSTS = [dict(instance="10.0.0.1:9100", nodename="node-a", idle_rates=[0.9], mem_total=16e9, mem_available=15e9),
         dict(instance="10.0.0.2:9100", nodename="node-b", idle_rates=[0.9], mem_total=16e9, mem_available=15e9)]


def _serve(prometheus, exporter, name, pods):
    marker = sample("fixture_scenario", {"name": name}, 1)
    ksm = ksm_text(NODES, pods)
    exporter.set_text(lambda now: marker + ksm + node_exporter_text(HOSTS, now))
    prometheus.wait_for_series('fixture_scenario{name="%s"}' % name)
    prometheus.wait_for_series('count_over_time(node_cpu_seconds_total{instance="10.0.0.2:9100",cpu="0",'
                               'mode="idle"}[3s]) >= 3')


def test_daemonset_requests_is_the_max_per_node(prometheus, prom_exporter):
    pods = [
        # node-a: two DaemonSet pods 0.1 + 0.15 CPU, 64 + 128 MiB; node-b: one 0.2 CPU, 300 MiB
        dict(namespace="kube-system", name="ds-a1", phase="Running", node="node-a", owner_kind="DaemonSet",
             created=T0 - 600, containers=[("c", 0.1, 64 * MI)]),
        dict(namespace="kube-system", name="ds-a2", phase="Running", node="node-a", owner_kind="DaemonSet",
             created=T0 - 600, containers=[("c", 0.15, 128 * MI)]),
        dict(namespace="kube-system", name="ds-b1", phase="Running", node="node-b", owner_kind="DaemonSet",
             created=T0 - 600, containers=[("c", 0.2, 300 * MI)]),
        # not DaemonSet, and a finished DaemonSet pod: ignored
        dict(namespace="default", name="web", phase="Running", node="node-b", owner_kind="ReplicaSet",
             created=T0 - 600, containers=[("c", 2, 4 * GI)]),
        dict(namespace="kube-system", name="ds-old", phase="Succeeded", node="node-b", owner_kind="DaemonSet",
             created=T0 - 900, containers=[("c", 3, 8 * GI)]),
    ]
    _serve(prometheus, prom_exporter, "ds", pods)
    r = collect_prometheus(prometheus.url, rate_window="3s", retries=0, max_sample_age=0)
    ds = r["metrics"]["daemonset_requests"]
    assert ds["cpu_cores"] == pytest.approx(0.25)       # max(0.25 on node-a, 0.2 on node-b)
    assert ds["memory_bytes"] == 300 * MI                # max(192 MiB, 300 MiB)
    assert "daemonset_requests" in r["queries"]


def test_no_daemonset_pods_means_zero(prometheus, prom_exporter):
    pods = [dict(namespace="default", name="web", phase="Running", node="node-a", owner_kind="ReplicaSet",
                 created=T0 - 600, containers=[("c", 1, GI)])]
    _serve(prometheus, prom_exporter, "nods", pods)
    r = collect_prometheus(prometheus.url, rate_window="3s", retries=0, max_sample_age=0)
    assert r["metrics"]["daemonset_requests"] == {"cpu_cores": 0.0, "memory_bytes": 0}
