//! The machinery every waiting operation shares: a small lock, an intrusive
//! FIFO of pinned operation states, and the stop callback that takes a
//! waiter out of the queue when its receiver asks it to stop.
//!
//! # Protocol
//! - A waiting operation state is `#[repr(C)]` with a [`Waiter`] as its first
//!   field, so a `*const Node` is a pointer to the whole operation.
//! - The list and every [`Node`] link field are only touched with the owning
//!   [`Lock`] held. The lock never runs user code or completions.
//! - Whoever *unlinks* a node under the lock owns its completion: the
//!   notifier (via [`Node::wake`]) or the stop callback (via the node's
//!   `cancel`). The owner first deregisters the waiter's stop callback
//!   ([`Waiter::disarm`]: if the callback is running on another thread that
//!   waits for it, and the callback then finds the node unlinked and does
//!   nothing), then takes the receiver and completes it, and touches nothing
//!   of the operation afterwards.
//! - The stop callback is not a separate `StopCallback`: the waiter embeds
//!   the stop source's intrusive node ([`stop::Node`](crate::stop::Node))
//!   right after the queue node, and its callback finds the queue node (and
//!   so the operation) at a fixed offset before it.
//! - A waiter arms its stop callback *before* linking its node, and checks
//!   the stop token again under the lock before linking: a stop request that
//!   fired before the node was linked is seen by that check (the callback
//!   found nothing to unlink), one that fires after is seen by the callback
//!   (which takes the same lock).

use core::fmt;
use core::marker::PhantomPinned;
use core::mem::offset_of;
use core::ptr;

use crate::StopToken;
use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicBool, Ordering};
use crate::stop::Node as StopNode;

/// A test-and-test-and-set lock around `T`, for critical sections of a few
/// pointer writes (no user code runs under it).
pub(crate) struct Lock<T> {
    locked: AtomicBool,
    data: UnsafeCell<T>,
}

// SAFETY: `data` is only reached through `with`, which holds the lock, so
// one thread at a time has it; moving `T` between threads needs `T: Send`.
unsafe impl<T: Send> Sync for Lock<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Lock<T> {}

impl<T> Lock<T> {
    pub(crate) fn new(data: T) -> Self {
        Lock {
            locked: AtomicBool::new(false),
            data: UnsafeCell::new(data),
        }
    }

    /// Runs `f` with the lock held.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut spins = 0u32;
        loop {
            if !self.locked.load(Ordering::Relaxed)
                && self
                    .locked
                    .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                break;
            }
            spins = spins.wrapping_add(1);
            backoff(spins);
        }
        struct Unlock<'a>(&'a AtomicBool);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                // Publishes every write made under the lock to the next holder.
                self.0.store(false, Ordering::Release);
            }
        }
        let _unlock = Unlock(&self.locked);
        // SAFETY: we hold the lock, so this is the only reference to `data`.
        self.data.with_mut(|p| f(unsafe { &mut *p }))
    }
}

impl<T> fmt::Debug for Lock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock").finish_non_exhaustive()
    }
}

#[inline]
fn backoff(spins: u32) {
    #[cfg(all(not(loom), feature = "std"))]
    if spins > 64 {
        std::thread::yield_now();
        return;
    }
    let _ = spins;
    crate::loom::spin();
}

/// A queue node embedded (first) in every waiting operation state.
///
/// Whether it is linked needs no flag: a linked node has a predecessor or is
/// the head; unlinking clears both links.
pub(crate) struct Node {
    /// Guarded by the owning lock. Null when not linked or the head.
    prev: UnsafeCell<*const Node>,
    /// Guarded by the owning lock. Null when not linked or the tail.
    next: UnsafeCell<*const Node>,
    /// Completes the operation with what it waited for. Called by whoever
    /// unlinked the node for that purpose, without the lock.
    wake: unsafe fn(*const Node),
    /// Called from the stop callback: unlinks the node if it is still
    /// linked and then completes the operation *stopped*.
    cancel: unsafe fn(*const Node),
}

impl Node {
    pub(crate) fn new(wake: unsafe fn(*const Node), cancel: unsafe fn(*const Node)) -> Self {
        Node {
            prev: UnsafeCell::new(ptr::null()),
            next: UnsafeCell::new(ptr::null()),
            wake,
            cancel,
        }
    }

