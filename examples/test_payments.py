"""Testing a workflow with durable.testing: the payment collection of ``payments.py``.

The ``durable_env`` fixture (durable's pytest plugin) is a `WorkflowEnvironment` of its own:
a fresh database, a real worker in this process, and a virtual clock that jumps over the
reminders' days of sleeping. The payment provider and the e-mails are mocked, so these tests
need nothing but PostgreSQL (``DURABLE_TEST_DATABASE_URL``, else durable's embedded server)
and take milliseconds each::

    pytest examples/test_payments.py
"""

from __future__ import annotations

from datetime import timedelta

from durable.testing import WorkflowEnvironment
from examples.payments import (
    DAY,
    CardDeclined,
    ProviderUnavailable,
    charge_card,
    collect_payment,
    send_reminder,
)

SIMULATION = {"outages": 2, "declines": 1, "state_dir": None}  # the workflow's defaults


async def test_a_declined_card_is_reminded_then_paid(durable_env: WorkflowEnvironment) -> None:
    charge = durable_env.mock_step(
        charge_card,
        side_effect=[
            CardDeclined("insufficient funds"),
            CardDeclined("again"),
            {"charge_id": "ch_1"},
        ],
    )
    reminders = durable_env.mock_step(send_reminder, side_effect=lambda order, n, _dir: f"sent {n}")
    started = durable_env.now()

    task = await durable_env.launch(collect_payment, "o-1", 1999)
    receipt = await durable_env.result(task, timeout=10)

    assert receipt["status"] == "paid" and receipt["charge_id"] == "ch_1"
    assert receipt["reminders"] == 2
    assert charge.call_count == 3  # a decline is not retried at once: it waits for a reminder
    charge.assert_called_with("o-1", 1999, f"collect-{task.id}", SIMULATION)
    assert [call.args[:2] for call in reminders.calls] == [("o-1", 1), ("o-1", 2)]
    # Two reminder intervals of three days passed on the virtual clock, in milliseconds.
    assert durable_env.now() - started >= timedelta(seconds=6 * DAY)
    # A crash at any point of this history would have been survived the same way.
    await durable_env.check_replay(task)


async def test_an_outage_is_retried_within_seconds(durable_env: WorkflowEnvironment) -> None:
    charge = durable_env.mock_step(
        charge_card, side_effect=[ProviderUnavailable("timeout"), {"charge_id": "ch_2"}]
    )
    reminders = durable_env.mock_step(send_reminder, returns="sent")

    task = await durable_env.launch(collect_payment, "o-2", 500)

    assert (await durable_env.result(task, timeout=10))["reminders"] == 0
    assert charge.call_count == 2
    reminders.assert_not_called()
    await durable_env.check_replay(task)


async def test_an_order_is_given_up_after_three_reminders(
    durable_env: WorkflowEnvironment,
) -> None:
    durable_env.mock_step(charge_card, raises=CardDeclined("stolen card"))
    reminders = durable_env.mock_step(send_reminder, returns="sent")

    task = await durable_env.launch(collect_payment, "o-3", 700)

    assert await durable_env.result(task, timeout=10) == {
        "order_id": "o-3",
        "status": "uncollectible",
        "reminders": 3,
    }
    assert reminders.call_count == 3
    events = await durable_env.history(task)
    assert [e.kind for e in events].count("sleep") == 3
    await durable_env.check_replay(task)
