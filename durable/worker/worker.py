"""Worker: claims tasks, runs them by replay, heartbeats. ``durable-worker`` is this class."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from types import TracebackType

import structlog

from durable import metrics, tracing
from durable.config import resolve_database_url, uses_embedded_default
from durable.errors import DatabaseUnavailable
from durable.replay import capture
from durable.store.listen import Listener
from durable.store.store import Store
from durable.store.wakeups import (
    CANCEL_CHANNEL,
    QUEUES_CHANNEL,
    SCHEDULES_CHANNEL,
    TASKS_CHANNEL,
    TIMERS_CHANNEL,
)
from durable.worker import liveness
from durable.worker.loader import Loader
from durable.worker.outage import OUTAGE
from durable.worker.runner import Runner, Running
from durable.worker.scheduler import Scheduler
from durable.worker.settings import WorkerSettings

log = structlog.get_logger("durable.worker")

# Suspended tasks are claimed this many seconds before their timer is due; the resumed run
# waits out the rest in memory, so the timer fires on time rather than one claim late.
TIMER_LEAD = 0.1

# A takeover round runs this long after a silent worker's lease has run out (by the database's
# clock), so that it finds the lease expired rather than a hair short of it.
EXPIRY_MARGIN = 0.02


class Worker:
    """A worker process (or an embedded one inside an app).

    Its settings are a `durable.WorkerSettings`: pass ``settings=``, or any of its fields as
    keyword arguments (``durable.Worker(url, concurrency=100, queues=["default"])``), or both
    (keywords override ``settings``). Defaults and checks live in `WorkerSettings`.

    Args:
        database_url: the durable database; default: the CLI's resolution (``DURABLE_DATABASE_URL``,
            ``DATABASE_URL``, else the embedded server).
        settings: the worker's settings (default: `WorkerSettings()`).
        concurrency: tasks run at once.
        queues: queues claimed from.
        heartbeat_interval: seconds between heartbeats.
        lease_timeout: seconds without heartbeat after which a worker counts as dead.
        max_attempts: claims after which a task that keeps getting lost is abandoned.
        shutdown_grace: seconds running effects get to finish when the worker stops.
        imports: modules imported when the worker starts; tasks may name them.
        allow_modules: module prefixes tasks may import from besides the application directory.
        app_dir: the application directory (modules under it are imported on demand);
            default: the current directory when the Worker is built.
        poll_interval: seconds between claims when no notification arrives (a fallback only).
        suspend_after: a task that only waits on a timer further away than this is suspended
            (no worker holds it, no memory is used) and resumed by replay when it is due.
        strict: the determinism guard on workflow code (`durable.DeterminismViolation`).

    Raises:
        ValueError, TypeError: a setting that cannot work (`WorkerSettings` says which).
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        settings: WorkerSettings | None = None,
        concurrency: int | None = None,
        queues: Sequence[str] | None = None,
        heartbeat_interval: float | None = None,
        lease_timeout: float | None = None,
        max_attempts: int | None = None,
        shutdown_grace: float | None = None,
        imports: Sequence[str] | None = None,
        allow_modules: Sequence[str] | None = None,
        app_dir: str | os.PathLike[str] | None = None,
        poll_interval: float | None = None,
        suspend_after: float | None = None,
        strict: bool | None = None,
    ) -> None:
        given = {
            "concurrency": concurrency,
            "queues": queues,
            "heartbeat_interval": heartbeat_interval,
            "lease_timeout": lease_timeout,
            "max_attempts": max_attempts,
            "shutdown_grace": shutdown_grace,
            "imports": imports,
            "allow_modules": allow_modules,
            "app_dir": app_dir,
            "poll_interval": poll_interval,
            "suspend_after": suspend_after,
            "strict": strict,
        }
        base = settings if settings is not None else WorkerSettings()
        changes = {name: value for name, value in given.items() if value is not None}
        self.settings = (base.replace(**changes) if changes else base).with_app_dir()
        self.database_url = database_url
        self.concurrency = self.settings.concurrency
        self.queues = list(self.settings.queues)
        self.heartbeat_interval = self.settings.heartbeat_interval
        self.lease_timeout = self.settings.lease_timeout
        self._local_identity = liveness.local_identity()
        self.max_attempts = self.settings.max_attempts
        self.shutdown_grace = self.settings.shutdown_grace
        self.poll_interval = self.settings.poll_interval
        self.suspend_after = self.settings.suspend_after
        self._next_wake: datetime | None = None
        self._next_wake_known = False
        # Queues of ours with flow control (durable.queues): claimed by claim_limited. Read
        # again when a queue's settings change and at every heartbeat round.
        self._limited: set[str] = set()
        self._limited_known = False
        # When a full rate-limited queue of ours gets a start back.
        self._rate_reopens: datetime | None = None
        self._heartbeat_ok_at = time.monotonic()
        self._heartbeat_round = asyncio.Event()
        self._heartbeat_rounds = 0  # completed rounds (heartbeat and takeover check)
        self._heartbeat_poke = asyncio.Event()
        self.loader = Loader(
            self.settings.allow_modules,
            app_dir=self.settings.app_dir,
            imports=self.settings.imports,
        )
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._store: Store | None = None
        self._listener: Listener | None = None
        self._running: dict[int, Running] = {}
        self._cancelling: set[int] = set()  # held tasks whose cancellation was delivered
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._side_tasks: list[asyncio.Task[None]] = []
        self._error: BaseException | None = None
        self._shutdown_task: asyncio.Future[None] | None = None
        self._runner_tasks: set[asyncio.Task[None]] = set()
        self._started = False
        self._scheduler: Scheduler | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def run(self) -> None:
        """Run until ``stop()`` is called or the surrounding task is cancelled.

        Raises:
            Exception: the error that made one of the worker's loops fail (the worker stops
                rather than run blind: heartbeating while it no longer claims, say).
        """
        await self.start()
        try:
            await self.wait()
        finally:
            # Cancelling run() means "stop gracefully", not "vanish holding tasks".
            await asyncio.shield(self.stop())
        if self.error is not None:
            raise self.error

    async def wait(self) -> None:
        """Until the worker is asked to stop, or stops itself because a loop failed."""
        await self._stopping.wait()

    @property
    def error(self) -> BaseException | None:
        """Why the worker stopped itself, if a loop of its failed."""
        return self._error

    def _side_task_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._stopping.is_set():
            return
        error = task.exception()
        # A loop that ends on its own is a bug; going on without it would leave a worker that
        # heartbeats (so its tasks are never taken over) but no longer claims, or vice versa.
        self._error = error or RuntimeError(f"{task.get_name()} ended")
        log.error("worker loop failed; stopping", loop=task.get_name(), error=repr(self._error))
        self._stopping.set()

    async def start(self) -> None:
        """Connect, register, and start claiming in the background."""
        if self._started:
            return
        self.loader.import_modules()  # --import: WorkflowNotFound if one does not import
        self._started = True
        structlog.contextvars.bind_contextvars(worker_id=self.id)
        # The embedded default may have to start a server: not on the event loop's thread.
        url = await asyncio.to_thread(resolve_database_url, self.database_url)
        capture.install()
        store = await Store.open(
            url,
            max_size=min(self.concurrency, 20) + 2,
            migrate=uses_embedded_default(self.database_url),
        )
        self._store = store
        listener = Listener(
            url,
            [TASKS_CHANNEL, CANCEL_CHANNEL, TIMERS_CHANNEL, QUEUES_CHANNEL, SCHEDULES_CHANNEL],
            self._on_notify,
            on_reconnect=self._on_reconnect,
        )
        try:
            await listener.start()
            await self._register(store)
        except BaseException:
            await listener.close()
            await store.close()
            raise
        self._listener = listener
        self._scheduler = Scheduler(store, self.loader)
        self._side_tasks = [
            asyncio.create_task(self._claim_loop(), name="durable-claim"),
            asyncio.create_task(self._heartbeat_loop(), name="durable-heartbeat"),
            asyncio.create_task(self._scheduler.run(), name="durable-scheduler"),
        ]
        for side_task in self._side_tasks:
            side_task.add_done_callback(self._side_task_ended)
        log.info("worker started", queues=self.queues, concurrency=self.concurrency)

    async def stop(self) -> None:
        """Stop claiming, give running tasks ``shutdown_grace`` seconds, hand back the rest.

        Idempotent; safe to call from several places at once (they all wait for the one
        shutdown).
        """
        self._stopping.set()
        if not self._started:
            return
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.ensure_future(self._shutdown())
        await asyncio.shield(self._shutdown_task)

    async def _shutdown(self) -> None:
        for task in self._side_tasks:
            task.cancel()
        await asyncio.gather(*self._side_tasks, return_exceptions=True)
        self._side_tasks = []
        if self._running:
            log.info(
                "stopping; letting running effects finish",
                running=len(self._running),
                grace=self.shutdown_grace,
            )
            await self._drain()
        for running in list(self._running.values()):
            running.release()
        if self._runner_tasks:
            await asyncio.gather(*self._runner_tasks, return_exceptions=True)
        store = self._store
        if store is not None:
            with contextlib.suppress(DatabaseUnavailable):
                released = await store.release_tasks(self.id)
                if released:
                    log.info("released tasks to other workers", released=released)
                await store.deregister_worker(self.id)
        if self._listener is not None:
            await self._listener.close()
        if store is not None:
            await store.close()
        self._stopped.set()
        log.info("worker stopped")

    async def _drain(self) -> None:
        """Let effects in flight finish (up to the grace period); start no new ones."""
        waits: list[asyncio.Future[object]] = []
        for running in self._running.values():
            if running.engine is not None:
                running.engine.draining = True
                waits.append(asyncio.ensure_future(_quiet_or_done(running)))
            else:
                waits.append(asyncio.ensure_future(running.done.wait()))
        if waits:
            _done, pending = await asyncio.wait(waits, timeout=self.shutdown_grace)
            for waiter in pending:
                waiter.cancel()

    # -- notifications -----------------------------------------------------------------------

    async def _on_reconnect(self) -> None:
        # Notifications may have been missed while disconnected: look again at everything.
        self._next_wake_known = False
        self._limited_known = False
        self._wake.set()
        with contextlib.suppress(DatabaseUnavailable):  # the next heartbeat round looks again
            await self._recheck_cancellations()

    def _on_notify(self, channel: str, payload: str) -> None:
        if channel == TASKS_CHANNEL:
            if payload in self.queues:
                self._wake.set()
        elif channel == TIMERS_CHANNEL:
            if payload in self.queues:
                # A task was suspended: its timer may be earlier than the one we sleep to.
                self._next_wake_known = False
                self._wake.set()
        elif channel == CANCEL_CHANNEL:
            with contextlib.suppress(ValueError):
                self._cancel(int(payload), missed=False)
        elif channel == SCHEDULES_CHANNEL:
            if self._scheduler is not None:
                self._scheduler.changed.set()
        elif channel == QUEUES_CHANNEL:
            if payload in self.queues:
                self._limited_known = False
                self._wake.set()

    def _cancel(self, task_id: int, *, missed: bool) -> None:
        running = self._running.get(task_id)
        if running is None:
            return
        if task_id not in self._cancelling:  # the re-checks find it again until it ends
            self._cancelling.add(task_id)
            log.info("cancellation requested", task_id=task_id, missed_notify=missed)
        # Called again on every re-check: a run whose engine did not exist yet ignored the
        # earlier calls, and a run that got it already ignores this one.
        running.cancel()

    async def _recheck_cancellations(self) -> None:
        """Deliver the cancellations requested for held tasks whose NOTIFY this worker missed.

        A cancel's NOTIFY reaches only the workers listening at that moment; one sent while
        the LISTEN connection was down is lost. The flag stays in the task's row, so the
        worker reads it again on reconnect and at every heartbeat round (one indexed lookup
        of the tasks it holds; none when it holds nothing).
        """
        assert self._store is not None
        held = list(self._running)
        if not held:
            return
        for task_id in await self._store.cancel_requested(held):
            self._cancel(task_id, missed=True)

    # -- claiming ----------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        assert self._store is not None
        runner = self._make_runner()
        backoff = 0.1
        claim_in_doubt = False
        while not self._stopping.is_set():
            free = self.concurrency - len(self._running)
            claimed_all = False
            try:
                if claim_in_doubt:
                    # The last claim failed on a broken connection: it may have committed.
                    released = await self._store.release_unknown(self.id, list(self._running))
                    if released:
                        log.info(
                            "released tasks of a claim whose reply was lost", released=released
                        )
                    claim_in_doubt = False
                if free > 0:
                    # Cleared before claiming: a notification that lands during the claim sets
                    # it again, and the next turn claims what it announced.
                    self._wake.clear()
                    blocked = self._next_wake if self._timer_due() else None
                    claimed_all = await self._claim(runner, free)
                    if claimed_all or await self._timer_now_due(blocked):
                        continue  # there may be more
            except DatabaseUnavailable as error:
                claim_in_doubt = True
                OUTAGE.failed("claim", error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            OUTAGE.recovered()
            backoff = 0.1
            # A full worker waits for a slot, not for timers or notifications it could not act
            # on (a due timer made it wait 0 s, a wake-up left set returned at once: it spun).
            # Checked and cleared with no await in between: a run that ends after this sets
            # _wake again, and the claim after it reads the database, not the notifications.
            full = len(self._running) >= self.concurrency
            if full:
                self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), timeout=None if full else self._sleep_time()
                )

    async def _claim(self, runner: Runner, free: int) -> bool:
        """Claim up to ``free`` tasks and start them; True if that many were claimed."""
        assert self._store is not None
        batch = await self._store.claim(self.id, self.queues, free, timer_lead=TIMER_LEAD)
        # Started before anything else can fail: a claimed task is never left unstarted.
        for claimed in batch:
            self._start_task(runner, Running(claimed))
        metrics.claimed(batch)
        claimed_count = len(batch)
        if not self._limited_known:
            self._limited = await self._store.limited_queues(self.queues)
            self._limited_known = True
        if self._limited and claimed_count < free:
            more, self._rate_reopens = await self._store.claim_limited(
                self.id, sorted(self._limited), free - claimed_count, timer_lead=TIMER_LEAD
            )
            for claimed in more:
                self._start_task(runner, Running(claimed))
            metrics.claimed(more)
            claimed_count += len(more)
        return claimed_count == free

    async def _timer_now_due(self, blocked: datetime | None) -> bool:
        """Look up the next timer if needed; True if one is due now and worth a claim.

        ``blocked``: the timer that was due before the claim just made. If it is still the
        next one and still due, the claim could not take it: its queue is at a limit (flow
        control). Such a queue's timers are then left to the notifications that free its
        slots (a run of the queue ending or suspending, a setting changed) and to its rate
        window; the worker sleeps until the next timer of its other queues, instead of
        claiming in a loop. (Paused queues' timers are not reported at all: NEXT_WAKE.)
        """
        assert self._store is not None
        if self._next_wake_known and not self._timer_due():
            return False
        self._next_wake = await self._store.next_wake(self.queues, timer_lead=TIMER_LEAD)
        self._next_wake_known = True
        if not self._timer_due():
            return False
        if blocked is None or self._next_wake != blocked:
            return True
        free_queues = [q for q in self.queues if q not in self._limited]
        self._next_wake = (
            await self._store.next_wake(free_queues, timer_lead=TIMER_LEAD) if free_queues else None
        )
        if self._timer_due():
            # Due, unclaimed, in a queue without limits: a row locked by another claim this
            # instant. Its claimer runs it; the polling fallback covers the rest.
            self._next_wake = None
        return False

    def _make_runner(self) -> Runner:
        """The runner of this worker's tasks (a test environment's worker makes its own)."""
        assert self._store is not None
        return Runner(
            self._store,
            self.loader,
            suspend_after=self.suspend_after,
            timer_lead=TIMER_LEAD,
            lease_guard=self._ensure_lease,
            strict=self.settings.strict,
        )

    def _timer_due(self) -> bool:
        return self._next_wake is not None and self._seconds_to_next_wake() <= TIMER_LEAD

    def _seconds_to_next_wake(self) -> float:
        assert self._next_wake is not None
        return (self._next_wake - datetime.now(UTC)).total_seconds()

    def _sleep_time(self) -> float:
        """Until the next timer is due (less the lead), a rate-limited queue gets a start back,
        or the polling fallback."""
        sleep = self.poll_interval
        if self._next_wake is not None:
            sleep = min(sleep, self._seconds_to_next_wake() - TIMER_LEAD)
        if self._rate_reopens is not None:
            reopens_in = (self._rate_reopens - datetime.now(UTC)).total_seconds()
            if reopens_in > 0:
                sleep = min(sleep, reopens_in)
            else:
                self._rate_reopens = None  # passed: the claim just made has seen it
        return max(0.0, sleep)

    def _start_task(self, runner: Runner, running: Running) -> None:
        task_id = running.claimed.id
        self._running[task_id] = running
        if running.claimed.cancel_requested:
            self._cancelling.add(task_id)  # the claim delivers it: the re-checks need not say so
        run = tracing.traced_run(runner.store, running.claimed, runner.run(running))
        task = asyncio.create_task(run, name=f"durable-task-{task_id}")
        self._runner_tasks.add(task)
        metrics.slots_in_use(len(self._running))

        def finished(done: asyncio.Task[None]) -> None:
            self._runner_tasks.discard(done)
            self._running.pop(task_id, None)
            self._cancelling.discard(task_id)
            metrics.slots_in_use(len(self._running))
            self._wake.set()  # a slot is free
            if running.claimed.queue in self._limited and self._store is not None:
                # A slot of a limited queue may be free: the fleet's idle workers look again.
                self._store.wakeups.send(TASKS_CHANNEL, running.claimed.queue)
            if not done.cancelled() and done.exception() is not None:
                log.error("runner crashed", task_id=task_id, error=repr(done.exception()))

        task.add_done_callback(finished)

    # -- heartbeat ---------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        assert self._store is not None
        while True:
            sent_at = time.monotonic()
            try:
                alive = await self._store.heartbeat(self.id)
                if not alive:
                    self._lost_registration()
                    await self._register(self._store)
                self._heartbeat_ok_at = sent_at
                exited = await self._exited_local_workers()
                reclaimed = await self._store.reclaim(self.max_attempts, exited)
                metrics.took_over(reclaimed.resumed, reclaimed.abandoned)
                if reclaimed.dead_workers or reclaimed.resumed or reclaimed.abandoned:
                    log.warning(
                        "took over the tasks of dead workers",
                        dead_workers=reclaimed.dead_workers,
                        resumed=reclaimed.resumed,
                        abandoned=reclaimed.abandoned,
                    )
                next_expiry_in = reclaimed.next_expiry_in
                await self._recheck_cancellations()
                self._limited_known = False  # a queue's change may have gone unannounced
            except DatabaseUnavailable as error:
                OUTAGE.failed("heartbeat", error)
                next_expiry_in = None
            else:
                OUTAGE.recovered()
            self._heartbeat_rounds += 1
            log.debug("heartbeat round", round=self._heartbeat_rounds)
            round_done, self._heartbeat_round = self._heartbeat_round, asyncio.Event()
            round_done.set()
            self._heartbeat_poke.clear()
            # The next round at the next heartbeat, or as soon as a silent worker's lease runs
            # out if that is sooner: its tasks are taken over at lease_timeout, not up to a
            # heartbeat interval after it.
            wait = self.heartbeat_interval
            if next_expiry_in is not None:
                wait = min(wait, max(next_expiry_in + EXPIRY_MARGIN, EXPIRY_MARGIN))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._heartbeat_poke.wait(), wait)

    async def _register(self, store: Store) -> None:
        """This worker's row in durable.workers, with its own lease timeout (others judge it
        by that one) and the identity that lets workers of its machine see it exit."""
        await store.register_worker(
            self.id,
            socket.gethostname(),
            os.getpid(),
            self.queues,
            self.concurrency,
            self.lease_timeout,
            self._local_identity,
        )

    async def _exited_local_workers(self) -> list[str]:
        """Workers of this machine and pid namespace whose process is gone (liveness.py):
        their tasks are taken over now rather than when their lease runs out."""
        assert self._store is not None
        if self._local_identity is None:
            return []
        others = await self._store.local_workers(self._local_identity, self.id)
        return [worker_id for worker_id, pid in others if liveness.has_exited(pid)]

    def _lease_fresh(self) -> bool:
        # Others take our tasks once our heartbeat is lease_timeout old (by their clock);
        # half of it leaves room for clock rates and a slow round trip.
        return time.monotonic() - self._heartbeat_ok_at < self.lease_timeout / 2

    async def _ensure_lease(self) -> None:
        """Return once a recent heartbeat proves this worker still holds its tasks.

        Checked before a step's code runs: a worker that was frozen (SIGSTOP, a VM pause)
        past its lease must not run a step that the worker which took over may have run.
        If the next heartbeat finds we were declared dead, our runs are dropped instead.
        """
        while not self._lease_fresh():
            round_done = self._heartbeat_round
            self._heartbeat_poke.set()
            await round_done.wait()

    def _lost_registration(self) -> None:
        # Our row is gone: another worker declared us dead (a long pause, a frozen VM) and
        # handed our tasks to others. Fencing already refuses our writes; stop running them.
        log.warning("this worker was declared dead; dropping its tasks", running=len(self._running))
        for running in list(self._running.values()):
            running.release()


async def _quiet_or_done(running: Running) -> None:
    """Until the run has no effect in flight (it will be handed over) or has ended."""
    assert running.engine is not None
    engine = running.engine
    while not running.done.is_set():
        if engine.active == 0:
            # Let a write that follows a finished step start before calling the run quiet.
            for _ in range(3):
                await asyncio.sleep(0)
            if engine.active == 0:
                return
        quiet = asyncio.ensure_future(engine.quiet.wait())
        done = asyncio.ensure_future(running.done.wait())
        await asyncio.wait([quiet, done], return_when=asyncio.FIRST_COMPLETED)
        quiet.cancel()
        done.cancel()
