//! A oneshot channel whose receiving half is a sender: [`channel`].
//!
//! # Protocol
//! One shared channel (the one allocation, from the frame cache, counted
//! by a `ChanRef` per holder: see there): a state word
//! (`VALUE`, `WAITING`, `TX_GONE`, `RX_GONE`), a value slot and the
//! waiting receive operation's pointer. No lock:
//! - `send` writes the value into the slot and sets `VALUE | TX_GONE` in one
//!   `fetch_or`. If the receive operation was waiting (the old state is
//!   exactly `WAITING`), `send` owns its completion: it reads the value back
//!   and hands it over through the operation's `wake` function. If the
//!   receiving half was gone it reads the value back and returns it. Else
//!   the value stays for a later receive.
//! - Dropping the sending half without sending sets `TX_GONE` the same way,
//!   and wakes a waiting operation with no value.
//! - Closing the receiving half (dropping it, or a receive operation that
//!   never completed) sets `RX_GONE` and drops a stored value.
//!
//! A receive operation that finds a value (or the sending half gone) at
//! `start` completes at once: one load. Only one that has to wait registers
//! a stop callback — its own first field, so the operation is its own
//! callback node — and then publishes itself (`0 → WAITING`). Whoever moves
//! the state out of exactly `WAITING` (the sending half, or the stop
//! callback: `WAITING → RX_GONE`) owns its completion; see [`RecvOp`]. A
//! stop callback that runs before the operation published itself marks the
//! channel `RX_GONE` (`0 → RX_GONE`), so `start`'s publishing fails and
//! `start` completes *stopped* itself.

use core::alloc::Layout;
use core::fmt;
use core::mem::MaybeUninit;
use core::pin::Pin;
use core::ptr::{self, NonNull};

use crate::adaptor::{frame_alloc, frame_dealloc};
use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::stop::Node as StopNode;
use crate::{Env, OperationState, Receiver, Sender, SenderTo, StopToken};

/// The slot holds a value (set, with [`TX_GONE`], by `send`). Meaningful
/// only while the receiving half is there and not waiting: the slot is
/// owned by whoever clears or outlives the state that set it (see
/// [`Chan::take_value`]).
const VALUE: usize = 1;
/// A receive operation waits: `Chan::waiter` points to it. Only ever set
/// alone (`0 → WAITING`); whoever moves the state off exactly `WAITING`
/// owns the operation's completion.
const WAITING: usize = 2;
/// The sending half has sent or gone.
const TX_GONE: usize = 4;
/// The receiving half has gone (dropped, stopped, or its operation dropped
/// without completing): `send` fails.
const RX_GONE: usize = 8;

struct Chan<T> {
    state: AtomicUsize,
    /// Written by `send` before it sets [`VALUE`] (Release); read by the
    /// receiving side after seeing `VALUE` (Acquire), or by `send` itself
    /// when the value did not stay.
    value: UnsafeCell<MaybeUninit<T>>,
    /// Written by `start` before it sets [`WAITING`] (Release); read by the
    /// sending half after seeing `WAITING` (Acquire).
    waiter: UnsafeCell<*const Waiting<T>>,
}

// SAFETY: the cells are handed between the halves through the state word
// (see the module docs); the receive operation requires a `Send` receiver.
// `T` moves between threads.
unsafe impl<T: Send> Send for Chan<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Chan<T> {}

impl<T> Chan<T> {
    /// Marks the receiving half gone; returns the value that was stored
    /// (never received), if any.
    fn close_receiver(&self) -> Option<T> {
        // Acquire: a stored value was written before `send`'s Release.
        let old = self.state.fetch_or(RX_GONE, Ordering::Acquire);
        debug_assert!(old & (WAITING | RX_GONE) == 0, "oneshot: closed twice");
        if old & VALUE != 0 {
            // SAFETY: `VALUE` was set and we are the receiving side: the
            // value is ours, and nobody else reads the slot any more.
            Some(unsafe { self.take_value() })
        } else {
            None
        }
    }

    /// Moves the value out of the slot.
    ///
    /// # Safety
    /// The slot holds a value that the caller owns (the receiving side after
    /// seeing [`VALUE`] with Acquire, or `send` reading back its own value
    /// that did not stay), taken once.
    unsafe fn take_value(&self) -> T {
        // SAFETY: per the contract.
        self.value.with(|v| unsafe { (*v).assume_init_read() })
    }
}

