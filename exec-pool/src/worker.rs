//! The state the workers share, how work is submitted, and the worker loop.

use core::cell::Cell;

use crossbeam_utils::CachePadded;

use crate::handle::PoolRef;
use crate::idle::Idle;
use crate::job::{JobRef, Mode};
use crate::loom::sync::Arc;
use crate::loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::queue::{Injector, LifoSlot, LocalQueue};

/// How many times in a row a worker runs its LIFO slot before it gives the
/// rest of its queue a turn (tokio uses 3).
const MAX_LIFO_STREAK: u32 = 3;
/// Every this many jobs a worker looks at the injector first (fairness).
const INJECTOR_INTERVAL: u32 = 61;
/// How long an idle worker keeps searching before it announces it will
/// sleep: about the cost of the futex wake it saves (10–20 µs here), a few
/// times over. (No spinning under loom.)
#[cfg(not(loom))]
const SPIN_TIME: std::time::Duration = std::time::Duration::from_micros(50);
/// How much of [`SPIN_TIME`] is spent with pause hints only, before the
/// worker starts yielding its core between attempts (see `spin_for_work`).
/// Short: when the thread that submits the next job shares this core (the
/// other one busy elsewhere), every microsecond paused here is added to its
/// round trip (10 µs → ~25 µs per `sync_wait` round trip, 2 µs → ~9 µs,
/// about what tokio takes; with a free core the round trip is ~0.25 µs).
#[cfg(not(loom))]
const PAUSE_TIME: std::time::Duration = std::time::Duration::from_micros(2);
/// After a steal that took a single job (the victim's queue held one or
/// two), a worker takes nothing more from other workers' queues for this
/// long, except as a last resort before it sleeps (see `steal`).
///
/// A worker that pushes many small jobs one at a time (a `when_all_vec`
/// fan-out started on it) is otherwise raided job by job: every raid
/// pulls the queue's lines to the thief's core, and the owner's next push
/// waits for them to come back (its LIFO `xchg` and the notify fence drain
/// the store), so each child costs a cache-line round trip between cores
/// on both sides. Left alone for a while, the owner fills its queue at full
/// speed and the next steal takes half of a longer queue. Measured here
/// (2 workers, A/B alternating in one process): a 1,000-child fan-out
/// 48–77 → 30–33 ns per child, and 370–415 → 67–77 when the VM is in its
/// slow mode (1 µs: 0.53–0.57×, 3 µs: 0.39–0.40×, 10 µs: 0.18–0.19× of the
/// time without); yield_many, spawn_many and a recursive fork-join
/// unchanged (0.97–1.02×). A job queued meanwhile waits at most this long
/// for this worker (its owner may run it first); the idle protocol is
/// unaffected (a worker in back-off still re-checks every queue, ignoring
/// it, before it sleeps).
#[cfg(not(loom))]
const STEAL_BACKOFF: std::time::Duration = std::time::Duration::from_micros(10);

/// One worker's queues, visible to the others (for stealing).
pub(crate) struct WorkerQueues {
    pub(crate) queue: LocalQueue,
    pub(crate) lifo: CachePadded<LifoSlot>,
}

/// Hooks run on every worker thread.
pub(crate) type Hook = std::sync::Arc<dyn Fn() + Send + Sync>;

/// Everything the pool's threads and its scheduler handles share.
///
/// Aligned to a cache-line pair so that the `Arc`'s reference counts,
/// which every `schedule()` sender bumps from every worker, sit on a line of
/// their own instead of the one holding `workers` and `shutdown` (read by
/// every submission and every turn of the worker loop). The injector and
/// the idle set, written by submissions and by workers going to sleep, get
/// lines of their own for the same reason.
#[repr(align(128))]
pub(crate) struct Shared {
    pub(crate) workers: Box<[WorkerQueues]>,
    /// Reference counts of the `PoolRef`s (see `handle.rs`): one per
    /// worker (up to `handle::SHARDS - 1`), then one for every other thread.
    pub(crate) shards: Box<[CachePadded<crate::handle::Shard>]>,
    pub(crate) injector: CachePadded<Injector>,
    pub(crate) idle: CachePadded<Idle>,
    /// Set once by shutdown (Release); workers stop running jobs and cancel
    /// what is left.
    pub(crate) shutdown: AtomicBool,
    /// Panics that escaped a job (a receiver's completion panicked) and were
    /// contained by the worker.
    pub(crate) escaped_panics: AtomicUsize,
    pub(crate) on_start: Option<Hook>,
    pub(crate) on_stop: Option<Hook>,
    #[cfg(not(loom))]
    pub(crate) blocking: crate::blocking::BlockingPool,
}

