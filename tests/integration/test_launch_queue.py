"""A task lands on the queue its workflow declares, launched by object or by reference string.

A reference string is resolved without importing anything: when the launching process has
the module imported, the declared queue is used; otherwise the launch's ``queue``, else
``"default"``.
"""

from __future__ import annotations

import durable
from durable.workflow import declared_queue


@durable.workflow(queue="billing")
async def on_billing(ctx: durable.Context) -> None:
    """Declares the queue ``billing``."""


def plain(ctx: object) -> None:
    """Not a workflow."""


def test_declared_queue_of_objects_and_references() -> None:
    assert declared_queue(on_billing) == "billing"
    assert declared_queue(f"{__name__}:on_billing") == "billing"
    assert declared_queue(f"{__name__}:plain") is None
    assert declared_queue(f"{__name__}:missing") is None
    assert declared_queue("not_imported_anywhere_xyz:main") is None


async def test_launch_uses_the_declared_queue_unless_told_otherwise(db_url: str) -> None:
    async with durable.Client(db_url) as client:
        by_object = await client.launch(on_billing)
        by_reference = await client.launch(f"{__name__}:on_billing")
        told = await client.launch(f"{__name__}:on_billing", queue="urgent")
        unknown = await client.launch("not_imported_anywhere_xyz:main")
        queues = [(await client.get(t.id)).queue for t in (by_object, by_reference, told, unknown)]
    assert queues == ["billing", "billing", "urgent", "default"]
