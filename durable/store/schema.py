"""The durable schema, declared once with SQLAlchemy Core.

alembic's ``env.py`` and the tests import this module; the hot path never does (its SQL is
hand-written in ``queries.py``), so SQLAlchemy stays out of a worker's import time.

Every table lives in the Postgres schema ``durable`` so that durable can share a database with
an application without name clashes.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSON, JSONB

SCHEMA = "durable"

metadata = MetaData(schema=SCHEMA)

NOW = text("now()")

tasks = Table(
    "tasks",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("name", Text, nullable=False),
    Column("workflow", Text, nullable=False),
    Column("args", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("kwargs", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    # Idempotency key for launch: a second launch with the same key returns the first task.
    Column("key", Text, nullable=True, unique=True),
    Column("queue", Text, nullable=False, server_default="default"),
    Column("state", Text, nullable=False, server_default="pending"),
    Column("result", JSONB, nullable=True),
    # {"type", "message", "traceback"} when failed.
    Column("error", JSONB, nullable=True),
    Column("parent_id", BigInteger, ForeignKey("tasks.id", ondelete="SET NULL"), nullable=True),
    Column("detached", Boolean, nullable=False, server_default=text("false")),
    # Times the task was claimed (runs started, resumptions included).
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    # Times the task was taken back from a dead worker; at max_attempts it is abandoned, so a
    # poison task that crashes every worker cannot take the fleet down.
    Column("losses", Integer, nullable=False, server_default=text("0")),
    # The fencing token: bumped at every claim. A worker may write for a task only while the
    # row still carries the token it claimed it with.
    Column("lease", BigInteger, nullable=False, server_default=text("0")),
    Column("worker_id", Text, nullable=True),
    # A suspended task becomes claimable at wake_at (a durable timer), or when woken earlier.
    Column("wake_at", DateTime(timezone=True), nullable=True),
    # What a suspended task waits for, e.g. {"promise": "pid"} or {"children": [..]}.
    Column("waiting_for", JSONB, nullable=True),
    Column("cancel_requested", Boolean, nullable=False, server_default=text("false")),
    # Workflow-level timeout: the task is cancelled at this instant.
    Column("deadline_at", DateTime(timezone=True), nullable=True),
    # ContinueAsNew generation: each generation has its own event log.
    Column("run", Integer, nullable=False, server_default=text("0")),
    # Log lines of earlier generations: this generation's lines are numbered from here.
    Column("log_base", Integer, nullable=False, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    # Claim order: smaller first, then launch order (SPEC 12).
    Column("priority", Integer, nullable=False, server_default=text("0")),
    # Tasks with the same key share their queue's key_concurrency slots (SPEC 12).
    Column("concurrency_key", Text, nullable=True),
    # A debounced launch (SPEC 12): later launches with this key replace the arguments of the
    # task while it has not started; its start (wake_at, on a pending task) never moves past
    # debounce_until.
    Column("debounce_key", Text, nullable=True),
    Column("debounce_until", DateTime(timezone=True), nullable=True),
    # OpenTelemetry context (W3C traceparent carrier) of the code that launched the task: its
    # runs continue that trace (durable.tracing). NULL when tracing was off.
    Column("trace", JSONB, nullable=True),
    CheckConstraint(
        "state IN ('pending', 'running', 'suspended', 'complete', 'failed', 'cancelled')",
        name="tasks_state_check",
    ),
    # The claim scans only runnable rows: this partial index stays as small as the backlog,
    # however many millions of finished tasks the table holds. In claim order (priority, then
    # launch order), so a claim reads its LIMIT rows and stops, the worker's queues filtered on
    # the way (with queue first, `queue = ANY(...)` cannot use the index's order: every pending
    # row of the queue would be read and sorted at each claim).
    Index(
        "tasks_pending_idx",
        "priority",
        "id",
        "queue",
        postgresql_where=text("state = 'pending'"),
    ),
    # key_concurrency: the started and unfinished tasks of a key (claims of limited queues
    # count them).
    Index(
        "tasks_concurrency_key_idx",
        "queue",
        "concurrency_key",
        postgresql_where=text(
            "concurrency_key IS NOT NULL AND state IN ('pending', 'running', 'suspended')"
        ),
    ),
    # At most one not-yet-started task per debounce key: a debounced launch upserts on it.
    Index(
        "tasks_debounce_idx",
        "debounce_key",
        unique=True,
        postgresql_where=text("debounce_key IS NOT NULL AND state = 'pending' AND attempts = 0"),
    ),
    # Timers: the earliest wake-up among suspended tasks, again independent of history size.
    Index(
        "tasks_wake_idx",
        "wake_at",
        postgresql_where=text("state = 'suspended' AND wake_at IS NOT NULL"),
    ),
    # Debounced launches: pending tasks that may not start before wake_at.
    Index(
        "tasks_delayed_idx",
        "wake_at",
        postgresql_where=text("state = 'pending' AND wake_at IS NOT NULL"),
    ),
    # Takeover of a dead worker's tasks, and a worker's own held set.
    Index("tasks_running_idx", "worker_id", postgresql_where=text("state = 'running'")),
    Index("tasks_parent_idx", "parent_id", postgresql_where=text("parent_id IS NOT NULL")),
    Index("tasks_workflow_idx", "workflow", "id"),
    Index("tasks_state_idx", "state", "id"),
    # The task list's other filters (durable serve): each walks its index newest first.
    Index("tasks_queue_idx", "queue", "id"),
    Index("tasks_name_idx", "name", "id"),
    Index("tasks_created_idx", "created_at"),
)

events = Table(
    "events",
    metadata,
    Column("task_id", BigInteger, ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("kind", Text, nullable=False),
    Column("label", Text, nullable=False),
    # json, not jsonb: the text as written, so a replay hands back dicts with their keys in
    # the order the first run saw (jsonb reorders them).
    Column("payload", JSON, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=NOW),
    PrimaryKeyConstraint("task_id", "seq", name="events_pkey"),
)

logs = Table(
    "logs",
    metadata,
    Column("task_id", BigInteger, ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    # Line numbers count from 0 per task; the primary key makes a replayed line a no-op.
    Column("line_no", Integer, nullable=False),
    Column("line", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False, server_default=NOW),
    PrimaryKeyConstraint("task_id", "line_no", name="logs_pkey"),
)

workers = Table(
    "workers",
    metadata,
    Column("id", Text, primary_key=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("queues", ARRAY(Text), nullable=False),
    Column("concurrency", Integer, nullable=False),
    # Its own lease timeout: `durable workers` lists a worker as live within it.
    Column("lease_timeout", Float, nullable=False, server_default=text("30")),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    # The boot and pid namespace it runs in (durable/worker/liveness.py): a worker with the
    # same one can tell from its pid that it died. NULL: unknown, only its lease counts.
    Column("local_identity", Text, nullable=True),
)

promises = Table(
    "promises",
    metadata,
    Column("id", Text, primary_key=True),
    Column("state", Text, nullable=False, server_default="pending"),
    Column("value", JSONB, nullable=True),
    Column("message", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("state IN ('pending', 'resolved', 'rejected')", name="promises_state_check"),
)

# Tasks suspended on a promise; completing the promise wakes exactly these.
promise_waiters = Table(
    "promise_waiters",
    metadata,
    Column("promise_id", Text, nullable=False),
    Column("task_id", BigInteger, ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    PrimaryKeyConstraint("promise_id", "task_id", name="promise_waiters_pkey"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("task_id", BigInteger, ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    Column("event", Text, nullable=False),
    Column("data", JSONB, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    # Set when a workflow receives it (the seq of the receiving event): FIFO per task.
    Column("consumed_seq", Integer, nullable=True),
    Index(
        "notifications_mailbox_idx",
        "task_id",
        "id",
        postgresql_where=text("consumed_seq IS NULL"),
    ),
)

# Flow control per queue (SPEC 12), read by every claim of a limited queue. A queue without a
# row, or whose row sets no limit and is not paused, is claimed by the plain claim.
queues = Table(
    "queues",
    metadata,
    Column("name", Text, primary_key=True),
    # Tasks of the queue held by workers at once, fleet-wide.
    Column("concurrency", Integer, nullable=True),
    # Started and unfinished tasks per concurrency_key.
    Column("key_concurrency", Integer, nullable=True),
    # At most rate_limit task starts per rate_period seconds.
    Column("rate_limit", Integer, nullable=True),
    Column("rate_period", Float, nullable=True),
    Column("paused", Boolean, nullable=False, server_default=text("false")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    CheckConstraint("concurrency IS NULL OR concurrency >= 0", name="queues_concurrency_check"),
    CheckConstraint(
        "key_concurrency IS NULL OR key_concurrency >= 1", name="queues_key_concurrency_check"
    ),
    CheckConstraint(
        "(rate_limit IS NULL) = (rate_period IS NULL) AND (rate_limit IS NULL OR "
        "(rate_limit >= 1 AND rate_period > 0))",
        name="queues_rate_check",
    ),
)

# The starts of rate-limited queues within their window: written and pruned by the claims of
# those queues only (never more than rate_limit rows per queue).
queue_starts = Table(
    "queue_starts",
    metadata,
    Column("queue", Text, ForeignKey("queues.name", ondelete="CASCADE"), nullable=False),
    Column("task_id", BigInteger, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("queue_starts_idx", "queue", "at"),
)

# Cron schedules (SPEC 12). Workers fire due ticks (durable/worker/scheduler.py); the task key
# schedule:NAME:ISO-TIME makes each tick launch once however many workers race.
schedules = Table(
    "schedules",
    metadata,
    Column("name", Text, primary_key=True),
    Column("workflow", Text, nullable=False),
    Column("cron", Text, nullable=False),
    Column("timezone", Text, nullable=False, server_default="UTC"),
    Column("args", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("kwargs", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("queue", Text, nullable=False, server_default="default"),
    Column("overlap", Text, nullable=False, server_default="skip"),
    # Seconds: a tick missed by up to this much is still launched.
    Column("catch_up", Float, nullable=False, server_default=text("0")),
    Column("paused", Boolean, nullable=False, server_default=text("false")),
    # The next tick to fire (in UTC).
    Column("next_at", DateTime(timezone=True), nullable=False),
    # The task of the latest tick launched, for the overlap policy.
    Column("last_task_id", BigInteger, nullable=True),
    # buffer_one: the tick held back while the previous run is unfinished.
    Column("buffered_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    CheckConstraint(
        "overlap IN ('skip', 'buffer_one', 'allow', 'cancel_other')",
        name="schedules_overlap_check",
    ),
    Index("schedules_next_idx", "next_at", postgresql_where=text("NOT paused")),
)
