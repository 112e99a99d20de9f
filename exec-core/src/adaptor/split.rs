//! `split`: one run of a predecessor shared by any number of consumers.
//!
//! # Layout
//! One heap block per `split()` call: a [`Header`] (reference count, lock,
//! result, stop source) followed by the predecessor (first its sender, then
//! its operation state, connected in place when the first consumer starts).
//! [`Split`] handles, connected consumer operations and the running
//! predecessor each hold one counted reference; the block is freed when the
//! last one goes.
//!
//! # Protocol
//! - `phase` goes `Idle → Running → Done`, under the lock. The consumer that
//!   moves it to `Running` takes a reference for the predecessor (adopted by
//!   its receiver) and starts the predecessor after releasing the lock.
//! - The predecessor's receiver writes `result` *before* setting `Done`
//!   under the lock; `result` is never written again, so everyone who saw
//!   `Done` under the lock reads it through shared references (consumers
//!   clone it concurrently).
//! - Waiting consumers are [`Waiter`] nodes in the block's list; `waiting`
//!   counts them. The completing predecessor pops them one at a time and
//!   wakes each outside the lock. A consumer whose stop is requested
//!   unlinks itself; if it leaves `waiting == 0` while `Running`, it requests
//!   stop of the predecessor, before completing itself (its own reference
//!   keeps the block alive across that call).

use alloc::boxed::Box;
use alloc::string::String;
use core::fmt;
use core::marker::PhantomData;
use core::pin::Pin;
use core::ptr::NonNull;

use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::wait_list::{Lock, Node, WaitList, Waiter};
use crate::{
    Env, OperationState, PanicPayload, Receiver, Sender, SenderTo, StopSource, StopToken,
    catch_unwind,
};

/// The result as every consumer sees it.
enum Outcome<T, E> {
    Value(T),
    Error(E),
    Stopped,
    /// The panic's message; the original payload waits in `State::panic`.
    Panic(String),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Idle,
    Running,
    Done,
}

struct State {
    phase: Phase,
    /// Consumers linked in `list`.
    waiting: usize,
    list: WaitList,
    /// The predecessor's original panic payload, for the first consumer that
    /// delivers the panic.
    panic: Option<PanicPayload>,
}

/// The type-erased front of the shared block (does not name the sender).
#[repr(C)]
struct Header<T, E> {
    /// Counted references: handles, consumer operations, the running
    /// predecessor.
    refs: AtomicUsize,
    state: Lock<State>,
    /// Written once by the predecessor's receiver before `Done`; read-only
    /// afterwards.
    result: UnsafeCell<Option<Outcome<T, E>>>,
    /// The predecessor's stop token comes from here.
    stop: StopSource,
    /// Frees the whole block (knows its concrete type).
    drop_block: unsafe fn(NonNull<Header<T, E>>),
}

/// The whole block.
#[repr(C)]
struct Block<S: Sender, O> {
    header: Header<S::Output, S::Error>,
    /// `Some` until the first consumer starts. Touched only by that consumer.
    sender: UnsafeCell<Option<S>>,
    /// The connected predecessor, in place. Written once by the consumer that
    /// starts it; dropped with the block (after it completed).
    op: UnsafeCell<Option<O>>,
}

/// Shorthand for the block of sender `S`.
type BlockOf<S> = Block<S, <S as SenderTo<SplitReceiver<OutputOf<S>, ErrorOf<S>>>>::Operation>;
type OutputOf<S> = <S as Sender>::Output;
type ErrorOf<S> = <S as Sender>::Error;

/// One counted reference to a block's header.
struct Ref<T, E> {
    ptr: NonNull<Header<T, E>>,
}

impl<T, E> Ref<T, E> {
    fn header(&self) -> &Header<T, E> {
        // SAFETY: a counted reference keeps the block alive.
        unsafe { self.ptr.as_ref() }
    }
    /// Adds a reference (the caller owns the new one).
    fn clone_ref(&self) -> Self {
        // Relaxed, as in `Arc::clone`: we already hold a reference, so the
        // count cannot reach zero meanwhile.
        self.header().refs.fetch_add(1, Ordering::Relaxed);
        Ref { ptr: self.ptr }
    }
}

