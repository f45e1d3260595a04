"""Every SQL statement durable runs, as named constants.

One statement per round trip. Module-level constants keep asyncpg's prepared-statement cache
warm: the same text is parsed and planned once per connection. JSON travels as text and is cast
to jsonb in the statement (no codec on the pool), which keeps encoding in our own hands
(``durable.serialization`` refuses what JSON cannot hold).

Fencing: every write made on behalf of a running task starts from ``held``, a CTE that locks the
task row *only if* it still carries the lease token the worker claimed it with. ``FOR NO KEY
UPDATE`` conflicts with the takeover's UPDATE, so either the write commits before a takeover
(and the next holder's replay sees it), or the takeover commits first and the write finds no row
and writes nothing.

No statement here NOTIFYs: wake-ups are sent after commit by `durable.store.wakeups`, so that
durable's commits do not queue on Postgres's notification lock. A statement returns what its
wake-ups need (a queue, whether lines were written) and the store sends them.
"""

from __future__ import annotations

# -- schema check --------------------------------------------------------------------------

# Read at start by every CLI command and worker; alembic is not imported on that path.
SCHEMA_REVISION = """
SELECT version_num FROM durable.alembic_version
"""

# A cheap round trip that proves a connection is alive.
PING = "SELECT 1"

# Serialises schema upgrades across processes (bound parameter :key, run through SQLAlchemy by
# migrate.py); transaction-scoped, so the commit or a dead session releases it.
MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(:key)"

# -- launching -----------------------------------------------------------------------------

# Insert-or-return-existing on the idempotency key (the store then wakes idle workers).
# A concurrent launch with the same key that commits after our snapshot makes ON CONFLICT skip
# while the fallback SELECT cannot see the row yet: the store retries then.
CREATE_TASK = """
WITH ins AS (
    INSERT INTO durable.tasks (name, workflow, args, kwargs, key, queue, parent_id, detached,
                               priority, concurrency_key, trace)
    VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6, $7, $8, $9, $10, $11::jsonb)
    ON CONFLICT (key) DO NOTHING
    RETURNING id, name, workflow, queue
)
SELECT id, name, workflow, queue, true AS created FROM ins
UNION ALL
SELECT id, name, workflow, queue, false AS created FROM durable.tasks
WHERE key = $5 AND NOT EXISTS (SELECT 1 FROM ins)
"""

# Many launches in one statement (group commit of Client.launch, durable.store.group_commit).
# Each row's id is drawn first, so that a launch without a key finds its own row again (a
# RETURNING row says nothing about which input it came from). A key that exists returns the
# task it names; a row with neither (a concurrent launch with the same key committed after
# this snapshot) comes back with a NULL id and the store retries it alone. Keys are distinct
# within one statement (the group commit never puts one key twice in a batch).
CREATE_TASKS = """
WITH input AS (
    SELECT i.*, nextval(pg_get_serial_sequence('durable.tasks', 'id')) AS new_id
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::int[], $8::text[], $9::text[])
        WITH ORDINALITY
        AS i(name, workflow, args, kwargs, key, queue, priority, concurrency_key, trace, ord)
), ins AS (
    INSERT INTO durable.tasks (id, name, workflow, args, kwargs, key, queue, priority,
                               concurrency_key, trace)
    SELECT new_id, name, workflow, args::jsonb, kwargs::jsonb, key, queue, priority,
           concurrency_key, trace::jsonb
    FROM input ORDER BY ord
    ON CONFLICT (key) DO NOTHING
    RETURNING id
)
SELECT input.ord, coalesce(ins.id, t.id) AS id, coalesce(t.name, input.name) AS name,
       coalesce(t.workflow, input.workflow) AS workflow, coalesce(t.queue, input.queue) AS queue,
       ins.id IS NOT NULL AS created
FROM input
LEFT JOIN ins ON ins.id = input.new_id
LEFT JOIN durable.tasks AS t ON t.key = input.key AND ins.id IS NULL
ORDER BY input.ord
"""

# A debounced launch (SPEC 12): a new pending task that may start at now() + $9 seconds, or, if
# a task with this debounce key has not started yet (tasks_debounce_idx holds at most one),
# that task with the new arguments and its start moved to now() + $9, never past its
# debounce_until (the first launch + max_delay, $10; NULL: no cap). The upsert is atomic: a
# launch racing a claim of the task either updates it before the claim (which then runs the
# new arguments) or, once the claim committed, finds no task in the index and inserts a new
# one. `created` says which (xmax is 0 on a freshly inserted row).
DEBOUNCE_TASK = """
INSERT INTO durable.tasks AS t (name, workflow, args, kwargs, queue, priority, concurrency_key,
                                debounce_key, wake_at, debounce_until)
VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6, $7, $8,
        now() + make_interval(secs => $9), now() + make_interval(secs => $10))
ON CONFLICT (debounce_key) WHERE debounce_key IS NOT NULL AND state = 'pending' AND attempts = 0
DO UPDATE SET args = EXCLUDED.args, kwargs = EXCLUDED.kwargs,
              wake_at = CASE WHEN t.debounce_until IS NULL THEN EXCLUDED.wake_at
                             ELSE least(EXCLUDED.wake_at, t.debounce_until) END,
              updated_at = now()
RETURNING id, name, workflow, queue, xmax = 0 AS created
"""

# Fork (SPEC 14): a new pending task with the original's workflow, args, kwargs and queue whose
# event log is a verbatim copy (payload and time included) of the original's events before seq
# $2: replay returns those outcomes without performing the effects again, and the run goes on
# from there. One statement, so a fork exists whole or not at all, and the copy is one
# snapshot of the original's committed events, running or not. Log lines are not copied: the
# replay prints the workflow's lines again into the fork's own log. Not copied either: key,
# parent_id (a fork is a top-level task), the mailbox, and the original's children (the copied
# child events still name them). No row back: the original does not exist.
FORK_TASK = """
WITH original AS (
    SELECT id, name, workflow, args, kwargs, queue FROM durable.tasks WHERE id = $1
), fork AS (
    INSERT INTO durable.tasks (name, workflow, args, kwargs, queue)
    SELECT coalesce($3::text, format('%s (fork of %s at %s)', name, id, $2::bigint)),
           workflow, args, kwargs, queue
    FROM original
    RETURNING id, name, workflow, queue
), copied AS (
    INSERT INTO durable.events (task_id, seq, kind, label, payload, at)
    SELECT fork.id, e.seq, e.kind, e.label, e.payload, e.at
    FROM fork, durable.events AS e
    WHERE e.task_id = $1 AND e.seq < $2::bigint
    RETURNING 1
)
SELECT id, name, workflow, queue, (SELECT count(*) FROM copied) AS copied FROM fork
"""

# -- claiming ------------------------------------------------------------------------------

# What every claim hands the worker about each task it claimed.
_CLAIMED_COLUMNS = """
t.id, t.name, t.workflow, t.queue, t.args::text AS args, t.kwargs::text AS kwargs, t.lease,
t.attempts, t.cancel_requested, t.created_at, t.parent_id, t.run, t.log_base,
(EXISTS (SELECT 1 FROM durable.events AS e WHERE e.task_id = t.id)
 OR EXISTS (SELECT 1 FROM durable.logs AS l WHERE l.task_id = t.id)) AS has_history
"""

# Queues the plain claim leaves alone: paused ones, and those with a limit, which only
# CLAIM_LIMITED claims (under their lock). A small table read once per claim (a hashed
# subplan): the no-limits path costs one hash probe per row, not a round trip.
_RESTRICTED_QUEUES = """
SELECT name FROM durable.queues
WHERE paused OR concurrency IS NOT NULL OR key_concurrency IS NOT NULL OR rate_limit IS NOT NULL
"""

