#!/usr/bin/env python3
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Validate every inventory under ``inventories/`` against the roles' argument specs (``make validate``).

What is checked, for every inventory directory (one that holds ``hosts.yml``/``hosts.yaml``):

* every variable whose name starts with a role's prefix (``autoscale_`` for the collection role
  ``k3s.autoscaler.autoscale``; ``<role>_`` for each top-level ``roles/<role>`` that has
  ``meta/argument_specs.yml``) must be an option of that role's ``main`` entry point. Unknown or misspelled keys
  are rejected with a "did you mean" suggestion (difflib);
* each value is type-checked with Ansible's own ``ArgumentSpecValidator`` (the same validator the role's
  automatic argument validation runs), including ``choices``. Values that are Jinja templates (``{{ ... }}``)
  are resolved only at run time and are not type-checked here;
* percentages (options whose description says ``percent``) must be within 0-100 and not a 0-1 ratio: a value
  strictly between 0 and 1 is rejected ("percent 0-100, not a ratio: 20 means 20 %"; 0 stays allowed); ratios
  (description says ``ratio 0-1``, e.g. ``autoscale_scale_down_utilization_threshold``) must be > 0 and <= 1, as
  the role's run-time preflight requires; counts, seconds and other numbers must not be negative
  (``autoscale_max_nodes`` and ``autoscale_max_scale_up_step`` at least 1) and must be finite (no ``.nan``/``.inf``);
  options named ``*_url`` must be a non-empty ``http(s)://host...`` URL;
  ``autoscale_cluster_name``/``autoscale_node_group`` must be Kubernetes label values (they also become EC2 tags and
  Prometheus label values, so no quote/brace/newline can reach a query); ``autoscale_state_file`` must not be empty;
  ``autoscale_prometheus_rate_window`` must be a PromQL duration;
* per host, on the merged variables (all < groups < host): ``autoscale_min_nodes`` <= ``autoscale_max_nodes``;
* per host of the ``k3s_clusters`` group (the hosts playbooks/autoscale.yml runs on; every host if the inventory
  has no such group): the run's own config validation. The collection's ``policy.validate_config`` (what
  ``k3s.autoscaler.k3s_scale_decision`` runs at the Decide step) is imported from ``collections/`` and run over
  the merged ``autoscale_*`` values mapped to the module's option names as ``roles/autoscale/tasks/cycle.yml``
  passes them (``POLICY_CONFIG``; unset ones take the role defaults), so the rules exist once: each
  ``autoscale_node_groups`` entry (known keys only, ``min_nodes`` <= ``max_nodes``, a known ``instance_type``,
  unique names), ``autoscale_instance_type`` of the implicit group, and the rest. Templated values (and values
  already rejected above) are replaced by stand-ins that cannot fail, so only known values cause a rejection,
  e.g. ``autoscale_node_groups[0].labelz``.

Where variables come from: ``hosts.yml`` (group ``vars:`` and host entries), ``group_vars/<group>.yml`` or every
file below ``group_vars/<group>/`` and the same for ``host_vars/``. Whole-file ansible-vault files are decrypted
with ``--vault-password-file``, else ``$ANSIBLE_VAULT_PASSWORD_FILE``, else the inventory's own
``vault-password.txt`` (only the local demo inventory has one). A password that does not open a vault file (or a
password file given explicitly that cannot be read) is a rejection naming the file: validate one inventory per
password (``scripts/validate_inventories.py inventories/<env> --vault-password-file ...``). Without any password a
vault file is skipped with a note: secrets are ``vault_*`` variables, never thresholds.

Every rejection names the FILE (and line) and the KEY. Exit status: 0 valid, 1 at least one rejection.
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
COLLECTION_ROLES = ROOT / "collections" / "ansible_collections" / "k3s" / "autoscaler" / "roles"
TOP_ROLES = ROOT / "roles"

