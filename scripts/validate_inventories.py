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
* percentages (options whose description says ``percent``) must be within 0-100; counts, seconds and other
  numbers must not be negative (``autoscale_max_nodes`` and ``autoscale_max_scale_up_step`` at least 1) and must be
  finite (no ``.nan``/``.inf``); options named ``*_url`` must be a non-empty ``http(s)://host...`` URL;
  ``autoscale_cluster_name``/``autoscale_node_group`` must be Kubernetes label values (they also become EC2 tags and
  Prometheus label values, so no quote/brace/newline can reach a query); ``autoscale_state_file`` must not be empty;
  ``autoscale_prometheus_rate_window`` must be a PromQL duration;
* per host, on the merged variables (all < groups < host): ``autoscale_min_nodes`` <= ``autoscale_max_nodes``.

Where variables come from: ``hosts.yml`` (group ``vars:`` and host entries), ``group_vars/<group>.yml`` or every
file below ``group_vars/<group>/`` and the same for ``host_vars/``. Whole-file ansible-vault files are decrypted
when a password is available (``--vault-password-file``, ``$ANSIBLE_VAULT_PASSWORD_FILE`` or the inventory's own
``vault-password.txt``, which only the local demo inventory has) and skipped otherwise: secrets are ``vault_*``
variables, never thresholds, so validation does not need the staging/production passwords.

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


def _vault_password(inventory: Path, explicit: str | None) -> str | None:
    for candidate in (explicit, os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE"), inventory / "vault-password.txt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate).read_text(encoding="utf-8").strip()
    return None


def _decrypt(text: str, password: str) -> str:
    from ansible.constants import DEFAULT_VAULT_ID_MATCH
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault = VaultLib([(DEFAULT_VAULT_ID_MATCH, VaultSecret(password.encode()))])
    return vault.decrypt(text.encode()).decode("utf-8")


def _load_file(path: Path, password: str | None, rejections: list[Rejection], inv: Inventory) -> Source | None:
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith(VAULT_HEADER):
        if password is None:
            inv.notes.append(f"{_rel(path)}: ansible-vault encrypted, no password given; skipped (secrets only)")
            return None
        try:
            text = _decrypt(text, password)
        except Exception as exc:  # another environment's password: secrets only, so note it and go on
            inv.notes.append(f"{_rel(path)}: ansible-vault encrypted, the given password does not open it ({exc}); "
                             "skipped (secrets only; pass this environment's ANSIBLE_VAULT_PASSWORD_FILE to check it)")
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
    password = _vault_password(path, vault_password_file)
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
    if _is_percent(option) and not 0 <= coerced <= 100:
        problems.append(f"{coerced!r} is a percentage and must be within 0-100 (percent, not a 0-1 ratio)")
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
    coerced: dict[tuple[Path, str], Any] = {}
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
                coerced[(src.file, key)] = value_ok

    # merged view per host: all < groups (by depth, then name) < host
    for host, groups in sorted(inv.hosts.items()):
        ordered = ["all"] + sorted(groups, key=lambda g: (inv.group_depth.get(g, 1), g))
        merged: dict[str, tuple[Any, Source]] = {}
        for src in [s for g in ordered for s in inv.group_sources.get(g, [])] + inv.host_sources.get(host, []):
            for key, value in src.variables.items():
                merged[str(key)] = (value, src)
        lo, hi = merged.get("autoscale_min_nodes"), merged.get("autoscale_max_nodes")
        if lo is None or hi is None:
            continue
        lo_v, hi_v = coerced.get((lo[1].file, "autoscale_min_nodes")), coerced.get((hi[1].file, "autoscale_max_nodes"))
        if isinstance(lo_v, int) and isinstance(hi_v, int) and lo_v > hi_v:
            hi_where = _rel(hi[1].file)
            hi_line = _line_of(hi[1].text, "autoscale_max_nodes")
            rejections.append(Rejection(
                _rel(lo[1].file), "autoscale_min_nodes",
                f"{lo_v} is greater than autoscale_max_nodes {hi_v} "
                f"(set in {hi_where}{':' + str(hi_line) if hi_line else ''}) for host {host}; "
                "min_nodes must be <= max_nodes",
                _line_of(lo[1].text, "autoscale_min_nodes")))
    return checked


def find_inventories(base: Path) -> list[Path]:
    return sorted(p for p in base.iterdir()
                  if p.is_dir() and any((p / n).is_file() for n in ("hosts.yml", "hosts.yaml")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inventories", nargs="*", type=Path,
                        help="inventory directories (default: every directory under inventories/ with a hosts.yml)")
    parser.add_argument("--vault-password-file", help="vault password for encrypted var files (optional)")
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
    if rejections:
        for rejection in rejections:
            print(f"REJECTED {rejection}", file=sys.stderr)
        print(f"validate_inventories: {len(rejections)} rejection(s)", file=sys.stderr)
        return 1
    print(f"validate_inventories: OK ({len(paths)} inventories; roles: {', '.join(s.role for s in specs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
