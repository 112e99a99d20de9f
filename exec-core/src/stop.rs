//! Stop tokens: [`StopSource`], [`StopToken`], [`StopCallback`] and
//! [`NeverStopToken`].
//!
//! The design follows P2300's `inplace_stop_source`: no allocation, the
//! callbacks form an intrusive doubly-linked list whose nodes live inside the
//! (pinned) [`StopCallback`]s, guarded by a spin lock packed into one atomic
//! word next to the "stop requested" bit.
//!
//! # Protocol
//! - `request_stop` sets `REQUESTED` and `LOCKED` together, then pops the
//!   callbacks one at a time. Before running one it records it as `running`,
//!   releases the lock, runs it, re-takes the lock. Callbacks registered after
//!   `REQUESTED` was set run inline in `register` and never enter the list.
//! - Dropping a registered callback takes the lock. If the node is still in
//!   the list it is unlinked and that is all. If the node is the one running:
//!   on the notifying thread itself (the callback drops its own
//!   registration) the notifier is told through `removed` not to touch the
//!   node again; on any other thread the drop waits until the notifier
//!   publishes `done` (Release/Acquire), so the callback's captures are never
//!   freed while it runs.
//! - Every field of a node other than `done` is only accessed with the lock
//!   held (or before registration / after deregistration, by the owner).

use core::fmt;
use core::marker::{PhantomData, PhantomPinned};
use core::pin::Pin;
use core::ptr;

use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicBool, AtomicU8, Ordering};

const REQUESTED: u8 = 0b01;
const LOCKED: u8 = 0b10;

/// Identifies the calling thread, or `None` where that cannot be known
/// (`no_std`), in which case a callback must not drop its own registration.
#[inline]
fn thread_token() -> Option<usize> {
    #[cfg(loom)]
    {
        ::loom::thread_local!(static TOKEN: u8 = 0);
        Some(TOKEN.with(|t| t as *const u8 as usize))
    }
    #[cfg(all(not(loom), feature = "std"))]
    {
        std::thread_local!(static TOKEN: u8 = const { 0 });
        Some(TOKEN.with(|t| t as *const u8 as usize))
    }
    #[cfg(all(not(loom), not(feature = "std")))]
    {
        None
    }
}

/// The shared state of a stop source. Callbacks hang off it.
struct State {
    /// `REQUESTED | LOCKED` bits.
    bits: AtomicU8,
    /// Head of the intrusive list of registered callbacks. Guarded by `LOCKED`.
    head: UnsafeCell<*const Node>,
    /// The node whose callback is executing, or null. Guarded by `LOCKED`.
    running: UnsafeCell<*const Node>,
    /// The thread that requested stop (valid once `REQUESTED`). Guarded by `LOCKED`.
    notifier: UnsafeCell<Option<usize>>,
}

/// The intrusive list node embedded in every [`StopCallback`].
struct Node {
    /// Guarded by the state's lock.
    prev: UnsafeCell<*const Node>,
    /// Guarded by the state's lock.
    next: UnsafeCell<*const Node>,
    /// Whether the node is currently linked into the list. Guarded by the lock.
    linked: UnsafeCell<bool>,
    /// Points at the notifier's `removed` flag while the callback runs, so a
    /// callback that drops its own registration can say so. Guarded by the lock.
    removed: UnsafeCell<*mut bool>,
    /// Set (Release) by the notifier once the callback has returned.
    done: AtomicBool,
    /// Runs the callback this node belongs to. The pointer is the node.
    run: unsafe fn(*const Node),
}

impl State {
    fn new() -> Self {
        State {
            bits: AtomicU8::new(0),
            head: UnsafeCell::new(ptr::null()),
            running: UnsafeCell::new(ptr::null()),
            notifier: UnsafeCell::new(None),
        }
    }

    /// Takes the lock. If `unless_requested` and stop was requested, returns
    /// `false` without locking.
    fn lock(&self, unless_requested: bool) -> bool {
        let mut bits = self.bits.load(Ordering::Relaxed);
        loop {
            if unless_requested && bits & REQUESTED != 0 {
                // Pairs with the Release that set REQUESTED: whoever sees the
                // bit sees what the requester did before requesting.
                crate::loom::sync::atomic::fence(Ordering::Acquire);
                return false;
            }
            if bits & LOCKED != 0 {
                crate::loom::spin();
                bits = self.bits.load(Ordering::Relaxed);
                continue;
            }
            match self.bits.compare_exchange_weak(
                bits,
                bits | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => bits = actual,
            }
        }
    }

