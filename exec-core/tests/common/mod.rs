//! Test fixtures, after stdexec's `test/test_common/`: receivers that record
//! or expect a completion, drop counters, and schedulers that are stepped by
//! hand, always fail or always stop.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::any::Any;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Debug;
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use exec_core::{
    Completion, Env, OperationState, PanicPayload, Receiver, Scheduler, Sender, SenderTo,
    StopSource, StopToken,
};

// ---------------------------------------------------------------- recorder

/// What a [`Recorder`] saw.
#[derive(Debug)]
pub enum Seen<T, E> {
    Value(T),
    Error(E),
    Stopped,
    Panic(PanicPayload),
}

impl<T, E> Seen<T, E> {
    pub fn panic_message(&self) -> Option<String> {
        match self {
            Seen::Panic(p) => Some(payload_message(p.as_ref())),
            _ => None,
        }
    }
}

pub fn payload_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".into()
    }
}

struct Slot<T, E> {
    seen: Mutex<Option<Seen<T, E>>>,
    completions: AtomicUsize,
    /// Optional stop source whose token the receiver's env exposes.
    stop: Option<Arc<StopSource>>,
}

/// The test's end of a [`RecordingReceiver`].
pub struct Recorder<T, E> {
    slot: Arc<Slot<T, E>>,
}

/// A receiver that records its completion; completing twice (through a
/// clone of the slot) or on the panic channel is recorded too.
pub struct RecordingReceiver<T, E> {
    slot: Arc<Slot<T, E>>,
}

/// A recording receiver and its recorder (env: never-stop token).
pub fn recorder<T, E>() -> (RecordingReceiver<T, E>, Recorder<T, E>) {
    let slot = Arc::new(Slot {
        seen: Mutex::new(None),
        completions: AtomicUsize::new(0),
        stop: None,
    });
    (RecordingReceiver { slot: slot.clone() }, Recorder { slot })
}

/// A recording receiver whose env carries `source`'s token.
pub fn recorder_with_stop<T, E>(
    source: Arc<StopSource>,
) -> (RecordingReceiver<T, E>, Recorder<T, E>) {
    let slot = Arc::new(Slot {
        seen: Mutex::new(None),
        completions: AtomicUsize::new(0),
        stop: Some(source),
    });
    (RecordingReceiver { slot: slot.clone() }, Recorder { slot })
}

impl<T, E> Recorder<T, E> {
    /// How many completions arrived (must end up exactly 1).
    pub fn completions(&self) -> usize {
        self.slot.completions.load(Ordering::SeqCst)
    }
    pub fn is_complete(&self) -> bool {
        self.completions() > 0
    }
    /// Takes the completion; panics if none or more than one arrived.
    pub fn take(&self) -> Seen<T, E> {
        assert_eq!(self.completions(), 1, "expected exactly one completion");
        self.slot
            .seen
            .lock()
            .unwrap()
            .take()
            .expect("completion already taken")
    }
}

impl<T: Debug, E: Debug> Recorder<T, E> {
    #[track_caller]
    pub fn expect_value(&self) -> T {
        match self.take() {
            Seen::Value(v) => v,
            other => panic!("expected a value, got {other:?}"),
        }
    }
    #[track_caller]
    pub fn expect_error(&self) -> E {
        match self.take() {
            Seen::Error(e) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }
    #[track_caller]
    pub fn expect_stopped(&self) {
        match self.take() {
            Seen::Stopped => {}
            other => panic!("expected stopped, got {other:?}"),
        }
    }
    /// Expects the panic channel; returns the payload's message.
    #[track_caller]
    pub fn expect_panic(&self) -> String {
        match self.take() {
            Seen::Panic(p) => payload_message(p.as_ref()),
            other => panic!("expected a panic, got {other:?}"),
        }
    }
}

impl<T, E> RecordingReceiver<T, E> {
    fn record(self, seen: Seen<T, E>) {
        // Count under the lock: a test that sees the count and then takes
        // the completion (through the same lock) finds it stored.
        let mut slot = self.slot.seen.lock().unwrap();
        let n = self.slot.completions.fetch_add(1, Ordering::SeqCst);
        assert_eq!(n, 0, "receiver completed more than once");
        *slot = Some(seen);
    }
}

impl<T, E> Receiver<T, E> for RecordingReceiver<T, E> {
    fn set_value(self, value: T) {
        self.record(Seen::Value(value))
    }
    fn set_error(self, error: E) {
        self.record(Seen::Error(error))
    }
    fn set_stopped(self) {
        self.record(Seen::Stopped)
    }
    fn set_panic(self, payload: PanicPayload) {
        self.record(Seen::Panic(payload))
    }
    fn env(&self) -> impl Env<'_> {
        RecEnv {
            stop: self.slot.stop.as_deref(),
        }
    }
}