impl<T, E> Drop for Ref<T, E> {
    fn drop(&mut self) {
        // Release: our uses of the block happen before its destruction;
        // the Acquire fence on the last drop pairs with every Release.
        if self.header().refs.fetch_sub(1, Ordering::Release) == 1 {
            // A load rather than a fence: the same ordering, visible to
            // ThreadSanitizer (which does not model fences), as `Arc` does.
            self.header().refs.load(Ordering::Acquire);
            // SAFETY: that was the last reference.
            unsafe { (self.header().drop_block)(self.ptr) }
        }
    }
}

// SAFETY: a `Ref` shares the header between threads: the header's cells are
// guarded by its lock or written once before `Done` (see the module docs),
// and consumers clone `T`/`E` concurrently through `&`, hence `Sync`; the
// last reference frees the block on any thread, hence `Send`.
unsafe impl<T: Send + Sync, E: Send + Sync> Send for Ref<T, E> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync, E: Send + Sync> Sync for Ref<T, E> {}

/// Sender for the [`split`](crate::SenderExt::split) method: a cloneable,
/// multi-shot handle to one shared run of the predecessor `S`.
#[must_use = "senders do nothing unless connected and started"]
pub struct Split<S>
where
    S: Sender + SenderTo<SplitReceiver<OutputOf<S>, ErrorOf<S>>>,
{
    shared: Ref<S::Output, S::Error>,
    _sender: PhantomData<fn() -> S>,
}

impl<S> Split<S>
where
    S: Sender + SenderTo<SplitReceiver<OutputOf<S>, ErrorOf<S>>>,
{
    pub(crate) fn new(sender: S) -> Self {
        let block: Box<BlockOf<S>> = Box::new(Block {
            header: Header {
                refs: AtomicUsize::new(1),
                state: Lock::new(State {
                    phase: Phase::Idle,
                    waiting: 0,
                    list: WaitList::new(),
                    panic: None,
                }),
                result: UnsafeCell::new(None),
                stop: StopSource::new(),
                drop_block: drop_block::<S>,
            },
            sender: UnsafeCell::new(Some(sender)),
            op: UnsafeCell::new(None),
        });
        let ptr = NonNull::from(Box::leak(block)).cast::<Header<S::Output, S::Error>>();
        Split {
            shared: Ref { ptr },
            _sender: PhantomData,
        }
    }
}

/// # Safety
/// `header` is the header of a `BlockOf<S>` allocated by `Split::new`, and
/// its last reference was just dropped.
unsafe fn drop_block<S>(header: NonNull<Header<S::Output, S::Error>>)
where
    S: Sender + SenderTo<SplitReceiver<OutputOf<S>, ErrorOf<S>>>,
{
    // SAFETY: the header is the first field of the `#[repr(C)]` block that
    // `Box::leak` produced; no reference is left.
    drop(unsafe { Box::from_raw(header.cast::<BlockOf<S>>().as_ptr()) });
}

impl<S> Clone for Split<S>
where
    S: Sender + SenderTo<SplitReceiver<OutputOf<S>, ErrorOf<S>>>,
{
    fn clone(&self) -> Self {
        Split {
            shared: self.shared.clone_ref(),
            _sender: PhantomData,
        }
    }
}

impl<S> fmt::Debug for Split<S>
where
    S: Sender + SenderTo<SplitReceiver<OutputOf<S>, ErrorOf<S>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Split").finish_non_exhaustive()
    }
}

// SAFETY: the handle holds a counted reference (see `Ref`) and may drop the
// last one, which drops the sender and the predecessor's operation state on
// this thread: both must be `Send`. The predecessor itself is started on the
// thread of the first consumer and completes wherever it does.
unsafe impl<S> Send for Split<S>
where
    S: Sender + SenderTo<SplitReceiver<OutputOf<S>, ErrorOf<S>>> + Send,
    S::Operation: Send,
    S::Output: Send + Sync,
    S::Error: Send + Sync,
{
}
// SAFETY: `&Split` only allows `clone`, which is an atomic increment.
unsafe impl<S> Sync for Split<S>
where
    S: Sender + SenderTo<SplitReceiver<OutputOf<S>, ErrorOf<S>>> + Send,
    S::Operation: Send,
    S::Output: Send + Sync,
    S::Error: Send + Sync,
{
}

impl<S> Sender for Split<S>
where
    S: Sender + SenderTo<SplitReceiver<OutputOf<S>, ErrorOf<S>>>,
{
    type Output = S::Output;
    type Error = S::Error;
}

