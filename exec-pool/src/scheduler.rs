//! [`PoolScheduler`] and its `schedule()` sender, whose operation state is
//! the queue node.

use core::convert::Infallible;
use core::fmt;
use core::pin::Pin;

use exec_core::{CompletionScheduler, Env, OperationState, Receiver, Scheduler, Sender, SenderTo};
#[cfg(not(loom))]
use exec_core::{DynScheduler, SchedulerRef, TaskNode};

use crate::handle::PoolRef;
use crate::job::{Job, Mode, Payload};
#[cfg(not(loom))]
use crate::job::{JobHeader, JobRef};
#[cfg(not(loom))]
use crate::loom::sync::Arc;

/// A handle to a [`ThreadPool`](crate::ThreadPool): its
/// [`schedule`](Scheduler::schedule) sender completes on one of the pool's
/// workers.
///
/// Cheap to clone (one reference count); two handles are equal when they
/// refer to the same pool. A handle outlives its pool: once the pool is shut
/// down, `schedule()` completes *stopped*.
///
/// ```
/// use exec_core::{sync_wait, Scheduler, SenderExt};
/// use exec_pool::ThreadPool;
///
/// let pool = ThreadPool::builder().threads(2).build().unwrap();
/// let sched = pool.scheduler();
/// let name = sync_wait(sched.schedule().then(|()| {
///     std::thread::current().name().map(str::to_owned)
/// }));
/// assert!(name.unwrap().unwrap().unwrap().starts_with("exec-pool"));
/// assert!(sched == pool.scheduler());
/// ```
#[derive(Clone)]
pub struct PoolScheduler {
    pub(crate) shared: PoolRef,
}

impl PoolScheduler {
    /// Whether the calling thread is one of this pool's workers.
    ///
    /// ```
    /// use exec_core::{sync_wait, Scheduler, SenderExt};
    /// let pool = exec_pool::ThreadPool::builder().threads(1).build().unwrap();
    /// let sched = pool.scheduler();
    /// assert!(!sched.is_worker_thread());
    /// let s2 = sched.clone();
    /// assert_eq!(sync_wait(sched.schedule().then(move |()| s2.is_worker_thread())), Ok(Some(true)));
    /// ```
    pub fn is_worker_thread(&self) -> bool {
        self.shared.current_worker().is_some()
    }

    /// The number of worker threads of the pool.
    ///
    /// ```
    /// let pool = exec_pool::ThreadPool::builder().threads(3).build().unwrap();
    /// assert_eq!(pool.scheduler().num_threads(), 3);
    /// ```
    pub fn num_threads(&self) -> usize {
        self.shared.workers.len()
    }
}

impl PartialEq for PoolScheduler {
    fn eq(&self, other: &Self) -> bool {
        self.shared.ptr_eq(&other.shared)
    }
}
impl Eq for PoolScheduler {}

impl fmt::Debug for PoolScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolScheduler")
            .field("pool", &self.shared.as_ptr())
            .finish()
    }
}

impl Scheduler for PoolScheduler {
    type Sender = ScheduleSender;
    #[inline]
    fn schedule(&self) -> ScheduleSender {
        ScheduleSender {
            shared: self.shared.clone(),
        }
    }
    /// The pool itself: [`on`](exec_core::on) inside
    /// [`starts_on`](exec_core::starts_on)`(pool, …)` comes back to the pool,
    /// through a node queued like any job (no allocation).
    #[cfg(not(loom))]
    fn erased(&self) -> Option<SchedulerRef<'_>> {
        // `PoolRef::as_ptr` carries the provenance of the whole `Arc`
        // allocation (it comes from `Arc::as_ptr`): `enqueue` takes a
        // reference count through it.
        let ptr = core::ptr::NonNull::new(self.shared.as_ptr().cast_mut())?;
        // SAFETY: the `Arc` in `self` keeps the pool state alive for the
        // borrow of `self`.
        Some(unsafe { SchedulerRef::from_ptr(ptr) })
    }
}

// SAFETY: a node becomes a job queued once and executed once by a worker
// (or cancelled once, with `stopped`, by a shut-down pool), like a schedule
// operation's. `this` is only ever a `Shared` inside an `Arc`, with that
// allocation's provenance (the one `SchedulerRef` to a `Shared` is made from
// `Arc::as_ptr` in `PoolScheduler::erased`); off the pool we take our own
// reference before submitting, and on a worker the worker's thread holds
// one, so the pool state stays alive across the submission even if the
// node's completion frees the handle it came from.
#[cfg(not(loom))]
unsafe impl DynScheduler for crate::worker::Shared {
    unsafe fn enqueue(this: core::ptr::NonNull<Self>, node: core::ptr::NonNull<TaskNode>) {
        let ptr: *const Self = this.as_ptr();
        // SAFETY: the node is a `TaskNode` (which `JobHeader` wraps
        // transparently) derived from its whole operation state, alive until
        // executed and queued nowhere else (the caller's contract); this is
        // the only `JobRef` made for it.
        let job = unsafe { JobRef::new(node.as_ptr().cast::<JobHeader>()) };
        // SAFETY: alive when called, per the contract.
        let this_ref = unsafe { &*ptr };
        if let Some(index) = this_ref.current_worker() {
            // On one of this pool's workers, whose thread owns an
            // `Arc<Shared>` until it exits (`worker::main`): the state
            // outlives this call without a count of our own, which would be
            // two read-modify-writes on the `Arc`'s line, shared by all
            // workers.
            this_ref.submit_local(index, job, true);
            return;
        }
        // SAFETY: `ptr` is the pointee of a live `Arc<Shared>` (see above),
        // alive when called per the contract.
        let shared = unsafe {
            Arc::increment_strong_count(ptr);
            Arc::from_raw(ptr)
        };
        shared.submit_remote(job);
        drop(shared);
    }
}