/// The channel's allocation: the count of [`ChanRef`]s, then the channel.
struct ChanBox<T> {
    /// How many `ChanRef`s point here (2 at creation, one per half; never
    /// incremented afterwards).
    refs: AtomicUsize,
    chan: Chan<T>,
}

/// One holder's share of the channel (an `ChanRef<T>` in all but the
/// allocation): the sending half, and the receiving half or the receive
/// operation it moved into.
///
/// The block comes from the frame cache instead of the global allocator:
/// a channel is typically made on one thread and freed on another (the one
/// that completed the receive), which is the global allocator's slow path;
/// the frame cache hands the block back to the thread that makes the next
/// one (see `frame_cache`).
struct ChanRef<T>(NonNull<ChanBox<T>>);

// SAFETY: shared access to a `Chan<T>` (`Send + Sync` for `T: Send`), as an
// `ChanRef<T>` would give; the count is atomic.
unsafe impl<T: Send> Send for ChanRef<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for ChanRef<T> {}

impl<T> ChanRef<T> {
    const LAYOUT: Layout = Layout::new::<ChanBox<T>>();

    /// A new channel and the two references to it.
    fn new_pair() -> (Self, Self) {
        let block = frame_alloc(Self::LAYOUT).cast::<ChanBox<T>>();
        // SAFETY: a fresh allocation with the box's layout, not yet shared.
        unsafe {
            block.as_ptr().write(ChanBox {
                refs: AtomicUsize::new(2),
                chan: Chan {
                    state: AtomicUsize::new(0),
                    value: UnsafeCell::new(MaybeUninit::uninit()),
                    waiter: UnsafeCell::new(ptr::null()),
                },
            })
        };
        (ChanRef(block), ChanRef(block))
    }
}

impl<T> core::ops::Deref for ChanRef<T> {
    type Target = Chan<T>;
    #[inline]
    fn deref(&self) -> &Chan<T> {
        // SAFETY: the box lives while a `ChanRef` to it does (the last drop
        // frees it).
        unsafe { &(*self.0.as_ptr()).chan }
    }
}

impl<T> Drop for ChanRef<T> {
    fn drop(&mut self) {
        let block = self.0.as_ptr();
        // Release: our uses of the channel happen-before the free by
        // whoever drops last (the `Arc` pattern).
        // SAFETY: alive until the count reaches zero, which it has not yet
        // (we still count in it).
        if unsafe { (*block).refs.fetch_sub(1, Ordering::Release) } != 1 {
            return;
        }
        // Acquire: the other holder's uses (and its Release decrement)
        // happen-before the free. A load rather than a fence, as `Arc`
        // does under ThreadSanitizer: the same ordering, and TSan (which
        // does not model standalone fences) sees it.
        // SAFETY: as above, the block is alive.
        unsafe { (*block).refs.load(Ordering::Acquire) };
        // SAFETY: we were the last reference: nobody else reaches the box.
        // Freeing writes the channel's cells: touch them as a write first,
        // so that loom checks every other holder's accesses to them
        // happen-before this (a no-op otherwise).
        unsafe {
            (*block).chan.value.with_mut(|_| ());
            (*block).chan.waiter.with_mut(|_| ());
        }
        // SAFETY: as above. The channel needs no drop of its own (an unreceived value is
        // dropped by whoever closes the receiving side), but its fields are
        // dropped in place all the same; then the block goes back to the
        // frame cache it came from, with its layout.
        unsafe {
            ptr::drop_in_place(block);
            frame_dealloc(self.0.cast(), Self::LAYOUT);
        }
    }
}

/// Creates a oneshot channel: a [`OneshotSender`] to send one value and a
/// [`OneshotReceiver`], a sender that completes with it.
///
/// One allocation for the channel. The receiving half completes:
/// - value: the sent value (on the sending thread if it was waiting);
/// - error [`RecvError`]: if the sending half was dropped without sending;
/// - stopped: if its receiver's stop token is triggered first.
///
/// # Example
/// ```
/// use exec_core::{oneshot, sync_wait};
/// let (tx, rx) = oneshot::channel();
/// std::thread::spawn(move || tx.send(42).unwrap());
/// assert_eq!(sync_wait(rx), Ok(Some(42)));
///
/// let (tx, rx) = oneshot::channel::<i32>();
/// drop(tx);
/// assert_eq!(sync_wait(rx), Err(oneshot::RecvError));
/// ```
pub fn channel<T>() -> (OneshotSender<T>, OneshotReceiver<T>) {
    let (tx, rx) = ChanRef::new_pair();
    (
        OneshotSender { chan: Some(tx) },
        OneshotReceiver { chan: Some(rx) },
    )
}

