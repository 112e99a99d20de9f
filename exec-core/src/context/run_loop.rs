//! A FIFO execution context driven by whichever thread calls `run`.
//!
//! The queue is an intrusive singly-linked list of [`Task`] nodes embedded in
//! the (pinned) schedule operation states, guarded by a mutex; `run` sleeps
//! on a condition variable when it is empty. Scheduling allocates nothing.
//!
//! Before sleeping, `run` spins for a short while (`SPIN_TIME`) on the
//! `ready` hint: a futex wake-up costs 10–20 µs on a loaded machine, far more
//! than the round trip through a pool that `sync_wait` usually waits for.
//! The hint is only a hint: every decision is taken with the mutex held.

use core::convert::Infallible;
use core::fmt;
use core::marker::PhantomPinned;
use core::pin::Pin;
use core::ptr::{self, NonNull};

use crate::context::blocking::NonBlockingGuard;
use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicBool, Ordering};
use crate::loom::sync::{Condvar, Mutex};
use crate::{
    CompletionScheduler, DynScheduler, Env, OperationState, Receiver, Scheduler, SchedulerRef,
    Sender, SenderTo, TaskNode,
};

/// A queue node: the first field of every operation state queued on a loop.
/// Its link is guarded by the loop's mutex while queued (so `Relaxed`).
type Task = TaskNode;

/// `task` as the non-null pointer `TaskNode`'s functions take.
///
/// # Safety
/// `task` is not null.
unsafe fn node(task: *const Task) -> NonNull<TaskNode> {
    // SAFETY: per the contract.
    unsafe { NonNull::new_unchecked(task.cast_mut()) }
}

struct Queue {
    head: *const Task,
    tail: *const Task,
    finishing: bool,
    /// How many `run` calls wait on the condition variable. Notifying costs a
    /// syscall even with no waiter, so it is skipped unless someone sleeps.
    sleepers: usize,
}

// SAFETY: the raw pointers refer to pinned operation states whose receivers
// are `Send` (required by `RunLoopSender`'s `SenderTo` impl); they are only
// touched with the mutex held, or by `run` after popping.
unsafe impl Send for Queue {}

/// A FIFO work queue run on the thread that calls [`run`](Self::run).
///
/// [`sync_wait`](crate::sync_wait) drives one; it is also usable on its own:
/// schedule work on it from any thread with [`scheduler`](Self::scheduler),
/// drive it with `run`, and end `run` with [`finish`](Self::finish).
///
/// # Completion
/// The scheduler's `schedule()` sender completes with `()` on the thread
/// running [`run`](Self::run), in the order the operations were started, or
/// *stopped* if the receiver's stop token has been triggered by the time the
/// loop gets to it. An operation started after `run` has returned completes
/// only when `run` is called again.
///
/// # Cancellation
/// The stop token is checked when the loop pops the operation; a queued
/// operation is not removed from the queue by a stop request.
///
/// # Panics
/// A panic in work run by the loop unwinds out of `run`; work still queued
/// stays queued. [`sync_wait`](crate::sync_wait) inside `run` panics (it
/// would deadlock).
///
/// # Example
/// ```
/// use exec_core::{RunLoop, Scheduler};
/// let run_loop = RunLoop::new();
/// let sch = run_loop.scheduler();
/// assert!(sch == run_loop.scheduler());
/// run_loop.finish();
/// run_loop.run(); // drains what was queued, then returns
/// ```
///
/// # See also
/// [`sync_wait`](crate::sync_wait) (drives one),
/// [`InlineScheduler`](crate::InlineScheduler).
pub struct RunLoop {
    queue: Mutex<Queue>,
    wakeup: Condvar,
    /// Set (with the mutex held) whenever work is queued or `finish` is
    /// called; cleared by `run` (with the mutex held) before it spins.
    /// Read without the mutex only as a hint to stop spinning.
    ready: AtomicBool,
}

/// How long `run` spins on `ready` with CPU pause hints only: a few pool
/// round trips (about 1 µs each when a worker is free on another core).
#[cfg(not(loom))]
const PAUSE_TIME: std::time::Duration = std::time::Duration::from_micros(2);
/// How long `run` keeps looking (yielding its core between looks) before it
/// sleeps on the condition variable: a few times a futex wake-up.
#[cfg(not(loom))]
const SPIN_TIME: std::time::Duration = std::time::Duration::from_micros(50);