    fn unlock(&self) {
        self.bits.fetch_and(!LOCKED, Ordering::Release);
    }

    fn stop_requested(&self) -> bool {
        self.bits.load(Ordering::Acquire) & REQUESTED != 0
    }

    fn request_stop(&self) -> bool {
        // Take the lock and set REQUESTED in one step.
        let mut bits = self.bits.load(Ordering::Relaxed);
        loop {
            if bits & REQUESTED != 0 {
                return false;
            }
            if bits & LOCKED != 0 {
                crate::loom::spin();
                bits = self.bits.load(Ordering::Relaxed);
                continue;
            }
            match self.bits.compare_exchange_weak(
                bits,
                REQUESTED | LOCKED,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => bits = actual,
            }
        }
        // SAFETY: we hold the lock.
        self.notifier.with_mut(|n| unsafe { *n = thread_token() });

        // Runs on unwind out of a callback: mark it done, clear `running`,
        // release the lock, so no deregistration waits forever.
        struct Finish<'a> {
            state: &'a State,
            node: *const Node,
            removed: *const bool,
        }
        impl Drop for Finish<'_> {
            fn drop(&mut self) {
                // SAFETY: `removed` points at the notifier's live stack flag.
                // If it is false the node is still alive (its owner waits for
                // `done`), so touching it is sound.
                unsafe {
                    if !*self.removed {
                        (*self.node).done.store(true, Ordering::Release);
                    }
                }
                self.state.lock(false);
                // SAFETY: we hold the lock.
                self.state.running.with_mut(|r| unsafe { *r = ptr::null() });
                self.state.unlock();
            }
        }

        loop {
            // SAFETY: we hold the lock; list nodes are alive while linked
            // (their owners unlink them under the lock before freeing).
            let node = unsafe { self.pop_front() };
            if node.is_null() {
                break;
            }
            let mut removed = false;
            // One raw pointer for both the writer (a callback dropping its own
            // registration) and `Finish`, so neither invalidates the other.
            let removed_ptr: *mut bool = &mut removed;
            // SAFETY: lock held; `node` was just unlinked and is alive: its
            // owner, to free it, must take the lock and will then find it
            // `running` and wait for `done`.
            unsafe {
                (*node).removed.with_mut(|r| *r = removed_ptr);
                self.running.with_mut(|r| *r = node);
            }
            self.unlock();
            let finish = Finish {
                state: self,
                node,
                removed: removed_ptr,
            };
            // SAFETY: `node` is alive (see above) and its callback has not run:
            // a node is run at most once because it was unlinked by us.
            unsafe { ((*node).run)(node) };
            drop(finish);
            self.lock(false);
        }
        self.unlock();
        true
    }

    /// # Safety
    /// Lock held.
    unsafe fn pop_front(&self) -> *const Node {
        // SAFETY: lock held by the caller; linked nodes are alive.
        unsafe {
            let head = self.head.with(|h| *h);
            if head.is_null() {
                return head;
            }
            let next = (*head).next.with(|n| *n);
            if !next.is_null() {
                (*next).prev.with_mut(|p| *p = ptr::null());
            }
            self.head.with_mut(|h| *h = next);
            (*head).linked.with_mut(|l| *l = false);
            head
        }
    }

    /// Registers `node`; returns `false` (without linking) if stop was
    /// already requested.
    ///
    /// # Safety
    /// `node` is pinned and stays alive until `deregister(node)` returns.
    unsafe fn register(&self, node: *const Node) -> bool {
        if !self.lock(true) {
            return false;
        }
        // SAFETY: lock held; `node` alive per the caller, `head` alive as linked.
        unsafe {
            let head = self.head.with(|h| *h);
            (*node).prev.with_mut(|p| *p = ptr::null());
            (*node).next.with_mut(|n| *n = head);
            (*node).linked.with_mut(|l| *l = true);
            if !head.is_null() {
                (*head).prev.with_mut(|p| *p = node);
            }
            self.head.with_mut(|h| *h = node);
        }
        self.unlock();
        true
    }

    /// Removes `node`; if its callback is running on another thread, waits
    /// until it has returned.
    ///
    /// # Safety
    /// `node` was registered with `register` on this state (returning `true`).
    unsafe fn deregister(&self, node: *const Node) {
        self.lock(false);
        // SAFETY: lock held; `node` alive (the caller owns it).
        unsafe {
            if (*node).linked.with(|l| *l) {
                let prev = (*node).prev.with(|p| *p);
                let next = (*node).next.with(|n| *n);
                if prev.is_null() {
                    self.head.with_mut(|h| *h = next);
                } else {
                    (*prev).next.with_mut(|n| *n = next);
                }
                if !next.is_null() {
                    (*next).prev.with_mut(|p| *p = prev);
                }
                (*node).linked.with_mut(|l| *l = false);
                self.unlock();
                return;
            }
            if self.running.with(|r| *r) == node {
                let notifier = self.notifier.with(|n| *n);
                let me = thread_token();
                if me.is_some() && notifier == me {
                    // The callback is dropping its own registration.
                    let removed = (*node).removed.with(|r| *r);
                    *removed = true;
                    self.unlock();
                    return;
                }
                self.unlock();
                while !(*node).done.load(Ordering::Acquire) {
                    crate::loom::spin();
                }
                return;
            }
        }
        // Already ran to completion.
        self.unlock();
    }
}