impl<S, R> SenderTo<R> for Split<S>
where
    S: Sender + SenderTo<SplitReceiver<OutputOf<S>, ErrorOf<S>>>,
    S::Output: Clone,
    S::Error: Clone,
    R: Receiver<S::Output, S::Error> + Send,
{
    type Operation = SplitOp<S, R>;
    fn connect(self, receiver: R) -> SplitOp<S, R> {
        SplitOp {
            waiter: Waiter::new(receiver, SplitOp::<S, R>::wake, SplitOp::<S, R>::cancel),
            shared: self.shared,
            _sender: PhantomData,
        }
    }
}

/// The receiver a [`Split`] connects its (one) predecessor to.
pub struct SplitReceiver<T, E> {
    /// The predecessor's counted reference, released after the consumers
    /// were woken.
    shared: Ref<T, E>,
}

impl<T, E> fmt::Debug for SplitReceiver<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SplitReceiver").finish_non_exhaustive()
    }
}

impl<T, E> SplitReceiver<T, E> {
    fn complete(self, outcome: Outcome<T, E>, panic: Option<PanicPayload>) {
        let header = self.shared.header();
        // SAFETY: only the predecessor's (single) completion writes, and
        // nobody reads before `Done` is set below, under the lock.
        header.result.with_mut(|r| unsafe { *r = Some(outcome) });
        header.state.with(|s| {
            s.phase = Phase::Done;
            s.panic = panic;
        });
        while let Some(node) = header.state.with(|s| {
            let node = s.list.pop_front();
            if node.is_some() {
                s.waiting -= 1;
            }
            node
        }) {
            // SAFETY: we unlinked it under the lock for waking; it is a
            // started consumer that waits for this, hence alive.
            unsafe { Node::wake(node) };
        }
        // Dropping `self` releases the predecessor's reference last: the
        // consumers we woke may have dropped theirs meanwhile.
    }
}

impl<T, E> Receiver<T, E> for SplitReceiver<T, E> {
    fn set_value(self, value: T) {
        self.complete(Outcome::Value(value), None)
    }
    fn set_error(self, error: E) {
        self.complete(Outcome::Error(error), None)
    }
    fn set_stopped(self) {
        self.complete(Outcome::Stopped, None)
    }
    fn set_panic(self, payload: PanicPayload) {
        let message = panic_message(&payload);
        self.complete(Outcome::Panic(message), Some(payload))
    }
    fn env(&self) -> impl Env<'_> {
        SplitEnv {
            stop: &self.shared.header().stop,
        }
    }
}

/// The message of a panic payload (`&str` or `String`), or a placeholder.
pub(crate) fn panic_message(payload: &PanicPayload) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        String::from(*s)
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        String::from("split: the shared work panicked with a non-string payload")
    }
}

struct SplitEnv<'a> {
    stop: &'a StopSource,
}

impl<'a> Env<'a> for SplitEnv<'a> {
    fn stop_token(&self) -> StopToken<'a> {
        self.stop.token()
    }
}

/// Operation state of [`Split`] for one consumer.
#[repr(C)]
pub struct SplitOp<S, R>
where
    S: Sender + SenderTo<SplitReceiver<OutputOf<S>, ErrorOf<S>>>,
{
    /// First field: a `*const Node` is a `*const SplitOp`.
    waiter: Waiter<R>,
    shared: Ref<S::Output, S::Error>,
    _sender: PhantomData<fn() -> S>,
}

impl<S, R> fmt::Debug for SplitOp<S, R>
where
    S: Sender + SenderTo<SplitReceiver<OutputOf<S>, ErrorOf<S>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SplitOp").finish_non_exhaustive()
    }
}

// SAFETY: the receiver is `Send` (required by `connect`) and may be completed
// on the thread that completes the predecessor or requests stop; the shared
// reference is `Send` under the bounds of `Split: Send`.
unsafe impl<S, R: Send> Send for SplitOp<S, R>
where
    S: Sender + SenderTo<SplitReceiver<OutputOf<S>, ErrorOf<S>>> + Send,
    S::Operation: Send,
    S::Output: Send + Sync,
    S::Error: Send + Sync,
{
}

enum Next {
    Deliver,
    Stopped,
    Wait,
    StartPredecessor,
}

