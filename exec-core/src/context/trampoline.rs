//! The trampoline: a per-thread bound on nested inline completions, and the
//! [`TrampolineScheduler`] built on it.
//!
//! Each thread keeps a depth counter and an intrusive FIFO of deferred
//! [`Task`]s (nodes embedded in pinned operation states; nothing is
//! allocated). [`submit`] runs a task inline, one level deeper, unless the
//! depth has reached the caller's bound; then it queues the task and
//! returns, and the stack unwinds to the outermost `submit` on this thread,
//! which drains the queue, each task again at depth 1. That is what stdexec's
//! `trampoline_scheduler` does, and what keeps recursive chains built through
//! [`AnySender`](crate::AnySender) from growing the stack without bound.
//!
//! # Invariants
//! - Depth `> 0` on a thread means an outermost `submit` frame is active on
//!   that thread and will drain the queue before it returns, so a queued task
//!   always runs.
//! - A queued task's node and context stay alive until the task has run (the
//!   operation that queued it is started and has not completed).
//! - If a panic unwinds through the outermost frame while tasks are still
//!   queued, the process aborts: the operations those tasks belong to could be
//!   freed by the unwinding, and running them later would be a use-after-free.
//!
//! Without the `std` feature there are no thread-locals: `submit` always runs
//! the task inline and the stack is not bounded.

use core::cell::Cell;
use core::fmt;
use core::ptr;
#[cfg(feature = "std")]
use core::{convert::Infallible, marker::PhantomPinned, pin::Pin};

#[cfg(feature = "std")]
use crate::loom::cell::UnsafeCell;
#[cfg(feature = "std")]
use crate::{CompletionScheduler, Env, OperationState, Receiver, Scheduler, Sender, SenderTo};

/// What a deferred task runs: a monomorphized function and its context (a
/// pointer to the whole operation state the task belongs to).
pub(crate) type TaskFn = unsafe fn(*const ());

/// A node of the per-thread trampoline queue, embedded in an operation state.
///
/// Every field is touched only by the thread that queued the node, between
/// queueing and running it.
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) struct Task {
    next: Cell<*const Task>,
    run: Cell<Option<TaskFn>>,
    ctx: Cell<*const ()>,
}

impl Task {
    pub(crate) const fn new() -> Self {
        Task {
            next: Cell::new(ptr::null()),
            run: Cell::new(None),
            ctx: Cell::new(ptr::null()),
        }
    }
}

// SAFETY: a node is used by one thread at a time: the thread that submits
// it writes and queues it and runs it from that thread's queue. An op may
// submit its node on one thread (start) and later on another (delivery),
// but only after the first use has finished and with the op's own
// completion synchronizing the two.
unsafe impl Send for Task {}
// SAFETY: as above; `&Task` is only used by the submitting thread.
unsafe impl Sync for Task {}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task").finish_non_exhaustive()
    }
}

#[cfg(feature = "std")]
struct Trampoline {
    depth: Cell<usize>,
    head: Cell<*const Task>,
    tail: Cell<*const Task>,
}

#[cfg(feature = "std")]
impl Trampoline {
    fn push(&self, task: *const Task) {
        // SAFETY: `task` is alive until it has run (see `submit`'s contract);
        // only this thread touches queued nodes.
        unsafe { (*task).next.set(ptr::null()) };
        let tail = self.tail.get();
        if tail.is_null() {
            self.head.set(task);
        } else {
            // SAFETY: as above, `tail` is a queued, live node.
            unsafe { (*tail).next.set(task) };
        }
        self.tail.set(task);
    }

    fn pop(&self) -> Option<(TaskFn, *const ())> {
        let head = self.head.get();
        if head.is_null() {
            return None;
        }
        // SAFETY: queued nodes are alive until run; we read everything we
        // need before running it (running may free it).
        let (next, run, ctx) =
            unsafe { ((*head).next.get(), (*head).run.get(), (*head).ctx.get()) };
        self.head.set(next);
        if next.is_null() {
            self.tail.set(ptr::null());
        }
        Some((run.expect("queued trampoline task without a function"), ctx))
    }
}