/// Waits for `ready` to be set, up to [`SPIN_TIME`]: first with pause hints
/// (for [`PAUSE_TIME`]), then yielding the core between looks.
///
/// Both phases matter on a 2-core machine shared with other processes
/// (measured on the machine these benchmarks run on):
/// - when a worker is free on the other core, the round trip takes about
///   1 µs and pausing catches it; yielding from the start made the median
///   `sync_wait` round trip 7.9 µs (a yield costs ~0.7 µs and may hand the
///   core to a spinning worker for a slice);
/// - when the worker that runs the job shares this core (the other one busy
///   with other work), only giving the core away lets it run: pausing for
///   the whole spell made round trips ~25 µs (the pause, then a futex sleep
///   and wake-up), and pausing 50 µs made a 1,000-task fan-out 1.8× slower
///   by taking a core from the workers.
#[cfg(not(loom))]
#[cold]
fn spin_until_ready(ready: &AtomicBool) {
    let started = std::time::Instant::now();
    loop {
        let elapsed = started.elapsed();
        if elapsed < PAUSE_TIME {
            for _ in 0..16 {
                if ready.load(Ordering::Relaxed) {
                    return;
                }
                core::hint::spin_loop();
            }
        } else {
            if elapsed >= SPIN_TIME {
                return;
            }
            std::thread::yield_now();
            if ready.load(Ordering::Relaxed) {
                return;
            }
        }
    }
}

/// Under loom: one look at the hint and one yield, so the models explore
/// the unlock–spin–relock path without an unbounded loop.
#[cfg(loom)]
fn spin_until_ready(ready: &AtomicBool) {
    if !ready.load(Ordering::Relaxed) {
        ::loom::thread::yield_now();
    }
}

impl RunLoop {
    /// An empty loop.
    pub fn new() -> Self {
        RunLoop {
            queue: Mutex::new(Queue {
                head: ptr::null(),
                tail: ptr::null(),
                finishing: false,
                sleepers: 0,
            }),
            wakeup: Condvar::new(),
            ready: AtomicBool::new(false),
        }
    }

    /// A scheduler whose `schedule()` completes on the thread running this
    /// loop.
    pub fn scheduler(&self) -> RunLoopScheduler<'_> {
        RunLoopScheduler { run_loop: self }
    }

    /// Runs queued work in FIFO order until [`finish`](Self::finish) has been
    /// called and the queue is empty. While it runs, this thread counts as
    /// driving a run loop: [`sync_wait`](crate::sync_wait) on it panics.
    pub fn run(&self) {
        let _guard = NonBlockingGuard::enter("a RunLoop (for example inside sync_wait)");
        loop {
            // Spin at most once per idle spell, before the first sleep.
            let mut spun = false;
            let task = {
                let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if !q.head.is_null() {
                        let task = q.head;
                        // SAFETY: queued nodes are alive (their operations
                        // are started and not complete); mutex held.
                        q.head = unsafe { TaskNode::next(node(task), Ordering::Relaxed) };
                        if q.head.is_null() {
                            q.tail = ptr::null();
                        }
                        break task;
                    }
                    if q.finishing {
                        return;
                    }
                    if !spun {
                        spun = true;
                        // Mutex held: a push or `finish` after this store
                        // sets it again.
                        self.ready.store(false, Ordering::Relaxed);
                        drop(q);
                        spin_until_ready(&self.ready);
                        q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                        continue;
                    }
                    q.sleepers += 1;
                    q = self.wakeup.wait(q).unwrap_or_else(|e| e.into_inner());
                    q.sleepers -= 1;
                }
            };
            // SAFETY: `task` was queued by a started operation that waits for
            // this call to complete it; it is executed once (popped once).
            unsafe { TaskNode::execute(node(task), false) };
        }
    }

    /// Asks [`run`](Self::run) to return once the queue is empty. Safe to
    /// call from any thread; work scheduled afterwards still runs if `run`
    /// has not returned yet.
    pub fn finish(&self) {
        // SAFETY: `self` is a live reference.
        unsafe { Self::finish_raw(self) }
    }

    /// [`finish`](Self::finish) for a loop that may be freed by its owner
    /// as soon as the lock is released (the `sync_wait` hand-off). Takes a
    /// pointer so that no reference to the whole loop is held (as a
    /// protected function argument) while the owner frees it; only the
    /// mutex and condition variable are borrowed, and only until unlock.
    ///
    /// # Safety
    /// `this` points to a live `RunLoop` when called.
    pub(crate) unsafe fn finish_raw(this: *const Self) {
        // SAFETY: live per the contract; these borrows are locals, not
        // function arguments, and end with the unlock below.
        let (queue, wakeup, ready) = unsafe { (&(*this).queue, &(*this).wakeup, &(*this).ready) };
        let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
        q.finishing = true;
        // With the lock held, like the notification below: a spinning `run`
        // must take the lock before it can return and free the loop.
        ready.store(true, Ordering::Relaxed);
        // Notify while holding the lock: once it is released, the loop's
        // owner may return from `run` and free the loop.
        if q.sleepers > 0 {
            wakeup.notify_all();
        }
        // `q` unlocks as it goes out of scope. Not `drop(q)`: passing the
        // guard to a function protects the `&Mutex` inside it for the whole
        // call, past the unlock, while the owner may already free the loop
        // (miri reports it).
    }
}