/// The receiving half was dropped (or is not going to receive).
///
/// Returned by [`OneshotSender::send`] together with the unsent value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvError;

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the sending half of the oneshot channel was dropped without sending")
    }
}

impl core::error::Error for RecvError {}

/// The sending half of a [`channel`].
pub struct OneshotSender<T> {
    /// `None` once sent.
    chan: Option<ChanRef<T>>,
}

impl<T> OneshotSender<T> {
    /// Sends `value`, completing the receiving half (on this thread, if it
    /// is waiting). Returns the value back if the receiving half is gone.
    ///
    /// ```
    /// use exec_core::oneshot;
    /// let (tx, rx) = oneshot::channel();
    /// drop(rx);
    /// assert!(tx.is_closed());
    /// assert_eq!(tx.send(1), Err(1));
    /// ```
    pub fn send(mut self, value: T) -> Result<(), T> {
        let chan = self.chan.take().expect("oneshot: sent twice");
        // SAFETY: `VALUE` is not set (only `send` sets it, once): the
        // receiving side does not read the slot until it sees it.
        chan.value.with_mut(|v| unsafe { (*v).write(value) });
        // One RMW whatever the receiving side does. Release: publishes the
        // value to a later receive; Acquire: a waiting operation's pointer
        // (and the operation) were written before its Release.
        let old = chan.state.fetch_or(VALUE | TX_GONE, Ordering::AcqRel);
        if old & RX_GONE != 0 {
            // SAFETY: the receiving side is gone and never read the slot:
            // our value is still there.
            return Err(unsafe { chan.take_value() });
        }
        if old != WAITING {
            // Stored (the old state was empty): it is the receiver's now.
            return Ok(());
        }
        // We moved the state off `WAITING`: we own the completion. A
        // waiting receive never reads the slot, so the value is still ours.
        // SAFETY: as just said; `waiter` was written before `WAITING`.
        let (value, waiter) = unsafe { (chan.take_value(), chan.waiter.with(|w| *w)) };
        // Our handle goes first: the woken operation drops its own, and the
        // last one frees the channel.
        drop(chan);
        // SAFETY: we own its completion (above).
        unsafe { ((*waiter).wake)(waiter, Some(value)) };
        Ok(())
    }

    /// Whether the receiving half has been dropped.
    pub fn is_closed(&self) -> bool {
        self.chan
            .as_ref()
            .is_none_or(|c| c.state.load(Ordering::Relaxed) & RX_GONE != 0)
    }
}

impl<T> Drop for OneshotSender<T> {
    fn drop(&mut self) {
        if let Some(chan) = self.chan.take() {
            // Acquire: as in `send`, for a waiting operation.
            let old = chan.state.fetch_or(TX_GONE, Ordering::Acquire);
            if old == WAITING {
                // SAFETY: written before `WAITING` was set.
                let waiter = chan.waiter.with(|w| unsafe { *w });
                drop(chan);
                // SAFETY: we moved the state off `WAITING`: we own its
                // completion.
                unsafe { ((*waiter).wake)(waiter, None) };
            }
        }
    }
}

impl<T> fmt::Debug for OneshotSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneshotSender").finish_non_exhaustive()
    }
}

/// The receiving half of a [`channel`]: a sender of the value.
///
/// # Completion
/// - value: the sent value.
/// - error: [`RecvError`] if the sending half was dropped without sending.
/// - stopped: if the receiver's stop token is triggered before a value
///   arrives (the waiter deregisters; a value sent later is dropped with
///   the channel).
///
/// # Cancellation
/// See *stopped*.
///
/// # Panics
/// Never.
///
/// # Example
/// ```
/// use exec_core::{oneshot, sync_wait, SenderExt};
/// let (tx, rx) = oneshot::channel();
/// tx.send("hi").unwrap();
/// assert_eq!(sync_wait(rx.then(|s| s.len())), Ok(Some(2)));
/// ```
///
/// # See also
/// [`AsyncManualResetEvent`](crate::AsyncManualResetEvent).
#[must_use = "senders do nothing unless connected and started"]
pub struct OneshotReceiver<T> {
    /// `None` once moved into an operation.
    chan: Option<ChanRef<T>>,
}