/// The owner of a stop request: an in-place (non-allocating) stop source.
///
/// Hands out [`StopToken`]s that borrow it; [`request_stop`](Self::request_stop)
/// runs every registered [`StopCallback`] once. Thread-safe.
///
/// ```
/// use exec_core::StopSource;
/// let source = StopSource::new();
/// let token = source.token();
/// assert!(!token.stop_requested());
/// assert!(source.request_stop());
/// assert!(token.stop_requested());
/// assert!(!source.request_stop()); // only the first request counts
/// ```
pub struct StopSource {
    state: State,
}

impl StopSource {
    /// A source on which stop has not been requested.
    pub fn new() -> Self {
        StopSource {
            state: State::new(),
        }
    }

    /// A token observing this source.
    pub fn token(&self) -> StopToken<'_> {
        StopToken {
            state: Some(&self.state),
        }
    }

    /// Requests stop: sets the flag and runs the registered callbacks on the
    /// calling thread. Returns `true` if this call made the request.
    pub fn request_stop(&self) -> bool {
        self.state.request_stop()
    }

    /// Whether stop has been requested.
    pub fn stop_requested(&self) -> bool {
        self.state.stop_requested()
    }
}

impl Default for StopSource {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for StopSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopSource")
            .field("stop_requested", &self.stop_requested())
            .finish()
    }
}

// SAFETY: all fields of `State` are atomics or guarded by its lock; the raw
// node pointers are only dereferenced under that protocol.
unsafe impl Send for State {}
// SAFETY: as above.
unsafe impl Sync for State {}

/// A handle that observes a [`StopSource`], or none ([`StopToken::never`]).
///
/// Copyable and cheap (one pointer). Environments hand it to operations
/// through [`Env::stop_token`](crate::Env::stop_token). A token from
/// [`StopToken::never`] reports `stop_possible() == false`, and code that
/// checks it folds away once inlined.
#[derive(Clone, Copy)]
pub struct StopToken<'a> {
    state: Option<&'a State>,
}

impl<'a> StopToken<'a> {
    /// A token on which stop can never be requested.
    pub const fn never() -> StopToken<'static> {
        StopToken { state: None }
    }

    /// Whether stop has been requested on the source.
    #[inline]
    pub fn stop_requested(&self) -> bool {
        match self.state {
            Some(s) => s.stop_requested(),
            None => false,
        }
    }

    /// Whether stop can ever be requested through this token.
    #[inline]
    pub fn stop_possible(&self) -> bool {
        self.state.is_some()
    }

    /// Erases the lifetime of this token.
    ///
    /// # Safety
    /// The returned token, and every [`StopCallback`] registered with it, must
    /// be used and dropped before the [`StopSource`] it observes is dropped.
    /// Operation states use this to keep a callback next to the receiver whose
    /// environment produced the token: the callback is dropped before the
    /// receiver is completed, and the receiver's environment outlives it.
    pub unsafe fn detach(self) -> StopToken<'static> {
        StopToken {
            // SAFETY: the caller upholds the lifetime contract above.
            state: self.state.map(|s| unsafe { &*(s as *const State) }),
        }
    }
}