/// Sender of [`PoolScheduler::schedule`].
///
/// # Completion
/// - value: `()`, on a worker of the pool.
/// - error: never.
/// - stopped: if the receiver's stop token is triggered when a worker gets
///   to it, or if the pool is (or gets) shut down before it runs.
///
/// # Cancellation
/// The stop token is checked when a worker picks the operation up; a queued
/// operation is not removed from its queue early.
///
/// # Panics
/// Never itself. If the receiver's completion panics on the worker, the
/// panic is contained there (the worker survives) and counted; algorithms
/// from exec-core never let that happen, they deliver user panics through
/// [`Receiver::set_panic`].
///
/// # Example
/// ```
/// use exec_core::{sync_wait, Scheduler, SenderExt};
/// let pool = exec_pool::ThreadPool::new();
/// let data = vec![1, 2, 3];
/// // Borrows `data` from this stack frame: no `'static` needed.
/// let sum = sync_wait(pool.scheduler().schedule().then(|()| data.iter().sum::<i32>()));
/// assert_eq!(sum, Ok(Some(6)));
/// ```
///
/// # See also
/// [`ThreadPool`](crate::ThreadPool), [`bulk`](crate::bulk).
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone)]
pub struct ScheduleSender {
    shared: PoolRef,
}

impl fmt::Debug for ScheduleSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScheduleSender").finish_non_exhaustive()
    }
}

impl Sender for ScheduleSender {
    type Output = ();
    type Error = Infallible;
}

impl CompletionScheduler for ScheduleSender {
    type Scheduler = PoolScheduler;
    fn completion_scheduler(&self) -> PoolScheduler {
        PoolScheduler {
            shared: self.shared.clone(),
        }
    }
}

impl<R: Receiver<(), Infallible> + Send> SenderTo<R> for ScheduleSender {
    type Operation = ScheduleOp<R>;
    #[inline]
    fn connect(self, receiver: R) -> ScheduleOp<R> {
        ScheduleOp {
            job: Job::new(Complete(receiver)),
            shared: Some(self.shared),
        }
    }
}

/// The payload of a schedule operation (of the pool's [`ScheduleOp`] and of
/// the blocking pool's [`BlockingOp`](crate::BlockingOp)): its receiver,
/// completed stopped if the job is cancelled or a stop was requested, else
/// with `()`.
pub(crate) struct Complete<R>(pub(crate) R);

impl<R: Receiver<(), Infallible> + Send> Payload for Complete<R> {
    #[inline]
    fn run(self, mode: Mode) {
        let r = self.0;
        if mode == Mode::Cancel || r.env().stop_token().stop_requested() {
            r.set_stopped();
        } else {
            r.set_value(());
        }
    }
}

/// Operation state of [`ScheduleSender`]: the queue node itself (`schedule`
/// allocates nothing).
pub struct ScheduleOp<R> {
    job: Job<Complete<R>>,
    /// The pool; moved out at `start` (the queued job does not need it: the
    /// pool outlives every queued job, see `ThreadPool`'s drop).
    shared: Option<PoolRef>,
}

impl<R> fmt::Debug for ScheduleOp<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScheduleOp").finish_non_exhaustive()
    }
}

impl<R: Receiver<(), Infallible> + Send> OperationState for ScheduleOp<R> {
    #[inline]
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: `job` is structurally pinned (never moved out of); `shared`
        // is not, and we only take it out of its `Option`.
        let this = unsafe { self.get_unchecked_mut() };
        let Some(shared) = this.shared.take() else {
            return; // started twice: the contract forbids it; do nothing
        };
        // SAFETY: `this.job` is pinned inside the pinned op; `start`'s
        // contract keeps the op alive until it completes, which happens only
        // when the job is executed; `shared` was present, so this is the
        // first and only `job_ref` call.
        let job = unsafe { Pin::new_unchecked(&this.job).job_ref() };
        match shared.current_worker() {
            Some(index) => {
                // On worker `index` of this pool, whose thread keeps the
                // pool's state alive until it exits (`worker::main`, and its
                // open `PoolRef` shard): our handle can go first, and the
                // job goes straight into the worker's LIFO slot.
                let state: *const crate::worker::Shared = shared.as_ptr();
                drop(shared);
                // SAFETY: alive, see above; the job may complete (and the op
                // be freed) during the call, which touches only the state.
                unsafe { (*state).submit_local(index, job, true) };
            }
            None => {
                // Our own reference keeps the pool's state alive across the
                // submission, during which the job may complete and the op
                // be freed.
                shared.submit_remote(job);
                drop(shared);
            }
        }
    }
}

// As for `ThreadPool`: a handle observes no broken state after a panic.
impl std::panic::UnwindSafe for PoolScheduler {}
impl std::panic::RefUnwindSafe for PoolScheduler {}
