"""Parse checks of the files no container engine / CI runner exercises here: Dockerfile, .dockerignore,
compose.yaml, .github/workflows/*.yml, requirements.yml. Where a real tool exists (promtool, ansible-galaxy),
the embedded configuration is checked with it."""
import fnmatch
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"


# --------------------------------------------------------------------------------------------- Dockerfile
def parse_dockerfile(text: str):
    """[(INSTRUCTION, arguments)] with comments dropped and backslash continuations joined."""
    instructions, buf = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip():
            word, _, rest = buf.strip().partition(" ")
            instructions.append((word.upper(), rest.strip()))
        buf = ""
    assert not buf, "Dockerfile ends inside a continuation line"
    return instructions


def stages(instructions):
    """[(stage name, [(INSTRUCTION, args), ...])] split at FROM."""
    out = []
    for word, args in instructions:
        if word == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", args, re.IGNORECASE)
            assert m, f"FROM without an image: {args}"
            out.append((m.group(2) or str(len(out)), []))
        elif out:
            out[-1][1].append((word, args))
    return out


@pytest.fixture(scope="module")
def dockerfile():
    return parse_dockerfile((REPO / "Dockerfile").read_text())


def test_parse_dockerfile_handles_continuations():
    parsed = parse_dockerfile("# c\nFROM a AS b\nRUN x \\\n  && y\n\nUSER 1\n")
    assert parsed == [("FROM", "a AS b"), ("RUN", "x  && y"), ("USER", "1")]


def test_dockerfile_is_multi_stage_builder_then_runtime(dockerfile):
    names = [name for name, _ in stages(dockerfile)]
    assert names[0] == "builder" and len(names) >= 2
    assert names[-1] == "runtime"


def test_builder_installs_requirements_and_the_collection(dockerfile):
    builder = dict(stages(dockerfile))["builder"]
    runs = " ".join(args for word, args in builder if word == "RUN")
    assert "pip install" in runs and "-r requirements.txt" in runs
    assert "ansible-galaxy collection build" in runs and "ansible-galaxy collection install" in runs


def test_runtime_is_slim_non_root_and_runs_the_autoscale_playbook(dockerfile):
    runtime = dict(stages(dockerfile))["runtime"]
    runs = " ".join(args for word, args in runtime if word == "RUN")
    assert "pip install" not in runs and "apt-get" not in runs, "the runtime stage must not install anything"
    assert all("--from=builder" in args for word, args in runtime
               if word == "COPY" and "/opt/" in args), "the venv and collections come from the builder"
    users = [args for word, args in runtime if word == "USER"]
    assert users, "runtime stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid not in ("root", "0") and uid.isdigit() and int(uid) >= 1000
    entry = [args for word, args in runtime if word == "ENTRYPOINT"][-1]
    cmd = [args for word, args in runtime if word == "CMD"][-1]
    assert yaml.safe_load(entry) == ["ansible-playbook"]
    assert yaml.safe_load(cmd) == ["/app/playbooks/autoscale.yml"]


def test_image_matches_the_cronjob_of_k3s_manifests(dockerfile):
    """The CronJob runs as k3s_manifests_run_as_user with k3s_manifests_playbook: the image must agree."""
    defaults = REPO / "roles" / "k3s_manifests" / "defaults" / "main.yml"
    if not defaults.is_file():
        pytest.skip("roles/k3s_manifests not present")
    d = yaml.safe_load(defaults.read_text())
    runtime = dict(stages(dockerfile))["runtime"]
    uid = [args for word, args in runtime if word == "USER"][-1].split(":")[0]
    assert int(uid) == int(d["k3s_manifests_run_as_user"])
    copies = " ".join(args for word, args in runtime if word == "COPY")
    assert d["k3s_manifests_playbook"] in copies
    assert d["k3s_manifests_image"] == "k3s-autoscaler"


def _dockerignored(rel: str, patterns):
    ignored = False
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat[1:] if neg else pat
        pat = pat.rstrip("/")
        hit = fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(rel, pat + "/*") or \
            (pat.startswith("**/") and (fnmatch.fnmatch(rel, pat[3:]) or fnmatch.fnmatch(rel, pat[3:] + "/*")))
        if hit:
            ignored = not neg
    return ignored


def test_every_copy_source_exists_and_is_not_dockerignored(dockerfile):
    patterns = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    for word, args in dockerfile:
        if word != "COPY" or "--from=" in args:
            continue
        *sources, _dest = [a for a in args.split() if not a.startswith("--")]
        for src in sources:
            rel = src.rstrip("/")
            assert (REPO / rel).exists(), f"COPY {src}: not in the repository"
            assert not _dockerignored(rel, patterns), f"COPY {src}: excluded by .dockerignore"
    for secret in ("inventories/local/vault-password.txt", ".venv", "run/local/state.json"):
        assert _dockerignored(secret, patterns), f"{secret} must stay out of the build context"