# Inventory-level knobs that share the autoscale_ prefix but are not options of the autoscale role itself:
# they are consumed by the delivery (autoscaler_timer role, k3s_manifests CronJob, CI schedule).
INVENTORY_EXTRAS: dict[str, dict[str, Any]] = {
    "autoscale_check_interval": {
        "type": "int",
        "description": "Seconds between autoscaling runs (systemd timer OnUnitActiveSec, CronJob schedule).",
        "minimum": 1,
    },
}

# Lower bounds beyond "not negative" (spec name -> minimum).
MINIMUMS: dict[str, float] = {
    "autoscale_max_nodes": 1,
    "autoscale_max_scale_up_step": 1,
    "autoscale_prometheus_timeout": 1,
    "autoscale_drain_timeout": 1,
}

SPEC_KEYS = {"type", "elements", "default", "choices", "required", "options", "no_log", "aliases",
             "required_if", "required_one_of", "mutually_exclusive", "required_together", "apply_defaults"}
VAULT_HEADER = "$ANSIBLE_VAULT;"
VAR_EXTENSIONS = ("", ".yml", ".yaml", ".json")
# Options named *_url (Prometheus, k3s server, Grafana): a non-empty http(s) URL with a host, no whitespace.
URL = re.compile(r"^https?://[^/\s?#]+(?:[/?#]\S*)?$")
# Values that become Kubernetes label values (--node-label), EC2 tags and Prometheus label values: the
# Kubernetes label-value syntax, which also keeps them inert in PromQL (no quotes, braces, spaces, newlines).
LABEL_VALUE_KEYS = ("autoscale_cluster_name", "autoscale_node_group")
LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
# Must not be empty: an empty state file path would run without cooldowns.
NON_EMPTY_KEYS = ("autoscale_state_file",)
# PromQL durations (k3s_metrics rate_window).
DURATION_KEYS = ("autoscale_prometheus_rate_window",)
DURATION = re.compile(r"^(?:[0-9]+(?:ms|[smhdwy]))+$")
# Percent options (description says "percent") written as a 0-1 ratio: 0.2 would silently mean 0.2 %.
PERCENT_NOT_RATIO = "is a percent 0-100, not a ratio: 20 means 20 %"

# The collection, imported for its own config validation (policy.validate_config), so the rules exist once.
COLLECTIONS = ROOT / "collections"
# The group playbooks/autoscale.yml runs the autoscale role on: the run's config is checked for these hosts.
AUTOSCALE_GROUP = "k3s_clusters"
# Role variable -> k3s.autoscaler.k3s_scale_decision option (= policy config key), exactly as
# roles/autoscale/tasks/cycle.yml passes them to the Decide step (a test keeps the two in step).
POLICY_CONFIG: dict[str, str] = {
    "autoscale_policy": "policy",
    "autoscale_min_nodes": "min_nodes",
    "autoscale_max_nodes": "max_nodes",
    "autoscale_pending_pods_threshold": "pending_pods_threshold",
    "autoscale_cpu_threshold": "cpu_threshold",
    "autoscale_memory_threshold": "memory_threshold",
    "autoscale_scale_up_cooldown": "scale_up_cooldown",
    "autoscale_scale_down_cooldown": "scale_down_cooldown",
    "autoscale_max_scale_up_step": "max_scale_up_step",
    "autoscale_dry_run": "dry_run",
    "autoscale_node_groups": "node_groups",
    "autoscale_node_group": "node_group",
    "autoscale_instance_type": "instance_type",
    "autoscale_new_pod_scale_up_delay": "new_pod_scale_up_delay",
    "autoscale_scale_down_utilization_threshold": "scale_down_utilization_threshold",
    "autoscale_scale_down_unneeded_time": "scale_down_unneeded_time",
    "autoscale_scale_down_delay_after_add": "scale_down_delay_after_add",
    "autoscale_max_empty_bulk_delete": "max_empty_bulk_delete",
    "autoscale_max_node_provision_time": "max_node_provision_time",
}
# Stand-ins for values validate cannot know (Jinja templates) or has already rejected per key, chosen so they
# cannot cause a policy error themselves: every policy error reported is then caused by known values alone.
POLICY_NEUTRAL: dict[str, Any] = {"autoscale_min_nodes": 0, "autoscale_max_nodes": 10 ** 9,
                                  "autoscale_node_groups": None}