impl<T> Drop for OneshotReceiver<T> {
    fn drop(&mut self) {
        if let Some(chan) = self.chan.take() {
            drop(chan.close_receiver());
        }
    }
}

impl<T> fmt::Debug for OneshotReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneshotReceiver").finish_non_exhaustive()
    }
}

impl<T> Sender for OneshotReceiver<T> {
    type Output = T;
    type Error = RecvError;
}

impl<T, R> SenderTo<R> for OneshotReceiver<T>
where
    R: Receiver<T, RecvError> + Send,
{
    type Operation = RecvOp<T, R>;
    fn connect(mut self, receiver: R) -> RecvOp<T, R> {
        RecvOp {
            head: Waiting {
                stop: StopNode::new(StopToken::never(), RecvOp::<T, R>::cancel),
                wake: RecvOp::<T, R>::wake,
            },
            receiver: UnsafeCell::new(Some(receiver)),
            chan: UnsafeCell::new(Some(
                self.chan.take().expect("oneshot receiver already used"),
            )),
        }
    }
}

/// The type-erased front of a waiting [`RecvOp`], which the channel points
/// to while the operation waits.
#[repr(C)]
struct Waiting<T> {
    /// First: a `*const StopNode` is a `*const Waiting` is a `*const RecvOp`.
    /// Registered at `start` if the receiver's token can stop; runs
    /// `RecvOp::cancel`.
    stop: StopNode,
    /// Completes the operation with the value (`Some`) or, the sending half
    /// being gone, `RecvError` (`None`). Called by the sending half when it
    /// moved the channel's state off `WAITING`.
    wake: unsafe fn(*const Waiting<T>, Option<T>),
}

/// Operation state of [`OneshotReceiver`].
///
/// # Who completes it
/// `start` itself, unless it published the operation (`0 → WAITING`); then
/// whoever moves the channel's state off exactly `WAITING` owns the
/// completion: the sending half (`send` or its drop, through `wake`) or the
/// stop callback (`cancel`). Before completing, the owner deregisters the
/// stop callback (on the sending side this waits for a callback running on
/// another thread, which then finds the state moved on and does nothing)
/// and drops the channel handle; then it completes the receiver and touches
/// nothing of the operation afterwards.
#[repr(C)]
pub struct RecvOp<T, R> {
    head: Waiting<T>,
    /// Taken by the owner of the completion.
    receiver: UnsafeCell<Option<R>>,
    /// Taken by the owner of the completion (or dropped with the op, which
    /// then closes the receiving side).
    chan: UnsafeCell<Option<ChanRef<T>>>,
}

impl<T, R> fmt::Debug for RecvOp<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvOp").finish_non_exhaustive()
    }
}

impl<T, R> Drop for RecvOp<T, R> {
    fn drop(&mut self) {
        // Present unless the op completed (which took it).
        // SAFETY: `&mut self`: no completion is in progress.
        if let Some(chan) = self.chan.with_mut(|c| unsafe { (*c).take() }) {
            drop(chan.close_receiver());
        }
    }
}

// SAFETY: the receiver is `Send` (required by `connect`) and may be completed
// by the sending thread or the one requesting stop; `T` moves between threads.
unsafe impl<T: Send, R: Send> Send for RecvOp<T, R> {}

enum Next<T> {
    Value(T),
    Closed,
    /// With the value that was there, if any: never received.
    Stopped(Option<T>),
    Wait,
}

impl<T, R: Receiver<T, RecvError>> RecvOp<T, R> {
    /// Deregisters the stop callback, takes the receiver and the channel.
    ///
    /// # Safety
    /// Called by the owner of the completion, once; `this` is alive.
    unsafe fn finish(this: *const Self) -> (R, ChanRef<T>) {
        // SAFETY: per the contract we own the completion: the other side of
        // the race (the stop callback, or the sender) found the waiter gone
        // and touches only the channel; the cells are ours.
        unsafe {
            (*this).head.stop.deregister();
            let receiver = (*this).receiver.with_mut(|r| (*r).take());
            let chan = (*this).chan.with_mut(|c| (*c).take());
            match (receiver, chan) {
                (Some(r), Some(c)) => (r, c),
                _ => unreachable!("oneshot: receive operation completed twice"),
            }
        }
    }

