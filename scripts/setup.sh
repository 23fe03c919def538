#!/usr/bin/env bash
# Installs everything `make run` and `make test` need, idempotently:
#   - Debian packages: prometheus (real Prometheus + promtool), kubectl is expected on PATH or installed from PyPI-free sources
#   - a virtualenv in .venv with the pinned requirements
#   - the offline stand-in for ansible-test's pip bootstrap script (Galaxy/ci-files are unreachable here)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
VENV=${VENV:-$ROOT/.venv}

log() { printf '==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "error: need root (or sudo) to run: $*" >&2; exit 1; fi
}

# --- Debian packages ------------------------------------------------------------------------------
need_apt=()
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v promtool   >/dev/null 2>&1 || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  as_root apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null
  # The Debian package starts a system Prometheus on :9090 where systemd runs; ours use their own ports.
fi

# --- Python virtualenv ------------------------------------------------------------------------------
stamp="$VENV/.requirements-stamp"
if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "pip install -r requirements-dev.txt (pinned)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements-dev.txt
  echo "$want" > "$stamp"
fi

# --- ansible-test offline pip bootstrap stand-in ----------------------------------------------------
pip_ver=$("$VENV/bin/python" - <<'PY'
import re, pathlib, ansible_test
src = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
m = re.search(r"pip='([0-9.]+)'", src.read_text())
print(m.group(1) if m else "")
PY
)
if [ -n "$pip_ver" ]; then
  cache="$HOME/.ansible/test/cache/get_pip_${pip_ver//./_}.py"
  if [ ! -f "$cache" ]; then
    log "writing ansible-test pip bootstrap stand-in $cache"
    mkdir -p "$(dirname "$cache")"
    cat > "$cache" <<'PY'
# Offline stand-in for https://ci-files.testing.ansible.com/ansible-test/get-pip-*.py:
# bootstrap pip with ensurepip, then install the requested packages from the configured index.
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
if args:
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
PY
  fi
fi
log "setup complete ($VENV)"