# Batched claim of runnable tasks: pending ones, and suspended ones whose timer is due (a
# little early, by $4 seconds, so that the resumed run waits out the rest in memory and fires
# on time). SKIP LOCKED lets many workers claim at once without waiting on each other; the
# partial indexes tasks_pending_idx and tasks_wake_idx keep both scans proportional to what is
# runnable, however many finished tasks the table holds. Bumping `lease` gives the claim its
# fencing token; has_history lets the runner skip the history read for fresh tasks.
#
# Pending tasks go by priority (smaller first), then launch order; a debounced one waits for
# its wake_at. Queues that are paused or limited (durable.queues) are skipped: their tasks are
# claimed by CLAIM_LIMITED only, so no claim of this statement can exceed a limit. A setting
# changed while this statement runs applies from the next claim.
#
# The claim must commit with a flush (unlike the wake-ups): a claim that Postgres loses in a
# crash after acknowledging it would let the next claim hand out the same lease value, and a
# worker still retrying a write under the lost claim would pass the fence.
CLAIM_TASKS = f"""
WITH due AS (
    SELECT id FROM durable.tasks
    WHERE state = 'suspended' AND wake_at <= now() + make_interval(secs => $4)
      AND queue = ANY($1::text[]) AND queue NOT IN ({_RESTRICTED_QUEUES})
    ORDER BY wake_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), ready AS (
    SELECT id FROM durable.tasks
    WHERE state = 'pending' AND queue = ANY($1::text[]) AND queue NOT IN ({_RESTRICTED_QUEUES})
      AND (wake_at IS NULL OR wake_at <= now())
    ORDER BY priority, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), candidates AS (
    SELECT id FROM due UNION ALL SELECT id FROM ready LIMIT $2
)
UPDATE durable.tasks AS t
SET state = 'running',
    worker_id = $3,
    lease = t.lease + 1,
    attempts = t.attempts + 1,
    wake_at = NULL,
    started_at = coalesce(t.started_at, now()),
    updated_at = now()
FROM candidates AS c
WHERE t.id = c.id
RETURNING {_CLAIMED_COLUMNS}
"""

# First statement of a claim of limited queues ($1), in its own transaction: locks the queue
# rows (in name order: two claimers cannot deadlock) until the claim commits. This is what makes
# the limits hold: claims of one limited queue run one after another, and CLAIM_LIMITED, the
# next statement, counts slots on a snapshot taken after the lock was granted (READ COMMITTED:
# a fresh snapshot per statement), so it sees every claim committed before it. Only claims
# take slots (a task becomes `running`, or started, only by a claim); the writes that free
# them (finish, suspend, release, takeover) need no lock: a claim that misses one frees nothing
# it should not. Returns the queues that are limited and not paused.
LOCK_LIMITED_QUEUES = """
SELECT name FROM durable.queues
WHERE name = ANY($1::text[]) AND NOT paused
  AND (concurrency IS NOT NULL OR key_concurrency IS NOT NULL OR rate_limit IS NOT NULL)
ORDER BY name
FOR NO KEY UPDATE
"""

# The claim of limited queues ($1, locked by LOCK_LIMITED_QUEUES in this transaction). Slots are
# counted from task rows, never stored, so no crash can leak one:
# - concurrency: tasks of the queue in state `running` (held by a worker, dead ones included
#   until their tasks are taken over: within the lease timeout);
# - key_concurrency: tasks of a concurrency_key that started and have not finished (running,
#   suspended, or pending again after a suspension or a takeover);
# - rate: starts within the window, from durable.queue_starts (written here, pruned here).
# A task that already started (a resumption) holds its key slot and is not a new start: it
# needs only a concurrency slot, and goes first. New starts follow by priority, then launch
# order, each key taking at most its free key slots, the queue at most its free starts and
# slots. A key-limited queue ranks its full backlog (it must look past tasks of busy keys);
# other limited queues read their first $2 in claim order. That price is paid only by limited
# queues.
# `locked` re-checks each picked row's state on its latest version (SKIP LOCKED: a row being
# cancelled or woken is left for the next claim; it only means claiming fewer).
CLAIM_LIMITED = f"""
WITH q AS (
    SELECT name, concurrency, key_concurrency, rate_limit, rate_period
    FROM durable.queues WHERE name = ANY($1::text[])
), room AS (
    SELECT q.name, q.key_concurrency, q.rate_limit IS NOT NULL AS rated,
           CASE WHEN q.concurrency IS NULL THEN $2
                ELSE q.concurrency - (SELECT count(*) FROM durable.tasks AS r
                                      WHERE r.state = 'running' AND r.queue = q.name) END
               AS free,
           CASE WHEN q.rate_limit IS NULL THEN $2
                ELSE q.rate_limit - (SELECT count(*) FROM durable.queue_starts AS s
                                     WHERE s.queue = q.name AND s.at > statement_timestamp()
                                         - make_interval(secs => q.rate_period)) END
               AS starts
    FROM q
), runnable AS (
    SELECT t.id, t.queue, t.concurrency_key, t.priority, t.resumes,
           room.key_concurrency, room.free, room.starts, room.rated
    FROM room, LATERAL (
        SELECT c.id, c.queue, c.concurrency_key, c.priority, c.started_at IS NOT NULL AS resumes
        FROM durable.tasks AS c
        WHERE c.queue = room.name
          AND ((c.state = 'pending' AND (c.wake_at IS NULL OR c.wake_at <= statement_timestamp()))
               OR (c.state = 'suspended'
                   AND c.wake_at <= statement_timestamp() + make_interval(secs => $4)))
        ORDER BY c.started_at IS NOT NULL DESC, c.priority, c.id
        -- Without key limits the first $2 in claim order are all a claim can take (a top-N
        -- sort); a key-limited queue must look past the tasks of busy keys (LIMIT NULL: all).
        LIMIT CASE WHEN room.key_concurrency IS NULL THEN $2 END
    ) AS t
    WHERE room.free > 0
), keyed AS (
    SELECT r.*, row_number() OVER (PARTITION BY r.queue, r.concurrency_key, r.resumes
                                   ORDER BY r.priority, r.id) AS key_rank
    FROM runnable AS r
), holders AS (
    -- The key slots taken, counted once per key (tasks_concurrency_key_idx).
    SELECT h.queue, h.concurrency_key, count(*) AS n
    FROM room JOIN durable.tasks AS h ON h.queue = room.name
    WHERE room.key_concurrency IS NOT NULL AND h.concurrency_key IS NOT NULL
      AND h.state IN ('pending', 'running', 'suspended') AND h.started_at IS NOT NULL
    GROUP BY h.queue, h.concurrency_key
), allowed AS (
    SELECT k.* FROM keyed AS k
    LEFT JOIN holders AS h ON h.queue = k.queue AND h.concurrency_key = k.concurrency_key
    WHERE k.resumes OR k.key_concurrency IS NULL OR k.concurrency_key IS NULL
       OR k.key_rank <= k.key_concurrency - coalesce(h.n, 0)
), ranked AS (
    SELECT a.*, count(*) FILTER (WHERE NOT a.resumes) OVER (
        PARTITION BY a.queue ORDER BY a.resumes DESC, a.priority, a.id) AS start_rank
    FROM allowed AS a
), within_rate AS (
    SELECT w.*, row_number() OVER (
        PARTITION BY w.queue ORDER BY w.resumes DESC, w.priority, w.id) AS slot_rank
    FROM ranked AS w
    WHERE w.resumes OR w.start_rank <= w.starts
), picked AS (
    SELECT id, resumes, rated FROM within_rate
    WHERE slot_rank <= free
    ORDER BY resumes DESC, priority, id
    LIMIT $2
), locked AS (
    SELECT t.id FROM durable.tasks AS t
    WHERE t.id IN (SELECT id FROM picked) AND t.state IN ('pending', 'suspended')
    ORDER BY t.id
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE durable.tasks AS t
    SET state = 'running',
        worker_id = $3,
        lease = t.lease + 1,
        attempts = t.attempts + 1,
        wake_at = NULL,
        started_at = coalesce(t.started_at, statement_timestamp()),
        updated_at = now()
    FROM locked
    WHERE t.id = locked.id
    RETURNING {_CLAIMED_COLUMNS}
), logged AS (
    INSERT INTO durable.queue_starts (queue, task_id, at)
    SELECT c.queue, c.id, statement_timestamp()
    FROM claimed AS c JOIN picked AS p ON p.id = c.id
    WHERE p.rated AND NOT p.resumes
), pruned AS (
    DELETE FROM durable.queue_starts AS s
    USING q
    WHERE s.queue = q.name
      AND (q.rate_period IS NULL
           OR s.at <= statement_timestamp() - make_interval(secs => q.rate_period))
)
SELECT * FROM claimed
"""

