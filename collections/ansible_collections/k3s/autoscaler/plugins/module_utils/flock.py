# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Exclusive ``fcntl.flock`` on a file with a bounded wait, shared by ``state.py`` (the state file's
``<state_file>.lock``) and ``lock.py`` (the run lock's ``<state_file>.runlock``).

Callers keep their own error types and messages: they pass ``error(stage, err)``, which returns the exception
to raise (it is raised here, after the file descriptor is closed).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import os
import time

POLL_SECONDS = 0.01  # interval between two non-blocking flock attempts

OPEN_FAILED = "open"  # os.open of the file failed (err: the OSError)
LOCK_FAILED = "lock"  # flock failed with another error than "held by someone else" (err: the OSError)
TIMED_OUT = "timeout"  # still held by someone else after ``timeout`` seconds (err: the last EAGAIN/EACCES OSError)


def acquire_flock(path, timeout, error):
    """Open ``path`` (O_RDWR, created with mode 0600) and take an exclusive flock on it.

    Polls a non-blocking ``LOCK_EX`` every POLL_SECONDS until ``timeout`` seconds (monotonic clock) have passed.
    The file's directory must exist.

    :param error: ``error(stage, err)`` -> exception to raise; ``stage`` is OPEN_FAILED, LOCK_FAILED or
        TIMED_OUT and ``err`` the OSError behind it.
    :returns: the open file descriptor, holding the lock; give it back with :func:`release_flock`.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise error(OPEN_FAILED, e)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise error(LOCK_FAILED, e)
            if time.monotonic() >= deadline:
                os.close(fd)
                raise error(TIMED_OUT, e)
            time.sleep(POLL_SECONDS)


def release_flock(fd):
    """Unlock and close a descriptor returned by :func:`acquire_flock` (closed even if the unlock fails)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
