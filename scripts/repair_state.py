#!/usr/bin/env python3
"""Repair a corrupt autoscaler state file (the documented repair; `make repair-state STATE=path`).

A corrupt, unparseable or wrong-schema state file makes every run hold with an error naming the file
(never a silent reset that would forget cooldowns). This command moves such a file aside to
``<path>.corrupt-<unix>`` and writes a fresh default state, under the state file's write lock
(``state.repair_state``, the same code as ``k3s.autoscaler.k3s_scale_event repair=true`` but without
recording an event). A valid file is left alone. Cooldowns, backoff and any pending intent of the
old file are lost: after a repair, check the cluster (instances tagged ``k3s-autoscaler/launch-id``,
cordoned nodes) before the next run if the old file cannot be read by hand.

Exit code 0 when repaired or the file is valid; 2 on a usage error or when no file exists at that path (a
mistyped path must not look like a successful repair).
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "collections"))

from ansible_collections.k3s.autoscaler.plugins.module_utils.state import (  # noqa: E402
    StateError, load_state, repair_state)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("state_file", help="path of the autoscaler state file (autoscale_state_file)")
    args = ap.parse_args(argv)
    if not os.path.lexists(args.state_file):
        print("no state file at %s: nothing to repair. Check the path (autoscale_state_file in your inventory; "
              "the local cluster's is run/local/state.json)" % args.state_file, file=sys.stderr)
        return 2
    if os.path.isdir(args.state_file):
        print("%s is a directory, not a state file: nothing to repair, nothing moved. Give the state file's path "
              "(autoscale_state_file in your inventory; the local cluster's is run/local/state.json)"
              % args.state_file, file=sys.stderr)
        return 2
    try:
        load_state(args.state_file)
        print("state file %s is valid: nothing to repair" % args.state_file)
        return 0
    except StateError as e:
        print("state file problem: %s" % e)
    backup = repair_state(args.state_file)
    if backup:
        print("repaired: moved the corrupt file to %s and wrote a fresh state to %s" % (backup, args.state_file))
        print("note: cooldowns, backoff, unneeded timers and pending intents start afresh, so the next run may act "
              "at once. Check the cluster first (instances tagged k3s-autoscaler/launch-id, cordoned nodes) and "
              "run the playbook with --check to see what it would do.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
