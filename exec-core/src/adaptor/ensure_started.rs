//! `ensure_started`: start a sender now, pick its result up later.
//!
//! # Layout
//! One heap block: a [`Header`] (reference count, lock, result slot, stop
//! source, hooks) followed by the predecessor's operation state, connected
//! in place and started by `ensure_started` itself. Two counted references
//! exist: the running work's (held by its receiver) and the consumer's (the
//! returned sender, then its operation state). The last one frees the block.
//!
//! # Protocol
//! - The work's receiver writes `result` *before* setting `done` under the
//!   lock, and takes the waiting consumer (if any) in the same critical
//!   section. From then on the result belongs to the consumer: the one
//!   woken, or the one that finds `done` under the lock when it starts.
//! - A consumer waits as a [`Waiter`] node stored in `waiter`. Its stop
//!   callback clears `waiter` under the lock if it is still there, then
//!   requests stop of the work and completes *stopped*.
//! - Dropping the returned sender (or its unstarted operation) sets
//!   `detached` and requests stop of the work, then releases its reference:
//!   the work's completion frees the block.
//! - The [`Hooks`] let `AsyncScope::spawn_future` reuse this block: they are
//!   told when the work completes (to leave the scope), after the block may
//!   already have been freed by the other reference.

use alloc::boxed::Box;
use core::fmt;
use core::pin::Pin;
use core::ptr::{self, NonNull};

use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::wait_list::{Lock, Node, Waiter};
use crate::{Env, OperationState, PanicPayload, Receiver, Sender, SenderTo, StopSource, StopToken};

/// What the work completed with.
pub(crate) enum Outcome<T, E> {
    Value(T),
    Error(E),
    Stopped,
    Panic(PanicPayload),
}

impl<T, E> Outcome<T, E> {
    fn deliver<R: Receiver<T, E>>(self, receiver: R) {
        match self {
            Outcome::Value(v) => receiver.set_value(v),
            Outcome::Error(e) => receiver.set_error(e),
            Outcome::Stopped => receiver.set_stopped(),
            Outcome::Panic(p) => receiver.set_panic(p),
        }
    }
}

/// Extension points for owners of eagerly started work (the scope).
pub(crate) trait Hooks: Send {
    /// What is kept from the work's completion until the block's reference
    /// has been released (for the scope: its association).
    type Token;
    /// Called once, right before the work starts, with exclusive access;
    /// `stop` is the work's stop source, pinned in the same block.
    fn attach(self: Pin<&mut Self>, stop: &StopSource);
    /// Called once, at the work's completion, with exclusive access; `orphan`
    /// is the panic payload if the work panicked and nobody will consume it.
    fn work_done(self: Pin<&mut Self>, orphan: Option<PanicPayload>) -> Self::Token;
}

/// No hooks: plain `ensure_started`.
impl Hooks for () {
    type Token = ();
    fn attach(self: Pin<&mut Self>, _stop: &StopSource) {}
    fn work_done(self: Pin<&mut Self>, orphan: Option<PanicPayload>) {
        // Nobody consumes it: dropped (documented on `ensure_started`).
        drop(orphan);
    }
}

struct State {
    done: bool,
    /// The consumer has gone (sender or unstarted op dropped, or stopped).
    detached: bool,
    /// The waiting consumer's node, or null.
    waiter: *const Node,
}

// SAFETY: the node pointer is only touched under the lock (see the module
// docs); its operation requires a `Send` receiver.
unsafe impl Send for State {}

/// The type-erased front of the block.
#[repr(C)]
pub(crate) struct Header<T, E, H> {
    refs: AtomicUsize,
    state: Lock<State>,
    /// Written once by the work's receiver before `done`; then owned by the
    /// consumer (or dropped with the block).
    result: UnsafeCell<Option<Outcome<T, E>>>,
    stop: StopSource,
    /// Pinned in the block. Touched at creation and by the work's completion.
    hooks: UnsafeCell<H>,
    drop_block: unsafe fn(NonNull<Header<T, E, H>>),
}