    /// # Safety
    /// `w` is the `Waiting` of a started `RecvOp<T, R>` (derived from the
    /// whole op) that `send` or the sending half's drop took out of the
    /// channel.
    unsafe fn wake(w: *const Waiting<T>, value: Option<T>) {
        // SAFETY: we own the completion, per the contract.
        let (receiver, chan) = unsafe { Self::finish(w.cast::<Self>()) };
        // Drop what we hold before completing (the sending half has let go
        // already, so this frees the channel).
        drop(chan);
        match value {
            Some(v) => receiver.set_value(v),
            None => receiver.set_error(RecvError),
        }
    }

    /// The stop callback.
    ///
    /// # Safety
    /// `node` is the stop node of a started `RecvOp<T, R>` (derived from the
    /// whole op), still registered.
    unsafe fn cancel(node: *const StopNode) {
        let this = node.cast::<Self>();
        // SAFETY: registered callback: the op is alive and its channel handle
        // present (only the owner of the completion takes it, after
        // deregistering, which waits for us).
        let won = unsafe {
            (*this).chan.with(|c| {
                let chan = (*c).as_ref().expect("oneshot: waiting without a channel");
                // `WAITING → RX_GONE`: the completion is ours. `0 → RX_GONE`:
                // `start` has not published the op yet; its publishing fails
                // and it completes *stopped* itself. Anything else: the
                // sending half moved first (and completes the op, or `start`
                // does, having found a value or the sender gone). Acquire on
                // success: what `start` wrote before publishing the op (the
                // stop node's registration, which `finish` reads) is ours
                // after `WAITING → RX_GONE`. Nothing is handed to `send`
                // (it only reads `RX_GONE`, to fail).
                let mut cur = chan.state.load(Ordering::Relaxed);
                loop {
                    if cur != WAITING && cur != 0 {
                        break false;
                    }
                    match chan.state.compare_exchange_weak(
                        cur,
                        RX_GONE,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => break cur == WAITING,
                        Err(actual) => cur = actual,
                    }
                }
            })
        };
        if won {
            // SAFETY: we took the waiter out: we own the completion.
            let (receiver, chan) = unsafe { Self::finish(this) };
            drop(chan);
            receiver.set_stopped();
        }
    }
}

impl<T, R> RecvOp<T, R> {
    /// What `start` does: complete at once, or publish the op and wait.
    ///
    /// # Safety
    /// As for [`arm`](Self::arm); `chan` is the op's channel.
    unsafe fn poll(this: *const Self, chan: &Chan<T>, token: StopToken<'static>) -> Next<T> {
        if token.stop_requested() {
            return Next::Stopped(chan.close_receiver());
        }
        // Acquire: a value was written before `send`'s Release.
        let cur = chan.state.load(Ordering::Acquire);
        if cur & VALUE != 0 {
            // SAFETY: `VALUE` seen with Acquire, and we are the receiving
            // side: the value is ours. (Nobody looks at the state again: the
            // sending half is gone, and we drop our handle next.)
            return Next::Value(unsafe { chan.take_value() });
        }
        if cur & TX_GONE != 0 {
            return Next::Closed;
        }
        // SAFETY: not published: nobody reads the cell until `WAITING`.
        chan.waiter
            .with_mut(|w| unsafe { *w = this.cast::<Waiting<T>>() });
        // SAFETY: per the contract.
        if !unsafe { Self::arm(this, token) } {
            // Stop was requested since the check above.
            return Next::Stopped(chan.close_receiver());
        }
        // Release: publishes the op (and `waiter`) to the sending half;
        // Acquire on failure: a value `send` stored meanwhile.
        match chan
            .state
            .compare_exchange(0, WAITING, Ordering::Release, Ordering::Acquire)
        {
            Ok(_) => Next::Wait,
            // Our stop callback ran (`0 → RX_GONE`) and left the rest to us;
            // a value sent since went back to the sender (checked first:
            // `send` sets `VALUE` even then).
            Err(actual) if actual & RX_GONE != 0 => Next::Stopped(None),
            Err(actual) if actual & VALUE != 0 => {
                // SAFETY: as above.
                Next::Value(unsafe { chan.take_value() })
            }
            Err(_) => Next::Closed,
        }
    }