/// The worker running on this thread, if any: its pool, its index, and its
/// `PoolRef` shard (computed once, when the thread becomes the worker, so
/// that counting a handle needs no more than this thread-local).
#[derive(Clone, Copy)]
pub(crate) struct Current {
    /// The pool; null on threads that are no pool's worker.
    pool: *const Shared,
    index: usize,
    pub(crate) shard: usize,
    /// The `local` count of the shard if this worker owns it (see
    /// `handle.rs`), else null. Points into the pool's state, which the
    /// worker's thread keeps alive while it is the worker.
    pub(crate) local: *const AtomicUsize,
}

impl Current {
    const NONE: Current = Current {
        pool: core::ptr::null(),
        index: 0,
        shard: 0,
        local: core::ptr::null(),
    };
}

#[cfg(not(loom))]
std::thread_local! {
    static CURRENT: Cell<Current> = const { Cell::new(Current::NONE) };
}
#[cfg(loom)]
::loom::thread_local! {
    static CURRENT: Cell<Current> = Cell::new(Current::NONE);
}

impl Shared {
    pub(crate) fn new(
        threads: usize,
        on_start: Option<Hook>,
        on_stop: Option<Hook>,
        #[cfg(not(loom))] blocking: crate::blocking::BlockingPool,
    ) -> Self {
        Shared {
            workers: (0..threads)
                .map(|_| WorkerQueues {
                    queue: LocalQueue::new(),
                    lifo: CachePadded::new(LifoSlot::new()),
                })
                .collect(),
            shards: {
                // One shard per worker, then the outside one; surplus workers
                // of a very large pool share the last worker shard.
                let n = (threads + 1).min(crate::handle::SHARDS);
                let outside = n - 1;
                let shared_last = threads > outside;
                (0..n)
                    .map(|i| {
                        let owned = i < outside && !(shared_last && i == outside - 1);
                        CachePadded::new(crate::handle::Shard::new(owned))
                    })
                    .collect()
            },
            injector: CachePadded::new(Injector::new()),
            idle: CachePadded::new(Idle::new(threads)),
            shutdown: AtomicBool::new(false),
            escaped_panics: AtomicUsize::new(0),
            on_start,
            on_stop,
            #[cfg(not(loom))]
            blocking,
        }
    }

    /// The index of the calling thread if it is one of this pool's workers.
    #[inline]
    pub(crate) fn current_worker(&self) -> Option<usize> {
        let c = CURRENT.with(Cell::get);
        core::ptr::eq(c.pool, self).then_some(c.index)
    }

    /// Makes the calling thread count as worker `index` of this pool, or as
    /// no worker with `None` (see `PoolRef::enter_worker`).
    pub(crate) fn set_current_worker(&self, index: Option<usize>) {
        let v = match index {
            Some(index) => {
                let shard = self.worker_shard(index);
                Current {
                    pool: self,
                    index,
                    shard,
                    local: self.shards[shard].local_if_owned(),
                }
            }
            None => Current::NONE,
        };
        CURRENT.with(|c| c.set(v));
    }

    /// The `PoolRef` shard of the calling thread: its worker's shard, or the
    /// last shard for threads that are not workers of this pool.
    #[inline]
    pub(crate) fn current_shard(&self) -> usize {
        let c = CURRENT.with(Cell::get);
        if core::ptr::eq(c.pool, self) {
            c.shard
        } else {
            self.shards.len() - 1
        }
    }

    /// The calling thread's worker of this pool (its shard, and its owned
    /// shard's `local` count), if it is one.
    #[inline]
    pub(crate) fn current(&self) -> Option<Current> {
        let c = CURRENT.with(Cell::get);
        core::ptr::eq(c.pool, self).then_some(c)
    }

