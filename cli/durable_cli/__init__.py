"""The ``durable`` and ``durable-worker`` command lines: a thin layer over ``durable``'s public API.

``durable`` (see `durable_cli.main`) launches, follows and inspects tasks and migrates the schema;
``durable-worker`` (see `durable_cli.worker`) runs a `durable.Worker` until it is signalled.
"""

from __future__ import annotations
