# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run safety: intent records written to the state file BEFORE an action, and the guards around them.

A run can be killed at any point (SIGKILL, power loss). So that a rerun neither repeats nor forgets an
action, each action is announced in the state file (atomic write, :mod:`state`) before it starts:

``pending_launch``  ``{"launch_id": <uuid hex>, "count": <int>, "node_group": <str>, "created": <unix s>,
                      "reason": <str>}``
    written before RunInstances. The launch tags every instance ``k3s-autoscaler/launch-id: <launch_id>``
    (:data:`LAUNCH_ID_TAG`; a plain tag, so it works with amazon.aws.ec2_instance as well as the mock).
``pending_removal`` ``{"node": <node name>, "instance_id": <str>, "cordoned_at": <unix s>, "reason": <str>,
                      "node_group": <str, optional>}``
    written before the node is cordoned. ``node_group`` is the group the removal guard counted (the
    instance's ``k3s-autoscaler/node-group`` tag); the ``scale_down`` event carries it.

At the start of every run :func:`reconcile` looks at the node group's instances (from
``ec2_instance_info``, all states) and:

* ``pending_launch`` with instances tagged by its launch_id -> the launch happened: a ``scale_up`` event
  with those instance_ids is recorded and the record cleared (``launch: completed``); the run then decides
  normally (the cooldown now applies). No instance yet and younger than ``launch_timeout`` s -> the run
  holds (``launch: waiting``): it does not decide again, so a decision never launches twice. Older -> the
  launch never happened; the record is cleared (``launch: expired``).
* ``pending_removal`` whose instance is no longer live (``shutting-down``/``terminated``/absent) -> the
  termination happened: a ``scale_down`` event is recorded and the record cleared (``removal: completed``).
  Instance still live -> the run was killed between cordon and terminate: the role uncordons the node, then
  clears the record (:func:`clear_removal`) (``removal: uncordon``). So a node never stays cordoned by us
  for more than one cycle without a termination in flight.

Guards (pure, on the same instance list):

* :func:`launch_guard` - ``live`` = instances of the node group not ``shutting-down``/``terminated``
  (pending ones included); the launch is capped at ``max_nodes - live`` and refused while the node group is
  backed off after capacity errors (state ``backoff``, written by k3s_scale_event ``launch_failed``). So the
  non-terminated instances of the group never exceed max_nodes, even while new ones are still pending.