# --------------------------------------------------------------------------------------------- YAML loading
class _Tagged:
    """A value behind an Ansible YAML tag (``!vault``, ``!unsafe``): kept opaque, never type-checked."""

    def __init__(self, tag: str, value: Any):
        self.tag = tag
        self.value = value

    def __repr__(self) -> str:
        return f"<{self.tag}>"


class _Loader(yaml.SafeLoader):
    pass


def _tagged(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> _Tagged:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node)
    else:
        value = loader.construct_mapping(node)
    return _Tagged("!" + tag_suffix, value)


_Loader.add_multi_constructor("!", _tagged)


@dataclass
class Rejection:
    file: str
    key: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}"


@dataclass
class Source:
    """Variables of one file (or one hosts.yml section), in load order."""

    file: Path
    variables: dict[str, Any]
    text: str = ""


@dataclass
class Inventory:
    path: Path
    hosts: dict[str, list[str]] = field(default_factory=dict)  # host -> groups (without 'all')
    group_sources: dict[str, list[Source]] = field(default_factory=dict)
    host_sources: dict[str, list[Source]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    group_depth: dict[str, int] = field(default_factory=dict)


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _line_of(text: str, key: str) -> int | None:
    match = re.search(r"^[ \t]*" + re.escape(key) + r"[ \t]*:", text, re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else None


@dataclass
class VaultPassword:
    """The vault password used for an inventory: its text and where it came from (for messages)."""

    secret: str
    origin: str  # "--vault-password-file X", "$ANSIBLE_VAULT_PASSWORD_FILE (X)" or "X (the inventory's own)"


def _vault_password(inventory: Path, explicit: str | None, rejections: list[Rejection]) -> VaultPassword | None:
    """--vault-password-file, else $ANSIBLE_VAULT_PASSWORD_FILE, else the inventory's own vault-password.txt.

    A password file given explicitly (flag or environment) that cannot be read is a rejection, not a silent skip."""
    env = os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
    for candidate, origin in ((explicit, f"--vault-password-file {explicit}"),
                              (env, f"$ANSIBLE_VAULT_PASSWORD_FILE ({env})")):
        if not candidate:
            continue
        try:
            return VaultPassword(Path(candidate).read_text(encoding="utf-8").strip(), origin)
        except OSError as exc:
            rejections.append(Rejection(candidate, "(vault password)", f"cannot read the vault password file given "
                                        f"by {origin}: {exc.strerror or exc}; fix the path or unset it"))
            return None
    own = inventory / "vault-password.txt"
    if own.is_file():
        return VaultPassword(own.read_text(encoding="utf-8").strip(), f"{_rel(own)} (the inventory's own)")
    return None


def _decrypt(text: str, password: str) -> str:
    from ansible.constants import DEFAULT_VAULT_ID_MATCH
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault = VaultLib([(DEFAULT_VAULT_ID_MATCH, VaultSecret(password.encode()))])
    return vault.decrypt(text.encode()).decode("utf-8")


def _load_file(path: Path, password: VaultPassword | None, rejections: list[Rejection],
               inv: Inventory) -> Source | None:
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith(VAULT_HEADER):
        if password is None:
            inv.notes.append(f"{_rel(path)}: ansible-vault encrypted, no password given; skipped (secrets only)")
            return None
        try:
            text = _decrypt(text, password.secret)
        except Exception as exc:  # noqa: BLE001 - AnsibleVaultError and friends: the password does not open it
            rejections.append(Rejection(
                _rel(path), "(vault)",
                f"ansible-vault encrypted and the password from {password.origin} does not open it ({exc}); "
                "give this inventory's password, and validate one inventory per password: "
                f"scripts/validate_inventories.py {_rel(inv.path)} --vault-password-file <its password file>"))
            return None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        rejections.append(Rejection(_rel(path), "(file)", f"not valid YAML: {exc}"))
        return None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        rejections.append(Rejection(_rel(path), "(file)", f"must be a mapping of variables, got {type(data).__name__}"))
        return None
    return Source(path, data, text)


def _var_files(base: Path, name: str) -> list[Path]:
    """group_vars/<name>{,.yml,.yaml,.json} or every file below group_vars/<name>/ (sorted, like Ansible)."""
    found: list[Path] = []
    for ext in VAR_EXTENSIONS:
        candidate = base / (name + ext)
        if candidate.is_file():
            found.append(candidate)
        elif ext == "" and candidate.is_dir():
            found.extend(p for p in sorted(candidate.rglob("*"))
                         if p.is_file() and p.suffix in (".yml", ".yaml", ".json", "") and not p.name.startswith("."))
    return found


def load_inventory(path: Path, rejections: list[Rejection], vault_password_file: str | None = None) -> Inventory:
    inv = Inventory(path)
    hosts_file = next((path / n for n in ("hosts.yml", "hosts.yaml") if (path / n).is_file()), None)
    if hosts_file is None:
        rejections.append(Rejection(_rel(path), "hosts.yml", "inventory has no hosts.yml"))
        return inv
    password = _vault_password(path, vault_password_file, rejections)
    hosts_src = _load_file(hosts_file, password, rejections, inv)
    if hosts_src is None:
        return inv
    text = hosts_src.text

    def walk(group: str, body: Any, depth: int, parents: list[str]) -> None:
        if body is None:
            body = {}
        if not isinstance(body, dict):
            rejections.append(Rejection(_rel(hosts_file), group, "group must be a mapping (hosts/vars/children)"))
            return
        inv.group_depth[group] = max(depth, inv.group_depth.get(group, 0))
        unknown = set(body) - {"hosts", "vars", "children"}
        for key in sorted(unknown):
            rejections.append(Rejection(_rel(hosts_file), key, f"unknown entry in group {group!r}; "
                                        "expected hosts, vars or children", _line_of(text, key)))
        if body.get("vars"):
            inv.group_sources.setdefault(group, []).append(Source(hosts_file, dict(body["vars"]), text))
        for host, hvars in (body.get("hosts") or {}).items():
            groups = inv.hosts.setdefault(str(host), [])
            for g in parents + [group]:
                if g != "all" and g not in groups:
                    groups.append(g)
            if hvars:
                inv.host_sources.setdefault(str(host), []).append(Source(hosts_file, dict(hvars), text))
        for child, cbody in (body.get("children") or {}).items():
            walk(str(child), cbody, depth + 1, parents + [group])

    for group, body in hosts_src.variables.items():
        walk(str(group), body, 0 if group == "all" else 1, [])

    for group in sorted(set(inv.group_depth) | {"all"}):
        for f in _var_files(path / "group_vars", group):
            src = _load_file(f, password, rejections, inv)
            if src is not None:
                inv.group_sources.setdefault(group, []).append(src)
    for host in sorted(inv.hosts):
        for f in _var_files(path / "host_vars", host):
            src = _load_file(f, password, rejections, inv)
            if src is not None:
                inv.host_sources.setdefault(host, []).append(src)
    return inv


# --------------------------------------------------------------------------------------------- specs
@dataclass
class RoleSpec:
    role: str
    prefix: str
    file: Path
    options: dict[str, dict[str, Any]]


def _load_role_spec(role: str, prefix: str, spec_file: Path) -> RoleSpec:
    data = yaml.safe_load(spec_file.read_text(encoding="utf-8")) or {}
    options = ((data.get("argument_specs") or {}).get("main") or {}).get("options") or {}
    return RoleSpec(role, prefix, spec_file, dict(options))


def load_specs(collection_roles: Path = COLLECTION_ROLES, top_roles: Path = TOP_ROLES) -> list[RoleSpec]:
    """The autoscale role (prefix autoscale_, plus INVENTORY_EXTRAS) and every top-level role with a spec."""
    specs: list[RoleSpec] = []
    autoscale = collection_roles / "autoscale" / "meta" / "argument_specs.yml"
    if not autoscale.is_file():
        raise SystemExit(f"missing {autoscale}: the k3s.autoscaler.autoscale argument spec is the reference")
    spec = _load_role_spec("k3s.autoscaler.autoscale", "autoscale_", autoscale)
    for key, extra in INVENTORY_EXTRAS.items():
        spec.options.setdefault(key, extra)
    specs.append(spec)
    if top_roles.is_dir():
        for role_dir in sorted(p for p in top_roles.iterdir() if p.is_dir()):
            spec_file = role_dir / "meta" / "argument_specs.yml"
            if spec_file.is_file():
                specs.append(_load_role_spec(role_dir.name, role_dir.name + "_", spec_file))
    # longest prefix first, so autoscaler_timer_ never falls under a shorter prefix
    specs.sort(key=lambda s: len(s.prefix), reverse=True)
    return specs


def _spec_for(key: str, specs: list[RoleSpec]) -> RoleSpec | None:
    return next((s for s in specs if key.startswith(s.prefix)), None)


def _is_template(value: Any) -> bool:
    if isinstance(value, _Tagged):
        return True
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(_is_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_is_template(v) for v in value)
    return False


def _is_percent(option: dict[str, Any]) -> bool:
    return "percent" in str(option.get("description", "")).lower()


def _is_ratio(option: dict[str, Any]) -> bool:
    return "ratio 0-1" in str(option.get("description", "")).lower()


def check_value(key: str, value: Any, option: dict[str, Any]) -> tuple[list[str], Any]:
    """Type/choices via Ansible's ArgumentSpecValidator, then ranges. Returns (problems, coerced value)."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    spec = {k: v for k, v in option.items() if k in SPEC_KEYS and k != "default"}
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{value!r} is not a finite number; use a plain number"], None
    try:
        result = ArgumentSpecValidator({key: spec}).validate({key: value})
    except (OverflowError, ValueError) as exc:  # e.g. int('.inf') inside Ansible's type checker
        return [f"{value!r} cannot be converted to {spec.get('type', 'the option type')}: {exc}"], None
    problems = [str(e) for e in result.errors]  # each message names the argument and the expected type
    if problems:
        return problems, None
    coerced = result.validated_parameters.get(key)
    if key.endswith("_url") and isinstance(coerced, str) and not URL.match(coerced):
        return [f"{coerced!r} is not an http:// or https:// URL with a host (empty is not allowed), "
                "e.g. http://127.0.0.1:9090"], None
    if key in LABEL_VALUE_KEYS and isinstance(coerced, str) and not LABEL_VALUE.match(coerced):
        return [f"{coerced!r} is not a valid Kubernetes label value (1-63 of A-Z a-z 0-9 - _ . starting and "
                "ending alphanumeric); it becomes a node label, an EC2 tag and a Prometheus label value"], None
    if key in NON_EMPTY_KEYS and isinstance(coerced, str) and not coerced.strip():
        return ["must not be empty (without a state file cooldowns are not enforced); "
                "e.g. /var/lib/k3s-autoscaler/state.json"], None
    if key in DURATION_KEYS and isinstance(coerced, str) and not DURATION.match(coerced):
        return [f"{coerced!r} is not a PromQL duration; use e.g. 30s, 5m or 1h"], None
    if isinstance(coerced, bool) or not isinstance(coerced, (int, float)):
        return [], coerced
    if _is_percent(option):
        if not 0 <= coerced <= 100:
            problems.append(f"{coerced!r} is a percentage and must be within 0-100 (percent, not a 0-1 ratio)")
        elif 0 < coerced < 1:  # 0 stays allowed (it disables what the threshold gates)
            problems.append(f"{coerced!r} {PERCENT_NOT_RATIO}; {coerced!r} would mean {coerced!r} %, "
                            f"write {coerced * 100:g} for {coerced * 100:g} %")
    elif _is_ratio(option):
        if not 0 < coerced <= 1:
            problems.append(f"{coerced!r} is a ratio 0-1 (0.5 means 50 %), not a percent; must be > 0 and <= 1"
                            + (f", e.g. {coerced / 100:g} for {coerced:g} %" if 1 < coerced <= 100 else ""))
    else:
        minimum = option.get("minimum", MINIMUMS.get(key, 0))
        if coerced < minimum:
            what = "negative" if coerced < 0 else f"below {minimum}"
            problems.append(f"{coerced!r} is {what}; must be >= {minimum}")
    return problems, coerced


def _near_miss(key: str, specs: list[RoleSpec]) -> str | None:
    """The role option ``key`` is almost certainly a misspelling of (ratio >= 0.9), for keys no role owns.

    Secrets (``vault_*``) and connection variables (``ansible_*``) are other variables by convention."""
    if key.startswith(("vault_", "ansible_")):
        return None
    known = [opt for spec in specs for opt in spec.options]
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.9)
    return close[0] if close else None


# --------------------------------------------------------------------------------------------- validation
def validate_inventory(inv: Inventory, specs: list[RoleSpec], rejections: list[Rejection]) -> int:
    """Check every source once, then the merged per-host view. Returns the number of knobs checked."""
    checked = 0
    coerced: dict[tuple[int, str], Any] = {}  # (id(source), key) -> checked value
    seen: set[int] = set()
    all_sources = [s for srcs in inv.group_sources.values() for s in srcs] + \
                  [s for srcs in inv.host_sources.values() for s in srcs]
    for src in all_sources:
        if id(src) in seen:
            continue
        seen.add(id(src))
        for key, value in src.variables.items():
            key = str(key)
            spec = _spec_for(key, specs)
            if spec is None:
                near = _near_miss(key, specs)
                if near:  # a typo in the role prefix itself (autoscal_memory_threshold) would be silently ignored
                    rejections.append(Rejection(_rel(src.file), key, f"unknown key; did you mean {near}?",
                                                _line_of(src.text, key)))
                continue
            line = _line_of(src.text, key)
            option = spec.options.get(key)
            if option is None:
                close = difflib.get_close_matches(key, list(spec.options), n=1, cutoff=0.75)
                hint = f"; did you mean {close[0]}?" if close else \
                    f"; known keys are listed in {_rel(spec.file)}"
                rejections.append(Rejection(_rel(src.file), key,
                                            f"unknown key for role {spec.role}{hint}", line))
                continue
            checked += 1
            if _is_template(value):
                continue  # resolved at run time; the role's argument validation checks it then
            problems, value_ok = check_value(key, value, option)
            for problem in problems:
                rejections.append(Rejection(_rel(src.file), key, problem, line))
            if not problems:
                coerced[(id(src), key)] = value_ok

    # merged view per host: all < groups (by depth, then name) < host
    for host, groups in sorted(inv.hosts.items()):
        ordered = ["all"] + sorted(groups, key=lambda g: (inv.group_depth.get(g, 1), g))
        merged: dict[str, tuple[Any, Source]] = {}
        for src in [s for g in ordered for s in inv.group_sources.get(g, [])] + inv.host_sources.get(host, []):
            for key, value in src.variables.items():
                merged[str(key)] = (value, src)
        min_max_reported = False
        lo, hi = merged.get("autoscale_min_nodes"), merged.get("autoscale_max_nodes")
        if lo is not None and hi is not None:
            lo_v = coerced.get((id(lo[1]), "autoscale_min_nodes"))
            hi_v = coerced.get((id(hi[1]), "autoscale_max_nodes"))
            if isinstance(lo_v, int) and isinstance(hi_v, int) and lo_v > hi_v:
                min_max_reported = True
                hi_where = _rel(hi[1].file)
                hi_line = _line_of(hi[1].text, "autoscale_max_nodes")
                rejections.append(Rejection(
                    _rel(lo[1].file), "autoscale_min_nodes",
                    f"{lo_v} is greater than autoscale_max_nodes {hi_v} "
                    f"(set in {hi_where}{':' + str(hi_line) if hi_line else ''}) for host {host}; "
                    "min_nodes must be <= max_nodes",
                    _line_of(lo[1].text, "autoscale_min_nodes")))
        if AUTOSCALE_GROUP in groups or not any(AUTOSCALE_GROUP in g for g in inv.hosts.values()):
            autoscale = next((s for s in specs if s.role == "k3s.autoscaler.autoscale"), None)
            if autoscale is not None:
                check_policy(inv, merged, coerced, autoscale, rejections,
                             {"autoscale_min_nodes", "autoscale_max_nodes"} if min_max_reported else set())
    return checked


# --------------------------------------------------------------------------------------------- the run's own rules
def _policy_module():
    """k3s.autoscaler's policy module_utils, imported from collections/ (the code the run's Decide step runs)."""
    if str(COLLECTIONS) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS))
    from ansible_collections.k3s.autoscaler.plugins.module_utils import policy

    return policy


def _line_of_path(text: str, path: list[str | int]) -> int | None:
    """Line of ``path`` (a top-level key, then list indexes / mapping keys) in YAML ``text``; the deepest part
    found. The top-level key is searched anywhere (hosts.yml nests variables under groups and hosts)."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return None
    stack, found = [root], None
    while stack and found is None:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == path[0]:
                    found = (k, v)
                    break
            stack.extend(v for _k, v in reversed(node.value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
    if found is None:
        return None
    line, node = found[0].start_mark.line + 1, found[1]
    for part in path[1:]:
        if isinstance(part, int) and isinstance(node, yaml.SequenceNode) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        elif isinstance(node, yaml.MappingNode):
            hit = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)), None)
            if hit is None:
                break
            line, node = hit[0].start_mark.line + 1, hit[1]
        else:
            break
    return line