    /// Runs the node's wake function.
    ///
    /// # Safety
    /// `node` is alive, was unlinked by the caller (under the lock) for this
    /// purpose, and is woken once.
    pub(crate) unsafe fn wake(node: *const Node) {
        // SAFETY: per the contract, `node` is alive.
        unsafe { ((*node).wake)(node) }
    }
}

/// An intrusive FIFO of [`Node`]s. Lives inside a [`Lock`]; every method
/// requires that lock to be held (it is, when called on the `&mut` that
/// [`Lock::with`] hands out).
pub(crate) struct WaitList {
    head: *const Node,
    tail: *const Node,
}

// SAFETY: the raw pointers refer to pinned operation states that are only
// touched under the owning lock; the operations that enqueue require their
// receivers to be `Send`.
unsafe impl Send for WaitList {}

impl WaitList {
    pub(crate) const fn new() -> Self {
        WaitList {
            head: ptr::null(),
            tail: ptr::null(),
        }
    }

    #[allow(dead_code)]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// Appends `node`.
    ///
    /// # Safety
    /// Lock held; `node` is pinned, not linked, and stays alive until it is
    /// unlinked again.
    pub(crate) unsafe fn push_back(&mut self, node: *const Node) {
        // SAFETY: lock held; `node` and the tail are alive (linked nodes are).
        unsafe {
            (*node).prev.with_mut(|p| *p = self.tail);
            (*node).next.with_mut(|n| *n = ptr::null());
            if self.tail.is_null() {
                self.head = node;
            } else {
                (*self.tail).next.with_mut(|n| *n = node);
            }
        }
        self.tail = node;
    }

    /// Removes and returns the oldest node.
    pub(crate) fn pop_front(&mut self) -> Option<*const Node> {
        if self.head.is_null() {
            return None;
        }
        let node = self.head;
        // SAFETY: lock held (we are reached through `&mut` under it); linked
        // nodes are alive.
        unsafe { self.unlink(node) };
        Some(node)
    }

    /// Removes `node` if it is linked; returns whether it was.
    ///
    /// # Safety
    /// Lock held; `node` is alive and, if linked, linked in this list.
    pub(crate) unsafe fn remove(&mut self, node: *const Node) -> bool {
        // SAFETY: per the contract.
        unsafe {
            let linked = !(*node).prev.with(|p| *p).is_null() || ptr::eq(self.head, node);
            if !linked {
                return false;
            }
            self.unlink(node);
        }
        true
    }

    /// # Safety
    /// Lock held; `node` is linked in this list.
    unsafe fn unlink(&mut self, node: *const Node) {
        // SAFETY: per the contract; neighbours are linked, hence alive.
        unsafe {
            let prev = (*node).prev.with(|p| *p);
            let next = (*node).next.with(|n| *n);
            if prev.is_null() {
                self.head = next;
            } else {
                (*prev).next.with_mut(|n| *n = next);
            }
            if next.is_null() {
                self.tail = prev;
            } else {
                (*next).prev.with_mut(|p| *p = prev);
            }
            (*node).prev.with_mut(|p| *p = ptr::null());
            (*node).next.with_mut(|n| *n = ptr::null());
        }
    }
}

/// The front of every [`Waiter`]: the queue node, then the stop node.
/// Not generic, so the stop node's offset is one constant.
#[repr(C)]
struct Head {
    /// First: a `*const Node` is a `*const Head` is a pointer to the whole
    /// operation.
    node: Node,
    /// Registered at `start` if the receiver's token can stop; its callback
    /// ([`Head::on_stop`]) runs the queue node's `cancel`.
    stop: StopNode,
}

impl Head {
    /// The stop callback of every waiter.
    ///
    /// # Safety
    /// `stop` is the stop node of a [`Head`] at the front of a started
    /// operation, derived from a pointer to the whole operation, still
    /// registered (so the operation is alive).
    unsafe fn on_stop(stop: *const StopNode) {
        // Same provenance (the whole operation), fixed offset back.
        let node = stop
            .cast::<u8>()
            .wrapping_sub(offset_of!(Head, stop))
            .cast::<Node>();
        // SAFETY: per the contract, the operation (whose first field is the
        // queue node) is alive.
        unsafe { ((*node).cancel)(node) }
    }
}