    /// Registers the stop callback of an operation that is about to wait
    /// (only then: a receive that completes at once costs no registration).
    /// Returns `false` if stop has been requested meanwhile (nothing
    /// registered).
    ///
    /// Called *before* the op is published (`0 → WAITING`): a stop request
    /// from the registration on runs `cancel`, which either finds the op
    /// published or marks the channel `RX_GONE` so that publishing fails.
    ///
    /// # Safety
    /// `this` is the started, pinned op (derived from the whole op), not
    /// registered; `token` is its receiver's, which the op keeps until the
    /// callback is deregistered.
    unsafe fn arm(this: *const Self, token: StopToken<'static>) -> bool {
        if !token.stop_possible() {
            return true;
        }
        // SAFETY: per the contract; the op's drop (or the owner of the
        // completion) deregisters before the memory goes away.
        unsafe {
            (*this).head.stop.set_token(token);
            StopNode::register(this.cast::<StopNode>())
        }
    }
}

impl<T, R: Receiver<T, RecvError>> OperationState for RecvOp<T, R> {
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: nothing is moved out; every later access goes through this
        // pointer (derived from the whole op) or the cells.
        let this: *const Self = unsafe { self.get_unchecked_mut() };
        // SAFETY: not started yet: nobody else reaches the op.
        let token = unsafe {
            (*this).receiver.with(|r| {
                let r = (*r).as_ref().expect("oneshot: started twice");
                // The receiver, whose env produced the token, stays in the op
                // until the stop callback has been deregistered.
                r.env().stop_token().detach()
            })
        };
        // SAFETY: not published: the channel cell is ours.
        let next = unsafe {
            (*this).chan.with(|c| {
                let chan = (*c).as_ref().expect("oneshot: started twice");
                Self::poll(this, chan, token)
            })
        };
        if let Next::Wait = next {
            return;
        }
        // SAFETY: not linked: we own the completion.
        let (receiver, chan) = unsafe { Self::finish(this) };
        drop(chan);
        match next {
            Next::Value(v) => receiver.set_value(v),
            Next::Closed => receiver.set_error(RecvError),
            Next::Stopped(unreceived) => {
                // Dropped before completing (a value's destructor is user code,
                // run outside the lock).
                drop(unreceived);
                receiver.set_stopped()
            }
            Next::Wait => unreachable!(),
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! The hand-over of a waiting receive operation: `send` (or the sending
    //! half's drop) racing a stop request; exactly one of them completes it.
    use super::*;
    use crate::loom::sync::atomic::{AtomicUsize, Ordering};
    use crate::loom_fixtures::Rec;
    use crate::{PanicPayload, StopSource};
    use ::loom::sync::Arc as LoomArc;
    use alloc::boxed::Box;

    // Outcome codes: 0: nothing yet; 1: value 7; 2: error; 3: stopped.
    impl Receiver<u32, RecvError> for Rec {
        fn set_value(self, v: u32) {
            assert_eq!(v, 7);
            self.record(1);
        }
        fn set_error(self, _: RecvError) {
            self.record(2);
        }
        fn set_stopped(self) {
            self.record(3);
        }
        fn set_panic(self, _: PanicPayload) {
            panic!("no panic expected");
        }
        fn env(&self) -> impl crate::Env<'_> {
            Rec::env(self)
        }
    }

    /// `send`: send (else drop the sending half, or, with `race_start`,
    /// keep it: only the stop request can complete the op); `race_start`:
    /// the stop request also races `start` (else the op waits before it is
    /// made).
    fn model(send: bool, race_start: bool) {
        ::loom::model(move || {
            let stop = LoomArc::new(StopSource::new());
            let outcome = LoomArc::new(AtomicUsize::new(0));
            let completions = LoomArc::new(AtomicUsize::new(0));
            let (tx, rx) = channel::<u32>();
            let mut op = Box::pin(rx.connect(Rec {
                outcome: outcome.clone(),
                completions: completions.clone(),
                stop: stop.clone(),
            }));
            let s2 = stop.clone();
            let spawn_stopper = move || {
                ::loom::thread::spawn(move || {
                    s2.request_stop();
                })
            };
            let stopper = if race_start {
                let t = spawn_stopper();
                // SAFETY: `op` is dropped only after both threads were
                // joined and it has completed (asserted below).
                unsafe { op.as_mut().start() };
                t
            } else {
                // SAFETY: as above.
                unsafe { op.as_mut().start() };
                spawn_stopper()
            };
            let (delivered, tx) = match (send, race_start) {
                (true, _) => (tx.send(7).is_ok(), None),
                // The stop request alone must complete the op.
                (false, true) => (false, Some(tx)),
                (false, false) => {
                    drop(tx);
                    (true, None)
                }
            };
            stopper.join().unwrap();
            assert_eq!(completions.load(Ordering::Relaxed), 1);
            let got = outcome.load(Ordering::Acquire);
            if send {
                // `send` succeeds exactly when the value was delivered.
                assert_eq!(delivered, got == 1, "outcome {got}");
            } else if race_start {
                assert_eq!(got, 3, "not stopped");
            } else {
                assert!(got == 2 || got == 3, "outcome {got}");
            }
            drop(tx);
            drop(op);
        });
    }

    /// `send` (or, without `send`, dropping the sending half) on another
    /// thread racing `start` (and, with `stop_too`, a stop request): the
    /// value is published through the state word (or the waiting op through
    /// it to the sending half).
    fn send_races_start(send: bool, stop_too: bool) {
        ::loom::model(move || {
            let stop = LoomArc::new(StopSource::new());
            let outcome = LoomArc::new(AtomicUsize::new(0));
            let completions = LoomArc::new(AtomicUsize::new(0));
            let (tx, rx) = channel::<u32>();
            let sender = ::loom::thread::spawn(move || {
                if send {
                    tx.send(7).is_ok()
                } else {
                    drop(tx);
                    false
                }
            });
            let mut op = Box::pin(rx.connect(Rec {
                outcome: outcome.clone(),
                completions: completions.clone(),
                stop: stop.clone(),
            }));
            // SAFETY: `op` is dropped only after the sender was joined and
            // it has completed (asserted below).
            unsafe { op.as_mut().start() };
            if stop_too {
                stop.request_stop();
            }
            let delivered = sender.join().unwrap();
            assert_eq!(completions.load(Ordering::Relaxed), 1);
            let got = outcome.load(Ordering::Acquire);
            assert_eq!(delivered, got == 1, "outcome {got}");
            match (send, stop_too) {
                (true, false) => assert_eq!(got, 1),
                (false, false) => assert_eq!(got, 2),
                (false, true) => assert!(got == 2 || got == 3, "outcome {got}"),
                (true, true) => {}
            }
            drop(op);
        });
    }

    #[test]
    fn loom_oneshot_send_races_start() {
        send_races_start(true, false);
    }

    #[test]
    fn loom_oneshot_sender_drop_races_start() {
        send_races_start(false, false);
    }

    #[test]
    fn loom_oneshot_sender_drop_races_start_and_stop() {
        send_races_start(false, true);
    }

    #[test]
    fn loom_oneshot_send_races_start_and_stop() {
        send_races_start(true, true);
    }

    /// Dropping the receiving half racing `send`: the value is dropped
    /// exactly once (by the receiving side, or returned to the sender).
    #[test]
    fn loom_oneshot_send_races_receiver_drop() {
        struct D(LoomArc<AtomicUsize>);
        impl Drop for D {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        ::loom::model(|| {
            let drops = LoomArc::new(AtomicUsize::new(0));
            let (tx, rx) = channel::<D>();
            let d = D(drops.clone());
            let sender = ::loom::thread::spawn(move || tx.send(d).is_err());
            drop(rx);
            let _refused = sender.join().unwrap();
            assert_eq!(drops.load(Ordering::Relaxed), 1);
        });
    }

    #[test]
    fn loom_oneshot_send_races_stop() {
        model(true, false);
    }

    #[test]
    fn loom_oneshot_stop_races_start_and_send() {
        model(true, true);
    }

    #[test]
    fn loom_oneshot_stop_races_start() {
        model(false, true);
    }

    #[test]
    fn loom_oneshot_sender_drop_races_stop() {
        model(false, false);
    }
}
