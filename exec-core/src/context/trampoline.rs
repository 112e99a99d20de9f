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
//! Once a task has been queued, every later `submit` on the thread queues
//! too, until the outermost frame takes the next task from the queue: the
//! frames that unwind towards it queue the work they still had to start
//! instead of starting it at the depth they are at. Without this, a tree of
//! work (a recursive fork-join) that reaches the bound would, while
//! unwinding, start every pending sibling subtree as far as the bound
//! allows — a breadth-first expansion with exponentially many operations
//! alive at once (thousands of live frames for `fib(30)`, which overflowed
//! the frame cache and the CPU caches). With it the queue holds at most
//! about one task per frame that was on the stack, and the work proceeds
//! depth-first, a bounded number of operations alive at a time.
//!
//! # Invariants
//! - Depth `> 0` on a thread means an outermost `submit` frame is active on
//!   that thread and will drain the queue before it returns, so a queued task
//!   always runs.
//! - `unwinding` is set only while depth `> 0` (by a queueing, cleared by
//!   the outermost frame before it runs a queued task and when it returns).
//! - A queued task's node (and the state around it) stay alive until the task has run (the
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

/// What a deferred task runs: a monomorphized function, given the task's
/// node. The node is the first field of a `#[repr(C)]` operation state and
/// the pointer carries the provenance of that whole state (see [`submit`]),
/// so the function casts it back to the state: the node needs no separate
/// context pointer (two words, not three, in every operation that embeds
/// one).
pub(crate) type TaskFn = unsafe fn(*const Task);

/// A node of the per-thread trampoline queue, embedded in an operation state.
///
/// Every field is touched only by the thread that queued the node, between
/// queueing and running it.
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) struct Task {
    next: Cell<*const Task>,
    run: Cell<Option<TaskFn>>,
}

impl Task {
    pub(crate) const fn new() -> Self {
        Task {
            next: Cell::new(ptr::null()),
            run: Cell::new(None),
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
    /// Set when a task is queued, cleared when the outermost frame takes
    /// the next task: while set, every `submit` queues too, so that the
    /// frames unwinding towards the outermost one queue their remaining
    /// work instead of starting it (see the module docs).
    unwinding: Cell<bool>,
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

    fn pop(&self) -> Option<(TaskFn, *const Task)> {
        let head = self.head.get();
        if head.is_null() {
            return None;
        }
        // SAFETY: queued nodes are alive until run; we read everything we
        // need before running it (running may free it).
        let (next, run) = unsafe { ((*head).next.get(), (*head).run.get()) };
        self.head.set(next);
        if next.is_null() {
            self.tail.set(ptr::null());
        }
        Some((
            run.expect("queued trampoline task without a function"),
            head,
        ))
    }
}

#[cfg(all(feature = "std", not(loom)))]
std::thread_local! {
    static TRAMPOLINE: Trampoline = const {
        Trampoline { depth: Cell::new(0), unwinding: Cell::new(false), head: Cell::new(ptr::null()), tail: Cell::new(ptr::null()) }
    };
}
#[cfg(all(feature = "std", loom))]
::loom::thread_local! {
    static TRAMPOLINE: Trampoline =
        Trampoline { depth: Cell::new(0), unwinding: Cell::new(false), head: Cell::new(ptr::null()), tail: Cell::new(ptr::null()) };
}

/// One level of the trampoline, entered by [`Level::enter`]; dropping it
/// (on return or unwind) leaves the level, and the outermost level drains
/// the queue first.
///
/// Touches the thread-local only in small closures, so that entering and
/// leaving inline into the caller.
#[cfg(feature = "std")]
struct Level {
    /// The depth before entering.
    depth: usize,
}

#[cfg(feature = "std")]
impl Level {
    /// Enters one level deeper, unless this thread is already `max_depth`
    /// (at least 1) levels deep.
    #[inline]
    fn enter(max_depth: usize) -> Option<Level> {
        TRAMPOLINE.with(|t| {
            let depth = t.depth.get();
            if depth >= max_depth.max(1) || t.unwinding.get() {
                None
            } else {
                t.depth.set(depth + 1);
                Some(Level { depth })
            }
        })
    }
}

#[cfg(feature = "std")]
impl Drop for Level {
    #[inline]
    fn drop(&mut self) {
        if self.depth == 0 {
            // Fast path: nothing queued, nothing to drain (or to abort for).
            let drained = TRAMPOLINE.with(|t| {
                let empty = t.head.get().is_null();
                if empty {
                    t.unwinding.set(false);
                    t.depth.set(0);
                }
                empty
            });
            if !drained {
                leave_outermost();
            }
        } else {
            let depth = self.depth;
            TRAMPOLINE.with(|t| t.depth.set(depth));
        }
    }
}

/// Leaves the outermost level: runs the queued tasks (each at depth 1),
/// then sets the depth to 0. If a panic unwinds through here while tasks
/// are still queued, aborts (see the module docs).
#[cfg(feature = "std")]
#[inline(never)]
fn leave_outermost() {
    /// Resets the depth to 0, also if a queued task unwinds.
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            TRAMPOLINE.with(|t| {
                if !t.head.get().is_null() && std::thread::panicking() {
                    std::eprintln!(
                        "exec: a panic unwound through the trampoline while work was still \
                         queued on it; aborting to avoid a use-after-free"
                    );
                    std::process::abort();
                }
                t.unwinding.set(false);
                t.depth.set(0)
            });
        }
    }
    let _reset = Reset;
    if std::thread::panicking() {
        return;
    }
    while let Some((run, task)) = TRAMPOLINE.with(|t| {
        let next = t.pop();
        t.depth.set(1);
        t.unwinding.set(false);
        next
    }) {
        // SAFETY: queued by a `submit`/`queue` whose caller allowed running
        // it later on this thread; popped, so it runs once.
        unsafe { run(task) };
    }
}