# After a claim of rate-limited queues (same transaction, so it sees that claim's starts): when
# the earliest of them gets a start back, if one of them is full. The claimer sleeps until then.
RATE_REOPENS = """
SELECT min(w.reopens) AS reopens FROM (
    SELECT min(s.at) + make_interval(secs => q.rate_period) AS reopens
    FROM durable.queues AS q JOIN durable.queue_starts AS s ON s.queue = q.name
    WHERE q.name = ANY($1::text[]) AND q.rate_limit IS NOT NULL
      AND s.at > statement_timestamp() - make_interval(secs => q.rate_period)
    GROUP BY q.name, q.rate_limit, q.rate_period
    HAVING count(*) >= q.rate_limit
) AS w
"""

# When the next suspended task of these queues wakes, or the next debounced task may start
# (the claimer sleeps until then). Paused queues are left out: nothing of theirs can be
# claimed (their resume wakes the workers). A debounced task is claimable at wake_at exactly (not
# $2 seconds early like a timer, whose run waits out the rest): it is reported $2 late, so
# that the claimer, which wakes $2 early, finds it claimable.
NEXT_WAKE = """
SELECT least(
    (SELECT min(wake_at) FROM durable.tasks
     WHERE state = 'suspended' AND wake_at IS NOT NULL AND queue = ANY($1::text[])
       AND queue NOT IN (SELECT name FROM durable.queues WHERE paused)),
    (SELECT min(wake_at) + make_interval(secs => $2) FROM durable.tasks
     WHERE state = 'pending' AND wake_at IS NOT NULL AND queue = ANY($1::text[])
       AND queue NOT IN (SELECT name FROM durable.queues WHERE paused))
) AS wake_at
"""

# The recorded history of a task: its events in seq order and how many log lines it wrote.
# Also the outcomes of its finished children: a parent woken after a fan-out reads them all
# in this one round trip instead of one per child.
LOAD_HISTORY = """
SELECT
    (SELECT count(*) FROM durable.logs WHERE task_id = $1 AND line_no >= $2) AS log_lines,
    (SELECT coalesce(json_agg(json_build_array(seq, kind, label, payload) ORDER BY seq), '[]')
     FROM durable.events WHERE task_id = $1)::text AS events,
    (SELECT coalesce(json_agg(json_build_array(id, state, result, error)), '[]')
     FROM durable.tasks
     WHERE parent_id = $1 AND state IN ('complete', 'failed', 'cancelled'))::text AS children
"""

# -- recording (hot path) ------------------------------------------------------------------

# The common head of every write made for a running task: `held` is the fencing check, then
# any number of buffered events and log lines of that task. Events upsert on (task_id, seq): a
# step's retry bookkeeping is replaced by its outcome. Log lines insert-or-ignore on
# (task_id, line_no): a replayed print writes nothing; the count of lines written tells the
# store to wake `durable tail` followers. Parameters $1..$8 are the same in every statement
# built on it.
_FENCED_WRITES = """
held AS (
    SELECT id, cancel_requested FROM durable.tasks
    WHERE id = $1 AND lease = $2 AND state = 'running'
    FOR NO KEY UPDATE
), ev AS (
    INSERT INTO durable.events (task_id, seq, kind, label, payload)
    SELECT held.id, e.seq, e.kind, e.label, e.payload::json
    FROM held, unnest($3::int[], $4::text[], $5::text[], $6::text[]) AS e(seq, kind, label, payload)
    ON CONFLICT (task_id, seq) DO UPDATE
        SET kind = EXCLUDED.kind, label = EXCLUDED.label, payload = EXCLUDED.payload, at = now()
    RETURNING 1
), lg AS (
    INSERT INTO durable.logs (task_id, line_no, line)
    SELECT held.id, l.line_no, l.line
    FROM held, unnest($7::int[], $8::text[]) AS l(line_no, line)
    ON CONFLICT (task_id, line_no) DO NOTHING
    RETURNING 1
)"""

# One round trip records any number of buffered events and log lines of one task, fenced.
RECORD = f"""
WITH {_FENCED_WRITES}
SELECT count(*) AS held, (SELECT count(*) FROM ev) AS events, (SELECT count(*) FROM lg) AS lines
FROM held
"""

# The final write of a run: the last buffered writes and the final state, in one statement.
# `wake_queue` is the parent's queue when this made it runnable.
#
# A child also counts itself off its parent's wait (`parent`). No lost wake-up: the UPDATE
# matches any unfinished parent, so it always takes the parent row's lock; if the parent is
# suspending at this moment it waits for that to commit and then computes the new values on
# the committed row (Postgres re-evaluates an UPDATE on the latest version of a row it had to
# wait for). If this commits first, the parent's suspension, which locks its own row before it
# counts its children on a fresh snapshot, sees this child ended.
FINISH = f"""
WITH {_FENCED_WRITES}, fin AS (
    UPDATE durable.tasks AS t
    SET state = $9, result = $10::jsonb, error = $11::jsonb, worker_id = NULL,
        finished_at = now(), updated_at = now(), wake_at = NULL, waiting_for = NULL
    FROM held
    WHERE t.id = held.id
    RETURNING t.id, t.parent_id
), parent AS (
    UPDATE durable.tasks AS p
    SET waiting_for = CASE WHEN p.state = 'suspended'
                                AND p.waiting_for -> 'children' @> to_jsonb(fin.id)
                           THEN jsonb_set(p.waiting_for, '{{remaining}}',
                                          to_jsonb((p.waiting_for ->> 'remaining')::int - 1))
                           ELSE p.waiting_for END,
        state = CASE WHEN p.state = 'suspended'
                          AND p.waiting_for -> 'children' @> to_jsonb(fin.id)
                          AND (p.waiting_for ->> 'remaining')::int <= 1
                     THEN 'pending' ELSE p.state END
    FROM fin
    WHERE p.id = fin.parent_id AND p.state NOT IN ('complete', 'failed', 'cancelled')
    RETURNING p.state, p.queue
)
SELECT count(*) AS held, (SELECT count(*) FROM ev) AS events, (SELECT count(*) FROM lg) AS lines,
       (SELECT min(queue) FROM parent WHERE state = 'pending') AS wake_queue
FROM fin
"""

