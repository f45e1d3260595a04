"""Whether a worker on this machine has died: asked of the kernel, not read from a lease.

A heartbeat can only prove a worker alive; its silence proves nothing until the lease runs
out, as the worker may be frozen or cut off from the database and still about to write. A
worker whose pid does not exist any more, though, has exited for good. Pids only mean that
within one boot of one machine and one pid namespace (a container has its own), so a worker
records that pair as its ``local_identity`` and only workers sharing it ask about each other.
A pid that exists is taken as alive even if the kernel gave it to another process since: the
lease still covers that case.
"""

from __future__ import annotations

import os
from pathlib import Path

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
PID_NAMESPACE = Path("/proc/self/ns/pid")


def local_identity() -> str | None:
    """This process's boot and pid namespace, or None where they cannot be read."""
    try:
        boot = BOOT_ID.read_text().strip()
        namespace = os.stat(PID_NAMESPACE).st_ino
    except OSError:
        return None
    if not boot:
        return None
    return f"{boot}:{namespace}"


def has_exited(pid: int) -> bool:
    """True only if no process has this pid (in our pid namespace)."""
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: it exists, as someone else's
        return False
    return False
