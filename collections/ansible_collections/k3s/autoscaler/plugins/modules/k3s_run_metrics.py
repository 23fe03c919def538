#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: k3s_run_metrics
short_description: Export the autoscaler run's own metrics (node-exporter textfile or Pushgateway)
description:
  - Builds the run's metrics with prometheus-client and writes them atomically (temp file + rename) to a
    node-exporter textfile collector file, and/or pushes them to a Prometheus Pushgateway.
  - "Series, each labelled C(cluster) and C(node_group): C(k3s_autoscaler_decision{decision}) (1 for the decision
    taken, 0 for the others), C(k3s_autoscaler_desired_nodes) (nodes), C(k3s_autoscaler_current_nodes) (nodes),
    C(k3s_autoscaler_pending_pods) (pods), C(k3s_autoscaler_scale_events_total{direction}) (counter of completed
    actions, from the state file), C(k3s_autoscaler_launch_failures_total) (counter of failed EC2 launches, state
    file C(totals.launch_failures)), C(k3s_autoscaler_unfittable_pods) (pods no node group can hold, from
    O(unfittable_pods)), C(k3s_autoscaler_last_run_timestamp_seconds) (unix seconds),
    C(k3s_autoscaler_run_duration_seconds) (seconds), C(k3s_autoscaler_run_error) (0 or 1) and
    C(k3s_autoscaler_runs_total{outcome}) (counter of runs by O(outcome) - C(completed), C(error), C(skipped) -
    kept in the state file's C(runs) map and incremented by this module; absent without O(state_file))."
  - "O(outcome=skipped) is for a run that found the run lock held (M(k3s.autoscaler.k3s_run_lock) C(status=held)):
    it increments C(runs.skipped) in O(state_file) and rewrites B(only) the C(k3s_autoscaler_runs_total) lines of
    the existing textfile, keeping the lock holder's gauges (its last decision) as they are; to a Pushgateway it
    pushes with C(pushadd), replacing only that family. O(decision) and the gauges are not needed then."
  - Every textfile write happens under an exclusive flock on the sibling C(<path>.lock) (bounded wait), with the
    state file's C(runs) counter incremented inside it, so concurrent runs never interleave their read and write
    and the counter never goes backwards; the file is replaced atomically (temp file + rename).
  - The textfile changes on every run (it holds timestamps), so the module reports C(changed=true) when it writes
    or pushes. In check mode it renders the metrics and writes nothing.
author:
  - k3s-autoscaler developers (@k3s-autoscaler)
options:
  path:
    description:
      - Node-exporter textfile collector file to write; must end in C(.prom). Its directory is created if missing.
    type: path
  pushgateway_url:
    description:
      - Pushgateway address (for example C(http://127.0.0.1:9091)) to push the metrics to, as job C(k3s_autoscaler).
    type: str
  cluster:
    description: Value of the C(cluster) label.
    type: str
    required: true
  node_group:
    description: Value of the C(node_group) label.
    type: str
    required: true
  decision:
    description: Decision of this run. Required unless O(outcome=skipped).
    type: str
    choices: [scale_up, scale_down, no_action]
  outcome:
    description:
      - Outcome counted in C(k3s_autoscaler_runs_total{outcome}). C(skipped) - another run held the run lock (see
        the description; needs O(state_file)). Default - C(error) when O(error) is set, else C(completed).
    type: str
    choices: [completed, error, skipped]
  desired_nodes:
    description: Desired node count decided this run (nodes). Omit when unknown (the series is then absent).
    type: int
  current_nodes:
    description: Node count seen this run (nodes). Omit when unknown.
    type: int
  pending_pods:
    description: Pending pods seen this run (pods). Omit when unknown.
    type: int
  unfittable_pods:
    description:
      - Pending pods no node group can hold even on an empty node (the length of the C(unfittable_pods) return of
        M(k3s.autoscaler.k3s_scale_decision)). Omit when unknown (the series is then absent).
    type: int
  started_at:
    description: Unix time (seconds) at which the run started; the run duration is now minus this.
    type: float
    required: true
  state_file:
    description:
      - The autoscaler state file (see M(k3s.autoscaler.k3s_scale_event)); C(k3s_autoscaler_scale_events_total)
        and C(k3s_autoscaler_launch_failures_total) are read from its C(totals). When omitted or absent, the
        counters are 0.
      - The run's O(outcome) is counted in its C(runs) map C({completed, error, skipped}) (written under the state
        file's lock; nothing in check mode), read back for C(k3s_autoscaler_runs_total). When omitted, that series
        is absent.
    type: path
  error:
    description: The error that made this run hold, if any; sets C(k3s_autoscaler_run_error) to 1.
    type: str
notes:
  - Supports check mode.
requirements:
  - prometheus-client
"""

EXAMPLES = r"""
- name: Export the run's metrics for the node-exporter textfile collector
  k3s.autoscaler.k3s_run_metrics:
    path: /var/lib/node_exporter/textfile_collector/k3s_autoscaler.prom
    cluster: prod-eu
    node_group: general
    decision: "{{ decision.decision }}"
    desired_nodes: "{{ decision.desired_nodes }}"
    started_at: "{{ run_started }}"
    state_file: /var/lib/k3s-autoscaler/state.json

- name: Count a run that found the run lock held (the holder's gauges are kept)
  k3s.autoscaler.k3s_run_metrics:
    path: /var/lib/node_exporter/textfile_collector/k3s_autoscaler.prom
    cluster: prod-eu
    node_group: general
    outcome: skipped
    started_at: "{{ run_started }}"
    state_file: /var/lib/k3s-autoscaler/state.json
  when: run_lock.status == 'held'
"""

RETURN = r"""
text:
  description:
    - The metrics in the Prometheus text exposition format (for O(outcome=skipped), the
      C(k3s_autoscaler_runs_total) family only).
  returned: always
  type: str
path:
  description: The textfile written (absent when none).
  returned: when path is set
  type: str
duration_seconds:
  description: Wall time of the run, seconds (now minus started_at).
  returned: always
  type: float
outcome:
  description: The outcome counted (C(completed), C(error) or C(skipped)).
  returned: always
  type: str
runs:
  description:
    - C(k3s_autoscaler_runs_total) by outcome after this run, C({completed, error, skipped}) (runs); in check mode
      the counts this run would write. Null without O(state_file).
  returned: always
  type: dict
"""

import time
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.k3s.autoscaler.plugins.module_utils import run_metrics
from ansible_collections.k3s.autoscaler.plugins.module_utils.state import (
    StateError, event_totals, launch_failure_total, load_state, update_state)


class _NoLock(object):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path"),
            pushgateway_url=dict(type="str"),
            cluster=dict(type="str", required=True),
            node_group=dict(type="str", required=True),
            decision=dict(type="str", choices=list(run_metrics.DECISIONS)),
            outcome=dict(type="str", choices=list(run_metrics.OUTCOMES)),
            desired_nodes=dict(type="int"),
            current_nodes=dict(type="int"),
            pending_pods=dict(type="int"),
            unfittable_pods=dict(type="int"),
            started_at=dict(type="float", required=True),
            state_file=dict(type="path"),
            error=dict(type="str"),
        ),
        required_one_of=[("path", "pushgateway_url")],
        supports_check_mode=True,
    )
    if not run_metrics.HAS_PROMETHEUS_CLIENT:
        module.fail_json(msg=missing_required_lib("prometheus-client"))
    p = module.params
    outcome = p["outcome"] or ("error" if p["error"] else "completed")
    skipped = outcome == run_metrics.SKIPPED
    if not skipped and not p["decision"]:
        module.fail_json(msg="decision is required (the decision of this run) unless outcome=skipped")
    if skipped and not p["state_file"]:
        module.fail_json(msg="outcome=skipped needs state_file: the k3s_autoscaler_runs_total counter is kept in "
                             "its runs map (the skipped run writes no gauge)")
    now = time.time()
    result = dict(changed=True, duration_seconds=now - p["started_at"], outcome=outcome, runs=None)
    if p["path"]:
        result["path"] = p["path"]

    def produce():
        """Count the run in the state file, build the registry, export it (inside the textfile lock)."""
        totals, launch_failures, runs = {}, 0, None
        if p["state_file"]:
            try:
                if module.check_mode:
                    loaded = run_metrics.record_run(load_state(p["state_file"]), outcome)
                else:
                    loaded = update_state(p["state_file"], lambda st: run_metrics.record_run(st, outcome))
                totals = event_totals(loaded)
                launch_failures = launch_failure_total(loaded)
                runs = run_metrics.run_totals(loaded)
            except StateError as exc:
                module.fail_json(msg="cannot read scale event totals: %s" % exc)
            except ValueError as exc:
                module.fail_json(msg="state file %s: %s; fix or remove the runs key" % (p["state_file"], exc))
        result["runs"] = runs
        try:
            if skipped:
                registry = run_metrics.build_runs_registry(p["cluster"], p["node_group"], runs)
            else:
                registry = run_metrics.build_registry(
                    p["cluster"], p["node_group"], p["decision"], now=now, started_at=p["started_at"],
                    desired_nodes=p["desired_nodes"], current_nodes=p["current_nodes"],
                    pending_pods=p["pending_pods"], totals=totals, error=bool(p["error"]),
                    launch_failures=launch_failures, unfittable_pods=p["unfittable_pods"], runs=runs)
        except ValueError as exc:
            module.fail_json(msg=str(exc))
        result["text"] = run_metrics.render(registry)
        if not module.check_mode:
            warning = run_metrics.export(registry, path=p["path"], pushgateway_url=p["pushgateway_url"],
                                         merge=skipped)
            if warning:
                module.warn(warning)

    try:
        if p["path"] and not p["path"].endswith(".prom"):
            raise ValueError("path must end in .prom for the node-exporter textfile collector, got %r" % p["path"])
        with run_metrics.textfile_lock(p["path"]) if p["path"] and not module.check_mode else _NoLock():
            produce()
    except (OSError, ValueError) as exc:
        module.fail_json(msg="cannot export run metrics: %s" % exc, exception=traceback.format_exc())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