#[cfg(all(feature = "std", not(loom)))]
std::thread_local! {
    static TRAMPOLINE: Trampoline = const {
        Trampoline { depth: Cell::new(0), head: Cell::new(ptr::null()), tail: Cell::new(ptr::null()) }
    };
}
#[cfg(all(feature = "std", loom))]
::loom::thread_local! {
    static TRAMPOLINE: Trampoline =
        Trampoline { depth: Cell::new(0), head: Cell::new(ptr::null()), tail: Cell::new(ptr::null()) };
}

/// Restores the depth when a task returns or unwinds.
#[cfg(feature = "std")]
struct DepthGuard<'a> {
    t: &'a Trampoline,
    depth: usize,
}

#[cfg(feature = "std")]
impl Drop for DepthGuard<'_> {
    fn drop(&mut self) {
        if self.depth == 0 && !self.t.head.get().is_null() && std::thread::panicking() {
            std::eprintln!(
                "exec: a panic unwound through the trampoline while work was still queued on \
                 it; aborting to avoid a use-after-free"
            );
            std::process::abort();
        }
        self.t.depth.set(self.depth);
    }
}

/// Runs `run(ctx)` now, one trampoline level deeper, or — if this thread is
/// already `max_depth` levels deep — queues it on `task` and returns at once;
/// the outermost `submit` on this thread runs it after its own task.
///
/// # Safety
/// - `run(ctx)` must be sound to call once, on this thread, now or later
///   (before the outermost `submit` frame on this thread returns).
/// - `task` must stay alive, in place, until `run` has been called, and must
///   not be submitted again before that.
pub(crate) unsafe fn submit(task: *const Task, run: TaskFn, ctx: *const (), max_depth: usize) {
    #[cfg(feature = "std")]
    {
        TRAMPOLINE.with(|t| {
            let depth = t.depth.get();
            if depth >= max_depth.max(1) {
                // SAFETY: the caller keeps `task` alive until it has run.
                unsafe {
                    (*task).run.set(Some(run));
                    (*task).ctx.set(ctx);
                }
                t.push(task);
                return;
            }
            t.depth.set(depth + 1);
            let guard = DepthGuard { t, depth };
            // SAFETY: the caller allows running it now. `task` is not touched
            // afterwards (running it may free it).
            unsafe { run(ctx) };
            if depth == 0 {
                while let Some((run, ctx)) = t.pop() {
                    t.depth.set(1);
                    // SAFETY: queued by a `submit` whose caller allowed running
                    // it later on this thread; popped, so it runs once.
                    unsafe { run(ctx) };
                }
            }
            drop(guard);
        })
    }
    #[cfg(not(feature = "std"))]
    {
        let _ = (task, max_depth);
        // SAFETY: the caller allows running it now.
        unsafe { run(ctx) }
    }
}

/// The nesting bound [`AnySender`](crate::AnySender) uses.
pub(crate) const ANY_SENDER_MAX_DEPTH: usize = 16;

#[cfg(feature = "std")]
/// A scheduler whose `schedule()` completes inline, unless the current
/// thread is already nested too deep in inline completions; then the
/// completion is queued on a thread-local trampoline and runs as soon as the
/// outermost trampolined frame on this thread unwinds back to it.
///
/// Use it to break recursion: a loop or a recursive chain that reschedules on
/// a `TrampolineScheduler` between steps never nests more than
/// [`max_depth`](Self::max_depth) steps deep on the stack.
///
/// # Completion
/// `schedule()` completes with `()` on the thread that started it (inline,
/// or later on the same thread from the trampoline), or *stopped* if the
/// receiver's stop token is triggered by then.
///
/// # Cancellation
/// The stop token is checked when the completion runs.
///
/// # Panics
/// Never. A panic that unwinds through the outermost trampolined frame while
/// other completions are still queued aborts the process (they could refer
/// to freed operations).
///
/// # Example
/// ```
/// use exec_core::{sync_wait, Scheduler, SenderExt, TrampolineScheduler};
/// let sch = TrampolineScheduler::new();
/// assert_eq!(sync_wait(sch.schedule().then(|()| 5)), Ok(Some(5)));
/// ```
///
/// # See also
/// [`InlineScheduler`](crate::InlineScheduler) (never defers),
/// [`AnySender`](crate::AnySender) (uses the same trampoline).
///
/// Without the `std` feature this type is not available (the trampoline
/// needs thread-locals).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TrampolineScheduler {
    max_depth: usize,
}

