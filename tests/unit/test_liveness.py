"""durable.worker.liveness: the kernel's word on whether a local worker has exited."""

from __future__ import annotations

import os
import subprocess
import sys

from durable.worker import liveness


def test_this_process_has_not_exited() -> None:
    assert not liveness.has_exited(os.getpid())


def test_a_reaped_child_has_exited() -> None:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert liveness.has_exited(int(child.stdout))


def test_a_process_of_someone_else_counts_as_alive() -> None:
    assert not liveness.has_exited(1)  # init: exists whether or not we may signal it


def test_nonsense_pids_are_never_called_exited() -> None:
    assert not liveness.has_exited(0)
    assert not liveness.has_exited(-1)


def test_the_identity_is_stable_within_a_process_and_names_boot_and_namespace() -> None:
    identity = liveness.local_identity()
    assert identity is not None  # Linux: /proc is there
    assert identity == liveness.local_identity()
    boot, namespace = identity.rsplit(":", 1)
    assert boot and namespace.isdigit()