impl<S, R> SplitOp<S, R>
where
    S: Sender + SenderTo<SplitReceiver<OutputOf<S>, ErrorOf<S>>>,
    S::Output: Clone,
    S::Error: Clone,
    R: Receiver<S::Output, S::Error>,
{
    /// Completes `receiver` with a copy of the shared result.
    ///
    /// # Safety
    /// The caller saw `Done` under the lock (or is the thread that set it).
    unsafe fn deliver(header: &Header<S::Output, S::Error>, receiver: R) {
        enum Delivery<T, E> {
            Value(T),
            Error(E),
            Stopped,
            Panic(PanicPayload),
            PanicMessage(String),
        }
        let copy = header.result.with(|r| {
            // SAFETY: written once before `Done`, read-only afterwards.
            match unsafe { &*r } {
                Some(Outcome::Value(v)) => match catch_unwind(|| v.clone()) {
                    Ok(v) => Delivery::Value(v),
                    Err(p) => Delivery::Panic(p),
                },
                Some(Outcome::Error(e)) => match catch_unwind(|| e.clone()) {
                    Ok(e) => Delivery::Error(e),
                    Err(p) => Delivery::Panic(p),
                },
                Some(Outcome::Stopped) => Delivery::Stopped,
                Some(Outcome::Panic(m)) => Delivery::PanicMessage(m.clone()),
                None => unreachable!("split: Done without a result"),
            }
        });
        match copy {
            Delivery::Value(v) => receiver.set_value(v),
            Delivery::Error(e) => receiver.set_error(e),
            Delivery::Stopped => receiver.set_stopped(),
            Delivery::Panic(p) => receiver.set_panic(p),
            Delivery::PanicMessage(m) => {
                let payload = header
                    .state
                    .with(|s| s.panic.take())
                    .unwrap_or_else(|| Box::new(m));
                receiver.set_panic(payload)
            }
        }
    }

    /// # Safety
    /// `node` is the node of a started `SplitOp<S, R>` that the predecessor's
    /// receiver unlinked for waking, after setting `Done`.
    unsafe fn wake(node: *const Node) {
        let this = node as *const Self;
        // SAFETY: per the contract we own the completion; `shared` keeps the
        // block alive until the operation is dropped, which is after the
        // completion below, and we read nothing of ours after it.
        unsafe {
            (*this).waiter.disarm();
            let receiver = (*this).waiter.take_receiver();
            let header = (*this).shared.ptr.as_ref();
            Self::deliver(header, receiver);
        }
    }

    /// # Safety
    /// Called from the consumer's stop callback; `node` is the node of a
    /// started `SplitOp<S, R>`.
    unsafe fn cancel(node: *const Node) {
        let this = node as *const Self;
        // SAFETY: the stop callback is registered, so the operation is alive.
        let header = unsafe { (*this).shared.ptr.as_ref() };
        let (won, stop_work) = header.state.with(|s| {
            // SAFETY: lock held; our node is alive.
            if unsafe { s.list.remove(node) } {
                s.waiting -= 1;
                (true, s.waiting == 0 && s.phase == Phase::Running)
            } else {
                (false, false)
            }
        });
        if !won {
            return;
        }
        if stop_work {
            // Our reference keeps the block alive through this call, which
            // may complete the predecessor inline.
            header.stop.request_stop();
        }
        // SAFETY: we unlinked the node, so we own the completion.
        unsafe {
            (*this).waiter.disarm();
            (*this).waiter.take_receiver().set_stopped();
        }
    }
}