    /// The `PoolRef` shard of worker `index`.
    #[inline]
    pub(crate) fn worker_shard(&self, index: usize) -> usize {
        let outside = self.shards.len() - 1;
        // Surplus workers of a very large pool share the last worker shard
        // (or, with one shard per worker short, the outside one).
        index.min(outside.saturating_sub(1))
    }

    /// Queues `job` on worker `index` (the calling thread): into the LIFO
    /// slot if `lifo` (displacing the previous occupant into the local
    /// queue), else at the back of the local queue; then wakes a sleeping
    /// worker if there is one. On a shut-down pool the job is cancelled.
    ///
    /// The job may have run (and its operation been freed) by the time this
    /// returns; the caller must keep `self` alive across the call by other
    /// means than that operation (on a worker, the worker's thread does).
    #[inline]
    pub(crate) fn submit_local(&self, index: usize, job: JobRef, lifo: bool) {
        let w = &self.workers[index];
        let to_queue = if lifo { w.lifo.put(job) } else { Some(job) };
        if let Some(job) = to_queue {
            self.push_local(w, job);
        }
        self.idle.notify_one();
    }

    /// Pushes `job` onto the local queue `w` of the calling worker (out of
    /// line: the LIFO slot is the common case of `submit_local`).
    #[inline(never)]
    fn push_local(&self, w: &WorkerQueues, job: JobRef) {
        if let Err(rejected) = w.queue.push(job, &self.injector) {
            // Overflow into a closed injector: the pool is shutting down.
            for job in rejected {
                run_contained(self, job, Mode::Cancel);
            }
        }
    }

    /// Queues `job` into the injector (from outside the pool).
    pub(crate) fn submit_remote(&self, job: JobRef) {
        match self.injector.push(job) {
            Ok(()) => self.idle.notify_one(),
            Err(job) => job.execute(Mode::Cancel),
        }
    }

    /// Whether any queue looked non-empty (racy; used after the fence of
    /// `Idle::prepare_sleep`).
    fn has_work(&self) -> bool {
        !self.injector.is_empty()
            || self
                .workers
                .iter()
                .any(|w| !w.queue.is_empty() || !w.lifo.is_empty())
    }

    /// Begins shutdown: refuses new work, cancels what is in the injector,
    /// wakes every worker (they cancel what is in their own queues and exit).
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
        for job in self.injector.close() {
            run_contained(self, job, Mode::Cancel);
        }
        self.idle.notify_all();
    }

    /// Cancels everything left in every local queue (after the workers
    /// exited; only then may anyone but the owners pop from them).
    pub(crate) fn drain_all(&self) {
        for w in self.workers.iter() {
            while let Some(job) = w.lifo.take() {
                run_contained(self, job, Mode::Cancel);
            }
            while let Some(job) = w.queue.pop() {
                run_contained(self, job, Mode::Cancel);
            }
        }
    }
}