/// Runs `run(task)` now, one trampoline level deeper, or — if this thread is
/// already `max_depth` levels deep — queues `task` and returns at once; the
/// outermost `submit` on this thread runs it after its own task.
///
/// # Safety
/// - `run(task)` must be sound to call once, on this thread, now or later
///   (before the outermost `submit` frame on this thread returns). `run`
///   is given `task` itself: to reach the operation state around the node,
///   the node is the first field of a `#[repr(C)]` state and `task` is
///   derived from a pointer to the whole state (`ptr::addr_of!` on it, not a
///   reference to the field, whose provenance would cover the node only).
/// - `task` must stay alive, in place, until `run` has been called, and must
///   not be submitted again before that.
#[inline]
pub(crate) unsafe fn submit(task: *const Task, run: TaskFn, max_depth: usize) {
    // SAFETY: the caller allows running it now.
    if nest(max_depth, task, |task| unsafe { run(task) }).is_some() {
        // SAFETY: `nest` declined, so this thread is at least one level deep
        // (an outermost frame will drain the queue); the caller keeps `task`
        // alive until it has run and allows running it later.
        unsafe { queue(task, run) }
    }
}

/// Runs `f(arg)` now, one trampoline level deeper, unless this thread is
/// already `max_depth` levels deep: then returns `Some(arg)` without calling
/// `f`, and the caller defers the work with [`queue`] (which is then
/// allowed: this thread is inside a trampolined frame).
///
/// If this is the outermost level, the tasks queued meanwhile run after `f`,
/// before `nest` returns. Without the `std` feature `f` always runs inline.
#[inline]
pub(crate) fn nest<A>(max_depth: usize, arg: A, f: impl FnOnce(A)) -> Option<A> {
    #[cfg(feature = "std")]
    {
        let Some(level) = Level::enter(max_depth) else {
            return Some(arg);
        };
        f(arg);
        drop(level);
        None
    }
    #[cfg(not(feature = "std"))]
    {
        let _ = max_depth;
        f(arg);
        None
    }
}

/// While alive, this thread runs on a fresh trampoline (depth 0, nothing
/// queued, not unwinding); dropping it puts the previous one back.
///
/// For blocking consumers ([`sync_wait`](crate::sync_wait)): work they
/// start inside a trampolined frame must not be queued on that frame's
/// queue, which only the outer frame — blocked in the consumer — would
/// drain. Whatever is queued meanwhile runs before the fresh trampoline's
/// outermost level returns, so nothing is left on it when it is dropped.
#[cfg(feature = "std")]
#[derive(Debug)]
pub(crate) struct Fresh {
    /// The outer trampoline's depth, unwinding flag, head and tail; `None`
    /// if there was no trampolined frame (already fresh).
    saved: Option<(usize, bool, *const Task, *const Task)>,
}