* :func:`removal_guard` - a removal is refused when ``live - 1 < min_nodes``. With several node groups
  (``node_groups``, the role's ``autoscale_node_groups``) the group is the one the instance is tagged with
  (``k3s-autoscaler/node-group``) and ``min_nodes`` that group's ``min_nodes``; an instance whose tag names
  no configured group is refused, never guessed.

All times are unix seconds; counts are instances.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import math
import uuid

from ansible_collections.k3s.autoscaler.plugins.module_utils.state import record_event

LAUNCH_ID_TAG = "k3s-autoscaler/launch-id"
NODE_GROUP_TAG = "k3s-autoscaler/node-group"
GONE_STATES = ("shutting-down", "terminated")
DEFAULT_LAUNCH_TIMEOUT = 300.0


class IntentError(Exception):
    """Bad input or a state that does not allow the step; the message names the field and the fix."""


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def state_name(instance):
    """EC2 ``state.name`` of an instance dict (``{"state": {"name": ...}}`` or ``{"state": "..."}``)."""
    st = instance.get("state")
    if isinstance(st, dict):
        st = st.get("name")
    if not isinstance(st, str) or not st:
        raise IntentError("instance %r has no state.name; pass the instances returned by ec2_instance_info"
                          % (instance.get("instance_id"),))
    return st


def _tags(instance):
    tags = instance.get("tags") or {}
    if not isinstance(tags, dict):
        raise IntentError("instance %r: tags must be a dict" % (instance.get("instance_id"),))
    return tags


def group_instances(instances, node_group):
    """Instances (any state) tagged ``k3s-autoscaler/node-group: <node_group>``."""
    if not isinstance(instances, list):
        raise IntentError("instances must be a list of EC2 instance dicts (ec2_instance_info's instances)")
    out = []
    for inst in instances:
        if not isinstance(inst, dict) or not inst.get("instance_id"):
            raise IntentError("every element of instances must be an EC2 instance dict with instance_id, got %r"
                              % (inst,))
        if _tags(inst).get(NODE_GROUP_TAG) == node_group:
            out.append(inst)
    return out


def live_instances(instances, node_group):
    """Instances of ``node_group`` not shutting-down/terminated (pending, running, stopping, stopped)."""
    return [i for i in group_instances(instances, node_group) if state_name(i) not in GONE_STATES]


def validate_intents(state):
    """Check the optional ``pending_launch`` / ``pending_removal`` keys; raise IntentError naming the field."""
    pl = state.get("pending_launch")
    if pl is not None:
        if not isinstance(pl, dict) or not isinstance(pl.get("launch_id"), str) or not pl["launch_id"]:
            raise IntentError("state pending_launch.launch_id must be a non-empty string; repair the state file")
        if not isinstance(pl.get("count"), int) or isinstance(pl.get("count"), bool) or pl["count"] < 1:
            raise IntentError("state pending_launch.count must be an integer >= 1; repair the state file")
        if not _num(pl.get("created")) or not isinstance(pl.get("node_group"), str):
            raise IntentError("state pending_launch needs created (unix seconds) and node_group; repair the state file")
    pr = state.get("pending_removal")
    if pr is not None:
        if not isinstance(pr, dict) or not all(isinstance(pr.get(k), str) and pr.get(k) for k in ("node", "instance_id")):
            raise IntentError("state pending_removal needs node and instance_id strings; repair the state file")
        if not _num(pr.get("cordoned_at")):
            raise IntentError("state pending_removal.cordoned_at must be unix seconds; repair the state file")
        if pr.get("node_group") is not None and not isinstance(pr.get("node_group"), str):
            raise IntentError("state pending_removal.node_group must be a string when set; repair the state file")
    return state


def reconcile(state, instances, node_group, now, launch_timeout=DEFAULT_LAUNCH_TIMEOUT):
    """Pure: resolve leftover intents. Returns ``(new_state, report)``.

    ``report`` = ``{"launch": none|completed|waiting|expired, "launch_id", "launched_ids": [...],
    "removal": none|completed|uncordon, "node", "instance_id", "hold": bool, "messages": [str]}``.
    ``hold`` is true while a launch is unresolved (``waiting``): do not decide this run.
    """
    validate_intents(state)
    new = copy.deepcopy(state)
    rep = {"launch": "none", "launch_id": None, "launched_ids": [], "removal": "none", "node": None,
           "instance_id": None, "hold": False, "messages": []}
    pl = new.get("pending_launch")
    if pl:
        lid = pl["launch_id"]
        rep["launch_id"] = lid
        found = sorted(i["instance_id"] for i in instances if _tags(i).get(LAUNCH_ID_TAG) == lid)
        age = now - pl["created"]
        if found:
            new = record_event(new, "scale_up", len(found), now, instance_ids=found,
                               reason="completed launch %s of an interrupted run: %s"
                               % (lid, pl.get("reason") or ""), node_group=pl.get("node_group"))
            new.pop("pending_launch", None)
            rep.update(launch="completed", launched_ids=found)
            rep["messages"].append("launch %s of an interrupted run found %d instance(s) %s tagged %s; recorded "
                                   "the scale_up instead of deciding again"
                                   % (lid, len(found), ", ".join(found), LAUNCH_ID_TAG))
        elif age > launch_timeout:
            new.pop("pending_launch", None)
            rep["launch"] = "expired"
            rep["messages"].append("launch %s (%d node(s), %.0f s ago) never happened: no instance is tagged %s=%s "
                                   "after launch_timeout %s s; record cleared"
                                   % (lid, pl["count"], age, LAUNCH_ID_TAG, lid, launch_timeout))
        else:
            rep.update(launch="waiting", hold=True)
            rep["messages"].append("launch %s (%d node(s)) of an interrupted run is unresolved: no instance tagged "
                                   "%s=%s yet, %.0f s of launch_timeout %s s; holding instead of deciding again"
                                   % (lid, pl["count"], LAUNCH_ID_TAG, lid, age, launch_timeout))
    pr = new.get("pending_removal")
    if pr:
        rep.update(node=pr["node"], instance_id=pr["instance_id"])
        live = [i for i in instances if i["instance_id"] == pr["instance_id"] and state_name(i) not in GONE_STATES]
        if not live:
            new = record_event(new, "scale_down", 1, now, instance_ids=[pr["instance_id"]], node_names=[pr["node"]],
                               reason="completed removal of %s of an interrupted run: %s"
                               % (pr["node"], pr.get("reason") or ""), node_group=pr.get("node_group"))
            new.pop("pending_removal", None)
            rep["removal"] = "completed"
            rep["messages"].append("removal of node %s (instance %s) of an interrupted run: the instance is "
                                   "terminated; recorded the scale_down" % (pr["node"], pr["instance_id"]))
        else:
            rep["removal"] = "uncordon"
            rep["messages"].append("removal of node %s (instance %s, %s) of an interrupted run did not reach "
                                   "terminate; uncordoning the node"
                                   % (pr["node"], pr["instance_id"], state_name(live[0])))
    return new, rep


def launch_guard(state, instances, node_group, count, max_nodes, now):
    """Pure: ``{"proceed": bool, "count": int, "live": int, "reason": str}`` for a launch of ``count``."""
    if not isinstance(count, int) or count < 0:
        raise IntentError("count must be an integer >= 0, got %r" % (count,))
    if not isinstance(max_nodes, int) or max_nodes < 0:
        raise IntentError("max_nodes must be an integer >= 0, got %r" % (max_nodes,))
    live = len(live_instances(instances, node_group))
    backoff = (state.get("backoff") or {}).get(node_group)
    if backoff and _num(backoff.get("until")) and backoff["until"] > now:
        return {"proceed": False, "count": 0, "live": live,
                "reason": "no_action: scale_up of node group %s backed off for %.0f s more (until %.0f) after %s "
                          "launch failure(s), last %s" % (node_group, backoff["until"] - now, backoff["until"],
                                                          backoff.get("failures"), backoff.get("error_code"))}
    allowed = max(0, max_nodes - live)
    n = min(count, allowed)
    if n < 1:
        return {"proceed": False, "count": 0, "live": live,
                "reason": "no_action: node group %s already has %d non-terminated instance(s) (pending included) "
                          ">= max_nodes %d" % (node_group, live, max_nodes)}
    reason = "" if n == count else ("capped from %d to %d: %d non-terminated instance(s) (pending included), "
                                    "max_nodes %d" % (count, n, live, max_nodes))
    return {"proceed": True, "count": n, "live": live, "reason": reason}


def _group_min_nodes(node_groups, name):
    """``min_nodes`` of the group ``name`` in ``node_groups`` (list of ``{name, min_nodes, ...}``), else None."""
    for idx, g in enumerate(node_groups):
        if not isinstance(g, dict) or not isinstance(g.get("name"), str):
            raise IntentError("node_groups[%d] must be a dict with a name (autoscale_node_groups)" % idx)
        if g["name"] == name:
            mn = g.get("min_nodes", 0)  # absent = 0, as the binpacking policy reads it
            if isinstance(mn, float) and math.isfinite(mn) and mn == int(mn):
                mn = int(mn)
            if not isinstance(mn, int) or isinstance(mn, bool) or mn < 0:
                raise IntentError("node_groups[%d] (%s): min_nodes must be an integer >= 0, got %r"
                                  % (idx, name, mn))
            return mn
    return None


def removal_node_group(instances, instance_id, node_group, min_nodes, node_groups=None):
    """The ``(node group, min_nodes)`` a removal of ``instance_id`` is guarded with.

    Without ``node_groups`` (one group): ``(node_group, min_nodes)`` as given. With ``node_groups`` (list of
    ``{name, min_nodes, ...}``): the group the instance is tagged with (``k3s-autoscaler/node-group`` in
    ``instances``) and that group's ``min_nodes``. Returns ``(None, None)`` when the instance is absent,
    untagged or tagged with a group not in ``node_groups`` (the guard then refuses).
    """
    if not node_groups:
        return node_group, min_nodes
    for inst in instances:
        if isinstance(inst, dict) and inst.get("instance_id") == instance_id:
            tagged = _tags(inst).get(NODE_GROUP_TAG)
            mn = _group_min_nodes(node_groups, tagged) if isinstance(tagged, str) else None
            return (tagged, mn) if mn is not None else (None, None)
    return None, None


def removal_guard(instances, node_group, instance_id, min_nodes, node_groups=None):
    """Pure: ``{"proceed": bool, "live": int, "node_group": str|None, "min_nodes": int|None, "reason": str}``
    for terminating ``instance_id``.

    ``live`` counts the non-terminated instances of the guarded group (see :func:`removal_node_group`:
    ``node_group`` / ``min_nodes``, or with ``node_groups`` the instance's own tagged group and its min).
    """
    group_instances(instances, node_group)  # validates the list
    if not isinstance(min_nodes, int) or isinstance(min_nodes, bool) or min_nodes < 0:
        raise IntentError("min_nodes must be an integer >= 0, got %r" % (min_nodes,))
    group, group_min = removal_node_group(instances, instance_id, node_group, min_nodes, node_groups)
    if group is None:
        tagged = [_tags(i).get(NODE_GROUP_TAG) for i in instances if i.get("instance_id") == instance_id]
        why = ("it is not among the cluster's instances" if not tagged else
               "it is tagged %s=%r, not one of node_groups %s" % (
                   NODE_GROUP_TAG, tagged[0], ", ".join(str(g.get("name")) for g in node_groups)))
        return {"proceed": False, "live": 0, "node_group": None, "min_nodes": None,
                "reason": "no_action: instance %s has no configured node group (%s)" % (instance_id, why)}
    live = live_instances(instances, group)
    ids = [i["instance_id"] for i in live]
    out = {"proceed": False, "live": len(live), "node_group": group, "min_nodes": group_min, "reason": ""}
    if instance_id not in ids:
        out["reason"] = "no_action: instance %s is not a live instance of node group %s" % (instance_id, group)
    elif len(live) - 1 < group_min:
        out["reason"] = ("no_action: removing %s would leave %d non-terminated instance(s) in node group %s "
                         "< min_nodes %d" % (instance_id, len(live) - 1, group, group_min))
    else:
        out["proceed"] = True
    return out


def begin_launch(state, count, node_group, now, reason="", launch_id=None):
    """Pure: the state with ``pending_launch`` set (fails if one is already pending - reconcile first)."""
    validate_intents(state)
    if state.get("pending_launch"):
        raise IntentError("a launch (%s) is already pending in the state file; the run must reconcile it first"
                          % state["pending_launch"]["launch_id"])
    new = copy.deepcopy(state)
    new["pending_launch"] = {"launch_id": launch_id or uuid.uuid4().hex, "count": int(count),
                             "node_group": node_group, "created": float(now), "reason": reason or ""}
    return new


def end_launch(state, launch_id, instance_ids, now, reason="", node_group=None):
    """Pure: record the scale_up of ``instance_ids`` and clear ``pending_launch`` (in one write)."""
    validate_intents(state)
    pl = state.get("pending_launch")
    if not pl or pl["launch_id"] != launch_id:
        raise IntentError("launch_id %s is not the pending launch (%s); it was already recorded or cleared"
                          % (launch_id, pl and pl["launch_id"]))
    new = copy.deepcopy(state)
    new.pop("pending_launch")
    if instance_ids:
        new = record_event(new, "scale_up", len(instance_ids), now, instance_ids=instance_ids, reason=reason,
                           node_group=node_group or pl.get("node_group"))
    return new


def abort_launch(state, launch_id):
    """Pure: clear ``pending_launch`` if it is ``launch_id`` (the launch definitely did not happen)."""
    new = copy.deepcopy(state)
    if (new.get("pending_launch") or {}).get("launch_id") == launch_id:
        new.pop("pending_launch")
    return new


def begin_removal(state, node, instance_id, now, reason="", node_group=None):
    """Pure: the state with ``pending_removal`` set (fails if one is already pending)."""
    validate_intents(state)
    if state.get("pending_removal"):
        raise IntentError("a removal (%s) is already pending in the state file; the run must reconcile it first"
                          % state["pending_removal"]["node"])
    new = copy.deepcopy(state)
    new["pending_removal"] = {"node": node, "instance_id": instance_id, "cordoned_at": float(now),
                              "reason": reason or ""}
    if node_group:
        new["pending_removal"]["node_group"] = node_group
    return new


def end_removal(state, node, instance_id, now, reason="", node_group=None):
    """Pure: record the scale_down of ``node``/``instance_id`` and clear ``pending_removal`` (one write).

    The event carries ``node_group`` when given, else the one the pending removal recorded."""
    validate_intents(state)
    new = copy.deepcopy(state)
    pr = new.pop("pending_removal", None) or {}
    if node_group is None and pr.get("instance_id") == instance_id:
        node_group = pr.get("node_group")
    return record_event(new, "scale_down", 1, now, instance_ids=[instance_id], node_names=[node], reason=reason,
                        node_group=node_group)


def clear_removal(state, node=None):
    """Pure: clear ``pending_removal`` (after an uncordon or a failed drain that uncordoned)."""
    new = copy.deepcopy(state)
    pr = new.get("pending_removal")
    if pr and (node is None or pr.get("node") == node):
        new.pop("pending_removal")
    return new
