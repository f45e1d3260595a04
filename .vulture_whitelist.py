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
_.RANDOM  # EventKind (its future is the lead's event vocabulary work, issue 8)
_.RESOLVE  # EventKind
_.REJECT  # EventKind
_.PEEK  # EventKind
_.PATCH  # EventKind
_.HTTP  # EventKind

# Called by frameworks.
await_  # `durable promise await`: a click command, registered by its decorator
parent_names  # alembic's include_name(name, type_, parent_names) signature
promise_waiters  # SQLAlchemy tables: declared for metadata (alembic), not referenced by name
notifications

# By protocol: __aexit__(exc_type, exc, tb).
exc_type

# A strong reference: the event loop keeps only weak references to tasks.
_._launch_sender  # durable/replay/engine.py