/// Executes `job`, containing a panic that escapes it (a receiver's
/// completion method panicked): the worker survives, the job has completed
/// (its receiver was consumed), and the panic is counted.
#[inline]
pub(crate) fn run_contained(shared: &Shared, job: JobRef, mode: Mode) {
    if exec_core::catch_unwind(move || job.execute(mode)).is_err() {
        shared.escaped_panics.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a spell of spinning found.
#[cfg(not(loom))]
enum Spin {
    Found(JobRef),
    Nothing,
    Shutdown,
}

/// A worker's private state.
struct Worker<'a> {
    shared: &'a Shared,
    index: usize,
    tick: u32,
    lifo_streak: u32,
    rng: u32,
    /// Set after a steal that took a single job: no stealing (except as a
    /// last resort) before this instant (see [`STEAL_BACKOFF`]).
    #[cfg(not(loom))]
    steal_after: Option<std::time::Instant>,
}

impl Worker<'_> {
    /// Finds the next job: the injector now and then, the LIFO slot (a few
    /// times in a row at most, unless the local queue is empty), the local
    /// queue, the injector, other
    /// workers' queues. `last_resort` also takes other workers' LIFO slots.
    #[inline]
    fn find_work(&mut self, last_resort: bool) -> Option<JobRef> {
        self.tick = self.tick.wrapping_add(1);
        // The common case, inline: not the injector's turn, and the LIFO
        // slot may go again — because the streak allows it, or because the
        // local queue is empty, so that nobody waits for a turn (a chain of
        // tasks each scheduling the next stays on this path instead of
        // taking the slow one every time once the streak is used up).
        // (Exactly what `find_work_slow` does first in those cases.)
        if !self.tick.is_multiple_of(INJECTOR_INTERVAL) {
            let me = &self.shared.workers[self.index];
            if self.lifo_streak < MAX_LIFO_STREAK {
                if let Some(job) = me.lifo.take() {
                    self.lifo_streak += 1;
                    return Some(job);
                }
            } else if me.queue.is_empty()
                && let Some(job) = me.lifo.take()
            {
                return Some(job);
            }
        }
        self.find_work_slow(last_resort)
    }

    /// The rest of [`find_work`](Self::find_work), after `tick` advanced.
    #[inline(never)]
    fn find_work_slow(&mut self, last_resort: bool) -> Option<JobRef> {
        let shared = self.shared;
        if self.tick.is_multiple_of(INJECTOR_INTERVAL)
            && let Some(job) = shared.injector.pop()
        {
            return Some(job);
        }
        let me = &shared.workers[self.index];
        // With nothing in the local queue there is nobody here to give a
        // turn to (the injector has its own turns, above): pushing the LIFO
        // job to the back of the queue would only pop it again.
        if self.lifo_streak < MAX_LIFO_STREAK || me.queue.is_empty() {
            if let Some(job) = me.lifo.take() {
                self.lifo_streak = self.lifo_streak.saturating_add(1);
                return Some(job);
            }
        } else if let Some(job) = me.lifo.take() {
            // Give the queue a turn: the LIFO job goes to its back.
            self.lifo_streak = 0;
            if let Err(rejected) = me.queue.push(job, &shared.injector) {
                for job in rejected {
                    run_contained(shared, job, Mode::Cancel);
                }
            }
        }
        self.lifo_streak = 0;
        if let Some(job) = me.queue.pop() {
            return Some(job);
        }
        if let Some(job) = shared
            .injector
            .pop_batch_into(&me.queue, crate::queue::CAP / 2)
        {
            return Some(job);
        }
        self.steal(last_resort)
    }

    /// Takes half of another worker's queue (the first job to run now, the
    /// rest into ours), from a random victim on. Not within
    /// [`STEAL_BACKOFF`] of a steal that took a single job, unless
    /// `last_resort` (which also takes other workers' LIFO slots).
    fn steal(&mut self, last_resort: bool) -> Option<JobRef> {
        let n = self.shared.workers.len();
        if n <= 1 {
            return None;
        }
        // xorshift: a cheap random starting victim.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 17;
        self.rng ^= self.rng << 5;
        let start = self.rng as usize % n;
        let me = &self.shared.workers[self.index];
        #[cfg(not(loom))]
        if let Some(until) = self.steal_after {
            if !last_resort && std::time::Instant::now() < until {
                return None;
            }
            self.steal_after = None;
        }
        for i in 0..n {
            let victim = (start + i) % n;
            if victim == self.index {
                continue;
            }
            let v = &self.shared.workers[victim];
            if let Some(job) = v.queue.steal_into(&me.queue) {
                // Our queue was empty (we only steal then): still empty,
                // the steal took this one job. Back off (`STEAL_BACKOFF`).
                #[cfg(not(loom))]
                if me.queue.is_empty() {
                    self.steal_after = Some(std::time::Instant::now() + STEAL_BACKOFF);
                }
                return Some(job);
            }
            if last_resort && let Some(job) = v.lifo.take() {
                return Some(job);
            }
        }
        None
    }

    /// Searches for work for up to [`SPIN_TIME`]: for the first
    /// [`PAUSE_TIME`] with CPU pause hints between attempts, then yielding
    /// the core between attempts.
    ///
    /// The pause phase is what catches the next job of a request/response
    /// pattern (a `sync_wait` round trip takes about 1 µs): measured here, a
    /// `yield_now` costs 0.7 µs even on an idle machine and, when other
    /// processes' threads are runnable, gives the core away for a whole
    /// slice, so a worker that yields from the start misses the next job
    /// and parks. The yield phase keeps an idle worker from holding a core
    /// the submitting thread needs for longer than `PAUSE_TIME`.
    #[cfg(not(loom))]
    fn spin_for_work(&mut self) -> Spin {
        let started = std::time::Instant::now();
        let mut round = 0u32;
        loop {
            let elapsed = started.elapsed();
            if elapsed < PAUSE_TIME {
                for _ in 0..(1u32 << round.min(6)) {
                    crate::loom::spin();
                }
            } else {
                // Let other threads (the submitter) run on a busy machine.
                std::thread::yield_now();
            }
            round += 1;
            if self.shared.shutdown.load(Ordering::Acquire) {
                return Spin::Shutdown;
            }
            let last = elapsed >= SPIN_TIME;
            if let Some(job) = self.find_work(last) {
                return Spin::Found(job);
            }
            if last {
                return Spin::Nothing;
            }
        }
    }

    fn run(&mut self) {
        let shared = self.shared;
        loop {
            if shared.shutdown.load(Ordering::Acquire) {
                return;
            }
            if let Some(job) = self.find_work(false) {
                run_contained(shared, job, Mode::Run);
                continue;
            }
            // Spin a little: waking a parked thread costs far more. While
            // we spin, submitters wake nobody (idle.md, "Spinning workers").
            #[cfg(not(loom))]
            let found = {
                shared.idle.start_spinning();
                let spin = self.spin_for_work();
                let last = shared.idle.stop_spinning();
                match spin {
                    Spin::Found(job) => {
                        // We may have silenced a submitter whose job is
                        // still queued: as the last spinner, wake a sleeper
                        // for it.
                        if last {
                            shared.idle.notify_one();
                        }
                        Some(job)
                    }
                    // Announcing sleep and re-checking every queue (below)
                    // follows the decrement: that covers silenced jobs.
                    Spin::Nothing => None,
                    Spin::Shutdown => return,
                }
            };
            #[cfg(loom)]
            let found: Option<JobRef> = None;
            if let Some(job) = found {
                run_contained(shared, job, Mode::Run);
                continue;
            }
            shared.idle.prepare_sleep(self.index);
            // Re-check after announcing (idle.md): work pushed before the
            // announcement is visible now; later pushes will wake us.
            if shared.shutdown.load(Ordering::Acquire) {
                shared.idle.cancel_sleep(self.index);
                return;
            }
            if shared.has_work() {
                shared.idle.cancel_sleep(self.index);
                if let Some(job) = self.find_work(true) {
                    run_contained(shared, job, Mode::Run);
                }
                continue;
            }
            shared.idle.park(self.index);
        }
    }
}