/// The first field of every `#[repr(C)]` waiting operation state: the queue
/// node, the stop node (the waiter is its own stop callback) and the
/// downstream receiver.
#[repr(C)]
pub(crate) struct Waiter<R> {
    head: Head,
    /// Taken by whoever owns the completion (see the module docs).
    receiver: UnsafeCell<Option<R>>,
    _pin: PhantomPinned,
}

impl<R> Waiter<R> {
    pub(crate) fn new(
        receiver: R,
        wake: unsafe fn(*const Node),
        cancel: unsafe fn(*const Node),
    ) -> Self {
        Waiter {
            head: Head {
                node: Node::new(wake, cancel),
                stop: StopNode::new(StopToken::never(), Head::on_stop),
            },
            receiver: UnsafeCell::new(Some(receiver)),
            _pin: PhantomPinned,
        }
    }

    /// The node of the operation at `op`, as the queue sees it.
    ///
    /// The pointer is derived from the whole operation (not from the node
    /// field alone), so that `wake`/`cancel` may cast it back and reach the
    /// other fields.
    pub(crate) fn node_of<Op>(op: &Op) -> *const Node {
        (op as *const Op).cast::<Node>()
    }

    /// The receiver's stop token, detached from the borrow of the receiver.
    ///
    /// # Safety
    /// The receiver is present and not accessed concurrently (before the
    /// node is linked or the callback armed). The token must not be used
    /// after the receiver has been completed.
    pub(crate) unsafe fn token<T, E>(&self) -> StopToken<'static>
    where
        R: crate::Receiver<T, E>,
    {
        use crate::Env;
        self.receiver.with(|r| {
            // SAFETY: exclusive per the contract.
            let r = unsafe { (*r).as_ref() }.expect("waiter: receiver already taken");
            let env = r.env();
            // SAFETY: the stop source outlives the receiver, and the caller
            // stops using the token before completing the receiver.
            unsafe { env.stop_token().detach() }
        })
    }

    /// Registers the stop callback (if `token` can stop and stop has not
    /// been requested; if it has, nothing is registered and the caller's
    /// re-check of the token under its lock, before linking, sees it).
    ///
    /// # Safety
    /// `self` is pinned (the first field of a started operation) and not yet
    /// linked; `node` is [`node_of`](Self::node_of) that operation; called
    /// once; `token` came from [`token`](Self::token).
    pub(crate) unsafe fn arm(&self, node: *const Node, token: StopToken<'static>) {
        if !token.stop_possible() {
            return;
        }
        // Derived from `node`, which points to the whole operation: the
        // callback may go back to it (`Head::on_stop`).
        let stop = node
            .cast::<u8>()
            .wrapping_add(offset_of!(Head, stop))
            .cast::<StopNode>();
        debug_assert!(ptr::eq(stop, &self.head.stop));
        // SAFETY: we own the stop node and it is not registered; the token's
        // source outlives the registration (`token`'s contract); the
        // operation is pinned, and deregisters (`disarm`, or dropping the
        // node) before it goes away.
        unsafe {
            self.head.stop.set_token(token);
            StopNode::register(stop);
        }
    }

    /// Deregisters the stop callback (waits if it is running on another
    /// thread).
    ///
    /// # Safety
    /// Called by the owner of the completion (see the module docs), before
    /// completing.
    pub(crate) unsafe fn disarm(&self) {
        // SAFETY: the owner of the completion owns the stop node now; the
        // callback (if running elsewhere) touches only the queue node and
        // the operation's lock, and deregistering waits for it.
        unsafe { self.head.stop.deregister() }
    }

    /// Takes the receiver.
    ///
    /// # Safety
    /// Called by the owner of the completion, after [`disarm`](Self::disarm).
    pub(crate) unsafe fn take_receiver(&self) -> R {
        // SAFETY: the owner of the completion has exclusive access.
        unsafe { self.receiver.with_mut(|r| (*r).take()) }.expect("waiter completed twice")
    }
}

impl<R> fmt::Debug for Waiter<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiter").finish_non_exhaustive()
    }
}