#[repr(C)]
struct Block<T, E, H, O> {
    header: Header<T, E, H>,
    /// The work, connected in place; dropped with the block.
    op: UnsafeCell<Option<O>>,
}

/// One counted reference to a block.
pub(crate) struct Ref<T, E, H> {
    ptr: NonNull<Header<T, E, H>>,
}

impl<T, E, H> Ref<T, E, H> {
    fn header(&self) -> &Header<T, E, H> {
        // SAFETY: a counted reference keeps the block alive.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T, E, H> Drop for Ref<T, E, H> {
    fn drop(&mut self) {
        // Release/Acquire as in `Arc`: the decisive ordering that makes the
        // work's write of `result` visible to whoever frees the block.
        if self.header().refs.fetch_sub(1, Ordering::Release) == 1 {
            // A load rather than a fence: the same ordering, visible to
            // ThreadSanitizer (which does not model fences), as `Arc` does.
            self.header().refs.load(Ordering::Acquire);
            // SAFETY: that was the last reference.
            unsafe { (self.header().drop_block)(self.ptr) }
        }
    }
}

// SAFETY: the header's cells are guarded by its lock or handed over through
// it (see the module docs); the result moves between threads (`T, E: Send`);
// the last reference frees the block (and the work's op) on any thread — the
// op's `Send`ness is required where a `Ref` is created for it.
unsafe impl<T: Send, E: Send, H: Send> Send for Ref<T, E, H> {}
// SAFETY: `&Ref` gives access to nothing but the atomics and the lock.
unsafe impl<T: Send, E: Send, H: Send> Sync for Ref<T, E, H> {}

/// Connects `sender` inside a fresh block and starts it; returns the
/// consumer's reference.
pub(crate) fn start_eagerly<S, H>(sender: S, hooks: H) -> Ref<S::Output, S::Error, H>
where
    S::Operation: Send,
    S: Sender + SenderTo<EnsureStartedReceiver<<S as Sender>::Output, <S as Sender>::Error, H>>,
    H: Hooks,
{
    let block = Box::new(Block::<S::Output, S::Error, H, S::Operation> {
        header: Header {
            refs: AtomicUsize::new(2),
            state: Lock::new(State {
                done: false,
                detached: false,
                waiter: ptr::null(),
            }),
            result: UnsafeCell::new(None),
            stop: StopSource::new(),
            hooks: UnsafeCell::new(hooks),
            drop_block: drop_block::<S::Output, S::Error, H, S::Operation>,
        },
        op: UnsafeCell::new(None),
    });
    let block = NonNull::from(Box::leak(block));
    let header = block.cast::<Header<S::Output, S::Error, H>>();
    let receiver = EnsureStartedReceiver {
        shared: Ref { ptr: header },
    };
    // SAFETY: the block is ours until the op starts; it lives on the heap
    // (never moves) and is freed only after the op completed (the receiver
    // holds a reference).
    unsafe {
        let h = block.as_ref();
        h.header
            .hooks
            .with_mut(|hk| Pin::new_unchecked(&mut *hk).attach(&h.header.stop));
        let op: *mut S::Operation = block.as_ref().op.with_mut(|o| {
            *o = Some(sender.connect(receiver));
            (*o).as_mut().map(|op| op as *mut _).unwrap_unchecked()
        });
        Pin::new_unchecked(&mut *op).start();
    }
    Ref { ptr: header }
}

/// # Safety
/// `header` heads a `Block<T, E, H, O>` from `start_eagerly` whose last
/// reference was just released.
unsafe fn drop_block<T, E, H, O>(header: NonNull<Header<T, E, H>>) {
    // SAFETY: per the contract.
    let block = unsafe { Box::from_raw(header.cast::<Block<T, E, H, O>>().as_ptr()) };
    // Touch the result explicitly (loom then checks that the work's write
    // happens before this drop).
    // SAFETY: last reference: exclusive.
    block.header.result.with_mut(|r| unsafe { (*r).take() });
    drop(block);
}

impl<T, E, H> Ref<T, E, H> {
    /// The consumer gives up on the result: mark detached, stop the work.
    fn detach(self) {
        let header = self.header();
        let done = header.state.with(|s| {
            s.detached = true;
            s.done
        });
        if !done {
            header.stop.request_stop();
        }
        // Dropping `self` releases the consumer's reference.
    }
}

/// The receiver the eagerly started work completes.
pub struct EnsureStartedReceiver<T, E, H = ()> {
    shared: Ref<T, E, H>,
}

impl<T, E, H> fmt::Debug for EnsureStartedReceiver<T, E, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnsureStartedReceiver")
            .finish_non_exhaustive()
    }
}

