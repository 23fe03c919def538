# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""module_utils/flock.py: the exclusive flock shared by state.py and lock.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import os
import stat

import pytest

from ansible_collections.k3s.autoscaler.plugins.module_utils.flock import (
    OPEN_FAILED, TIMED_OUT, acquire_flock, release_flock)


class Raised(Exception):
    def __init__(self, stage, err):
        super(Raised, self).__init__(stage)
        self.stage = stage
        self.err = err


def test_acquire_creates_0600_file_locks_it_and_release_unlocks(tmp_path):
    path = str(tmp_path / "x.lock")
    fd = acquire_flock(path, 0, Raised)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    other = os.open(path, os.O_RDWR)
    try:
        with pytest.raises(OSError) as e:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert e.value.errno in (errno.EAGAIN, errno.EACCES)
        release_flock(fd)
        with pytest.raises(OSError):
            os.fstat(fd)  # closed
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free now
    finally:
        os.close(other)


def test_held_lock_times_out_with_the_callers_error(tmp_path):
    path = str(tmp_path / "x.lock")
    holder = acquire_flock(path, 0, Raised)
    try:
        with pytest.raises(Raised) as e:
            acquire_flock(path, 0, Raised)
        assert e.value.stage == TIMED_OUT and e.value.err.errno in (errno.EAGAIN, errno.EACCES)
    finally:
        release_flock(holder)


def test_open_failure_is_reported_as_open_stage(tmp_path):
    with pytest.raises(Raised) as e:
        acquire_flock(str(tmp_path / "missing-dir" / "x.lock"), 0, Raised)
    assert e.value.stage == OPEN_FAILED and e.value.err.errno == errno.ENOENT
