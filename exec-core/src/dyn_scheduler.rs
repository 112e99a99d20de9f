//! Type-erased schedulers: what the environment's
//! [`scheduler`](crate::Env::scheduler) query answers.
//!
//! A statically typed [`Scheduler`]'s `schedule()` operation has a type of
//! its own, so an operation that learns its scheduler only at `start` (from
//! its receiver's environment) cannot embed that operation. Instead every
//! execution context that wants to be reachable that way runs one universal
//! intrusive node, [`TaskNode`], which the operation embeds: the context
//! queues a pointer to it and later calls its `execute` function. Nothing is
//! allocated and nothing needs `'static`.
//!
//! - [`TaskNode`]: the node (a link, plus the function that runs the
//!   operation it is the first field of).
//! - [`DynScheduler`]: implemented by an execution context (a
//!   [`RunLoop`](crate::RunLoop), a thread pool) to accept nodes.
//! - [`SchedulerRef`]: a `Copy` handle to such a context, two words, with
//!   the lifetime of the borrow. It is itself a [`Scheduler`].
//!
//! # Why not `&dyn Trait`
//! Enqueueing hands the node to another thread, whose execution of it may
//! end the whole operation and let the context's owner free the context
//! (`sync_wait` returns and frees its `RunLoop`) while `enqueue` is still
//! returning. A `&self` argument would claim the context stays valid for the
//! whole call; [`DynScheduler::enqueue`] therefore gets a raw pointer, like
//! `RunLoop`'s own finish hand-off and like `core::task::RawWaker`.

use core::convert::Infallible;
use core::fmt;
use core::marker::{PhantomData, PhantomPinned};
use core::pin::Pin;
use core::ptr::{self, NonNull};

use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicPtr, Ordering};
use crate::{CompletionScheduler, Env, OperationState, Receiver, Scheduler, Sender, SenderTo};

/// An intrusive queue node that an execution context runs: the first field
/// of a `#[repr(C)]` operation state.
///
/// The context owns the link while the node is queued and calls
/// [`execute`](Self::execute) exactly once, which runs the operation the
/// node belongs to. A node is handed to a context as a pointer derived from
/// the whole operation state (not from a reference to the node field), so
/// that the `execute` function may cast it back to the operation.
pub struct TaskNode {
    /// The context's link while queued (a singly-linked list, a lock-free
    /// stack or MPSC queue). Only the context that holds the node uses it.
    next: AtomicPtr<TaskNode>,
    /// Runs the operation this node is the first field of; `stopped` says
    /// the context is shutting down and will not run it normally.
    execute: unsafe fn(NonNull<TaskNode>, bool),
    /// Queued by address.
    _pin: PhantomPinned,
}

impl TaskNode {
    /// A node whose operation `execute` runs.
    ///
    /// `execute(node, stopped)` is called once, with the pointer the node
    /// was enqueued with; `stopped` is `true` when the context shuts down
    /// without running the work (the operation should complete *stopped*).
    /// After it returns nobody touches the node: the operation may be freed.
    pub fn new(execute: unsafe fn(NonNull<TaskNode>, bool)) -> Self {
        TaskNode {
            next: AtomicPtr::new(ptr::null_mut()),
            execute,
            _pin: PhantomPinned,
        }
    }

    /// Runs the node's operation (for context implementors).
    ///
    /// # Safety
    /// `node` is a live node the caller was given by
    /// [`DynScheduler::enqueue`]; this is its one and only execution, and
    /// the caller does not touch the node afterwards.
    #[inline]
    pub unsafe fn execute(node: NonNull<TaskNode>, stopped: bool) {
        // SAFETY: live per the contract; the fn pointer is copied out before
        // the call, which may free the node.
        let f = unsafe { (*node.as_ptr()).execute };
        // SAFETY: this is the single execution, with the enqueued pointer.
        unsafe { f(node, stopped) }
    }

    /// Reads the node's link (for context implementors).
    ///
    /// # Safety
    /// `node` is live and currently held by the calling context.
    #[inline]
    pub unsafe fn next(node: NonNull<TaskNode>, order: Ordering) -> *mut TaskNode {
        // SAFETY: live per the contract; the link is an atomic.
        unsafe { (*node.as_ptr()).next.load(order) }
    }

    /// Writes the node's link (for context implementors).
    ///
    /// # Safety
    /// As for [`next`](Self::next).
    #[inline]
    pub unsafe fn set_next(node: NonNull<TaskNode>, next: *mut TaskNode, order: Ordering) {
        // SAFETY: live per the contract; the link is an atomic.
        unsafe { (*node.as_ptr()).next.store(next, order) }
    }
}

impl fmt::Debug for TaskNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskNode").finish_non_exhaustive()
    }
}