# -- group commit (hot path) ---------------------------------------------------------------

# The fenced writes of many tasks in one statement (durable.store.group_commit): one commit for
# the steps and final states of every task that wrote while the previous statement was in
# flight. `req` has one row per task ($1 ids, $2 leases); events ($3..$7) and lines ($8..$10)
# name their task. `held` locks, in id order (no deadlock between two such statements), the
# rows still carrying their lease; only their writes are made, and every task learns whether
# it was held. As with RECORD, a takeover either commits first (the write finds no row) or
# waits for this commit.
_FENCED_WRITES_MANY = """
req AS (
    SELECT * FROM unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY AS r(task_id, lease, ord)
), held AS (
    SELECT t.id FROM durable.tasks AS t
    JOIN req ON req.task_id = t.id
    WHERE t.lease = req.lease AND t.state = 'running'
    ORDER BY t.id
    FOR NO KEY UPDATE OF t
), ev AS (
    INSERT INTO durable.events (task_id, seq, kind, label, payload)
    SELECT e.task_id, e.seq, e.kind, e.label, e.payload::json
    FROM unnest($3::bigint[], $4::int[], $5::text[], $6::text[], $7::text[])
        AS e(task_id, seq, kind, label, payload)
    WHERE e.task_id IN (SELECT id FROM held)
    ON CONFLICT (task_id, seq) DO UPDATE
        SET kind = EXCLUDED.kind, label = EXCLUDED.label, payload = EXCLUDED.payload, at = now()
    RETURNING task_id
), lg AS (
    INSERT INTO durable.logs (task_id, line_no, line)
    SELECT l.task_id, l.line_no, l.line
    FROM unnest($8::bigint[], $9::int[], $10::text[]) AS l(task_id, line_no, line)
    WHERE l.task_id IN (SELECT id FROM held)
    ON CONFLICT (task_id, line_no) DO NOTHING
    RETURNING task_id
)"""

RECORD_MANY = f"""
WITH {_FENCED_WRITES_MANY}
SELECT req.task_id, req.task_id IN (SELECT id FROM held) AS held,
       (SELECT count(*) FROM lg WHERE lg.task_id = req.task_id) AS lines,
       (SELECT count(*) FROM ev) AS events
FROM req ORDER BY req.ord
"""

# FINISH for many tasks ($11 states, $12 results, $13 errors, one per task). Children that end
# together count themselves off their parent's wait together: one update per parent, less the
# number of its waited-for children in this statement. Parents are locked in id order first,
# so two such statements cannot deadlock on them; the update then sees the latest version of
# a parent it had to wait for (as in FINISH, no lost wake-up).
FINISH_MANY = f"""
WITH {_FENCED_WRITES_MANY}, outcome AS (
    SELECT * FROM unnest($1::bigint[], $11::text[], $12::text[], $13::text[])
        AS o(task_id, state, result, error)
), fin AS (
    UPDATE durable.tasks AS t
    SET state = o.state, result = o.result::jsonb, error = o.error::jsonb, worker_id = NULL,
        finished_at = now(), updated_at = now(), wake_at = NULL, waiting_for = NULL
    FROM outcome AS o
    WHERE t.id = o.task_id AND t.id IN (SELECT id FROM held)
    RETURNING t.id, t.parent_id
), ended AS (
    SELECT parent_id, array_agg(id) AS ids FROM fin WHERE parent_id IS NOT NULL GROUP BY parent_id
), parents_locked AS (
    SELECT p.id FROM durable.tasks AS p
    WHERE p.id IN (SELECT parent_id FROM ended)
      AND p.state NOT IN ('complete', 'failed', 'cancelled')
    ORDER BY p.id
    FOR NO KEY UPDATE
), parent AS (
    UPDATE durable.tasks AS p
    SET waiting_for = CASE WHEN p.state = 'suspended' AND p.waiting_for ? 'children'
                           THEN jsonb_set(p.waiting_for, '{{remaining}}', to_jsonb(
                               (p.waiting_for ->> 'remaining')::int
                               - (SELECT count(*) FROM unnest(ended.ids) AS c(id)
                                  WHERE p.waiting_for -> 'children' @> to_jsonb(c.id))))
                           ELSE p.waiting_for END,
        state = CASE WHEN p.state = 'suspended' AND p.waiting_for ? 'children'
                          AND (p.waiting_for ->> 'remaining')::int
                              - (SELECT count(*) FROM unnest(ended.ids) AS c(id)
                                 WHERE p.waiting_for -> 'children' @> to_jsonb(c.id)) <= 0
                          AND EXISTS (SELECT 1 FROM unnest(ended.ids) AS c(id)
                                      WHERE p.waiting_for -> 'children' @> to_jsonb(c.id))
                     THEN 'pending' ELSE p.state END
    FROM ended
    WHERE p.id = ended.parent_id AND p.id IN (SELECT id FROM parents_locked)
    RETURNING p.state, p.queue
)
SELECT req.task_id, req.task_id IN (SELECT id FROM held) AS held,
       (SELECT count(*) FROM lg WHERE lg.task_id = req.task_id) AS lines,
       (SELECT count(*) FROM ev) AS events,
       (SELECT coalesce(array_agg(DISTINCT queue), '{{}}') FROM parent WHERE state = 'pending')
           AS wake_queues
FROM req ORDER BY req.ord
"""

# A run that only waits (on timers, promises, notifications) stops holding the task: state
# suspended until wake_at or until woken. No lost wake-ups: when the run waits on a promise
# or a notification this statement runs second in a transaction that first locked the task row
# (LOCK_HELD_TASK) and the promise rows (LOCK_PROMISES). A completer locks the same rows
# before it wakes waiters in a later statement, so either it sees this suspension, or this
# statement's fresh snapshot sees its completion and makes the task pending at once.
# $9 wake_at, $10 promise ids, $11 wants a notification, $12 waiting_for (jsonb), $13 the
# children it waits for: ready when none of them is still running (their count is kept in
# waiting_for.remaining, and each child that ends counts itself off: FINISH).
SUSPEND = f"""
WITH {_FENCED_WRITES}, old_waits AS (
    DELETE FROM durable.promise_waiters AS w
    USING held
    WHERE w.task_id = held.id AND NOT (w.promise_id = ANY($10::text[]))
    RETURNING 1
), waits AS (
    INSERT INTO durable.promise_waiters (promise_id, task_id)
    SELECT p.id, held.id FROM held, unnest($10::text[]) AS p(id)
    ON CONFLICT DO NOTHING
    RETURNING 1
), open_children AS (
    SELECT count(*) AS n FROM durable.tasks
    WHERE id = ANY($13::bigint[]) AND state NOT IN ('complete', 'failed', 'cancelled')
), ready AS (
    SELECT (
        (cardinality($13::bigint[]) > 0 AND (SELECT n FROM open_children) = 0)
        OR EXISTS (SELECT 1 FROM durable.promises
                WHERE id = ANY($10::text[]) AND state <> 'pending')
        OR ($11 AND EXISTS (SELECT 1 FROM durable.notifications
                            WHERE task_id = $1 AND consumed_seq IS NULL))
        OR ($9::timestamptz IS NOT NULL AND $9::timestamptz <= now())
        -- A cancellation requested while the run was stopping (its NOTIFY reached an engine
        -- that had already decided to suspend): read from the locked row itself, the latest
        -- version, so it is not lost: the task is pending, to be claimed and cancelled.
        OR coalesce((SELECT cancel_requested FROM held), false)
    ) AS now
), sus AS (
    UPDATE durable.tasks AS t
    SET state = CASE WHEN ready.now THEN 'pending' ELSE 'suspended' END,
        wake_at = CASE WHEN ready.now THEN NULL ELSE $9::timestamptz END,
        waiting_for = CASE WHEN ready.now THEN NULL
                           ELSE $12::jsonb || jsonb_build_object(
                               'remaining', (SELECT n FROM open_children)) END,
        worker_id = NULL, updated_at = now()
    FROM held, ready
    WHERE t.id = held.id
    RETURNING t.queue, t.state, t.wake_at
)
SELECT count(*) AS held, (SELECT count(*) FROM ev) AS events, (SELECT count(*) FROM lg) AS lines,
       min(sus.queue) AS queue, min(sus.state) AS state, min(sus.wake_at) AS wake_at,
       (SELECT count(*) FROM waits) AS waits, (SELECT count(*) FROM old_waits) AS old_waits
FROM sus
"""

