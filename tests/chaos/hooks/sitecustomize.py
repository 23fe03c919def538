"""Chaos-harness hook (test only; loaded only when scripts/chaos.py puts this directory on PYTHONPATH).

When ``K3S_CHAOS_STATE_WRITE_DELAY`` (seconds) is set, ``os.replace`` onto a file named
``K3S_CHAOS_STATE_BASENAME`` (default ``state.json``) sleeps that long first, so the harness can see the
state write's temp file and SIGKILL the run in the middle of the write (between the temp file being
written and the atomic rename). Nothing else changes; without the variable this file does nothing.
"""
import os

_DELAY = os.environ.get("K3S_CHAOS_STATE_WRITE_DELAY")
if _DELAY:
    import time as _time

    _BASENAME = os.environ.get("K3S_CHAOS_STATE_BASENAME", "state.json")
    _real_replace = os.replace

    def _slow_replace(src, dst, *args, **kwargs):
        if os.path.basename(os.fspath(dst)) == _BASENAME:
            _time.sleep(float(_DELAY))
        return _real_replace(src, dst, *args, **kwargs)

    os.replace = _slow_replace