#[allow(private_bounds)]
impl<T, E, H: Hooks> EnsureStartedReceiver<T, E, H> {
    fn complete(self, outcome: Outcome<T, E>) {
        let header = self.shared.header();
        let is_panic = matches!(outcome, Outcome::Panic(_));
        // SAFETY: the single completion writes; nobody reads before `done`.
        header.result.with_mut(|r| unsafe { *r = Some(outcome) });
        let (waiter, detached) = header.state.with(|s| {
            s.done = true;
            (core::mem::replace(&mut s.waiter, ptr::null()), s.detached)
        });
        let orphan = if detached && is_panic {
            // SAFETY: detached: no consumer will read the result.
            header.result.with_mut(|r| unsafe {
                match (*r).take() {
                    Some(Outcome::Panic(p)) => Some(p),
                    _ => None,
                }
            })
        } else {
            None
        };
        // SAFETY: the work's completion is the only one touching the hooks
        // after creation; they are pinned in the block.
        let token = header
            .hooks
            .with_mut(|h| unsafe { Pin::new_unchecked(&mut *h) }.work_done(orphan));
        if !waiter.is_null() {
            // SAFETY: we took the waiter out under the lock, so we own its
            // completion; it is alive (waiting).
            unsafe { Node::wake(waiter) };
        }
        // Release the work's reference (may free the block), then let the
        // hooks' token go (for a scope: leaving it may end a `join`).
        drop(self);
        drop(token);
    }
}

#[allow(private_bounds)]
impl<T, E, H: Hooks> Receiver<T, E> for EnsureStartedReceiver<T, E, H> {
    fn set_value(self, value: T) {
        self.complete(Outcome::Value(value))
    }
    fn set_error(self, error: E) {
        self.complete(Outcome::Error(error))
    }
    fn set_stopped(self) {
        self.complete(Outcome::Stopped)
    }
    fn set_panic(self, payload: PanicPayload) {
        self.complete(Outcome::Panic(payload))
    }
    fn env(&self) -> impl Env<'_> {
        EagerEnv {
            stop: &self.shared.header().stop,
        }
    }
}

struct EagerEnv<'a> {
    stop: &'a StopSource,
}

impl<'a> Env<'a> for EagerEnv<'a> {
    fn stop_token(&self) -> StopToken<'a> {
        self.stop.token()
    }
}

/// Sender for the [`ensure_started`](crate::SenderExt::ensure_started)
/// method: a single-shot handle to work that is already running.
///
/// Dropping it without connecting and starting it requests stop of the work
/// and detaches it; the work's allocation is freed when it completes.
#[must_use = "dropping it requests stop of the work it refers to"]
pub struct EnsureStarted<T, E, H = ()> {
    /// `None` once moved into a started operation.
    shared: Option<Ref<T, E, H>>,
}

impl<T, E, H> EnsureStarted<T, E, H> {
    pub(crate) fn from_ref(shared: Ref<T, E, H>) -> Self {
        EnsureStarted {
            shared: Some(shared),
        }
    }
}

