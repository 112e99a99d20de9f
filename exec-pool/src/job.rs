//! The intrusive task header every queued operation embeds.
//!
//! A [`JobHeader`] is the first field of a `#[repr(C)]` operation state (the
//! schedule operation, a `bulk` helper). The pool's queues hold [`JobRef`]s —
//! pointers to those headers — so queueing allocates nothing: the pinned
//! operation state *is* the queue node.
//!
//! # Invariants
//! - A `JobRef` is created (by [`JobRef::new`]) only for a header inside a
//!   started operation state, which by `OperationState::start`'s contract
//!   stays alive and in place until it completes.
//! - At any time a given `JobRef` is held by exactly one owner: one queue
//!   slot that has not been claimed, the injector list, a LIFO slot, or the
//!   thread that popped it. Queues hand it over with Release/Acquire
//!   (or a mutex), so the thread that executes it sees everything written
//!   before it was submitted.
//! - It is executed exactly once, by [`JobRef::execute`] with
//!   [`Mode::Run`] or [`Mode::Cancel`]; after that call returns, nobody
//!   touches it again (the operation may already have been freed).

use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use exec_core::TaskNode;

use crate::loom::cell::UnsafeCell;

/// How a job is executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Run the work (complete the operation on this worker).
    Run,
    /// The pool is shutting down: complete without running (*stopped*).
    Cancel,
}

/// The queue node embedded (as the first field) in a job's operation state:
/// exec-core's universal [`TaskNode`], so that a node handed over through
/// [`DynScheduler`](exec_core::DynScheduler) (the `on` hop back to a pool)
/// is a job like any other.
///
/// The node's link is used while the job sits in the injector's list,
/// accessed only by the job's current owner (the injector, under its mutex,
/// or the thread that is linking a batch it claimed), so `Relaxed`. Its
/// `execute(node, stopped)` runs the job with `stopped` meaning
/// [`Mode::Cancel`], reached through a [`JobRef`] that its owner gives up
/// by the call.
#[repr(transparent)]
pub(crate) struct JobHeader(TaskNode);

impl JobHeader {
    /// A header whose job is executed by `execute` (`stopped`: [`Mode::Cancel`]).
    pub(crate) fn new(execute: unsafe fn(NonNull<TaskNode>, bool)) -> Self {
        JobHeader(TaskNode::new(execute))
    }
}

impl Mode {
    /// The mode `TaskNode::execute`'s `stopped` flag stands for.
    #[inline]
    pub(crate) fn from_stopped(stopped: bool) -> Self {
        if stopped { Mode::Cancel } else { Mode::Run }
    }
}

impl fmt::Debug for JobHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHeader").finish_non_exhaustive()
    }
}

/// An owned reference to a queued job (see the module's invariants).
#[derive(PartialEq, Eq)]
pub(crate) struct JobRef(NonNull<JobHeader>);

// SAFETY: a `JobRef` is handed between threads by the queues; the operation
// it points to is only reached through it by its single owner, and the
// operations that create `JobRef`s require their receivers to be `Send`.
unsafe impl Send for JobRef {}

impl JobRef {
    /// Refers to `header`.
    ///
    /// # Safety
    /// `header` is the first field of a started operation state that stays
    /// alive and in place until the returned `JobRef` is executed, and it is
    /// derived from a pointer to the whole operation (so it may be cast back
    /// to it). At most one `JobRef` to the header exists at a time.
    #[inline]
    pub(crate) unsafe fn new(header: *const JobHeader) -> Self {
        // SAFETY: the caller passes a pointer into a live operation state.
        JobRef(unsafe { NonNull::new_unchecked(header as *mut JobHeader) })
    }

    /// The raw pointer, for storing in an atomic slot.
    #[inline]
    pub(crate) fn into_raw(self) -> *mut JobHeader {
        self.0.as_ptr()
    }

    /// Takes back a pointer made by [`into_raw`](Self::into_raw).
    ///
    /// # Safety
    /// `raw` came from `into_raw` and ownership of it is transferred to the
    /// caller (claimed from the slot that held it), so no other `JobRef` to
    /// it exists.
    #[inline]
    pub(crate) unsafe fn from_raw(raw: *mut JobHeader) -> Option<Self> {
        NonNull::new(raw).map(JobRef)
    }

    /// Executes the job: runs it or, with [`Mode::Cancel`], completes it
    /// *stopped*. Consumes the reference: the operation may be freed by the
    /// time this returns.
    #[inline]
    pub(crate) fn execute(self, mode: Mode) {
        // SAFETY: by the type's invariant the header (a transparent
        // `TaskNode`) is alive; we own the only `JobRef` to the job and give
        // it up here.
        unsafe { TaskNode::execute(self.0.cast::<TaskNode>(), mode == Mode::Cancel) }
    }
}