impl PartialEq for StopToken<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self.state, other.state) {
            (Some(a), Some(b)) => ptr::eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl fmt::Debug for StopToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopToken")
            .field("stop_possible", &self.stop_possible())
            .field("stop_requested", &self.stop_requested())
            .finish()
    }
}

impl From<NeverStopToken> for StopToken<'static> {
    fn from(_: NeverStopToken) -> Self {
        StopToken::never()
    }
}

/// A zero-sized token on which stop is never requested.
///
/// Every query is a constant, so code written against it compiles away.
/// Convert it into a [`StopToken`] where an environment needs one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NeverStopToken;

impl NeverStopToken {
    /// Always `false`.
    #[inline(always)]
    pub const fn stop_requested(&self) -> bool {
        false
    }
    /// Always `false`.
    #[inline(always)]
    pub const fn stop_possible(&self) -> bool {
        false
    }
}

/// What a [`StopCallback`] runs when stop is requested.
///
/// Every `FnOnce()` closure is one. Operation states implement it on a small
/// named type when they must store the callback in a field (a closure's type
/// cannot be named there).
///
/// ```
/// use core::pin::pin;
/// use exec_core::{OnStop, StopCallback, StopSource};
/// struct Shout;
/// impl OnStop for Shout {
///     fn on_stop(self) { println!("stop!") }
/// }
/// let source = StopSource::new();
/// let mut cb = pin!(StopCallback::new(source.token(), Shout));
/// cb.as_mut().register();
/// source.request_stop();
/// ```
pub trait OnStop {
    /// Runs the callback, once.
    fn on_stop(self);
}

impl<F: FnOnce()> OnStop for F {
    #[inline]
    fn on_stop(self) {
        self()
    }
}

/// A callback run once when stop is requested on the token it is registered
/// with, or never.
///
/// Construct it with [`new`](Self::new), pin it, then
/// [`register`](Self::register). If stop was already requested, `register`
/// runs the callback inline. Dropping a registered callback deregisters it;
/// if the callback is running on another thread at that moment, the drop
/// waits for it to return, so whatever the callback borrows stays valid.
///
/// ```
/// use core::pin::pin;
/// use core::sync::atomic::{AtomicBool, Ordering};
/// use exec_core::{StopCallback, StopSource};
///
/// let source = StopSource::new();
/// let fired = AtomicBool::new(false);
/// let mut cb = pin!(StopCallback::new(source.token(), || fired.store(true, Ordering::Relaxed)));
/// cb.as_mut().register();
/// source.request_stop();
/// assert!(fired.load(Ordering::Relaxed));
/// ```
#[repr(C)]
pub struct StopCallback<'a, F: OnStop> {
    /// First field, so a `*const Node` is a `*const StopCallback`.
    node: Node,
    state: Option<&'a State>,
    /// Whether `register` linked the node (so drop must deregister).
    registered: bool,
    /// Taken by whichever of `run` or drop gets it. Accessed by the notifier
    /// only between unlink and `done`, by the owner only when not linked and
    /// not running.
    callback: UnsafeCell<Option<F>>,
    _pin: PhantomPinned,
    _lt: PhantomData<&'a ()>,
}

impl<'a, F: OnStop> StopCallback<'a, F> {
    /// A callback for `token`, not yet registered.
    pub fn new(token: StopToken<'a>, callback: F) -> Self {
        StopCallback {
            node: Node {
                prev: UnsafeCell::new(ptr::null()),
                next: UnsafeCell::new(ptr::null()),
                linked: UnsafeCell::new(false),
                removed: UnsafeCell::new(ptr::null_mut()),
                done: AtomicBool::new(false),
                run: Self::run,
            },
            state: token.state,
            registered: false,
            callback: UnsafeCell::new(Some(callback)),
            _pin: PhantomPinned,
            _lt: PhantomData,
        }
    }