impl<S, R> OperationState for SplitOp<S, R>
where
    S: Sender + SenderTo<SplitReceiver<OutputOf<S>, ErrorOf<S>>>,
    S::Output: Clone,
    S::Error: Clone,
    R: Receiver<S::Output, S::Error>,
{
    unsafe fn start(self: Pin<&mut Self>) {
        let this: &Self = self.into_ref().get_ref();
        let node = Waiter::<R>::node_of(this);
        let header = this.shared.header();
        // SAFETY: not linked, not armed: we have the receiver to ourselves;
        // the token is used only until we complete.
        let token = unsafe { this.waiter.token() };
        if token.stop_requested() {
            // Stopped before it started: stopped, even if a value is ready.
            // SAFETY: nothing else can complete us yet.
            unsafe { this.waiter.take_receiver() }.set_stopped();
            return;
        }
        if header.state.with(|s| s.phase == Phase::Done) {
            // SAFETY: `Done` seen under the lock; we own the completion.
            unsafe { Self::deliver(header, this.waiter.take_receiver()) };
            return;
        }
        // SAFETY: pinned (the op is started), not yet linked, armed once.
        unsafe { this.waiter.arm(node, token) };
        let next = header.state.with(|s| match s.phase {
            Phase::Done => Next::Deliver,
            _ if token.stop_requested() => Next::Stopped,
            phase => {
                // SAFETY: lock held; the op is pinned and stays alive until
                // it completes, which requires unlinking it first.
                unsafe { s.list.push_back(node) };
                s.waiting += 1;
                if phase == Phase::Idle {
                    s.phase = Phase::Running;
                    // The predecessor's reference, adopted by its receiver.
                    header.refs.fetch_add(1, Ordering::Relaxed);
                    Next::StartPredecessor
                } else {
                    Next::Wait
                }
            }
        });
        match next {
            Next::Deliver => {
                // SAFETY: not linked, so we own the completion.
                unsafe {
                    this.waiter.disarm();
                    Self::deliver(header, this.waiter.take_receiver());
                }
            }
            Next::Stopped => {
                // SAFETY: not linked, so we own the completion.
                unsafe {
                    this.waiter.disarm();
                    this.waiter.take_receiver().set_stopped();
                }
            }
            Next::Wait => {}
            Next::StartPredecessor => {
                // From here on we may already be completed (and freed) by
                // another thread: use only the predecessor's own reference.
                let block = this.shared.ptr.cast::<BlockOf<S>>();
                let receiver = SplitReceiver {
                    shared: Ref {
                        ptr: this.shared.ptr,
                    },
                };
                // SAFETY: the reference taken above keeps the block alive
                // until the predecessor completes; only the consumer that
                // moved `Idle → Running` (us) touches `sender` and `op`.
                unsafe { start_predecessor::<S>(block, receiver) };
            }
        }
    }
}