# First statement of a suspension on promises or notifications: the fencing lock on the task
# row, held until commit.
LOCK_HELD_TASK = """
SELECT id FROM durable.tasks WHERE id = $1 AND lease = $2 AND state = 'running'
FOR NO KEY UPDATE
"""

# ContinueAsNew: the run ends and the workflow starts again under the same id with new
# arguments and a fresh event log; its printed lines stay, and the next generation numbers its
# own from $9 (log_base).
CONTINUE_AS_NEW = f"""
WITH {_FENCED_WRITES}, wipe AS (
    DELETE FROM durable.events AS e USING held WHERE e.task_id = held.id RETURNING 1
), cont AS (
    UPDATE durable.tasks AS t
    SET state = 'pending', args = $10::jsonb, kwargs = $11::jsonb, run = t.run + 1,
        log_base = $9, worker_id = NULL, wake_at = NULL, waiting_for = NULL, updated_at = now()
    FROM held
    WHERE t.id = held.id
    RETURNING t.queue
)
SELECT count(*) AS held, (SELECT count(*) FROM wipe) AS wiped, (SELECT count(*) FROM lg) AS lines,
       min(cont.queue) AS queue
FROM cont
"""

# -- children ------------------------------------------------------------------------------

# A fan-out: many children created in one statement, inside the fenced transaction that
# records their launches. Existing keys (a retried launch) return the task they name.
CREATE_CHILDREN = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::bool[])
        WITH ORDINALITY AS i(name, workflow, args, kwargs, key, queue, detached, ord)
), ins AS (
    INSERT INTO durable.tasks (name, workflow, args, kwargs, key, queue, parent_id, detached)
    SELECT name, workflow, args::jsonb, kwargs::jsonb, key, queue, $8, detached
    FROM input ORDER BY ord
    ON CONFLICT (key) DO NOTHING
    RETURNING id, key, name, workflow, queue
)
SELECT input.ord, coalesce(ins.id, t.id) AS id, coalesce(ins.name, t.name) AS name,
       coalesce(ins.workflow, t.workflow) AS workflow, ins.id IS NOT NULL AS created,
       ins.queue
FROM input
LEFT JOIN ins ON ins.key = input.key
LEFT JOIN durable.tasks AS t ON t.key = input.key AND ins.id IS NULL
ORDER BY input.ord
"""

# The fencing lock of a transaction that records several events, and which of their seqs are
# already recorded (by an attempt whose commit reply was lost).
BEGIN_RECORDING = """
SELECT t.id,
       (SELECT coalesce(json_agg(json_build_array(e.seq, e.payload)), '[]')
        FROM durable.events AS e
        WHERE e.task_id = t.id AND e.seq = ANY($3::int[]))::text AS recorded
FROM durable.tasks AS t
WHERE t.id = $1 AND t.lease = $2 AND t.state = 'running'
FOR NO KEY UPDATE
"""

TASK_OUTCOME = """
SELECT state, result::text AS result, error::text AS error FROM durable.tasks WHERE id = $1
"""

# -- promises and notifications -------------------------------------------------------------

# A waiter makes sure the promise rows exist, then locks them (in id order: no deadlocks) so
# that no completion can run between its check and its suspension.
ENSURE_PROMISES = """
INSERT INTO durable.promises (id) SELECT unnest($1::text[]) ON CONFLICT (id) DO NOTHING
"""

LOCK_PROMISES = """
SELECT id FROM durable.promises WHERE id = ANY($1::text[]) ORDER BY id FOR SHARE
"""

# Completes a promise at most once: the upsert only changes a pending row, but locks it either
# way, which orders this completion after any waiter that is suspending on it.
COMPLETE_PROMISE = """
INSERT INTO durable.promises (id, state, value, message, completed_at)
VALUES ($1, $2, $3::jsonb, $4, now())
ON CONFLICT (id) DO UPDATE
    SET state = EXCLUDED.state, value = EXCLUDED.value, message = EXCLUDED.message,
        completed_at = now()
    WHERE durable.promises.state = 'pending'
RETURNING id
"""

# Second statement of a completion (a fresh snapshot, after the lock): the winner, and every
# task suspended on the promise made runnable (`queues`: where the store wakes workers).
WAKE_PROMISE_WAITERS = """
WITH winner AS (
    SELECT state, value::text AS value, message FROM durable.promises WHERE id = $1
), woken AS (
    UPDATE durable.tasks AS t
    SET state = 'pending', wake_at = NULL, waiting_for = NULL, updated_at = now()
    WHERE t.state = 'suspended'
      AND t.id IN (SELECT task_id FROM durable.promise_waiters WHERE promise_id = $1)
    RETURNING t.queue
), gone AS (
    DELETE FROM durable.promise_waiters WHERE promise_id = $1 RETURNING 1
)
SELECT winner.state, winner.value, winner.message,
       (SELECT coalesce(array_agg(DISTINCT queue), '{}') FROM woken) AS queues,
       (SELECT count(*) FROM gone) AS gone
FROM winner
"""

PEEK_PROMISE = """
SELECT state, value::text AS value, message FROM durable.promises WHERE id = $1
"""

# A notification is sent under the task row's lock (the lock a suspending run holds), so a
# task suspending on its mailbox at this very moment is still woken.
LOCK_TASK = """
SELECT state FROM durable.tasks WHERE id = $1 FOR NO KEY UPDATE
"""

SEND_NOTIFICATION = """
WITH ins AS (
    INSERT INTO durable.notifications (task_id, event, data) VALUES ($1, $2, $3::jsonb)
    RETURNING id
), woken AS (
    UPDATE durable.tasks
    SET state = 'pending', wake_at = NULL, waiting_for = NULL, updated_at = now()
    WHERE id = $1 AND state = 'suspended' AND waiting_for ? 'notification'
    RETURNING queue
)
SELECT (SELECT id FROM ins) AS id, (SELECT queue FROM woken) AS wake_queue
"""

# The oldest unread notification of a task, marked read by the event that receives it, inside
# the fenced transaction that records that event: received exactly once.
CONSUME_NOTIFICATION = """
UPDATE durable.notifications SET consumed_seq = $2
WHERE id = (
    SELECT id FROM durable.notifications
    WHERE task_id = $1 AND consumed_seq IS NULL
    ORDER BY id LIMIT 1
    FOR UPDATE
)
RETURNING event, data::text AS data, created_at
"""

# First statement of an exactly-once transaction: the fencing lock, held until commit, and
# what is already recorded at this seq (a retried transaction whose first commit succeeded
# but whose reply was lost must not run the user's function again).
TRANSACTION_BEGIN = """
SELECT t.id,
       (SELECT e.payload::text FROM durable.events AS e
        WHERE e.task_id = t.id AND e.seq = $3
          AND (e.payload ->> 'status') IS DISTINCT FROM 'waiting'
          AND NOT coalesce((e.payload ->> 'retried')::boolean, false)) AS recorded
