# Names vulture reports as unused in `vulture durable cli` but that are used from outside the
# package (by users, click, alembic, SQLAlchemy) or by protocol. Vulture reads this file, nothing
# imports it; `_` is vulture's placeholder for "an attribute of something". Add a line only with
# the reason; delete code instead when nothing uses it.

# Public API: used by workflows and applications, not by durable itself.
_.http  # Context.http
_.cleanup  # Context.cleanup
_.raise_for_status  # durable.http.Response
_.post  # durable.http.Http
_.put  # durable.http.Http
_.patch  # durable.http.Http
_.delete  # durable.http.Http
_.RUNNING  # TaskState

# Called by frameworks.
await_  # `durable promise await`: a click command, registered by its decorator
set_queue  # `durable queue set`: a click command, registered by its decorator
backfill  # `durable schedule backfill`: a click command, registered by its decorator
parent_names  # alembic's include_name(name, type_, parent_names) signature
promise_waiters  # SQLAlchemy tables: declared for metadata (alembic), not referenced by name
notifications
queue_starts
schedules

# By protocol: __aexit__(exc_type, exc, tb).
exc_type
tb

# The durable-worker console script (pyproject's [project.scripts]).
worker_main

# A strong reference: the event loop keeps only weak references to tasks.
_._launch_sender  # durable/replay/engine.py

# asyncio's event loop protocol, which the workflow loop implements (durable/replay/loop.py):
# asyncio itself calls these.
_._timer_handle_cancelled
_.get_debug
_.set_debug
enabled
_.is_running
_.get_task_factory
_.set_exception_handler
_.get_exception_handler
_.call_exception_handler
_.shutdown_asyncgens
_.shutdown_default_executor

# durable.testing's public API: called by users' tests (and ours, outside vulture's paths).
_.mock_step
_.check_replay
_.call_count
_.called
_.assert_called_once_with
_.assert_not_called
pytest_configure  # a pytest hook (durable/testing/pytest_plugin.py)
durable_env  # the plugin's fixture
_.collect  # prometheus_client calls a collector's collect() at scrape time