_GROUP_FIELD = re.compile(r"^node_groups\[(\d+)\](?:\.(\w+))?$")
_UNKNOWN_GROUP_KEY = re.compile(r"^unknown key '([^']*)'")
# a field of the implicit node group (no autoscale_node_groups) -> the role variable it comes from
_IMPLICIT_GROUP = {None: "autoscale_instance_type", "name": "autoscale_node_group",
                   "instance_type": "autoscale_instance_type", "min_nodes": "autoscale_min_nodes",
                   "max_nodes": "autoscale_max_nodes"}


def check_policy(inv: Inventory, merged: dict[str, tuple[Any, Source]], coerced: dict[tuple[int, str], Any],
                 spec: RoleSpec, rejections: list[Rejection], skip: set[str]) -> None:
    """Run the collection's own config validation (policy.validate_config, which the run's Decide step -
    k3s.autoscaler.k3s_scale_decision - runs) over one host's merged autoscale_* values mapped to the module's
    option names (POLICY_CONFIG), defaults from the role spec. Values that are Jinja templates, that were already
    rejected per key, or are in ``skip`` are replaced by stand-ins that cannot fail (POLICY_NEUTRAL or the role
    default), so every rejection added here is caused by known values. validate_config stops at the first error:
    it is called again with the offending value replaced by a stand-in until it passes, so every error is reported.
    """
    policy = _policy_module()
    config: dict[str, Any] = {}
    unknown = set(skip)
    for var, name in POLICY_CONFIG.items():
        default = (spec.options.get(var) or {}).get("default")
        if var in merged:
            src = merged[var][1]
            if (id(src), var) in coerced and var not in skip:
                config[name] = coerced[(id(src), var)]
                continue
            unknown.add(var)  # template or already rejected
        config[name] = POLICY_NEUTRAL.get(var, default) if var in unknown else default
    config["node_groups"] = config["node_groups"] or None  # cycle.yml: autoscale_node_groups or omit
    reported: set[str] = set()
    for _attempt in range(len(POLICY_CONFIG) + 2 * len(config.get("node_groups") or []) + 2):
        try:
            policy.validate_config(config)
            return
        except policy.ConfigError as exc:
            field_name, message = str(exc.field), exc.message
        var, key, path, fix = _policy_error_target(field_name, message, config)
        if var is None or fix is None or key in reported:
            rejections.append(Rejection(_rel(inv.path), field_name, f"{message} (policy.validate_config)"))
            return
        reported.add(key)
        if var not in unknown:
            src = merged[var][1] if var in merged else None
            rejections.append(Rejection(
                _rel(src.file) if src else _rel(spec.file), key,
                f"{message} (the run's Decide step, k3s.autoscaler.k3s_scale_decision, fails on this)",
                _line_of_path(src.text, path) if src else None))
        fix()


