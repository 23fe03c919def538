"""A pid lock file: ``fcntl.flock`` (exclusive, non-blocking) on a file holding the holder's pid.

The kernel releases the lock when the holder exits, even on SIGKILL, so a lock is never stale. Used by
``python -m local_cluster up`` (one cluster per state dir) and ``make run`` (one demo per run dir).
"""
from __future__ import annotations

import errno
import fcntl
import os


def try_pid_lock(path: str) -> tuple[int | None, str | None]:
    """Take the lock on ``path`` (created 0600) and write our pid in it.

    Returns ``(fd, None)`` when taken (keep ``fd`` open for as long as the lock must be held), or
    ``(None, holder_pid_text)`` when another process holds it (``"?"`` if it wrote no pid yet).
    Other OS errors (no such directory, permission) are raised.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            os.close(fd)
            raise
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        return None, holder
    os.ftruncate(fd, 0)
    os.write(fd, ("%d\n" % os.getpid()).encode())
    return fd, None