    /// Registers the callback. If stop was already requested it runs now, on
    /// this thread. Registering twice does nothing.
    pub fn register(self: Pin<&mut Self>) {
        // SAFETY: we never move out of the pinned value.
        let this = unsafe { self.get_unchecked_mut() };
        if this.registered {
            return;
        }
        let Some(state) = this.state else { return };
        // Derived from the whole callback, so `run` may reach the other fields.
        let node: *const Node = (this as *mut Self).cast::<Node>().cast_const();
        // SAFETY: `this` is pinned, so `node` stays put; `Drop` deregisters
        // before the memory goes away (pinning's drop guarantee).
        if unsafe { state.register(node) } {
            this.registered = true;
        } else {
            // Stop already requested: run inline.
            this.registered = false;
            let f = this.callback.with_mut(|c| {
                // SAFETY: not linked, so nobody else can reach the cell.
                unsafe { (*c).take() }
            });
            if let Some(f) = f {
                f.on_stop();
            }
        }
    }

    /// Whether the callback has been registered and not yet run inline.
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// # Safety
    /// `node` is the first field of a live, pinned `StopCallback<F>` that the
    /// notifier has just unlinked; called once.
    unsafe fn run(node: *const Node) {
        let this = node as *const Self;
        // SAFETY: per the contract, the callback cell is ours until `done`.
        let f = unsafe { (*this).callback.with_mut(|c| (*c).take()) };
        if let Some(f) = f {
            f.on_stop();
        }
    }
}

impl<F: OnStop> Drop for StopCallback<'_, F> {
    fn drop(&mut self) {
        if let (true, Some(state)) = (self.registered, self.state) {
            // SAFETY: registered on `state` by `register`.
            unsafe { state.deregister(&self.node) };
        }
    }
}

impl<F: OnStop> fmt::Debug for StopCallback<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopCallback")
            .field("registered", &self.registered)
            .finish_non_exhaustive()
    }
}

// SAFETY: the callback may run on the thread that requests stop, so it must
// be `Send`; the node fields are guarded by the state's lock.
unsafe impl<F: OnStop + Send> Send for StopCallback<'_, F> {}
// SAFETY: `&StopCallback` exposes nothing but `is_registered`.
unsafe impl<F: OnStop + Send> Sync for StopCallback<'_, F> {}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use ::loom::sync::Arc;
    use ::loom::sync::atomic::AtomicUsize;
    use alloc::boxed::Box;
    use core::pin::pin;

    /// A stop request racing a deregistration: the callback either runs
    /// completely before the drop returns or not at all, never after.
    #[test]
    fn deregister_waits_for_running_callback() {
        ::loom::model(|| {
            let source = Arc::new(StopSource::new());
            let counter = Arc::new(AtomicUsize::new(0));
            let s2 = source.clone();
            let t = ::loom::thread::spawn(move || {
                s2.request_stop();
            });
            {
                let c = counter.clone();
                let token = source.token();
                let mut cb = pin!(StopCallback::new(token, move || {
                    c.fetch_add(1, Ordering::Relaxed);
                }));
                cb.as_mut().register();
            }
            // After the drop the callback has either run or will never run.
            let seen = counter.load(Ordering::Relaxed);
            t.join().unwrap();
            assert_eq!(counter.load(Ordering::Relaxed), seen);
        });
    }

    /// Two requesters: callbacks run exactly once.
    #[test]
    fn callbacks_run_once() {
        ::loom::model(|| {
            let source = Arc::new(StopSource::new());
            let counter = Arc::new(AtomicUsize::new(0));
            let c = counter.clone();
            let token = source.token();
            let mut cb = Box::pin(StopCallback::new(unsafe { token.detach() }, move || {
                c.fetch_add(1, Ordering::Relaxed);
            }));
            cb.as_mut().register();
            let s2 = source.clone();
            let t = ::loom::thread::spawn(move || s2.request_stop());
            let mine = source.request_stop();
            let theirs = t.join().unwrap();
            assert!(mine ^ theirs);
            assert_eq!(counter.load(Ordering::Relaxed), 1);
            drop(cb);
        });
    }
}
