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
//!   notifier (via [`Node::wake`]) or the stop callback (via
//!   [`Node::cancel`]). The owner first drops the waiter's stop callback
//!   ([`Waiter::disarm`]: if the callback is running on another thread that
//!   waits for it, and the callback then finds the node unlinked and does
//!   nothing), then takes the receiver and completes it, and touches nothing
//!   of the operation afterwards.
//! - A waiter arms its stop callback *before* linking its node, and checks
//!   the stop token again under the lock before linking: a stop request that
//!   fired before the node was linked is seen by that check (the callback
//!   found nothing to unlink), one that fires after is seen by the callback
//!   (which takes the same lock).

use core::fmt;
use core::marker::PhantomPinned;
use core::ptr::{self, NonNull};

use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicBool, Ordering};
use crate::{OnStop, StopCallback, StopToken};

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
pub(crate) struct Node {
    /// Guarded by the owning lock.
    prev: UnsafeCell<*const Node>,
    /// Guarded by the owning lock.
    next: UnsafeCell<*const Node>,
    /// Whether the node is in a list. Guarded by the owning lock.
    linked: UnsafeCell<bool>,
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
            linked: UnsafeCell::new(false),
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
            (*node).linked.with_mut(|l| *l = true);
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
            if !(*node).linked.with(|l| *l) {
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
            (*node).linked.with_mut(|l| *l = false);
        }
    }
}

/// The stop callback of a waiter: runs the node's `cancel`.
pub(crate) struct CancelNode(NonNull<Node>);

// SAFETY: `cancel` may run on the thread that requests stop. Every operation
// that registers a `CancelNode` requires its receiver (which `cancel`
// completes) to be `Send`, and reaches its shared state only through locks
// and atomics.
unsafe impl Send for CancelNode {}

impl OnStop for CancelNode {
    fn on_stop(self) {
        let node = self.0.as_ptr() as *const Node;
        // SAFETY: the node's operation is alive while its stop callback is
        // registered (it drops the callback before completing).
        unsafe { ((*node).cancel)(node) }
    }
}

/// The first field of every `#[repr(C)]` waiting operation state: the queue node, the
/// downstream receiver and the stop callback.
#[repr(C)]
pub(crate) struct Waiter<R> {
    node: Node,
    /// Taken by whoever owns the completion (see the module docs).
    receiver: UnsafeCell<Option<R>>,
    /// Armed at `start` if the receiver's token can stop; dropped in place
    /// (never moved) before the receiver is completed.
    stop: UnsafeCell<Option<StopCallback<'static, CancelNode>>>,
    _pin: PhantomPinned,
}

impl<R> Waiter<R> {
    pub(crate) fn new(
        receiver: R,
        wake: unsafe fn(*const Node),
        cancel: unsafe fn(*const Node),
    ) -> Self {
        Waiter {
            node: Node::new(wake, cancel),
            receiver: UnsafeCell::new(Some(receiver)),
            stop: UnsafeCell::new(None),
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

    /// Registers the stop callback (if `token` can stop). If stop was
    /// already requested the callback runs inline and finds the node not
    /// linked, which does nothing; the caller re-checks the token under its
    /// lock before linking.
    ///
    /// # Safety
    /// `self` is pinned (the first field of a started operation) and not yet
    /// linked; `node` is [`node_of`](Self::node_of) that operation; called
    /// once; `token` came from [`token`](Self::token).
    pub(crate) unsafe fn arm(&self, node: *const Node, token: StopToken<'static>) {
        if !token.stop_possible() {
            return;
        }
        // SAFETY: derived from a reference, never null.
        let node = unsafe { NonNull::new_unchecked(node as *mut Node) };
        self.stop.with_mut(|s| {
            // SAFETY: not linked and not armed yet: nobody else can reach the
            // cell. The callback is written in place and never moved: the
            // operation is pinned.
            unsafe {
                *s = Some(StopCallback::new(token, CancelNode(node)));
                if let Some(cb) = &mut *s {
                    core::pin::Pin::new_unchecked(cb).register();
                }
            }
        });
    }

    /// Drops the stop callback in place (deregistering it; waits if it is
    /// running on another thread).
    ///
    /// # Safety
    /// Called by the owner of the completion (see the module docs), before
    /// completing.
    pub(crate) unsafe fn disarm(&self) {
        let p = self.stop.with_mut(|s| s);
        // SAFETY: the owner of the completion is the only one that touches
        // the cell now; the callback (if running elsewhere) only reads its
        // own node, whose deregistration `drop_in_place` waits for.
        unsafe {
            if (*p).is_some() {
                ptr::drop_in_place(p);
                ptr::write(p, None);
            }
        }
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