FROM durable.tasks AS t
WHERE t.id = $1 AND t.lease = $2 AND t.state = 'running'
FOR NO KEY UPDATE
"""

# -- reading -------------------------------------------------------------------------------

TASK_COLUMNS = """
id, name, workflow, state, queue, key, parent_id, args::text AS args, kwargs::text AS kwargs,
result::text AS result, error::text AS error, attempts, created_at, started_at, finished_at,
updated_at, worker_id, detached
"""

GET_TASK = f"SELECT {TASK_COLUMNS} FROM durable.tasks WHERE id = $1"

# Newest first; each filter is optional (NULL matches everything).
LIST_TASKS = f"""
SELECT {TASK_COLUMNS} FROM durable.tasks
WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR workflow = $2)
ORDER BY id DESC
LIMIT $3
"""

TASK_STATE = "SELECT state FROM durable.tasks WHERE id = $1"

LIST_EVENTS = """
SELECT task_id, seq, kind, label, payload::text AS payload, at
FROM durable.events WHERE task_id = $1 ORDER BY seq
"""

# Lines after a given line number: `tail` reads what is there, then what each notify adds.
READ_LOGS = """
SELECT task_id, line_no, line, at FROM durable.logs
WHERE task_id = $1 AND line_no > $2 ORDER BY line_no
"""

# -- control -------------------------------------------------------------------------------

# Cancellation of a set of tasks (`target`). A task that never ran is cancelled on the spot; a
# suspended one (or a pending one that has run before) is made pending with the flag set, so
# that a worker replays it and delivers durable.Cancelled where it waits (cleanup may run); a
# running one is flagged and its worker told. Final tasks are left as they are. Each row says
# which wake-up it needs.
_CANCEL = """
WITH target AS (
    SELECT id, state, attempts FROM durable.tasks WHERE {where} ORDER BY id FOR UPDATE
), direct AS (
    UPDATE durable.tasks AS t
    SET state = 'cancelled', cancel_requested = true, finished_at = now(), updated_at = now(),
        wake_at = NULL, waiting_for = NULL, worker_id = NULL,
        error = jsonb_build_object('type', 'Cancelled',
                                   'message', format('task %s was cancelled', t.id),
                                   'traceback', NULL)
    FROM target
    WHERE t.id = target.id AND target.state = 'pending' AND target.attempts = 0
    RETURNING t.id
), woken AS (
    UPDATE durable.tasks AS t
    SET state = 'pending', cancel_requested = true, wake_at = NULL, waiting_for = NULL,
        updated_at = now()
    FROM target
    WHERE t.id = target.id
      AND (target.state = 'suspended' OR (target.state = 'pending' AND target.attempts > 0))
    RETURNING t.id, t.queue
), flag AS (
    UPDATE durable.tasks AS t
    SET cancel_requested = true, updated_at = now()
    FROM target
    WHERE t.id = target.id AND target.state = 'running'
    RETURNING t.id
)
SELECT target.id, target.state AS before,
       CASE WHEN target.id IN (SELECT id FROM direct) THEN 'cancelled'
            WHEN target.id IN (SELECT id FROM woken) THEN 'pending'
            ELSE target.state END AS after,
       target.id IN (SELECT id FROM direct) AS ended,
       target.id IN (SELECT id FROM flag) AS flagged,
       (SELECT queue FROM woken WHERE woken.id = target.id) AS wake_queue
FROM target
"""

CANCEL_TASK = _CANCEL.format(where="id = $1")

# Children are cancelled with their parent, unless launched detached.
CANCEL_CHILDREN = _CANCEL.format(
    where="parent_id = $1 AND NOT detached AND state NOT IN ('complete', 'failed', 'cancelled')"
)

# Back to pending, keeping every event: replay resumes where the failure happened. It starts
# again: started_at is cleared (set by the next claim), so in a queue with key_concurrency or
# a rate the retried task waits for a slot like a new one (a task that has started holds its
# key's slot; a retried one would otherwise hold it without any claim having checked). The count
# of losses to dead workers starts again (the user chose to run it again); `attempts` keeps
# counting claims, so that a cancellation before the next claim still runs the cleanup of a
# task that has run (see _CANCEL: only a task never claimed is cancelled on the spot).
#
# What ended the task is set aside (`marked`), flagged `retried` but kept in the history: the
# step failures named in the error's `failed_steps` (their steps run again, with fresh
# attempts, under the code deployed now), or the cancellation's marker. A `retry` marker event
# after the last one says where the replay stops following the old branch: at the delivery
# position `cut` of the first outcome set aside, resuming its numbering of seqs, deliveries
# and log lines after everything recorded so far (durable/replay/script.py). A cancellation
# marker from before delivery positions were recorded gets the resume fields itself instead.
RETRY_TASK = """
WITH target AS (
    SELECT id, state, log_base, error FROM durable.tasks WHERE id = $1 FOR UPDATE
), upd AS (
    UPDATE durable.tasks AS t
    SET state = 'pending', error = NULL, result = NULL, finished_at = NULL, started_at = NULL,
        cancel_requested = false, worker_id = NULL, losses = 0, updated_at = now()
    FROM target
    WHERE t.id = target.id AND target.state IN ('failed', 'cancelled')
    RETURNING t.id, t.queue
), recorded AS (
    SELECT coalesce(max(e.seq), -1) AS max_seq,
           coalesce(max((e.payload ->> 'delivered')::int), -1) AS max_delivered,
           (SELECT count(*) FROM durable.logs AS l, target
            WHERE l.task_id = $1 AND l.line_no >= target.log_base) AS lines
    FROM durable.events AS e WHERE e.task_id = $1
), marked AS (
    UPDATE durable.events AS e
    SET payload = (e.payload::jsonb || jsonb_build_object(
        'retried', true,
        'resume_seq', recorded.max_seq + 2,
        'resume_line', recorded.lines))::json
    FROM target, recorded
    WHERE e.task_id = $1 AND EXISTS (SELECT 1 FROM upd)
      AND NOT coalesce((e.payload ->> 'retried')::boolean, false)
      AND ((target.state = 'cancelled' AND e.kind = 'cancel')
           OR (target.state = 'failed' AND e.kind IN ('step', 'transaction')
               AND (e.payload ->> 'status') = 'error'
               AND coalesce(target.error -> 'failed_steps', '[]'::jsonb) @> to_jsonb(e.seq)))
    RETURNING (e.payload ->> 'delivered')::int AS delivered
), marker AS (
    INSERT INTO durable.events (task_id, seq, kind, label, payload)
    SELECT $1, recorded.max_seq + 1, 'retry', 'retry', json_build_object(
        'cut', (SELECT min(delivered) FROM marked),
        'resume_seq', recorded.max_seq + 2,
        'resume_delivered', recorded.max_delivered + 1,
        'resume_line', recorded.lines)
    FROM recorded
    WHERE EXISTS (SELECT 1 FROM marked WHERE delivered IS NOT NULL)
)
SELECT target.state AS before,
       CASE WHEN EXISTS (SELECT 1 FROM upd) THEN 'pending' ELSE target.state END AS after,
       (SELECT queue FROM upd) AS wake_queue