/// Sets the injector link of `job` to `next`.
///
/// # Safety
/// `job` is a live job header owned by the caller (or by the list whose
/// mutex the caller holds).
#[inline]
pub(crate) unsafe fn set_next(job: *mut JobHeader, next: *mut JobHeader) {
    // SAFETY: per the contract, the header (a transparent `TaskNode`) is
    // alive and its link is ours.
    unsafe {
        TaskNode::set_next(
            NonNull::new_unchecked(job).cast(),
            next.cast(),
            Ordering::Relaxed,
        )
    }
}

/// Reads the injector link of `job`.
///
/// # Safety
/// As for [`set_next`].
#[inline]
pub(crate) unsafe fn next(job: *mut JobHeader) -> *mut JobHeader {
    // SAFETY: per the contract, the header (a transparent `TaskNode`) is
    // alive and its link is ours.
    unsafe { TaskNode::next(NonNull::new_unchecked(job).cast(), Ordering::Relaxed).cast() }
}

impl fmt::Debug for JobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JobRef").field(&self.0).finish()
    }
}

/// What a [`Job`] carries until it is executed: consumed by
/// [`run`](Self::run) exactly once.
pub(crate) trait Payload: Send {
    /// Runs (or, with [`Mode::Cancel`], cancels) the job. May complete the
    /// operation the job lives in, which may free it: by then the payload
    /// has been moved out of it.
    fn run(self, mode: Mode);
}

/// A queueable job: the header, then the payload. Embedded in an operation
/// state, which must be pinned once [`job_ref`](Self::job_ref) is called.
#[repr(C)]
pub(crate) struct Job<P> {
    header: JobHeader,
    /// `Some` until the job is executed. Written at construction, then only
    /// by the single execution (which owns the only `JobRef`).
    payload: UnsafeCell<Option<P>>,
    _pin: core::marker::PhantomPinned,
}

impl<P: Payload> Job<P> {
    /// A job that will run `payload`.
    pub(crate) fn new(payload: P) -> Self {
        Job {
            header: JobHeader::new(Self::execute),
            payload: UnsafeCell::new(Some(payload)),
            _pin: core::marker::PhantomPinned,
        }
    }

    /// A job with no payload yet (see [`set_payload`](Self::set_payload)).
    pub(crate) fn empty() -> Self {
        Job {
            header: JobHeader::new(Self::execute),
            payload: UnsafeCell::new(None),
            _pin: core::marker::PhantomPinned,
        }
    }

    /// Sets the payload of a job that has not been handed to a queue.
    ///
    /// # Safety
    /// No [`JobRef`] to this job is outstanding (it is not queued or
    /// running), and no other thread accesses the job meanwhile.
    pub(crate) unsafe fn set_payload(&self, payload: P) {
        // SAFETY: per the contract, nobody else touches the cell now.
        self.payload.with_mut(|p| unsafe { *p = Some(payload) });
    }

    /// The reference queues hold.
    ///
    /// # Safety
    /// Called at most once per job; the job stays alive and in place (it is
    /// pinned) until the returned reference has been executed.
    pub(crate) unsafe fn job_ref(self: core::pin::Pin<&Self>) -> JobRef {
        // Derived from a pointer to the whole job, so `execute` may cast it
        // back; all later writes go through `UnsafeCell`s.
        let whole: *const Self = self.get_ref();
        // SAFETY: `header` is the first field of this `#[repr(C)]` struct;
        // the caller keeps the job alive until executed and calls us once.
        unsafe { JobRef::new(whole as *const JobHeader) }
    }

    /// # Safety
    /// `header` is the header of a live `Job<P>`, given up by its only
    /// `JobRef`.
    unsafe fn execute(header: NonNull<TaskNode>, stopped: bool) {
        let mode = Mode::from_stopped(stopped);
        let job = header.as_ptr() as *const Self;
        // SAFETY: the header is the first field of a live `Job<P>`; we are
        // its single execution, so the payload cell is ours. The borrow of
        // the cell ends before `run`, which may free the job.
        let payload = unsafe { (*job).payload.with_mut(|p| (*p).take()) };
        // A job is queued once and executed once (module invariants); a
        // second execution is a queue bug, never silently ignored.
        let payload = payload.expect("exec-pool: a job was executed twice");
        payload.run(mode);
    }
}

// SAFETY: the header's raw link is meaningful only while the job is queued,
// when the queue (not the job's owner) uses it; moving the (not yet started)
// job to another thread moves only the payload, which is `Send`.
unsafe impl<P: Send> Send for Job<P> {}

impl<P> fmt::Debug for Job<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job").finish_non_exhaustive()
    }
}
