"""Exactly-once money transfers with ``@durable.transaction``.

A transfer debits one account and credits another in one PostgreSQL transaction on the
durable database; that transaction also records the step's result in the task's event log.
Both commit together or not at all, so however often workers crash or race, a transfer is
applied exactly once: a replay after a crash finds the result recorded and does not run it
again, and a transfer whose transaction did not commit is run again from scratch.

The accounts live in the table ``examples_accounts`` (created on first use; accounts are opened
with ``opening_balance`` when they do not exist yet).

Start a worker from the repository root, then move 25 from alice to bob::

    durable-worker &
    durable launch --tail --arg '"alice"' --arg '"bob"' --arg 25 \\
        'pay bob' examples.exactly_once:transfer

It prints ``alice -> bob: 25`` and the new balances, and its result is the new balances. A
transfer that would overdraw the source fails the task (exit 1) and changes nothing.

``installments`` pays in several transfers with a durable sleep between them (monthly by
default); kill the worker in the middle and start another: every installment is paid once::

    durable launch --tail --arg '"alice"' --arg '"bob"' --arg 10 --arg 3 \\
        --kwargs '{"every": 2}' 'pay bob in 3' examples.exactly_once:installments
"""

from __future__ import annotations

from typing import Any

import durable

MONTH = 30 * 86400.0


class InsufficientFunds(Exception):
    """The source account cannot cover the transfer."""


@durable.transaction
async def open_accounts(conn: Any, names: list[str], opening_balance: int) -> dict[str, int]:
    """Create the accounts table if missing, open the accounts that do not exist; balances."""
    # Workers may create the table at the same moment: one at a time.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('examples_accounts'))")
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS examples_accounts ("
        " name text PRIMARY KEY,"
        " balance bigint NOT NULL CHECK (balance >= 0))"
    )
    await conn.executemany(
        "INSERT INTO examples_accounts (name, balance) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        [(name, opening_balance) for name in names],
    )
    rows = await conn.fetch(
        "SELECT name, balance FROM examples_accounts WHERE name = ANY($1::text[])", names
    )
    return {row["name"]: int(row["balance"]) for row in rows}


@durable.transaction
async def move_money(conn: Any, source: str, target: str, amount: int) -> dict[str, int]:
    """Debit ``source`` and credit ``target`` in this one transaction; the new balances."""
    if amount <= 0:
        raise ValueError(f"the amount must be positive, not {amount}")
    debited = await conn.fetchval(
        "UPDATE examples_accounts SET balance = balance - $2"
        " WHERE name = $1 AND balance >= $2 RETURNING balance",
        source,
        amount,
    )
    if debited is None:
        raise InsufficientFunds(f"{source} cannot pay {amount}")
    credited = await conn.fetchval(
        "UPDATE examples_accounts SET balance = balance + $2 WHERE name = $1 RETURNING balance",
        target,
        amount,
    )
    return {source: int(debited), target: int(credited)}


@durable.workflow
async def transfer(
    ctx: durable.Context, source: str, target: str, amount: int, opening_balance: int = 1000
) -> dict[str, int]:
    """Move ``amount`` from ``source`` to ``target`` exactly once; returns the new balances.

    Raises:
        durable.StepFailed: the source cannot cover it (nothing changed).
    """
    await open_accounts([source, target], opening_balance)
    print(f"{source} -> {target}: {amount}")
    balances = await move_money(source, target, amount)
    print(f"balances: {source} {balances[source]}, {target} {balances[target]}")
    return balances


@durable.workflow
async def installments(
    ctx: durable.Context,
    source: str,
    target: str,
    amount: int,
    count: int,
    *,
    every: float = MONTH,
    opening_balance: int = 1000,
) -> dict[str, int]:
    """Pay ``count`` installments of ``amount``, ``every`` seconds apart; the final balances."""
    await open_accounts([source, target], opening_balance)
    balances: dict[str, int] = {}
    for number in range(1, count + 1):
        if number > 1:
            await ctx.sleep(every)
        balances = await move_money(source, target, amount)
        paid = f"{source} {balances[source]}, {target} {balances[target]}"
        print(f"installment {number}/{count}: {paid}")
    return balances