FROM target
"""

# Is a cancellation pending for these held tasks? (a worker that missed a notify catches up)
CANCEL_REQUESTED = """
SELECT id FROM durable.tasks
WHERE id = ANY($1::bigint[]) AND cancel_requested AND state = 'running'
"""

# -- workers -------------------------------------------------------------------------------

REGISTER_WORKER = """
INSERT INTO durable.workers (id, host, pid, queues, concurrency, lease_timeout, local_identity)
VALUES ($1, $2, $3, $4::text[], $5, $6, $7)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()
"""

HEARTBEAT = """
UPDATE durable.workers SET heartbeat_at = now() WHERE id = $1 RETURNING id
"""

DEREGISTER_WORKER = "DELETE FROM durable.workers WHERE id = $1"

# The other workers in this worker's boot and pid namespace (durable/worker/liveness.py).
LOCAL_WORKERS = """
SELECT id, pid FROM durable.workers WHERE local_identity = $1 AND id <> $2
"""

# A stopping worker hands its tasks back and wakes the others so they resume them at once.
RELEASE_TASKS = """
WITH rel AS (
    UPDATE durable.tasks
    SET state = 'pending', worker_id = NULL, updated_at = now()
    WHERE worker_id = $1 AND state = 'running'
    RETURNING id, queue
)
SELECT (SELECT count(*) FROM rel) AS released,
       (SELECT coalesce(array_agg(DISTINCT queue), '{}') FROM rel) AS queues
"""

# After a claim whose reply was lost (the connection broke after the commit), the worker may
# hold tasks it does not know about: hand back every task it holds but is not running.
RELEASE_UNKNOWN = """
WITH rel AS (
    UPDATE durable.tasks
    SET state = 'pending', worker_id = NULL, updated_at = now()
    WHERE worker_id = $1 AND state = 'running' AND NOT (id = ANY($2::bigint[]))
    RETURNING id, queue
)
SELECT (SELECT count(*) FROM rel) AS released,
       (SELECT coalesce(array_agg(DISTINCT queue), '{}') FROM rel) AS queues
"""

# Takeover: any live worker runs this every heartbeat. Workers silent for longer than their own
# lease timeout (the one each registered: a fleet with mixed settings judges each worker by the
# promise it made, not by the judge's setting), and those ($2) the caller found exited on its
# own machine, are deleted, and the
# tasks they held (or held by workers with no row at all) go back to pending; a task lost this
# way max_attempts times is failed instead, so a poison task that crashes every worker that
# runs it cannot take the fleet down. Two workers running this at once
# is safe: the second one's UPDATE re-checks `state = 'running'` after the first commits.
RECLAIM_TASKS = """
WITH dead AS (
    DELETE FROM durable.workers
    WHERE heartbeat_at < now() - make_interval(secs => lease_timeout) OR id = ANY($2::text[])
    RETURNING id
), lost AS (
    UPDATE durable.tasks AS t
    SET state = CASE WHEN t.losses + 1 >= $1 THEN 'failed' ELSE 'pending' END,
        losses = t.losses + 1,
        worker_id = NULL,
        updated_at = now(),
        finished_at = CASE WHEN t.losses + 1 >= $1 THEN now() END,
        error = CASE WHEN t.losses + 1 >= $1 THEN jsonb_build_object(
            'type', 'Abandoned',
            'message', format('abandoned after %s attempts', t.losses + 1),
            'traceback', NULL) END
    WHERE t.id IN (
        -- Locked in id order, as every statement that locks several tasks does: no deadlock
        -- with a stale worker's group commit (FINISH_MANY) on the same rows.
        SELECT r.id FROM durable.tasks AS r
        WHERE r.state = 'running'
          AND (r.worker_id IN (SELECT id FROM dead)
               OR NOT EXISTS (SELECT 1 FROM durable.workers AS w WHERE w.id = r.worker_id))
        ORDER BY r.id
        FOR NO KEY UPDATE
    ) AND t.state = 'running'
    RETURNING t.id, t.queue, t.state
)
SELECT (SELECT count(*) FROM dead) AS dead,
       (SELECT count(*) FROM lost WHERE state = 'pending') AS resumed,
       (SELECT count(*) FROM lost WHERE state = 'failed') AS abandoned,
       (SELECT coalesce(array_agg(DISTINCT queue), '{}') FROM lost WHERE state = 'pending')
           AS queues,
       (SELECT coalesce(array_agg(id), '{}') FROM lost WHERE state = 'failed') AS abandoned_ids,
       -- When the next live worker's lease runs out, if it stays silent: the caller looks
       -- again then, rather than up to a heartbeat interval later.
       (SELECT extract(epoch FROM min(heartbeat_at + make_interval(secs => lease_timeout))
                                  - now())::float8
        FROM durable.workers
        WHERE heartbeat_at >= now() - make_interval(secs => lease_timeout)) AS next_expiry_in
"""

LIST_WORKERS = """
SELECT w.id, w.host, w.pid, w.queues, w.concurrency, w.started_at, w.heartbeat_at,
       extract(epoch FROM now() - w.heartbeat_at)::float8 AS heartbeat_age,
       (SELECT count(*) FROM durable.tasks AS t
        WHERE t.worker_id = w.id AND t.state = 'running') AS tasks_held
FROM durable.workers AS w
WHERE w.heartbeat_at > now() - make_interval(secs => w.lease_timeout)
ORDER BY w.started_at
"""

# -- queues --------------------------------------------------------------------------------

# Sets a queue's flow control (SPEC 12); $2, $4, $6, $9 say whether to change concurrency,
# key_concurrency, rate and paused (the rest is kept). A worker's next claim of the queue
# applies it (the store tells workers to look again after commit).
CONFIGURE_QUEUE = """
INSERT INTO durable.queues AS q (name, concurrency, key_concurrency, rate_limit, rate_period,
                                 paused)
VALUES ($1, $3, $5, $7, $8, coalesce($10, false))
ON CONFLICT (name) DO UPDATE SET
    concurrency = CASE WHEN $2 THEN EXCLUDED.concurrency ELSE q.concurrency END,
    key_concurrency = CASE WHEN $4 THEN EXCLUDED.key_concurrency ELSE q.key_concurrency END,
    rate_limit = CASE WHEN $6 THEN EXCLUDED.rate_limit ELSE q.rate_limit END,
    rate_period = CASE WHEN $6 THEN EXCLUDED.rate_period ELSE q.rate_period END,
    paused = CASE WHEN $9 THEN EXCLUDED.paused ELSE q.paused END,
    updated_at = now()
RETURNING name
"""

# Every queue that has settings or unfinished tasks, with its settings and what it holds.
LIST_QUEUES = """
WITH active AS (
    SELECT queue,
           count(*) FILTER (WHERE state = 'pending') AS pending,
           count(*) FILTER (WHERE state = 'running') AS running,
           count(*) FILTER (WHERE state = 'suspended') AS suspended
    FROM durable.tasks WHERE state IN ('pending', 'running', 'suspended')
    GROUP BY queue
)
SELECT coalesce(q.name, a.queue) AS name, q.concurrency, q.key_concurrency, q.rate_limit,
       q.rate_period, coalesce(q.paused, false) AS paused, coalesce(a.pending, 0) AS pending,
       coalesce(a.running, 0) AS running, coalesce(a.suspended, 0) AS suspended
