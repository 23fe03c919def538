# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run a k3s.autoscaler module the way Ansible does, for the module tests in this folder.

``run_module("k3s_scale_event", {...})`` runs ``ansible localhost -i localhost, -c local -m
k3s.autoscaler.k3s_scale_event -a '<json>'`` from the repository root (so its ansible.cfg puts ./collections on
the collections path), with the ``json`` stdout callback, and returns the one host result dict (``failed``/``msg``
set on failure, as the module returned them). Imported as ``from module_runner import ...``; this folder's
conftest.py puts the folder on sys.path.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 8))
VENV_BIN = os.path.dirname(sys.executable)
TIMEOUT = 120  # seconds per ansible / ansible-doc process


def ansible_bin(name):
    """Path of the venv's ``name`` script (ansible, ansible-doc), else ``name`` looked up on PATH."""
    path = os.path.join(VENV_BIN, name)
    return path if os.path.exists(path) else name


def ansible_env():
    """os.environ plus the JSON stdout callback, without colour.

    Drops ANSIBLE_INVENTORY (the command names its inventory) and AWS_REGION / AWS_DEFAULT_REGION (so the EC2 mock
    modules only see the region a test passes)."""
    env = dict(os.environ, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_NOCOLOR="1")
    for name in ("ANSIBLE_INVENTORY", "AWS_REGION", "AWS_DEFAULT_REGION"):
        env.pop(name, None)
    return env


def ansible_cmd(module, args, check=False, diff=False, verbose=False):
    """argv of ``ansible localhost -m k3s.autoscaler.<module> -a <args as JSON>`` on the local connection."""
    cmd = [ansible_bin("ansible"), "localhost", "-i", "localhost,", "-c", "local",
           "-e", "ansible_python_interpreter=%s" % sys.executable,
           "-m", "k3s.autoscaler.%s" % module, "-a", json.dumps(args)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    if verbose:
        cmd.append("-vvv")
    return cmd


def host_result(stdout, stderr="", returncode=None):
    """The localhost result dict from the json callback's output (text before the first ``{`` is skipped).

    Raises AssertionError showing rc, stdout and stderr when ansible printed no JSON."""
    try:
        out = json.loads(stdout[stdout.index("{"):])
    except ValueError:  # no "{" at all, or not JSON
        raise AssertionError("ansible did not print JSON (rc=%s)\nstdout:\n%s\nstderr:\n%s"
                             % (returncode, stdout, stderr))
    return out["plays"][0]["tasks"][0]["hosts"]["localhost"]


def run_ansible(module, args, check=False, diff=False, verbose=False):
    """Run the module once; return the finished subprocess.CompletedProcess (text stdout/stderr)."""
    return subprocess.run(ansible_cmd(module, args, check=check, diff=diff, verbose=verbose), cwd=REPO,
                          env=ansible_env(), capture_output=True, text=True, timeout=TIMEOUT, check=False)


def run_module(module, args, check=False, diff=False):
    """Run the module once (``--check`` / ``--diff`` on request); return its host result dict."""
    proc = run_ansible(module, args, check=check, diff=diff)
    return host_result(proc.stdout, proc.stderr, proc.returncode)


def start_module(module, args, check=False):
    """Start the module in the background; returns the subprocess.Popen (read it with ``host_result``)."""
    return subprocess.Popen(ansible_cmd(module, args, check=check), cwd=REPO, env=ansible_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ansible_doc(module, as_json=False):
    """Run ``ansible-doc [--json] k3s.autoscaler.<module>``; return the CompletedProcess."""
    cmd = [ansible_bin("ansible-doc")] + (["--json"] if as_json else []) + ["k3s.autoscaler.%s" % module]
    return subprocess.run(cmd, cwd=REPO, env=dict(os.environ, ANSIBLE_NOCOLOR="1"), capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)