struct RecEnv<'a> {
    stop: Option<&'a StopSource>,
}
impl<'a> Env<'a> for RecEnv<'a> {
    fn stop_token(&self) -> StopToken<'a> {
        match self.stop {
            Some(s) => s.token(),
            None => StopToken::never(),
        }
    }
}

// ------------------------------------------------------------- running ops

/// A started operation, kept alive (boxed and pinned) until it completes.
/// Dropping it before completion leaks it (never frees a running op) and
/// panics: the test forgot to drive it.
pub struct Started<O: OperationState> {
    op: Option<Pin<Box<O>>>,
    done: Box<dyn Fn() -> bool>,
}

impl<O: OperationState> Started<O> {
    pub fn finish(mut self) {
        assert!((self.done)(), "operation has not completed");
        self.op.take();
    }
}

impl<O: OperationState> Drop for Started<O> {
    fn drop(&mut self) {
        let Some(op) = self.op.take() else { return };
        if !(self.done)() {
            std::mem::forget(op);
            if !std::thread::panicking() {
                panic!("a started operation was dropped before it completed");
            }
        }
    }
}

/// What [`start`] returns: the running op and the recorder of its receiver.
pub type StartedWith<S> = (
    Started<
        <S as SenderTo<RecordingReceiver<<S as Sender>::Output, <S as Sender>::Error>>>::Operation,
    >,
    Recorder<<S as Sender>::Output, <S as Sender>::Error>,
);

/// Connects `sender` to a fresh recorder and starts it.
pub fn start<S>(sender: S) -> StartedWith<S>
where
    S: SenderTo<RecordingReceiver<<S as Sender>::Output, <S as Sender>::Error>>,
    S::Output: 'static,
    S::Error: 'static,
{
    let (r, rec) = recorder();
    let started = start_with(sender, r, &rec);
    (started, rec)
}

/// Connects `sender` to `receiver` (whose recorder is `rec`) and starts it.
pub fn start_with<S, T: 'static, E: 'static>(
    sender: S,
    receiver: RecordingReceiver<T, E>,
    rec: &Recorder<T, E>,
) -> Started<S::Operation>
where
    S: SenderTo<RecordingReceiver<T, E>>,
{
    let mut op = Box::pin(sender.connect(receiver));
    // SAFETY: `Started` keeps the box alive until the recorder saw a
    // completion, and leaks it otherwise.
    unsafe { op.as_mut().start() };
    let slot = rec.slot.clone();
    Started {
        op: Some(op),
        done: Box::new(move || slot.completions.load(Ordering::SeqCst) > 0),
    }
}

// ------------------------------------------------------------ drop counter

/// Counts live [`Tracked`] values: `created`, `dropped`.
#[derive(Clone, Default)]
pub struct DropCounter {
    inner: Arc<(AtomicUsize, AtomicUsize)>,
}

impl DropCounter {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn track<T>(&self, value: T) -> Tracked<T> {
        self.inner.0.fetch_add(1, Ordering::SeqCst);
        Tracked {
            value,
            counter: self.inner.clone(),
        }
    }
    pub fn created(&self) -> usize {
        self.inner.0.load(Ordering::SeqCst)
    }
    pub fn dropped(&self) -> usize {
        self.inner.1.load(Ordering::SeqCst)
    }
    pub fn alive(&self) -> usize {
        self.created() - self.dropped()
    }
}

