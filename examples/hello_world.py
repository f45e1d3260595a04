"""The smallest durable workflow.

Start a worker from the repository root, then launch it:

    durable-worker &
    durable launch --tail 'my first task' examples.hello_world:main
"""

from __future__ import annotations

import durable


@durable.workflow
async def main(ctx: durable.Context) -> None:
    """Greet the task by its name; the line lands in the task's log exactly once."""
    print(f"Hello, {ctx.name}!")