impl Default for RunLoop {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RunLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunLoop").finish_non_exhaustive()
    }
}

/// Scheduler of a [`RunLoop`]: `schedule()` completes on the thread running
/// the loop.
#[derive(Clone, Copy)]
pub struct RunLoopScheduler<'a> {
    run_loop: &'a RunLoop,
}

impl PartialEq for RunLoopScheduler<'_> {
    fn eq(&self, other: &Self) -> bool {
        ptr::eq(self.run_loop, other.run_loop)
    }
}
impl Eq for RunLoopScheduler<'_> {}

impl fmt::Debug for RunLoopScheduler<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RunLoopScheduler")
            .field(&(self.run_loop as *const RunLoop))
            .finish()
    }
}

impl<'a> Scheduler for RunLoopScheduler<'a> {
    type Sender = RunLoopSender<'a>;
    fn schedule(&self) -> RunLoopSender<'a> {
        RunLoopSender {
            run_loop: self.run_loop,
        }
    }
    /// The loop itself (it implements [`DynScheduler`]).
    fn erased(&self) -> Option<SchedulerRef<'_>> {
        Some(SchedulerRef::new(self.run_loop))
    }
}

/// Sender of [`RunLoopScheduler::schedule`].
///
/// # Completion
/// - value: `()`, on the thread running the loop.
/// - stopped: if the receiver's stop token is triggered when the loop gets
///   to it.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Copy, Debug)]
pub struct RunLoopSender<'a> {
    run_loop: &'a RunLoop,
}

impl Sender for RunLoopSender<'_> {
    type Output = ();
    type Error = Infallible;
}

impl<'a> CompletionScheduler for RunLoopSender<'a> {
    type Scheduler = RunLoopScheduler<'a>;
    fn completion_scheduler(&self) -> RunLoopScheduler<'a> {
        RunLoopScheduler {
            run_loop: self.run_loop,
        }
    }
}

impl<'a, R: Receiver<(), Infallible> + Send> SenderTo<R> for RunLoopSender<'a> {
    type Operation = RunLoopScheduleOp<'a, R>;
    fn connect(self, receiver: R) -> RunLoopScheduleOp<'a, R> {
        RunLoopScheduleOp {
            task: Task::new(Self::execute::<R>),
            run_loop: self.run_loop,
            receiver: UnsafeCell::new(Some(receiver)),
            _pin: PhantomPinned,
        }
    }
}

impl RunLoopSender<'_> {
    /// # Safety
    /// `task` is the `task` field of a live `RunLoopScheduleOp<R>`, executed once.
    unsafe fn execute<R: Receiver<(), Infallible>>(task: NonNull<Task>, _stopped: bool) {
        let op = task.as_ptr() as *const RunLoopScheduleOp<'_, R>;
        // SAFETY: `task` is the first field of a `#[repr(C)]` op; the
        // receiver cell is only touched here once the op is queued.
        let receiver = unsafe { (*op).receiver.with_mut(|r| (*r).take()) };
        if let Some(r) = receiver {
            let stopped = r.env().stop_token().stop_requested();
            if stopped {
                r.set_stopped();
            } else {
                r.set_value(());
            }
        }
    }
}

/// Operation state of [`RunLoopSender`]: the queue node itself.
#[repr(C)]
pub struct RunLoopScheduleOp<'a, R> {
    task: Task,
    run_loop: &'a RunLoop,
    receiver: UnsafeCell<Option<R>>,
    _pin: PhantomPinned,
}

impl<R> fmt::Debug for RunLoopScheduleOp<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunLoopScheduleOp").finish_non_exhaustive()
    }
}