/// An execution context that runs [`TaskNode`]s: what a [`SchedulerRef`]
/// refers to.
///
/// Implemented by [`RunLoop`](crate::RunLoop), the inline context of
/// [`InlineScheduler`](crate::InlineScheduler) and exec-pool's pool.
///
/// # Safety
/// An implementation of [`enqueue`](Self::enqueue):
/// - executes every node it accepts at most once, through
///   [`TaskNode::execute`], on the context (or inline, for an inline
///   context), with `stopped = true` if it shuts down without running it;
///   as long as the context keeps running (is not abandoned with work
///   queued), exactly once;
/// - does not touch `*this` once the node may have started executing: the
///   node's completion may end the program that owns the context, which
///   may then free it (publish the node last, as `RunLoop` does by
///   unlocking its queue);
/// - is thread-safe (the trait requires `Send + Sync`).
///
/// A context is identified by its address (see [`SchedulerRef`]'s
/// equality), so it must not be zero-sized.
pub unsafe trait DynScheduler: Send + Sync {
    /// Queues `node` to be executed on this context.
    ///
    /// # Safety
    /// - `this` points to a live context when called.
    /// - `node` was made by [`TaskNode::new`], is the first field of a
    ///   pinned operation state and was derived from a pointer to that whole
    ///   state; it stays alive and in place until it has been executed, and
    ///   is not queued anywhere else meanwhile.
    unsafe fn enqueue(this: NonNull<Self>, node: NonNull<TaskNode>);
}

/// A borrowed, type-erased handle to an execution context that runs
/// [`TaskNode`]s — the answer of the environment's
/// [`scheduler`](crate::Env::scheduler) query. Two words, `Copy`.
///
/// It is a [`Scheduler`]: `schedule()` completes on the context. Two handles
/// are equal when they refer to the same context (the same address).
///
/// # Example
/// ```
/// use exec_core::{sync_wait, RunLoop, Scheduler, SchedulerRef};
/// let run_loop = RunLoop::new();
/// let a = SchedulerRef::new(&run_loop);
/// assert!(a == run_loop.scheduler().erased().unwrap());
/// ```
#[derive(Clone, Copy)]
pub struct SchedulerRef<'a> {
    context: NonNull<()>,
    enqueue: unsafe fn(NonNull<()>, NonNull<TaskNode>),
    _context: PhantomData<&'a ()>,
}

// SAFETY: the context is `Send + Sync` (`DynScheduler`'s bound) and only
// reached through `enqueue`, which takes it by shared pointer.
unsafe impl Send for SchedulerRef<'_> {}
// SAFETY: as above.
unsafe impl Sync for SchedulerRef<'_> {}

/// # Safety
/// As [`DynScheduler::enqueue`], with `context` pointing to a `C`.
unsafe fn enqueue_shim<C: DynScheduler>(context: NonNull<()>, node: NonNull<TaskNode>) {
    // SAFETY: made from a `&C` in `SchedulerRef::new`; forwarded contract.
    unsafe { C::enqueue(context.cast::<C>(), node) }
}

impl<'a> SchedulerRef<'a> {
    /// A handle to `context`.
    #[inline]
    pub fn new<C: DynScheduler>(context: &'a C) -> Self {
        const {
            assert!(
                size_of::<C>() != 0,
                "a DynScheduler context is identified by its address; give it a size"
            )
        };
        SchedulerRef {
            context: NonNull::from(context).cast(),
            enqueue: enqueue_shim::<C>,
            _context: PhantomData,
        }
    }

    /// A handle to the context `context` points to, keeping the pointer's
    /// provenance (so the context's [`enqueue`](DynScheduler::enqueue) may
    /// reach memory around it, e.g. the reference counts of the `Arc` it
    /// lives in, from `Arc::as_ptr`).
    ///
    /// # Safety
    /// `context` points to a live `C` for all of `'a`.
    #[inline]
    pub unsafe fn from_ptr<C: DynScheduler>(context: NonNull<C>) -> Self {
        const {
            assert!(
                size_of::<C>() != 0,
                "a DynScheduler context is identified by its address; give it a size"
            )
        };
        SchedulerRef {
            context: context.cast(),
            enqueue: enqueue_shim::<C>,
            _context: PhantomData,
        }
    }

    /// Queues `node` on the context.
    ///
    /// # Safety
    /// The context is alive when called, and `node` satisfies
    /// [`DynScheduler::enqueue`]'s contract. The context may execute the node
    /// before this returns (even inline).
    #[inline]
    pub unsafe fn enqueue(self, node: NonNull<TaskNode>) {
        // SAFETY: per the contract; `context` and `enqueue` were made together.
        unsafe { (self.enqueue)(self.context, node) }
    }

    /// Erases the lifetime of this handle.
    ///
    /// # Safety
    /// The returned handle is used only while the context is alive.
    /// Operation states use this to keep the answer of their receiver's
    /// environment: the answer borrows from the receiver (or outlives it),
    /// and the receiver stays in the operation until it is completed.
    #[inline]
    pub unsafe fn detach(self) -> SchedulerRef<'static> {
        SchedulerRef {
            context: self.context,
            enqueue: self.enqueue,
            _context: PhantomData,
        }
    }
}

