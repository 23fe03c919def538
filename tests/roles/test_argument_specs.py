"""Every role (top-level ``roles/*`` and the collection's ``roles/*``): ``meta/argument_specs.yml`` (entry point
``main``) and ``defaults/main.yml`` hold the same keys with equal defaults; variables carry the role's prefix;
``meta/main.yml`` exists. Failures name the role and the key."""
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent.parent
ROLE_DIRS = [REPO / "roles", REPO / "collections" / "ansible_collections" / "k3s" / "autoscaler" / "roles"]
ROLES = sorted((p for base in ROLE_DIRS if base.is_dir() for p in base.iterdir()
                if p.is_dir() and not p.name.startswith(".")), key=lambda p: str(p))


def role_id(path: Path) -> str:
    return str(path.relative_to(REPO))


def load(path: Path):
    for candidate in (path, path.with_suffix(".yaml")):
        if candidate.is_file():
            return yaml.safe_load(candidate.read_text(encoding="utf-8"))
    return None


def spec_options(role: Path) -> dict:
    data = load(role / "meta" / "argument_specs.yml")
    assert isinstance(data, dict) and "argument_specs" in data, \
        f"role {role.name}: meta/argument_specs.yml missing or without 'argument_specs:'"
    main = (data["argument_specs"] or {}).get("main")
    assert isinstance(main, dict), f"role {role.name}: meta/argument_specs.yml has no 'main' entry point"
    return main.get("options") or {}


def defaults(role: Path) -> dict:
    data = load(role / "defaults" / "main.yml")
    assert data is None or isinstance(data, dict), f"role {role.name}: defaults/main.yml is not a mapping"
    return data or {}


def test_roles_are_found():
    names = {p.name for p in ROLES}
    assert "autoscale" in names


@pytest.mark.parametrize("role", ROLES, ids=role_id)
def test_argument_specs_match_defaults_exactly(role):
    options = spec_options(role)
    dflt = defaults(role)
    problems = []
    for key in sorted(set(dflt) - set(options)):
        problems.append(f"role {role.name}: key {key} is in defaults/main.yml but not in meta/argument_specs.yml")
    for key, opt in sorted(options.items()):
        opt = opt or {}
        has_default = "default" in opt
        if key not in dflt:
            if has_default:
                problems.append(f"role {role.name}: key {key} has a default in meta/argument_specs.yml "
                                f"({opt['default']!r}) but is missing from defaults/main.yml")
            continue
        if not has_default:
            problems.append(f"role {role.name}: key {key} is in defaults/main.yml ({dflt[key]!r}) but has no "
                            "default in meta/argument_specs.yml")
        elif opt["default"] != dflt[key] or isinstance(opt["default"], bool) != isinstance(dflt[key], bool):
            problems.append(f"role {role.name}: key {key} default differs: meta/argument_specs.yml "
                            f"{opt['default']!r} != defaults/main.yml {dflt[key]!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("role", ROLES, ids=role_id)
def test_every_option_is_typed_and_described(role):
    problems = [f"role {role.name}: key {key} needs {what} in meta/argument_specs.yml"
                for key, opt in sorted(spec_options(role).items())
                for what in ("type", "description") if not (opt or {}).get(what)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("role", ROLES, ids=role_id)
def test_variables_carry_the_role_prefix(role):
    prefix = role.name + "_"
    bad = [key for key in list(spec_options(role)) + list(defaults(role)) if not key.startswith(prefix)]
    assert not bad, f"role {role.name}: keys without the {prefix} prefix: {sorted(set(bad))}"


@pytest.mark.parametrize("role", ROLES, ids=role_id)
def test_meta_main_exists(role):
    meta = load(role / "meta" / "main.yml")
    assert isinstance(meta, dict) and "galaxy_info" in meta, f"role {role.name}: meta/main.yml with galaxy_info missing"


def _check(spec: dict, dflt: dict) -> str:
    """Run the comparison on synthetic data (proves the test can fail)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        role = Path(tmp) / "demo"
        (role / "meta").mkdir(parents=True)
        (role / "defaults").mkdir()
        (role / "meta" / "argument_specs.yml").write_text(yaml.safe_dump({"argument_specs": {"main": {"options": spec}}}))
        (role / "defaults" / "main.yml").write_text(yaml.safe_dump(dflt))
        try:
            test_argument_specs_match_defaults_exactly(role)
        except AssertionError as exc:
            return str(exc)
        return ""


def test_comparison_catches_mismatches():
    opt = {"type": "int", "description": "x", "default": 1}
    assert _check({"demo_a": opt}, {"demo_a": 1}) == ""
    assert "key demo_a default differs" in _check({"demo_a": opt}, {"demo_a": 2})
    assert "key demo_b is in defaults/main.yml but not in meta/argument_specs.yml" in \
        _check({"demo_a": opt}, {"demo_a": 1, "demo_b": 1})
    assert "key demo_a has a default in meta/argument_specs.yml" in _check({"demo_a": opt}, {})
    assert "key demo_a is in defaults/main.yml" in _check({"demo_a": {"type": "str", "description": "x"}},
                                                          {"demo_a": "v"})
    # a required option without a default (e.g. a vaulted password) is fine when absent from defaults
    assert _check({"demo_p": {"type": "str", "description": "x", "required": True, "no_log": True}}, {}) == ""
    assert "default differs" in _check({"demo_f": {"type": "bool", "description": "x", "default": False}},
                                       {"demo_f": 0})