def _policy_error_target(field_name: str, message: str, config: dict[str, Any]):
    """(role variable, reported KEY, YAML path, stand-in setter) for a policy ConfigError on ``field_name``."""
    group = _GROUP_FIELD.match(field_name)
    if group and config.get("node_groups"):  # an entry of autoscale_node_groups
        idx, sub = int(group.group(1)), group.group(2)
        path: list[str | int] = ["autoscale_node_groups", idx]
        unknown_key = _UNKNOWN_GROUP_KEY.match(message)
        if sub:
            path.append(sub)
        elif unknown_key:
            path.append(unknown_key.group(1))
        key = "autoscale_" + field_name + (f".{unknown_key.group(1)}" if unknown_key and not sub else "")

        def placeholder():
            config["node_groups"] = list(config["node_groups"])
            config["node_groups"][idx] = {"name": f"validate-stand-in-{idx}", "instance_type": "t3.large",
                                          "min_nodes": 0, "max_nodes": 1}
        return "autoscale_node_groups", key, path, placeholder
    if group:  # the implicit group built from autoscale_node_group / autoscale_instance_type / min / max
        var = _IMPLICIT_GROUP.get(group.group(2), "autoscale_instance_type")
    elif field_name == "node_groups":
        var = "autoscale_node_groups"
    else:
        var = "autoscale_" + field_name
    if var not in POLICY_CONFIG:
        return None, field_name, [field_name], None
    name = POLICY_CONFIG[var]

    def stand_in():
        config[name] = POLICY_NEUTRAL.get(var, _STAND_IN.get(name))
        if var == "autoscale_min_nodes":  # the min/max message names min_nodes for both
            config["max_nodes"] = POLICY_NEUTRAL["autoscale_max_nodes"]
    return var, var, [var], stand_in