/// A value whose drop a [`DropCounter`] counts.
#[derive(Debug)]
pub struct Tracked<T> {
    pub value: T,
    counter: Arc<(AtomicUsize, AtomicUsize)>,
}

impl<T> Drop for Tracked<T> {
    fn drop(&mut self) {
        self.counter.1.fetch_add(1, Ordering::SeqCst);
    }
}

impl<T: PartialEq> PartialEq for Tracked<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

// ------------------------------------------------------- manual scheduler

type Job = Box<dyn FnOnce(bool) + Send>;

struct ManualQueue {
    jobs: Mutex<VecDeque<(usize, Job)>>,
}

/// A scheduler whose scheduled operations run only when the test calls
/// [`run_one`](Self::run_one) / [`run_all`](Self::run_all), on the calling
/// thread. Each queued entry is a pointer-free closure completing one op.
#[derive(Clone)]
pub struct ManualScheduler {
    queue: Arc<ManualQueue>,
}

impl PartialEq for ManualScheduler {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.queue, &other.queue)
    }
}

impl Default for ManualScheduler {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualScheduler {
    pub fn new() -> Self {
        ManualScheduler {
            queue: Arc::new(ManualQueue {
                jobs: Mutex::new(VecDeque::new()),
            }),
        }
    }
    /// Runs the oldest queued operation; returns whether there was one.
    pub fn run_one(&self) -> bool {
        let job = self.queue.jobs.lock().unwrap().pop_front();
        match job {
            Some((_, job)) => {
                job(false);
                true
            }
            None => false,
        }
    }
    /// Runs until the queue is empty; returns how many ran.
    pub fn run_all(&self) -> usize {
        let mut n = 0;
        while self.run_one() {
            n += 1;
        }
        n
    }
    /// Completes every queued operation with *stopped*.
    pub fn stop_all(&self) -> usize {
        let mut n = 0;
        loop {
            let job = self.queue.jobs.lock().unwrap().pop_front();
            match job {
                Some((_, job)) => {
                    job(true);
                    n += 1;
                }
                None => return n,
            }
        }
    }
    pub fn pending(&self) -> usize {
        self.queue.jobs.lock().unwrap().len()
    }
}

impl Scheduler for ManualScheduler {
    type Sender = ManualSender;
    fn schedule(&self) -> ManualSender {
        ManualSender {
            queue: self.queue.clone(),
        }
    }
}

/// Sender of [`ManualScheduler::schedule`].
#[derive(Clone)]
pub struct ManualSender {
    queue: Arc<ManualQueue>,
}

impl Sender for ManualSender {
    type Output = ();
    type Error = Infallible;
}

impl<R: Receiver<(), Infallible> + Send + 'static> SenderTo<R> for ManualSender {
    type Operation = ManualOp<R>;
    fn connect(self, receiver: R) -> ManualOp<R> {
        ManualOp {
            queue: self.queue,
            receiver: Some(receiver),
            _pin: PhantomPinned,
        }
    }
}

/// Operation of [`ManualSender`]. Takes the receiver into the queued job at
/// start (the fixture trades zero-allocation for simplicity).
pub struct ManualOp<R> {
    queue: Arc<ManualQueue>,
    receiver: Option<R>,
    _pin: PhantomPinned,
}

impl<R: Receiver<(), Infallible> + Send + 'static> OperationState for ManualOp<R> {
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: nothing is structurally pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let r = this.receiver.take().expect("started twice");
        let id = 0;
        this.queue.jobs.lock().unwrap().push_back((
            id,
            Box::new(move |stop: bool| {
                let stopped = stop || r.env().stop_token().stop_requested();
                if stopped {
                    r.set_stopped()
                } else {
                    r.set_value(())
                }
            }),
        ));
    }
}

// ------------------------------------------- failing / stopping schedulers

/// A scheduler whose `schedule()` always completes with `error`.
#[derive(Clone, PartialEq)]
pub struct ErrorScheduler<E: Clone + PartialEq>(pub E);