/// Connects the predecessor inside the block and starts it.
///
/// # Safety
/// Called once per block, by the consumer that moved it to `Running`;
/// `receiver` owns a counted reference to `block`.
unsafe fn start_predecessor<S>(
    block: NonNull<BlockOf<S>>,
    receiver: SplitReceiver<S::Output, S::Error>,
) where
    S: Sender + SenderTo<SplitReceiver<OutputOf<S>, ErrorOf<S>>>,
{
    // SAFETY: `receiver`'s reference keeps the block alive.
    let block = unsafe { block.as_ref() };
    // SAFETY: only we touch `sender` (see the contract).
    let sender = block.sender.with_mut(|s| unsafe { (*s).take() });
    let sender = sender.expect("split: predecessor started twice");
    let op: *mut S::Operation = block.op.with_mut(|o| {
        // SAFETY: only we touch `op` until the block is dropped.
        unsafe {
            *o = Some(sender.connect(receiver));
            (*o).as_mut().map(|op| op as *mut _).unwrap_unchecked()
        }
    });
    // SAFETY: the op lives in the heap block, which does not move and is
    // dropped only after the op completed (its receiver holds a reference).
    unsafe { Pin::new_unchecked(&mut *op).start() };
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::Completion;
    use ::loom::sync::Arc;
    use ::loom::sync::atomic::AtomicUsize;
    use alloc::boxed::Box;

    /// A predecessor that parks its receiver until a thread completes it.
    struct Parked {
        slot: Arc<Lock<Option<SplitReceiver<usize, ()>>>>,
        starts: Arc<AtomicUsize>,
    }
    impl Sender for Parked {
        type Output = usize;
        type Error = ();
    }
    impl SenderTo<SplitReceiver<usize, ()>> for Parked {
        type Operation = ParkedOp;
        fn connect(self, receiver: SplitReceiver<usize, ()>) -> ParkedOp {
            ParkedOp(Some((self, receiver)))
        }
    }
    struct ParkedOp(Option<(Parked, SplitReceiver<usize, ()>)>);
    impl OperationState for ParkedOp {
        unsafe fn start(self: Pin<&mut Self>) {
            // SAFETY: nothing is structurally pinned.
            let this = unsafe { self.get_unchecked_mut() };
            let (p, r) = this.0.take().unwrap();
            p.starts.fetch_add(1, Ordering::Relaxed);
            p.slot.with(|s| *s = Some(r));
        }
    }

    /// A consumer receiver that records into an atomic.
    struct Rec(Arc<AtomicUsize>);
    impl Receiver<usize, ()> for Rec {
        fn set_value(self, v: usize) {
            self.0.store(v + 100, Ordering::Release);
        }
        fn set_error(self, _: ()) {
            self.0.store(1, Ordering::Release);
        }
        fn set_stopped(self) {
            self.0.store(2, Ordering::Release);
        }
        fn set_panic(self, _: PanicPayload) {
            self.0.store(3, Ordering::Release);
        }
    }

    /// Two consumers start on two threads while the predecessor completes
    /// on a third: the predecessor starts once, both consumers get the value.
    #[test]
    fn two_consumers_and_a_completer() {
        ::loom::model(|| {
            let slot = Arc::new(Lock::new(None));
            let starts = Arc::new(AtomicUsize::new(0));
            let split = Split::new(Parked {
                slot: slot.clone(),
                starts: starts.clone(),
            });
            let results: [Arc<AtomicUsize>; 2] =
                [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
            let mut handles = alloc::vec::Vec::new();
            for res in &results {
                let s = split.clone();
                let res = res.clone();
                handles.push(::loom::thread::spawn(move || {
                    let mut op = Box::pin(s.connect(Rec(res)));
                    // SAFETY: the op is handed back to the main thread,
                    // which keeps it until it has completed.
                    unsafe { op.as_mut().start() };
                    op
                }));
            }
            drop(split);
            // The completer runs concurrently with the starts: if the
            // predecessor was not started yet, the main thread completes it.
            let completer = {
                let slot = slot.clone();
                ::loom::thread::spawn(move || {
                    if let Some(r) = slot.with(|s| s.take()) {
                        Completion::<usize, ()>::Value(7).deliver(r);
                    }
                })
            };
            let ops: alloc::vec::Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            completer.join().unwrap();
            if let Some(r) = slot.with(|s| s.take()) {
                Completion::<usize, ()>::Value(7).deliver(r);
            }
            drop(ops);
            assert_eq!(starts.load(Ordering::Relaxed), 1);
            for res in &results {
                assert_eq!(res.load(Ordering::Relaxed), 107);
            }
        });
    }

    /// A consumer whose stop is requested on one thread while the
    /// predecessor completes on another: exactly one completion, value or
    /// stopped.
    #[test]
    fn stop_races_completion() {
        struct StopRec {
            res: Arc<AtomicUsize>,
            source: Arc<StopSource>,
        }
        impl StopRec {
            fn record(&self, v: usize) {
                let prev = self.res.swap(v, Ordering::AcqRel);
                assert_eq!(prev, 0, "completed twice");
            }
        }
        impl Receiver<usize, ()> for StopRec {
            fn set_value(self, v: usize) {
                self.record(v + 100)
            }
            fn set_error(self, _: ()) {
                self.record(1)
            }
            fn set_stopped(self) {
                self.record(2)
            }
            fn set_panic(self, _: PanicPayload) {
                self.record(3)
            }
            fn env(&self) -> impl Env<'_> {
                SplitEnv { stop: &self.source }
            }
        }
        ::loom::model(|| {
            let slot = Arc::new(Lock::new(None));
            let starts = Arc::new(AtomicUsize::new(0));
            let split = Split::new(Parked {
                slot: slot.clone(),
                starts: starts.clone(),
            });
            let res = Arc::new(AtomicUsize::new(0));
            let source = Arc::new(StopSource::new());
            let mut op = Box::pin(split.connect(StopRec {
                res: res.clone(),
                source: source.clone(),
            }));
            // SAFETY: `op` is dropped only after it completed (checked below).
            unsafe { op.as_mut().start() };
            let receiver = slot.with(|s| s.take()).expect("started");
            let stopper = ::loom::thread::spawn(move || {
                source.request_stop();
            });
            let completer = ::loom::thread::spawn(move || {
                Completion::<usize, ()>::Value(7).deliver(receiver);
            });
            stopper.join().unwrap();
            completer.join().unwrap();
            let r = res.load(Ordering::Acquire);
            assert!(r == 107 || r == 2, "got {r}");
            drop(op);
        });
    }
}