/// The body of worker thread `index`.
pub(crate) fn main(shared: Arc<Shared>, index: usize) {
    let shared_ref: &Shared = &shared;
    // Worker `index` from here on, with its `PoolRef` shard open: the
    // schedule senders it makes and drops count there without any
    // read-modify-write (handle.rs).
    // (Closed again by the guard's drop, even if this thread unwinds.)
    let keep_shard = LeaveWorker(Some(PoolRef::enter_worker(&PoolRef::new(&shared), index)));
    let guard = exec_core::NonBlockingGuard::enter("an exec-pool worker");
    if let Some(hook) = &shared.on_start {
        let _ = exec_core::catch_unwind(|| hook());
    }
    let mut worker = Worker {
        shared: shared_ref,
        index,
        tick: 0,
        lifo_streak: 0,
        rng: (index as u32).wrapping_mul(0x9E37_79B9) | 1,
        #[cfg(not(loom))]
        steal_after: None,
    };
    worker.run();
    // Shutdown: cancel what is left in our own queues. Jobs pushed by a job
    // we ran are in them; nobody pushes to them any more.
    let me = &shared.workers[index];
    while let Some(job) = me.lifo.take().or_else(|| me.queue.pop()) {
        run_contained(shared_ref, job, Mode::Cancel);
    }
    if let Some(hook) = &shared.on_stop {
        let _ = exec_core::catch_unwind(|| hook());
    }
    drop(guard);
    drop(keep_shard);
}

/// Makes the worker leave (`PoolRef::leave_worker`) when dropped.
struct LeaveWorker(Option<PoolRef>);

impl Drop for LeaveWorker {
    fn drop(&mut self) {
        if let Some(keep) = self.0.take() {
            PoolRef::leave_worker(keep);
        }
    }
}
