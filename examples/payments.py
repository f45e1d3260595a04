"""Payment collection with retries and long sleeps (dunning).

A charge is a step with a retry policy: a provider outage is retried within seconds, while a
declined card is not retried (it is ``non_retryable``). A decline sends the customer a
reminder and waits days before the next attempt; during that durable sleep the task is
suspended (no worker holds it, no memory is used) and any worker resumes it when it is due.
Neither a charge that succeeded nor a reminder that was sent is ever repeated by a replay.

The payment provider is simulated, deterministically: for each order its first ``outages``
calls fail with ``ProviderUnavailable`` and the next ``declines`` with ``CardDeclined``; calls
are counted in ``<state_dir>/<order>.calls`` and reminders go to ``<state_dir>/outbox.txt``.

Start a worker from the repository root, then launch an order (id, amount in cents)::

    durable-worker &
    durable launch --tail --arg '"o-42"' --arg 1999 'collect o-42' examples.payments:collect_payment

With the defaults the first charge fails twice (retried after 0.5 s and 1 s), is then declined,
a reminder is sent and the task sleeps 3 days, suspended (``durable show ID`` says so; stopping
``--tail`` does not stop the task). To watch the whole story in seconds, shorten the wait (the
simulation counts calls per order id: a new story needs a new id)::

    durable launch --tail --arg '"o-43"' --arg 1999 --kwargs '{"reminder_interval": 3}' \\
        'collect o-43' examples.payments:collect_payment
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import durable

DAY = 86400.0


class ProviderUnavailable(Exception):
    """The payment provider could not be reached: worth retrying soon."""


class CardDeclined(Exception):
    """The customer's card was declined: retrying at once would not help."""


def _state_dir(state_dir: str | None) -> Path:
    path = Path(state_dir) if state_dir else Path(tempfile.gettempdir()) / "durable-payments"
    path.mkdir(parents=True, exist_ok=True)
    return path


@durable.step(
    retry=durable.RetryPolicy(
        max_attempts=5,
        initial_interval=0.5,
        backoff=2.0,
        max_interval=30.0,
        non_retryable=(CardDeclined,),
    )
)
def charge_card(
    order_id: str, cents: int, idempotency_key: str, simulation: dict[str, Any]
) -> dict[str, Any]:
    """Charge the customer's card (simulated provider).

    A step runs at least once: a real provider call must carry ``idempotency_key`` (here the
    task id) so that a charge interrupted after it reached the provider is not made twice.
    """
    counter = _state_dir(simulation["state_dir"]) / f"{order_id}.calls"
    calls = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(calls))
    if calls <= simulation["outages"]:
        raise ProviderUnavailable(f"provider timed out (call {calls})")
    if calls <= simulation["outages"] + simulation["declines"]:
        raise CardDeclined(f"card declined for {cents} cents")
    return {"charge_id": f"ch_{order_id}_{calls}", "cents": cents, "key": idempotency_key}


@durable.step
def send_reminder(order_id: str, number: int, state_dir: str | None) -> str:
    """E-mail the customer that the payment failed (simulated: a line in the outbox)."""
    line = f"{order_id}: reminder {number}"
    with open(_state_dir(state_dir) / "outbox.txt", "a", encoding="utf-8") as outbox:
        outbox.write(line + "\n")
    return line


def _duration(seconds: float) -> str:
    if seconds >= DAY:
        return f"{seconds / DAY:g} days"
    return f"{seconds:g} s"


@durable.workflow
async def collect_payment(
    ctx: durable.Context,
    order_id: str,
    cents: int,
    *,
    reminder_interval: float = 3 * DAY,
    max_reminders: int = 3,
    outages: int = 2,
    declines: int = 1,
    state_dir: str | None = None,
) -> dict[str, Any]:
    """Collect ``cents`` for ``order_id``, reminding the customer between declined attempts.

    Args:
        ctx: the workflow context.
        order_id: the order to collect for.
        cents: the amount.
        reminder_interval: seconds between a reminder and the next attempt (3 days).
        max_reminders: reminders sent before the order is given up as uncollectible.
        outages: simulation: provider outages before the first answer, per order.
        declines: simulation: declined calls after the outages, per order.
        state_dir: simulation: where the provider's counters and the outbox live.

    Returns:
        The receipt: ``status`` is ``"paid"`` (with the charge) or ``"uncollectible"``.
    """
    simulation = {"outages": outages, "declines": declines, "state_dir": state_dir}
    print(f"order {order_id}: collecting {cents / 100:.2f}")
    reminders = 0
    while True:
        try:
            charge = await charge_card(order_id, cents, f"collect-{ctx.task_id}", simulation)
            break
        except durable.StepFailed as failure:
            print(f"order {order_id}: charge failed: {failure.error_type}")
            if reminders >= max_reminders:
                print(f"order {order_id}: uncollectible after {reminders} reminders")
                return {"order_id": order_id, "status": "uncollectible", "reminders": reminders}
        reminders += 1
        await send_reminder(order_id, reminders, state_dir)
        wait = _duration(reminder_interval)
        print(f"order {order_id}: reminder {reminders} sent, next attempt in {wait}")
        await ctx.sleep(reminder_interval)
    receipt = {
        "order_id": order_id,
        "status": "paid",
        "cents": cents,
        "charge_id": charge["charge_id"],
        "reminders": reminders,
        "receipt_id": str(ctx.uuid4()),
        "paid_at": ctx.now().isoformat(),
    }
    print(f"order {order_id}: paid by {charge['charge_id']}")
    return receipt