# Stand-ins for a value the policy rejected, so the next call can find the next error (None = the policy's default).
_STAND_IN: dict[str, Any] = {"node_group": "default", "instance_type": "t3.large", "policy": "threshold",
                             "dry_run": False}


def find_inventories(base: Path) -> list[Path]:
    return sorted(p for p in base.iterdir()
                  if p.is_dir() and any((p / n).is_file() for n in ("hosts.yml", "hosts.yaml")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inventories", nargs="*", type=Path,
                        help="inventory directories (default: every directory under inventories/ with a hosts.yml)")
    parser.add_argument("--vault-password-file",
                        help="vault password for encrypted var files (optional; one that does not open them is a "
                             "rejection, so give one inventory with it)")
    parser.add_argument("--collection-roles", type=Path, default=COLLECTION_ROLES, help=argparse.SUPPRESS)
    parser.add_argument("--roles", type=Path, default=TOP_ROLES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    paths = args.inventories or find_inventories(ROOT / "inventories")
    if not paths:
        print("validate_inventories: no inventory found (expected inventories/<env>/hosts.yml)", file=sys.stderr)
        return 1
    specs = load_specs(args.collection_roles, args.roles)
    rejections: list[Rejection] = []
    summary = []
    for path in paths:
        if not path.is_dir():
            rejections.append(Rejection(str(path), "(inventory)", "not a directory"))
            continue
        inv = load_inventory(path, rejections, args.vault_password_file)
        checked = validate_inventory(inv, specs, rejections)
        summary.append(f"{_rel(path)}: {len(inv.hosts)} host(s), {checked} knob(s) checked")
        for note in inv.notes:
            print(f"note: {note}")
    for line in summary:
        print(line)
    rejections = list({str(r): r for r in rejections}.values())  # a file shared by several hosts: once
    if rejections:
        for rejection in rejections:
            print(f"REJECTED {rejection}", file=sys.stderr)
        print(f"validate_inventories: {len(rejections)} rejection(s)", file=sys.stderr)
        return 1
    print(f"validate_inventories: OK ({len(paths)} inventories; roles: {', '.join(s.role for s in specs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