impl<T, E, H> Drop for EnsureStarted<T, E, H> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.detach();
        }
    }
}

impl<T, E, H> fmt::Debug for EnsureStarted<T, E, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnsureStarted").finish_non_exhaustive()
    }
}

impl<T, E, H> Sender for EnsureStarted<T, E, H> {
    type Output = T;
    type Error = E;
}

impl<T, E, H, R> SenderTo<R> for EnsureStarted<T, E, H>
where
    R: Receiver<T, E> + Send,
{
    type Operation = EnsureStartedOp<T, E, H, R>;
    fn connect(self, receiver: R) -> EnsureStartedOp<T, E, H, R> {
        EnsureStartedOp {
            waiter: Waiter::new(receiver, Self::wake::<R>, Self::cancel::<R>),
            sender: UnsafeCell::new(self),
            started: UnsafeCell::new(None),
        }
    }
}

impl<T, E, H> EnsureStarted<T, E, H> {
    /// # Safety
    /// `node` is the node of a started `EnsureStartedOp<T, E, H, R>` that
    /// the work's completion took out of `waiter` (after setting `done`).
    unsafe fn wake<R: Receiver<T, E>>(node: *const Node) {
        let op = node as *const EnsureStartedOp<T, E, H, R>;
        // SAFETY: we own the completion; `started` holds the reference that
        // keeps the block (and the result) alive; the result is ours.
        unsafe {
            (*op).waiter.disarm();
            let receiver = (*op).waiter.take_receiver();
            let header = (*op).started.with(|s| (*s).as_ref().unwrap_unchecked().ptr);
            let outcome = header.as_ref().result.with_mut(|r| (*r).take());
            outcome
                .expect("ensure_started: done without a result")
                .deliver(receiver);
        }
    }

    /// # Safety
    /// Called from the stop callback of a started `EnsureStartedOp<T, E, H, R>`.
    unsafe fn cancel<R: Receiver<T, E>>(node: *const Node) {
        let op = node as *const EnsureStartedOp<T, E, H, R>;
        // SAFETY: the stop callback is registered, so the op is alive, and
        // `started` was set before arming.
        let header = unsafe { (*op).started.with(|s| (*s).as_ref().unwrap_unchecked().ptr) };
        // SAFETY: the op's reference keeps the block alive.
        let header = unsafe { header.as_ref() };
        let won = header.state.with(|s| {
            if s.waiter == node {
                s.waiter = ptr::null();
                s.detached = true;
                true
            } else {
                false
            }
        });
        if !won {
            return;
        }
        header.stop.request_stop();
        // SAFETY: we took the node out, so we own the completion.
        unsafe {
            (*op).waiter.disarm();
            (*op).waiter.take_receiver().set_stopped();
        }
    }
}

/// Operation state of [`EnsureStarted`].
#[repr(C)]
pub struct EnsureStartedOp<T, E, H, R> {
    /// First field: a `*const Node` is a `*const EnsureStartedOp`.
    waiter: Waiter<R>,
    /// The sender, until `start` moves its reference into `started`.
    sender: UnsafeCell<EnsureStarted<T, E, H>>,
    /// The consumer's reference once started (no stop-on-drop any more).
    started: UnsafeCell<Option<Ref<T, E, H>>>,
}

impl<T, E, H, R> fmt::Debug for EnsureStartedOp<T, E, H, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnsureStartedOp").finish_non_exhaustive()
    }
}

// SAFETY: the receiver is `Send` (required by `connect`) and may be completed
// on the thread that completes the work or requests stop; the reference is
// `Send` when `T, E` are.
unsafe impl<T: Send, E: Send, H: Send, R: Send> Send for EnsureStartedOp<T, E, H, R> {}

enum Next {
    Deliver,
    Stopped,
    Wait,
}