#[cfg(feature = "std")]
impl TrampolineScheduler {
    /// The default nesting bound.
    pub const DEFAULT_MAX_DEPTH: usize = 16;

    /// A trampoline scheduler with [`DEFAULT_MAX_DEPTH`](Self::DEFAULT_MAX_DEPTH).
    pub const fn new() -> Self {
        Self::with_max_depth(Self::DEFAULT_MAX_DEPTH)
    }

    /// A trampoline scheduler that defers once `max_depth` trampolined
    /// completions are nested on the current thread (at least 1).
    pub const fn with_max_depth(max_depth: usize) -> Self {
        TrampolineScheduler {
            max_depth: if max_depth == 0 { 1 } else { max_depth },
        }
    }

    /// The nesting bound.
    pub const fn max_depth(&self) -> usize {
        self.max_depth
    }
}

#[cfg(feature = "std")]
impl Default for TrampolineScheduler {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "std")]
impl Scheduler for TrampolineScheduler {
    type Sender = TrampolineSender;
    fn schedule(&self) -> TrampolineSender {
        TrampolineSender {
            max_depth: self.max_depth,
        }
    }
}

#[cfg(feature = "std")]
/// Sender of [`TrampolineScheduler::schedule`].
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Copy, Debug)]
pub struct TrampolineSender {
    max_depth: usize,
}

#[cfg(feature = "std")]
impl Sender for TrampolineSender {
    type Output = ();
    type Error = Infallible;
}

#[cfg(feature = "std")]
impl CompletionScheduler for TrampolineSender {
    type Scheduler = TrampolineScheduler;
    fn completion_scheduler(&self) -> TrampolineScheduler {
        TrampolineScheduler::with_max_depth(self.max_depth)
    }
}

#[cfg(feature = "std")]
impl<R: Receiver<(), Infallible>> SenderTo<R> for TrampolineSender {
    type Operation = TrampolineOp<R>;
    fn connect(self, receiver: R) -> TrampolineOp<R> {
        TrampolineOp {
            task: Task::new(),
            max_depth: self.max_depth,
            receiver: UnsafeCell::new(Some(receiver)),
            _pin: PhantomPinned,
        }
    }
}

#[cfg(feature = "std")]
/// Operation state of [`TrampolineSender`]: the trampoline queue node itself.
pub struct TrampolineOp<R> {
    task: Task,
    max_depth: usize,
    /// Taken once, by `run`.
    receiver: UnsafeCell<Option<R>>,
    _pin: PhantomPinned,
}

#[cfg(feature = "std")]
impl<R> fmt::Debug for TrampolineOp<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrampolineOp")
            .field("max_depth", &self.max_depth)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "std")]
impl<R: Receiver<(), Infallible>> TrampolineOp<R> {
    /// # Safety
    /// `ctx` points to a started `TrampolineOp<R>` that has not completed.
    unsafe fn run(ctx: *const ()) {
        let this = ctx as *const Self;
        // SAFETY: per the contract the op is alive; its receiver is taken
        // once (the task runs once), by this thread.
        let receiver = unsafe { (*this).receiver.with_mut(|r| (*r).take()) };
        if let Some(r) = receiver {
            let stopped = r.env().stop_token().stop_requested();
            if stopped {
                r.set_stopped()
            } else {
                r.set_value(())
            }
        }
    }
}

#[cfg(feature = "std")]
impl<R: Receiver<(), Infallible>> OperationState for TrampolineOp<R> {
    unsafe fn start(self: Pin<&mut Self>) {
        let this: &Self = self.into_ref().get_ref();
        let ctx = this as *const Self as *const ();
        // SAFETY: by `start`'s contract the op stays pinned and alive until
        // it completes, which is what `run` does, once, on this thread.
        unsafe { submit(&this.task, Self::run, ctx, this.max_depth) }
    }
}