impl PartialEq for SchedulerRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.context == other.context
    }
}
impl Eq for SchedulerRef<'_> {}

impl fmt::Debug for SchedulerRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SchedulerRef").field(&self.context).finish()
    }
}

impl<'a> Scheduler for SchedulerRef<'a> {
    type Sender = SchedulerRefSender<'a>;
    #[inline]
    fn schedule(&self) -> SchedulerRefSender<'a> {
        SchedulerRefSender { target: *self }
    }
    #[inline]
    fn erased(&self) -> Option<SchedulerRef<'_>> {
        Some(*self)
    }
}

/// Sender of [`SchedulerRef::schedule`](Scheduler::schedule).
///
/// # Completion
/// - value: `()`, on the context.
/// - stopped: if the context shuts down without running it, or if the
///   receiver's stop token is triggered when the context gets to it.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Copy, Debug)]
pub struct SchedulerRefSender<'a> {
    target: SchedulerRef<'a>,
}

impl Sender for SchedulerRefSender<'_> {
    type Output = ();
    type Error = Infallible;
}

impl<'a> CompletionScheduler for SchedulerRefSender<'a> {
    type Scheduler = SchedulerRef<'a>;
    fn completion_scheduler(&self) -> SchedulerRef<'a> {
        self.target
    }
}

impl<'a, R: Receiver<(), Infallible> + Send> SenderTo<R> for SchedulerRefSender<'a> {
    type Operation = DynScheduleOp<'a, R>;
    fn connect(self, receiver: R) -> DynScheduleOp<'a, R> {
        DynScheduleOp::new(Some(self.target), receiver)
    }
}

/// Operation state of [`SchedulerRefSender`] and of
/// [`schedule_on_current`](crate::schedule_on_current): the [`TaskNode`]
/// itself.
#[repr(C)]
pub struct DynScheduleOp<'a, R> {
    /// First field: the node pointer is the op pointer.
    node: TaskNode,
    /// Where to enqueue; `None`: ask the receiver's environment at `start`.
    target: Option<SchedulerRef<'a>>,
    /// Taken by `execute` (or by `start` when there is no scheduler). Not
    /// touched by anyone else once the node is enqueued.
    receiver: UnsafeCell<Option<R>>,
    _pin: PhantomPinned,
}

impl<R> fmt::Debug for DynScheduleOp<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynScheduleOp")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl<'a, R: Receiver<(), Infallible>> DynScheduleOp<'a, R> {
    pub(crate) fn new(target: Option<SchedulerRef<'a>>, receiver: R) -> Self {
        DynScheduleOp {
            node: TaskNode::new(Self::execute),
            target,
            receiver: UnsafeCell::new(Some(receiver)),
            _pin: PhantomPinned,
        }
    }

    /// # Safety
    /// `node` is the node of a live `DynScheduleOp<R>`, derived from a
    /// pointer to the whole op; executed once.
    unsafe fn execute(node: NonNull<TaskNode>, stopped: bool) {
        let op = node.as_ptr() as *const DynScheduleOp<'_, R>;
        // SAFETY: `node` is the first field of the `#[repr(C)]` op, whose
        // pointer it was derived from; this single execution owns the cell.
        let receiver = unsafe { (*op).receiver.with_mut(|r| (*r).take()) };
        if let Some(r) = receiver {
            if stopped || r.env().stop_token().stop_requested() {
                r.set_stopped();
            } else {
                r.set_value(());
            }
        }
    }
}

impl<R: Receiver<(), Infallible>> OperationState for DynScheduleOp<'_, R> {
    unsafe fn start(self: Pin<&mut Self>) {
        // Derived from the whole op (`#[repr(C)]`, `node` first) so `execute`
        // may reach the receiver through it.
        let node = NonNull::from(self.as_ref().get_ref()).cast::<TaskNode>();
        let target = match self.target {
            Some(target) => Some(target),
            None => {
                // SAFETY: nobody else touches the cell before the node is
                // enqueued; the borrow ends before that.
                let receiver = unsafe { self.receiver.with(|r| (*r).as_ref()) };
                // SAFETY: the answer borrows from the receiver (or outlives
                // it); the receiver stays in this op until `execute` takes
                // it, and the handle is only used by `enqueue` below, which
                // does not touch the context once the node may run.
                receiver.and_then(|r| r.env().scheduler().map(|s| unsafe { s.detach() }))
            }
        };
        match target {
            // SAFETY: the op is pinned and, by `start`'s contract, alive until
            // it completes, which happens only in `execute`; the node was
            // derived from the whole op and is enqueued once (`start` is
            // called once). The context is alive: it was just handed to us.
            Some(target) => unsafe { target.enqueue(node) },
            // No scheduler to go to: complete here, inline.
            // SAFETY: as above; this is the node's only execution.
            None => unsafe { Self::execute(node, false) },
        }
    }
}