impl<T, E, H, R> OperationState for EnsureStartedOp<T, E, H, R>
where
    R: Receiver<T, E>,
{
    unsafe fn start(self: Pin<&mut Self>) {
        let this: &Self = self.into_ref().get_ref();
        let node = Waiter::<R>::node_of(this);
        // SAFETY: before arming, the op is ours alone.
        let shared = unsafe {
            this.sender
                .with_mut(|s| (*s).shared.take())
                .expect("ensure_started: started twice")
        };
        let header = shared.ptr;
        // SAFETY: before arming, the op is ours alone.
        unsafe { this.started.with_mut(|s| *s = Some(shared)) };
        // SAFETY: our reference (in `started`) keeps the block alive until
        // the op is dropped, which is after it completed.
        let header = unsafe { header.as_ref() };
        // SAFETY: not linked, not armed; token used only until we complete.
        let token = unsafe { this.waiter.token() };
        if !token.stop_requested() {
            // SAFETY: pinned, not linked yet, armed once.
            unsafe { this.waiter.arm(node, token) };
        }
        let next = header.state.with(|s| {
            if token.stop_requested() {
                s.detached = true;
                Next::Stopped
            } else if s.done {
                Next::Deliver
            } else {
                s.waiter = node;
                Next::Wait
            }
        });
        match next {
            Next::Wait => {}
            Next::Deliver => {
                // SAFETY: `done` seen under the lock and we are the only
                // consumer: the result is ours; not linked, we own the
                // completion.
                unsafe {
                    this.waiter.disarm();
                    let outcome = header.result.with_mut(|r| (*r).take());
                    let receiver = this.waiter.take_receiver();
                    outcome
                        .expect("ensure_started: done without a result")
                        .deliver(receiver);
                }
            }
            Next::Stopped => {
                // Stopped before it could wait: give up on the work too.
                header.stop.request_stop();
                // SAFETY: not linked, we own the completion.
                unsafe {
                    this.waiter.disarm();
                    this.waiter.take_receiver().set_stopped();
                }
            }
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use ::loom::sync::Arc;
    use ::loom::sync::atomic::AtomicUsize;

    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Work whose receiver is handed to another thread at `start`.
    struct Parked {
        slot: Arc<Lock<Option<EnsureStartedReceiver<Counted, (), ()>>>>,
    }
    impl Sender for Parked {
        type Output = Counted;
        type Error = ();
    }
    impl SenderTo<EnsureStartedReceiver<Counted, (), ()>> for Parked {
        type Operation = ParkedOp;
        fn connect(self, receiver: EnsureStartedReceiver<Counted, (), ()>) -> ParkedOp {
            ParkedOp(Some((self, receiver)))
        }
    }
    struct ParkedOp(Option<(Parked, EnsureStartedReceiver<Counted, (), ()>)>);
    impl OperationState for ParkedOp {
        unsafe fn start(self: Pin<&mut Self>) {
            // SAFETY: nothing is structurally pinned.
            let this = unsafe { self.get_unchecked_mut() };
            let (p, r) = this.0.take().unwrap();
            p.slot.with(|s| *s = Some(r));
        }
    }

    /// The work completes on one thread while the returned sender is dropped
    /// on another: the value is dropped exactly once, the block freed once
    /// (loom checks the accesses and the leak).
    #[test]
    fn completion_races_drop_of_sender() {
        ::loom::model(|| {
            let slot = Arc::new(Lock::new(None));
            let drops = Arc::new(AtomicUsize::new(0));
            let handle = EnsureStarted::from_ref(start_eagerly(Parked { slot: slot.clone() }, ()));
            let receiver = slot.with(|s| s.take()).expect("started eagerly");
            let value = Counted(drops.clone());
            let t = ::loom::thread::spawn(move || receiver.set_value(value));
            drop(handle);
            t.join().unwrap();
            assert_eq!(drops.load(Ordering::Relaxed), 1);
        });
    }
}