#[cfg(feature = "std")]
impl Fresh {
    /// Sets a fresh trampoline up on this thread.
    #[inline]
    pub(crate) fn enter() -> Fresh {
        // Depth 0: no trampolined frame, so nothing queued and not
        // unwinding: already fresh.
        if TRAMPOLINE.with(|t| t.depth.get()) == 0 {
            return Fresh { saved: None };
        }
        Self::save()
    }

    #[cold]
    #[inline(never)]
    fn save() -> Fresh {
        let saved = TRAMPOLINE.with(|t| {
            (
                t.depth.replace(0),
                t.unwinding.replace(false),
                t.head.replace(ptr::null()),
                t.tail.replace(ptr::null()),
            )
        });
        Fresh { saved: Some(saved) }
    }

    #[cold]
    #[inline(never)]
    fn restore(saved: (usize, bool, *const Task, *const Task)) {
        let (depth, unwinding, head, tail) = saved;
        TRAMPOLINE.with(|t| {
            t.depth.set(depth);
            t.unwinding.set(unwinding);
            t.head.set(head);
            t.tail.set(tail);
        });
    }
}

#[cfg(feature = "std")]
impl Drop for Fresh {
    #[inline]
    fn drop(&mut self) {
        if let Some(saved) = self.saved.take() {
            Self::restore(saved);
        }
    }
}

/// Queues `task`, for `run(task)` by the outermost trampolined frame of this
/// thread once the stack has unwound to it.
///
/// # Safety
/// - Called only right after [`nest`] returned `Some` on this thread (so a
///   trampolined frame is active and will drain the queue).
/// - `run(task)` must be sound to call once, on this thread, later (`task`
///   derived as [`submit`] asks, if `run` reaches the state around it).
/// - `task` must stay alive, in place, until `run` has been called, and must
///   not be queued again before that.
#[cfg(feature = "std")]
pub(crate) unsafe fn queue(task: *const Task, run: TaskFn) {
    TRAMPOLINE.with(|t| {
        debug_assert!(t.depth.get() > 0, "trampoline: queued outside a frame");
        // SAFETY: the caller keeps `task` alive until it has run.
        unsafe {
            (*task).run.set(Some(run));
        }
        t.push(task);
        t.unwinding.set(true);
    })
}

/// Without `std`, [`nest`] never declines, so nothing is ever queued.
///
/// # Safety
/// Never to be called (`nest` always returns `None` without `std`).
#[cfg(not(feature = "std"))]
pub(crate) unsafe fn queue(_task: *const Task, _run: TaskFn) {
    unreachable!("trampoline: nothing is queued without std")
}

/// The nesting bound [`AnySender`](crate::AnySender) uses.
pub(crate) const ANY_SENDER_MAX_DEPTH: usize = 16;

#[cfg(feature = "std")]
/// A scheduler whose `schedule()` completes inline, unless the current
/// thread is already nested too deep in inline completions (or the stack is
/// unwinding towards work queued that way); then the completion is queued
/// on a thread-local trampoline and runs as soon as the outermost
/// trampolined frame on this thread unwinds back to it.
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
// `repr(C)`, the node first: `run` is given the node and casts it back to
// the op (see `submit`).
#[repr(C)]
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
    /// `task` is the node of a started `TrampolineOp<R>` that has not
    /// completed, derived from a pointer to the whole op.
    unsafe fn run(task: *const Task) {
        // The node is the op's first field (`repr(C)`).
        let this = task.cast::<Self>();
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
        let this: *const Self = self.into_ref().get_ref();
        // SAFETY: by `start`'s contract the op stays pinned and alive until
        // it completes, which is what `run` does, once, on this thread. The
        // node is derived from the pointer to the whole op, as `run` needs.
        unsafe {
            let task = ptr::addr_of!((*this).task);
            submit(task, Self::run, (*this).max_depth)
        }
    }
}