// SAFETY: the receiver is `Send`-bounded at connect time; the node's fields
// are guarded by the loop's mutex.
unsafe impl<R: Send> Send for RunLoopScheduleOp<'_, R> {}

impl<R: Receiver<(), Infallible>> OperationState for RunLoopScheduleOp<'_, R> {
    unsafe fn start(self: Pin<&mut Self>) {
        // Derived from the whole op (`#[repr(C)]`, `task` first), not from
        // `&self.task`, so `execute` may reach the receiver field through it.
        let task: *const Task = (self.as_ref().get_ref() as *const Self).cast::<Task>();
        // SAFETY: `enqueue`'s contract: the loop is alive (the op borrows it
        // for `'a`), and the node is pinned and, by `start`'s contract, alive
        // until it completes, which happens in `execute` after the loop pops
        // it. Going through `enqueue` (a pointer, not `&self`) also keeps the
        // hand-off sound when the loop is `sync_wait`'s and the node's
        // completion lets it return and free the loop.
        unsafe { <RunLoop as DynScheduler>::enqueue(NonNull::from(self.run_loop), node(task)) };
    }
}

// SAFETY: `enqueue` links the node under the mutex and `run` pops and
// executes it once; the loop is reached only through local borrows that end
// with the unlock that publishes the node (as in `finish_raw`), after which
// `run` may execute it and the loop's owner free the loop.
unsafe impl DynScheduler for RunLoop {
    unsafe fn enqueue(this: NonNull<Self>, node: NonNull<TaskNode>) {
        let this = this.as_ptr() as *const Self;
        // SAFETY: live per the contract; these borrows are locals, not
        // function arguments, and end with the unlock below.
        let (queue, wakeup) = unsafe { (&(*this).queue, &(*this).wakeup) };
        let task: *const Task = node.as_ptr();
        let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the caller keeps the node alive until executed; mutex held
        // for the links.
        unsafe {
            TaskNode::set_next(node, ptr::null_mut(), Ordering::Relaxed);
            if q.tail.is_null() {
                q.head = task;
            } else {
                TaskNode::set_next(self::node(q.tail), node.as_ptr(), Ordering::Relaxed);
            }
        }
        q.tail = task;
        // SAFETY: as for `queue` above.
        let ready = unsafe { &(*this).ready };
        ready.store(true, Ordering::Relaxed);
        // Notify while holding the lock: once it is released, the node may
        // run and the loop's owner free the loop.
        if q.sleepers > 0 {
            wakeup.notify_one();
        }
        // `q` unlocks as it goes out of scope (not `drop(q)`: see
        // `finish_raw`).
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! `run` racing a push and `finish` from another thread, through the
    //! unlock–spin–relock path: the work runs once and `run` returns.
    use super::*;
    use ::loom::sync::Arc;
    use ::loom::sync::atomic::AtomicBool;
    use core::pin::pin;

    struct Flag<'a>(&'a AtomicBool);
    impl Receiver<(), Infallible> for Flag<'_> {
        fn set_value(self, (): ()) {
            self.0.store(true, Ordering::Release);
        }
        fn set_error(self, e: Infallible) {
            match e {}
        }
        fn set_stopped(self) {
            panic!("not stopped");
        }
        fn set_panic(self, p: crate::PanicPayload) {
            std::panic::resume_unwind(p)
        }
    }

    #[test]
    fn push_and_finish_from_another_thread() {
        ::loom::model(|| {
            let run_loop = Arc::new(RunLoop::new());
            let done = Arc::new(AtomicBool::new(false));
            let (rl, d) = (run_loop.clone(), done.clone());
            let t = ::loom::thread::spawn(move || {
                let op = pin!(rl.scheduler().schedule().connect(Flag(&d)));
                // SAFETY: `op` stays on this frame until it completed (we
                // wait for the flag below).
                unsafe { op.start() };
                while !d.load(Ordering::Acquire) {
                    ::loom::thread::yield_now();
                }
                rl.finish();
            });
            run_loop.run();
            assert!(done.load(Ordering::Relaxed));
            t.join().unwrap();
        });
    }

    #[test]
    fn finish_from_another_thread() {
        ::loom::model(|| {
            let run_loop = Arc::new(RunLoop::new());
            let rl = run_loop.clone();
            let t = ::loom::thread::spawn(move || rl.finish());
            run_loop.run();
            t.join().unwrap();
        });
    }
}