/// A scheduler whose `schedule()` always completes *stopped*.
#[derive(Clone, PartialEq)]
pub struct StoppedScheduler;

/// A sender that completes with exactly `completion`, inline.
#[derive(Clone)]
pub struct Fixed<T, E>(pub Completion<T, E>);

impl<T, E> Sender for Fixed<T, E> {
    type Output = T;
    type Error = E;
}

impl<T, E, R: Receiver<T, E>> SenderTo<R> for Fixed<T, E> {
    type Operation = FixedOp<T, E, R>;
    fn connect(self, receiver: R) -> FixedOp<T, E, R> {
        FixedOp(Some((self.0, receiver)), PhantomPinned)
    }
}

/// Operation of [`Fixed`].
/// `!Unpin` like every operation state (see `OperationState`).
pub struct FixedOp<T, E, R>(Option<(Completion<T, E>, R)>, PhantomPinned);

impl<T, E, R: Receiver<T, E>> OperationState for FixedOp<T, E, R> {
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: nothing is structurally pinned.
        let this = unsafe { self.get_unchecked_mut() };
        if let Some((c, r)) = this.0.take() {
            c.deliver(r)
        }
    }
}

impl<E: Clone + PartialEq> Scheduler for ErrorScheduler<E> {
    type Sender = Fixed<(), E>;
    fn schedule(&self) -> Fixed<(), E> {
        Fixed(Completion::Error(self.0.clone()))
    }
}

impl Scheduler for StoppedScheduler {
    type Sender = Fixed<(), Infallible>;
    fn schedule(&self) -> Fixed<(), Infallible> {
        Fixed(Completion::Stopped)
    }
}

// ------------------------------------------------- manual erased context

/// A [`DynScheduler`](exec_core::DynScheduler) context stepped by hand: it
/// queues [`TaskNode`](exec_core::TaskNode)s (no allocation per node beyond
/// the queue's own storage) and runs them when the test says. Declare it as
/// a `static` (its `new` is `const`) so handles to it are `'static`.
pub struct ManualContext {
    nodes: Mutex<VecDeque<NodePtr>>,
}

struct NodePtr(std::ptr::NonNull<exec_core::TaskNode>);
// SAFETY: a queued node belongs to an operation whose receiver is `Send`
// (required by the senders that enqueue); only the context touches it.
unsafe impl Send for NodePtr {}

impl ManualContext {
    pub const fn new() -> Self {
        ManualContext {
            nodes: Mutex::new(VecDeque::new()),
        }
    }
    /// A handle to this context.
    pub fn handle(&'static self) -> exec_core::SchedulerRef<'static> {
        exec_core::SchedulerRef::new(self)
    }
    pub fn pending(&self) -> usize {
        self.nodes.lock().unwrap().len()
    }
    fn pop(&self) -> Option<NodePtr> {
        self.nodes.lock().unwrap().pop_front()
    }
    /// Runs queued nodes until none is left; returns how many ran.
    pub fn run_all(&self) -> usize {
        let mut n = 0;
        while let Some(node) = self.pop() {
            // SAFETY: popped once, so executed once; alive until executed.
            unsafe { exec_core::TaskNode::execute(node.0, false) };
            n += 1;
        }
        n
    }
    /// Executes every queued node with `stopped = true` (a shutdown).
    pub fn stop_all(&self) -> usize {
        let mut n = 0;
        while let Some(node) = self.pop() {
            // SAFETY: as in `run_all`.
            unsafe { exec_core::TaskNode::execute(node.0, true) };
            n += 1;
        }
        n
    }
}

// SAFETY: every node is queued once and executed once by `run_all` or
// `stop_all`; `enqueue` touches the context only until the unlock that
// publishes the node.
unsafe impl exec_core::DynScheduler for ManualContext {
    unsafe fn enqueue(this: std::ptr::NonNull<Self>, node: std::ptr::NonNull<exec_core::TaskNode>) {
        // SAFETY: `this` is live when called (a static here).
        let this = unsafe { this.as_ref() };
        this.nodes.lock().unwrap().push_back(NodePtr(node));
    }
}