FROM durable.queues AS q FULL JOIN active AS a ON a.queue = q.name
ORDER BY 1
"""

# Which of a worker's queues need CLAIM_LIMITED (limited and not paused): read at start, when
# a queue's settings change, and every heartbeat round (a missed notification).
LIMITED_QUEUES = """
SELECT name FROM durable.queues
WHERE name = ANY($1::text[]) AND NOT paused
  AND (concurrency IS NOT NULL OR key_concurrency IS NOT NULL OR rate_limit IS NOT NULL)
ORDER BY name
"""

# -- schedules -----------------------------------------------------------------------------

_SCHEDULE_COLUMNS = """
name, workflow, cron, timezone, args::text AS args, kwargs::text AS kwargs, queue, overlap,
catch_up, paused, next_at, last_task_id
"""

# Adds or replaces a schedule; its next tick ($10) was computed by the caller from the cron.
UPSERT_SCHEDULE = f"""
INSERT INTO durable.schedules AS s (name, workflow, cron, timezone, args, kwargs, queue,
                                    overlap, catch_up, next_at)
VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8, $9, $10)
ON CONFLICT (name) DO UPDATE SET
    workflow = EXCLUDED.workflow, cron = EXCLUDED.cron, timezone = EXCLUDED.timezone,
    args = EXCLUDED.args, kwargs = EXCLUDED.kwargs, queue = EXCLUDED.queue,
    overlap = EXCLUDED.overlap, catch_up = EXCLUDED.catch_up, next_at = EXCLUDED.next_at,
    buffered_at = NULL
RETURNING {_SCHEDULE_COLUMNS}
"""

LIST_SCHEDULES = f"SELECT {_SCHEDULE_COLUMNS} FROM durable.schedules ORDER BY name"

GET_SCHEDULE = f"SELECT {_SCHEDULE_COLUMNS} FROM durable.schedules WHERE name = $1"

# Pause or resume; a resume starts again from the next tick after now ($3), not from the ticks
# missed while paused.
PAUSE_SCHEDULE = f"""
UPDATE durable.schedules SET paused = $2, next_at = coalesce($3, next_at), buffered_at = NULL
WHERE name = $1
RETURNING {_SCHEDULE_COLUMNS}
"""

DELETE_SCHEDULE = "DELETE FROM durable.schedules WHERE name = $1 RETURNING name"

# The schedules with a tick due, or a buffered tick (overlap buffer_one), locked for the
# firing transaction. SKIP LOCKED: when several workers look at once, each schedule is fired by
# one of them, and the others move on (the tick's task key would refuse a second launch
# anyway). The previous run's state decides the overlap policy.
DUE_SCHEDULES = f"""
SELECT {_SCHEDULE_COLUMNS}, buffered_at, now() AS now,
       (SELECT t.state FROM durable.tasks AS t WHERE t.id = s.last_task_id) AS last_state
FROM durable.schedules AS s
WHERE NOT paused AND (next_at <= now() OR buffered_at IS NOT NULL)
ORDER BY name
FOR NO KEY UPDATE OF s SKIP LOCKED
"""

# After firing: the next tick, the latest run and the buffered tick.
SCHEDULE_FIRED = """
UPDATE durable.schedules SET next_at = $2, last_task_id = $3, buffered_at = $4
WHERE name = $1
"""

# When the scheduler looks next: the earliest tick, or now when a tick is buffered (it waits
# for a run to end, which announces nothing to the scheduler: it looks every round).
NEXT_SCHEDULE = """
SELECT min(next_at) AS next_at, bool_or(buffered_at IS NOT NULL) AS buffered
FROM durable.schedules WHERE NOT paused
"""

# -- wake-ups ------------------------------------------------------------------------------

# Many wake-ups in one statement, sent after the writes they announce have committed (see
# durable.store.wakeups). Committed without waiting for a WAL flush: a notification is a
# hint and holds no data, and the flush would be waited for under the notification lock.
SEND_WAKEUPS = """
SELECT count(pg_notify(w.channel, w.payload))
FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit,
     unnest($1::text[], $2::text[]) AS w(channel, payload)
"""

# -- server and metrics (read side) --------------------------------------------------------

# One page of the task list (`durable serve`): newest first, below a cursor (the last id of
# the previous page). Each filter has an index of shape (column, id), so the statement walks
# one index backwards from the cursor and stops after the page; `since` has an index on
# created_at. Filters are composed from fixed fragments rather than written as
# `($n IS NULL OR col = $n)`: a prepared statement's generic plan cannot use an index for a
# condition that may be switched off, and asyncpg keeps plans. At most 2**6 texts exist, each
# prepared once per connection.
TASK_PAGE_FILTERS = {
    "state": "state = ${n}",
    "workflow": "workflow = ${n}",
    "queue": "queue = ${n}",
    "name": "name = ${n}",
    "since": "created_at >= ${n}",
    "before": "id < ${n}",
}


def task_page(filters: tuple[str, ...]) -> str:
    """The task-page statement for these filters (names of `TASK_PAGE_FILTERS`, in order).

    Parameters are the filter values in the same order, then the limit.
    """
    conditions = [
        TASK_PAGE_FILTERS[name].format(n=index) for index, name in enumerate(filters, start=1)
    ]
    where = " AND ".join(conditions) or "true"
    return (
        f"SELECT {TASK_COLUMNS} FROM durable.tasks WHERE {where} "
        f"ORDER BY id DESC LIMIT ${len(filters) + 1}"
    )


# A task's children, for its page (the partial index tasks_parent_idx).
LIST_CHILDREN = f"""
SELECT {TASK_COLUMNS} FROM durable.tasks WHERE parent_id = $1 ORDER BY id LIMIT 500
"""

# Unfinished tasks by state and queue: scrape-time gauges and the queues page. Only live
# states are counted: they are few, and the (state, id) index finds them without reading the
# finished millions. Finished tasks are counted by the workers (durable_tasks_finished_total).
LIVE_TASK_COUNTS = """
SELECT state, queue, count(*) AS n FROM durable.tasks
WHERE state IN ('pending', 'running', 'suspended')
GROUP BY state, queue
"""

# Per queue, how long its oldest pending task has waited (since it last became pending);
# reads the partial index tasks_pending_idx only, as large as the backlog.
OLDEST_PENDING = """
SELECT queue, extract(epoch FROM now() - min(updated_at))::float8 AS age
FROM durable.tasks WHERE state = 'pending' GROUP BY queue
"""

# Flow control and schedules (SPEC 12) live in tables that a later revision adds; the server
# shows their rows when they exist and an empty list when they do not.
TABLE_EXISTS = "SELECT to_regclass($1) IS NOT NULL AS present"
QUEUE_SETTINGS = "SELECT to_jsonb(q)::text AS row FROM durable.queues AS q"
SCHEDULE_ROWS = "SELECT to_jsonb(s)::text AS row FROM durable.schedules AS s"

# The trace context a run continues (OpenTelemetry, durable.tracing): the task's own, stored
# at launch, else the nearest ancestor's (a child launched by a workflow joins its trace).
# Read once per run, and only while tracing is on.
TASK_TRACE = """
WITH RECURSIVE chain AS (
    SELECT id, parent_id, trace, 0 AS depth FROM durable.tasks WHERE id = $1
    UNION ALL
    SELECT t.id, t.parent_id, t.trace, chain.depth + 1
    FROM durable.tasks AS t JOIN chain ON t.id = chain.parent_id
    WHERE chain.trace IS NULL AND chain.depth < 100
)
SELECT trace::text AS trace FROM chain WHERE trace IS NOT NULL ORDER BY depth LIMIT 1
"""