def test_builder_steps_work_without_a_container_engine(tmp_path):
    """The builder's collection build + offline install, with the repo's collection (minus tests/)."""
    src = tmp_path / "collection"
    shutil.copytree(REPO / "collections" / "ansible_collections" / "k3s" / "autoscaler", src,
                    ignore=shutil.ignore_patterns("tests", "__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    galaxy = str(VENV_BIN / "ansible-galaxy")
    res = subprocess.run([galaxy, "collection", "build", str(src), "--output-path", str(tmp_path / "dist")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    (tarball,) = (tmp_path / "dist").glob("k3s-autoscaler-*.tar.gz")
    res = subprocess.run([galaxy, "collection", "install", "--offline", "--no-deps", "-p", str(tmp_path / "opt"),
                          str(tarball)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    role = tmp_path / "opt" / "ansible_collections" / "k3s" / "autoscaler" / "roles" / "autoscale" / "tasks"
    assert (role / "main.yml").is_file()


# --------------------------------------------------------------------------------------------- compose.yaml
@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((REPO / "compose.yaml").read_text())


def test_compose_has_the_dev_stack(compose):
    services = compose["services"]
    assert set(services) >= {"autoscaler", "prometheus", "grafana"}
    assert services["autoscaler"]["build"]["dockerfile"] == "Dockerfile"
    assert "prometheus" in services["autoscaler"]["depends_on"]
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, f"service {name} has neither image nor build"
    for name, svc in services.items():
        for ref in svc.get("configs", []):
            assert ref["source"] in compose["configs"], f"service {name}: unknown config {ref['source']}"


def test_compose_autoscaler_runs_non_root_read_only(compose):
    svc = compose["services"]["autoscaler"]
    assert svc["user"].split(":")[0] not in ("0", "root")
    assert svc["read_only"] is True


def test_compose_grafana_has_no_default_password(compose):
    env = compose["services"]["grafana"]["environment"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", env["GF_SECURITY_ADMIN_PASSWORD"])
    assert any("grafana/dashboards" in v for v in compose["services"]["grafana"]["volumes"])


def _interpolate(text: str) -> str:
    """Compose's ${VAR:-default} with the defaults (and $$ escapes)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text).replace("$$", "$")


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed")
def test_compose_prometheus_config_passes_promtool(compose, tmp_path):
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(_interpolate(compose["configs"]["prometheus_config"]["content"]))
    res = subprocess.run(["promtool", "check", "config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    jobs = {j["job_name"] for j in yaml.safe_load(cfg.read_text())["scrape_configs"]}
    assert jobs >= {"kube-state-metrics", "node-exporter"}


def test_compose_grafana_provisioning_parses(compose):
    ds = yaml.safe_load(compose["configs"]["grafana_datasource"]["content"])
    assert ds["datasources"][0]["type"] == "prometheus"
    prov = yaml.safe_load(compose["configs"]["grafana_dashboards"]["content"])
    assert prov["providers"][0]["type"] == "file"


# --------------------------------------------------------------------------------------------- workflows
def load_workflow(name):
    data = yaml.safe_load((REPO / ".github" / "workflows" / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def steps_text(job):
    return "\n".join(str(s.get("run", "")) + " " + str(s.get("uses", "")) for s in job["steps"])


def test_autoscale_workflow_is_scheduled_and_never_overlaps():
    wf = load_workflow("autoscale.yml")
    crons = [s["cron"] for s in wf["on"]["schedule"]]
    assert crons and all(len(c.split()) == 5 for c in crons)
    assert wf["concurrency"]["group"]
    assert wf["concurrency"]["cancel-in-progress"] is False
    (job,) = wf["jobs"].values()
    text = steps_text(job)
    assert "playbooks/autoscale.yml" in text
    assert "scripts/validate_inventories.py" in text


def test_autoscale_workflow_takes_the_vault_password_from_a_secret_into_a_0600_file():
    wf = load_workflow("autoscale.yml")
    (job,) = wf["jobs"].values()
    step = next(s for s in job["steps"] if "VAULT_PASSWORD" in str(s.get("env", {})))
    assert "secrets.ANSIBLE_VAULT_PASSWORD" in step["env"]["VAULT_PASSWORD"]
    assert "umask 077" in step["run"] and "chmod 0600" in step["run"]
    assert "ANSIBLE_VAULT_PASSWORD_FILE" in step["run"]
    assert "secrets." not in step["run"], "secrets go through env, never inline in the script"
    cleanup = job["steps"][-1]
    assert cleanup.get("if") == "always()" and "vault-password" in cleanup["run"]


def test_pr_workflow_runs_lint_and_make_test():
    wf = load_workflow("pr.yml")
    assert "pull_request" in wf["on"]
    text = "\n".join(steps_text(job) for job in wf["jobs"].values())
    assert "make lint" in text and "make test" in text and "make validate" in text


@pytest.mark.parametrize("name", ["autoscale.yml", "pr.yml"])
def test_workflow_steps_are_well_formed(name):
    wf = load_workflow(name)
    assert wf["permissions"] == {"contents": "read"}
    for job_name, job in wf["jobs"].items():
        assert job["runs-on"] and isinstance(job["timeout-minutes"], int), job_name
        for step in job["steps"]:
            assert ("run" in step) != ("uses" in step), f"{name}/{job_name}: step needs exactly one of run/uses"
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@v\d+", step["uses"]), step["uses"]


# --------------------------------------------------------------------------------------------- requirements.yml
def test_requirements_yml_lists_the_collections_installed_here():
    req = yaml.safe_load((REPO / "requirements.yml").read_text())
    names = {c["name"] for c in req["collections"]}
    assert names == {"kubernetes.core", "amazon.aws", "community.general"}
    res = subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "list", "--format", "yaml"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    installed = {}
    for collections in yaml.safe_load(res.stdout).values():
        for name, info in collections.items():
            installed.setdefault(name, info["version"])
    for c in req["collections"]:
        assert c["name"] in installed, f"{c['name']} is not installed (it comes from the PyPI ansible package)"
        major = int(installed[c["name"]].split(".")[0])
        lo, hi = (int(x) for x in re.findall(r"[<>]=?(\d+)", c["version"]))
        assert lo <= major < hi, f"{c['name']} {installed[c['name']]} outside {c['version']}"
