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
//!   releases the lock, runs it, clears `running` and re-takes the lock.
//!   After a callback has returned the notifier touches only the source's
//!   state, never the node again. Callbacks registered after `REQUESTED` was
//!   set run inline in `register` and never enter the list.
//! - Dropping a registered callback takes the lock. If the node is still in
//!   the list it is unlinked and that is all. If the node is the one running:
//!   on the notifying thread itself (the callback drops its own
//!   registration) the drop returns at once; on any other thread it releases
//!   the lock and waits until `running` is no longer the node. The notifier
//!   clears `running` (Release) after the callback returned, and the waiter
//!   reads it (Acquire), so the callback's return happens before the drop
//!   returns: the callback's captures are never freed while it runs.
//! - A node's links are only accessed with the lock held (or before
//!   registration / after deregistration, by the owner). A node is linked
//!   iff it is the list's head or its `prev` is non-null (the head's `prev`
//!   is null, and unlinking nulls `prev`), so it needs no flag of its own.
//!
//! - A source may be *chained* to a parent source ([`StopSource::chain`],
//!   used by the n-ary algorithms for their children's source). Its
//!   `stop_requested` also reads the parent's (and so on up the chain,
//!   which is bounded): each bit only ever gets set, so the answer is
//!   monotonic. The owner's forwarder (a node whose callback requests stop
//!   on the chained source) is registered with the parent only by the first
//!   `register` on the chained source (`UNLINKED` -> `LINKED`, once, under
//!   the chained source's lock; locks are taken child before parent). If the
//!   parent was already stopped, that registration runs the forwarder on
//!   its own thread after releasing the lock, so the chained source is
//!   stopped before its `register` looks. The owner's `unchain`
//!   deregisters a linked forwarder like any callback (waiting for it if
//!   it runs elsewhere).
//!
//! A node is three words (links and the function that runs it) plus its
//! owner's tagged pointer to the source: a [`StopCallback`] is 32 bytes plus
//! its callback.

use core::fmt;
use core::marker::{PhantomData, PhantomPinned};
use core::pin::Pin;
use core::ptr::{self, NonNull};

use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

const REQUESTED: u8 = 0b0001;
const LOCKED: u8 = 0b0010;
/// The source is chained to a parent ([`StopSource::chain`]) but its
/// forwarder is not registered there yet. Cleared (once) under the lock.
const UNLINKED: u8 = 0b0100;
/// The chained source's forwarder is registered with the parent: the owner
/// deregisters it in [`StopSource::unchain`]. Set (once) under the lock.
const LINKED: u8 = 0b1000;
/// On the top source of a chain (an unchained source others chain to):
/// stop was requested on some source chained below it. Set before that
/// source's `REQUESTED`, so a poll that finds neither this nor `REQUESTED`
/// on the top may answer `false` without walking the chain.
const CHAIN_REQUESTED: u8 = 0b1_0000;

/// How many chained sources may follow each other before a source registers
/// its forwarder eagerly again: bounds the walk of
/// [`StopToken::stop_requested`] (one load per level). An eager
/// registration below a chain links the whole chain above it (each source
/// at most once, which is what every source paid before chaining), so the
/// bound is set above the nesting depth of balanced fork-join trees (depth
/// 32 is 2^32 leaves) while keeping the walk short.
const MAX_CHAIN: u8 = 32;

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
pub(crate) struct State {
    /// `REQUESTED | LOCKED` bits.
    bits: AtomicU8,
    /// Head of the intrusive list of registered callbacks. Guarded by `LOCKED`.
    head: UnsafeCell<*const Node>,
    /// The node whose callback is executing, or null. Set under the lock;
    /// cleared (Release) by the notifier once the callback has returned,
    /// which a deregistration waiting for it observes (Acquire) without the
    /// lock.
    running: AtomicPtr<Node>,
    /// The thread that requested stop (valid once `REQUESTED`). Guarded by `LOCKED`.
    notifier: UnsafeCell<Option<usize>>,
    /// The parent this source is chained to, if any. Written once by
    /// [`StopSource::chain`] before the source is shared; read-only since.
    chain: UnsafeCell<Chain>,
}

/// A lazily chained source's link to its parent (see [`StopSource::chain`]).
#[derive(Clone, Copy)]
struct Chain {
    /// The parent's state, or null if the source is not chained.
    parent: *const State,
    /// The owner's forwarder: a node whose callback requests stop on this
    /// source. Registered with `parent` by the first registration on this
    /// source (`UNLINKED` -> `LINKED`).
    link: *const Node,
    /// The top of the chain (the first unchained source up from here), or
    /// null if the source is not chained.
    top: *const State,
    /// How many chained sources lead up to here (0: not chained).
    depth: u8,
}

/// Bit 0 of [`Node::state`]: `register` linked the node, so dropping it
/// must deregister. `State` is pointer-aligned, so the bit is free.
const REGISTERED: usize = 1;

/// The intrusive list node of a stop callback: the first field of every
/// [`StopCallback`] and of crate-internal operation states that register
/// themselves directly (`#[repr(C)]`, so a `*const Node` is a pointer to the
/// whole owner, which `run` casts back).
#[repr(C)]
pub(crate) struct Node {
    /// Guarded by the state's lock.
    prev: UnsafeCell<*const Node>,
    /// Guarded by the state's lock.
    next: UnsafeCell<*const Node>,
    /// Runs the callback this node belongs to. The pointer is the node, as
    /// passed to [`register`](Self::register). Never changes.
    run: unsafe fn(*const Node),
    /// The source's state (null for a token that never stops), with
    /// [`REGISTERED`] in bit 0. Only the owner touches it.
    state: UnsafeCell<*const State>,
    _pin: PhantomPinned,
}

impl Node {
    /// A node for `token` whose callback is `run`, not yet registered.
    ///
    /// Inline: every operation that owns a stop callback builds one at
    /// `start` (for `when_all` on every run); across crates a plain call
    /// (through the GOT) costs more than the four stores.
    #[inline]
    pub(crate) fn new(token: StopToken<'_>, run: unsafe fn(*const Node)) -> Self {
        Node {
            prev: UnsafeCell::new(ptr::null()),
            next: UnsafeCell::new(ptr::null()),
            run,
            state: UnsafeCell::new(token.raw()),
            _pin: PhantomPinned,
        }
    }

    /// Sets the token the node registers with (for owners that learn it
    /// only once pinned, at `start`).
    ///
    /// # Safety
    /// Called by the owner, while the node is not registered; the token's
    /// source outlives the node's registration (as for
    /// [`StopToken::detach`]).
    pub(crate) unsafe fn set_token(&self, token: StopToken<'_>) {
        // SAFETY: owner-only field, not registered: nobody else reads it.
        self.state.with_mut(|s| unsafe {
            *s = token.raw();
        });
    }

    /// The source, and whether the node is registered with it.
    ///
    /// # Safety
    /// Called by the owner (nobody else touches `state`).
    unsafe fn source(&self) -> (*const State, bool) {
        // SAFETY: owner-only field, per the contract.
        let p = self.state.with(|s| unsafe { *s });
        (p.map_addr(|a| a & !REGISTERED), p.addr() & REGISTERED != 0)
    }

    /// # Safety
    /// As for [`source`](Self::source).
    unsafe fn set_registered(&self, registered: bool) {
        // SAFETY: owner-only field, per the contract.
        self.state.with_mut(|s| unsafe {
            *s = (*s).map_addr(|a| {
                if registered {
                    a | REGISTERED
                } else {
                    a & !REGISTERED
                }
            });
        });
    }

    /// Whether [`register`](Self::register) linked the node and it has not
    /// been deregistered since.
    ///
    /// # Safety
    /// As for [`source`](Self::source).
    pub(crate) unsafe fn is_registered(&self) -> bool {
        // SAFETY: per the contract.
        unsafe { self.source().1 }
    }

    /// Links the node into its source's list. Returns `false` if it did not:
    /// stop was already requested (the caller then acts on the stop itself;
    /// `run` is not called) or the token can never stop. Registering a
    /// registered node again does nothing and returns `true`.
    ///
    /// # Safety
    /// `this` points to a node owned by the caller, derived from a pointer
    /// to its whole owner (so `run` may cast it back); the owner is pinned
    /// and stays alive until [`deregister`](Self::deregister) has returned
    /// (or the node is dropped: dropping deregisters).
    pub(crate) unsafe fn register(this: *const Node) -> bool {
        // SAFETY: owned by the caller, alive.
        let (state, registered) = unsafe { (*this).source() };
        if registered {
            return true;
        }
        if state.is_null() {
            return false;
        }
        // SAFETY: the source outlives the token's users (the token's
        // lifetime, or `StopToken::detach`'s contract); `this` is pinned and
        // stays alive until deregistered, per the contract.
        let linked = unsafe { (*state).register(this) };
        if linked {
            // SAFETY: owner.
            unsafe { (*this).set_registered(true) };
        }
        linked
    }

    /// Unlinks the node if it is registered; if its callback is running on
    /// another thread, waits until it has returned. Afterwards the node is
    /// no longer registered (registering again is not supported: stop may
    /// have been requested meanwhile).
    ///
    /// # Safety
    /// Called by the owner.
    #[inline]
    pub(crate) unsafe fn deregister(&self) {
        // SAFETY: owner, per the contract.
        if unsafe { self.source() }.1 {
            // SAFETY: per the caller.
            unsafe { self.deregister_slow() };
        }
    }

    /// [`deregister`](Self::deregister) of a registered node.
    ///
    /// # Safety
    /// As `deregister`.
    #[cold]
    unsafe fn deregister_slow(&self) {
        // SAFETY: owner, per the contract.
        let (state, _) = unsafe { self.source() };
        // SAFETY: registered on `state` (alive, as in `register`).
        unsafe { (*state).deregister(self) };
        // SAFETY: owner.
        unsafe { self.set_registered(false) };
    }
}

impl Drop for Node {
    /// Inline: the common case (never registered, or already
    /// deregistered) is one load and a branch.
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `&mut self`: we are the owner.
        unsafe { self.deregister() };
    }
}

impl State {
    #[inline]
    fn new() -> Self {
        State {
            bits: AtomicU8::new(0),
            head: UnsafeCell::new(ptr::null()),
            running: AtomicPtr::new(ptr::null_mut()),
            notifier: UnsafeCell::new(None),
            chain: UnsafeCell::new(Chain {
                parent: ptr::null(),
                link: ptr::null(),
                top: ptr::null(),
                depth: 0,
            }),
        }
    }

    /// The chain link (read-only once the source is shared).
    #[inline]
    fn chain(&self) -> Chain {
        // SAFETY: written only by `StopSource::chain`, before the source is
        // shared; read-only since.
        self.chain.with(|c| unsafe { *c })
    }

    /// Takes the lock. If `unless_requested` and stop was requested, returns
    /// `false` without locking.
    fn lock(&self, unless_requested: bool) -> bool {
        let mut bits = self.bits.load(Ordering::Relaxed);
        loop {
            if unless_requested && bits & REQUESTED != 0 {
                // Pairs with the Release that set REQUESTED: whoever sees the
                // bit sees what the requester did before requesting. (A
                // load, not a fence: ThreadSanitizer does not model fences.)
                self.bits.load(Ordering::Acquire);
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

    /// Whether stop was requested on this source or on a source it is
    /// chained to (at most `MAX_CHAIN` levels up). Monotonic: every bit read
    /// only ever gets set.
    #[inline]
    fn stop_requested(&self) -> bool {
        if self.bits.load(Ordering::Acquire) & REQUESTED != 0 {
            return true;
        }
        let Chain { parent, top, .. } = self.chain();
        if parent.is_null() {
            return false;
        }
        // A filter only (the walk's Acquire loads decide): if a source up
        // the chain was stopped, the top's bits say so (or will, at once).
        // SAFETY: the top outlives the chain below it (`StopSource::chain`).
        if unsafe { (*top).bits.load(Ordering::Relaxed) } & (REQUESTED | CHAIN_REQUESTED) == 0 {
            return false;
        }
        // SAFETY: a chained source's parent outlives every use of the
        // chained source's tokens (`StopSource::chain`'s contract).
        let mut s = unsafe { &*parent };
        loop {
            if s.bits.load(Ordering::Acquire) & REQUESTED != 0 {
                return true;
            }
            let parent = s.chain().parent;
            if parent.is_null() {
                return false;
            }
            // SAFETY: a chained source's parent outlives every use of the
            // chained source's tokens (`StopSource::chain`'s contract).
            s = unsafe { &*parent };
        }
    }

    /// Registers the chained source's forwarder with its parent, unless
    /// that was done or stop was requested here. If the parent has already
    /// been stopped, runs the forwarder on this thread instead (after
    /// releasing the lock), so this source is stopped before this returns.
    #[cold]
    fn link(&self) {
        if !self.lock(true) {
            return;
        }
        let bits = self.bits.load(Ordering::Relaxed);
        if bits & UNLINKED == 0 {
            self.unlock();
            return;
        }
        let Chain { parent, link, .. } = self.chain();
        // SAFETY: per `StopSource::chain`'s contract the parent outlives this
        // source's use and `link` is pinned and alive until `unchain`
        // returned, and is not linked (UNLINKED: nobody registered it).
        // Lock order is child then parent (the parent may link to its own
        // parent in here); nobody takes a child's lock holding a parent's.
        let linked = unsafe { (*parent).register(link) };
        // Read-modify-writes: a source chained below may set
        // CHAIN_REQUESTED on ours meanwhile. The second releases the lock.
        if linked {
            self.bits.fetch_or(LINKED, Ordering::Relaxed);
        }
        self.bits.fetch_and(!(UNLINKED | LOCKED), Ordering::Release);
        if !linked {
            // The parent was stopped before the link: forward now. Only we
            // cleared UNLINKED, so the forwarder runs once; the parent
            // never saw it.
            // SAFETY: `link` is alive (see above) and never linked; its
            // `run` expects exactly this call.
            unsafe { ((*link).run)(link) };
        }
    }

    fn request_stop(&self) -> bool {
        let mut bits = self.bits.load(Ordering::Relaxed);
        if bits & REQUESTED != 0 {
            return false;
        }
        let top = self.chain().top;
        if !top.is_null() {
            // Sequenced before our REQUESTED (set by a release CAS below),
            // so whoever has seen our bit also passes the top's filter.
            // SAFETY: the top outlives the chain below it.
            unsafe { (*top).bits.fetch_or(CHAIN_REQUESTED, Ordering::Relaxed) };
        }
        // Take the lock and set REQUESTED in one step.
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
                bits | REQUESTED | LOCKED,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => bits = actual,
            }
        }
        // SAFETY: we hold the lock.
        self.notifier.with_mut(|n| unsafe { *n = thread_token() });

        // Clears `running` once the callback has returned (or unwound),
        // releasing a deregistration that waits for it.
        struct Finish<'a>(&'a State);
        impl Drop for Finish<'_> {
            fn drop(&mut self) {
                self.0.running.store(ptr::null_mut(), Ordering::Release);
            }
        }

        loop {
            // SAFETY: we hold the lock; list nodes are alive while linked
            // (their owners unlink them under the lock before freeing).
            let node = unsafe { self.pop_front() };
            if node.is_null() {
                break;
            }
            // SAFETY: lock held; `node` was just unlinked and is alive: its
            // owner, to free it, must take the lock and will then find it
            // `running` and wait until it no longer is. `run` never changes.
            // Release, not Relaxed: an owner waiting for the *previous*
            // node may read this store instead of that node's clearing
            // store (which is not in a release sequence with it), and must
            // still see the previous callback's accesses (miri found the
            // race with Relaxed; loom model `waiter_reads_the_next_node`).
            self.running.store(node.cast_mut(), Ordering::Release);
            // SAFETY: as just said.
            let run = unsafe { (*node).run };
            self.unlock();
            let finish = Finish(self);
            // SAFETY: `node` is alive (see above) and its callback has not run:
            // a node is run at most once because it was unlinked by us.
            unsafe { run(node) };
            // From here on the node may be gone: only our own state is touched.
            drop(finish);
            self.lock(false);
        }
        self.unlock();
        true
    }

    /// Whether `node` is in the list.
    ///
    /// # Safety
    /// Lock held; `node` alive.
    unsafe fn is_linked(&self, node: *const Node) -> bool {
        // SAFETY: per the contract.
        unsafe { ptr::eq(self.head.with(|h| *h), node) || !(*node).prev.with(|p| *p).is_null() }
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
            (*head).next.with_mut(|n| *n = ptr::null());
            head
        }
    }

    /// Registers `node`; returns `false` (without linking) if stop was
    /// already requested.
    ///
    /// # Safety
    /// `node` is pinned, not linked, and stays alive until
    /// `deregister(node)` returns.
    unsafe fn register(&self, node: *const Node) -> bool {
        if self.bits.load(Ordering::Relaxed) & UNLINKED != 0 {
            // A stale read only costs a look under the lock.
            self.link();
        }
        if !self.lock(true) {
            return false;
        }
        // SAFETY: lock held; `node` alive per the caller, `head` alive as linked.
        unsafe {
            let head = self.head.with(|h| *h);
            (*node).prev.with_mut(|p| *p = ptr::null());
            (*node).next.with_mut(|n| *n = head);
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
            if self.is_linked(node) {
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
                (*node).prev.with_mut(|p| *p = ptr::null());
                (*node).next.with_mut(|n| *n = ptr::null());
                self.unlock();
                return;
            }
            // Acquire: if the notifier has just cleared it (outside the lock),
            // the callback's return happens before we report it finished.
            if ptr::eq(self.running.load(Ordering::Acquire), node) {
                let notifier = self.notifier.with(|n| *n);
                let me = thread_token();
                if me.is_some() && notifier == me {
                    // The callback is dropping its own registration: the
                    // notifier will not touch the node after it returns.
                    self.unlock();
                    return;
                }
                // Running elsewhere: wait until the notifier has cleared
                // `running` (Release, after the callback returned). It never
                // becomes this node again: the node is not linked, and stop
                // has been requested, so it cannot be registered again.
                self.unlock();
                while ptr::eq(self.running.load(Ordering::Acquire), node) {
                    crate::loom::spin();
                }
                return;
            }
        }
        // Not linked, not running: it ran to completion.
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
    #[inline]
    pub fn new() -> Self {
        StopSource {
            state: State::new(),
        }
    }

    /// A token observing this source.
    #[inline]
    pub fn token(&self) -> StopToken<'_> {
        StopToken {
            state: Some(NonNull::from(&self.state)),
            _lt: PhantomData,
        }
    }

    /// Requests stop: sets the flag and runs the registered callbacks on the
    /// calling thread. Returns `true` if this call made the request.
    pub fn request_stop(&self) -> bool {
        self.state.request_stop()
    }

    /// Whether stop has been requested.
    #[inline]
    pub fn stop_requested(&self) -> bool {
        self.state.stop_requested()
    }

    /// Chains this source to `parent`'s, lazily: this source's tokens
    /// report stop once it is requested on either (the check walks up the
    /// chain), and the forwarder `link` (a callback requesting stop on this
    /// source) is registered with `parent` only when the first callback
    /// registers with this source. An operation whose children only poll
    /// the token, or register nothing, so never touches the parent's
    /// state. Returns `false` (and does nothing) if `parent` can never stop
    /// or the chain is already `MAX_CHAIN` long: the caller then registers
    /// its forwarder itself.
    ///
    /// # Safety
    /// Called once, on a fresh source (no stop requested), before any token
    /// of it is handed out. The
    /// parent's source outlives every use of this source's tokens and the
    /// call to [`unchain`](Self::unchain). `link` is the node of a pinned
    /// [`StopCallback`] that no one registers otherwise, whose callback
    /// requests stop on this source (it may run on any thread, once), and
    /// which stays alive until `unchain` returned.
    #[inline]
    pub(crate) unsafe fn chain(&self, parent: StopToken<'_>, link: *const Node) -> bool {
        let Some(parent) = parent.get() else {
            return false;
        };
        let Chain { depth, top, .. } = parent.chain();
        if depth >= MAX_CHAIN {
            return false;
        }
        let top = if top.is_null() {
            ptr::from_ref(parent)
        } else {
            top
        };
        // SAFETY: not shared yet (per the contract): the only access.
        self.state.chain.with_mut(|c| unsafe {
            *c = Chain {
                parent,
                link,
                top,
                depth: depth + 1,
            }
        });
        // Not shared yet (per the contract): a plain store suffices.
        let bits = self.state.bits.load(Ordering::Relaxed);
        self.state.bits.store(bits | UNLINKED, Ordering::Relaxed);
        true
    }

    /// Undoes [`chain`](Self::chain): if the forwarder was registered with
    /// the parent, deregisters it, waiting for it if it is running on
    /// another thread. Does nothing for a source that is not chained.
    ///
    /// # Safety
    /// Called by the owner once every other user of this source's tokens
    /// is done (nothing registers with it any more), at most once.
    #[inline]
    pub(crate) unsafe fn unchain(&self) {
        // Relaxed: LINKED was set by a user of this source, which the
        // caller already synchronised with.
        if self.state.bits.load(Ordering::Relaxed) & LINKED != 0 {
            // SAFETY: per the caller.
            unsafe { self.state.unlink() };
        }
    }
}

impl State {
    /// The slow path of [`StopSource::unchain`].
    ///
    /// # Safety
    /// As `unchain`, and `LINKED` is set.
    #[cold]
    unsafe fn unlink(&self) {
        let Chain { parent, link, .. } = self.chain();
        // SAFETY: LINKED: `link` was registered with `parent` (alive per
        // `chain`'s contract) and only this call deregisters it.
        unsafe { (*parent).deregister(link) };
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
    /// The source's state. A pointer rather than a `&'a State`: a token
    /// travels inside receivers that are passed by value, and a reference
    /// there would be asserted live for the whole completion call, during
    /// which the operation holding the source may legitimately be freed
    /// (the token is no longer used by then).
    state: Option<NonNull<State>>,
    _lt: PhantomData<&'a State>,
}

// SAFETY: a token is a shared reference to a `State` (which is `Sync`) in
// all but name.
unsafe impl Send for StopToken<'_> {}
// SAFETY: as above.
unsafe impl Sync for StopToken<'_> {}

impl<'a> StopToken<'a> {
    /// A token on which stop can never be requested.
    pub const fn never() -> StopToken<'static> {
        StopToken {
            state: None,
            _lt: PhantomData,
        }
    }

    /// The source's state.
    #[inline]
    fn get(&self) -> Option<&'a State> {
        // SAFETY: the source outlives `'a` (the token borrows it, or
        // `detach`'s contract says it outlives every use).
        self.state.map(|s| unsafe { s.as_ref() })
    }

    /// The source's state as a raw pointer (null: never stops).
    #[inline]
    fn raw(&self) -> *const State {
        self.state.map_or(ptr::null(), |s| s.as_ptr().cast_const())
    }

    /// Whether stop has been requested on the source.
    #[inline]
    pub fn stop_requested(&self) -> bool {
        match self.get() {
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
    #[inline]
    pub unsafe fn detach(self) -> StopToken<'static> {
        // The caller upholds the lifetime contract above.
        StopToken {
            state: self.state,
            _lt: PhantomData,
        }
    }
}

impl PartialEq for StopToken<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.state == other.state
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
    /// First field, so a `*const Node` is a `*const StopCallback`. Dropped
    /// first: deregistration (waiting for a running callback) comes before
    /// the callback's captures are dropped.
    node: Node,
    /// Taken by whichever of `run` or `register`'s inline path gets it.
    /// Accessed by the notifier only while the node is `running`, by the
    /// owner only when it is neither linked nor running.
    callback: UnsafeCell<Option<F>>,
    _lt: PhantomData<&'a ()>,
}

impl<'a, F: OnStop> StopCallback<'a, F> {
    /// A callback for `token`, not yet registered.
    pub fn new(token: StopToken<'a>, callback: F) -> Self {
        StopCallback {
            node: Node::new(token, Self::run),
            callback: UnsafeCell::new(Some(callback)),
            _lt: PhantomData,
        }
    }

    /// Registers the callback. If stop was already requested it runs now, on
    /// this thread. Registering twice does nothing.
    pub fn register(self: Pin<&mut Self>) {
        // SAFETY: we never move out of the pinned value.
        let this = unsafe { self.get_unchecked_mut() };
        // Derived from the whole callback, so `run` may reach the other fields.
        let node: *const Node = (this as *mut Self).cast::<Node>().cast_const();
        // SAFETY: we own the node; `this` is pinned, so `node` stays put; its
        // drop deregisters before the memory goes away (pinning's drop
        // guarantee).
        if unsafe { Node::register(node) } || !this.node_token_can_stop() {
            return;
        }
        // Stop already requested: run inline. The node was never linked
        // (a registered node returns `true` above), so nobody else can reach
        // the cell.
        // SAFETY: as just said.
        let f = this.callback.with_mut(|c| unsafe { (*c).take() });
        if let Some(f) = f {
            f.on_stop();
        }
    }

    /// The callback's node, for [`StopSource::chain`] (which needs a
    /// pointer derived from the whole callback, as `register` uses).
    pub(crate) fn node_ptr(self: Pin<&mut Self>) -> *const Node {
        // SAFETY: only a pointer is made; nothing moves.
        let this = unsafe { self.get_unchecked_mut() };
        (this as *mut Self).cast::<Node>().cast_const()
    }

    /// Whether the token can stop at all (owner only).
    fn node_token_can_stop(&self) -> bool {
        // SAFETY: `&self` of the owner; `state` is owner-only.
        !unsafe { self.node.source() }.0.is_null()
    }

    /// Whether the callback has been registered and not yet run inline.
    pub fn is_registered(&self) -> bool {
        // SAFETY: only `register` and drop (both `&mut`) write the tag.
        unsafe { self.node.is_registered() }
    }

    /// # Safety
    /// `node` is the first field of a live, pinned `StopCallback<F>` that the
    /// notifier has just unlinked; called once.
    unsafe fn run(node: *const Node) {
        let this = node as *const Self;
        // SAFETY: per the contract, the callback cell is ours while running.
        let f = unsafe { (*this).callback.with_mut(|c| (*c).take()) };
        if let Some(f) = f {
            f.on_stop();
        }
    }
}

impl<F: OnStop> fmt::Debug for StopCallback<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopCallback")
            .field("registered", &self.is_registered())
            .finish_non_exhaustive()
    }
}

// SAFETY: the callback may run on the thread that requests stop, so it must
// be `Send`; the node fields are guarded by the state's lock.
unsafe impl<F: OnStop + Send> Send for StopCallback<'_, F> {}
// SAFETY: `&StopCallback` exposes nothing but `is_registered`, a read of an
// owner-only word that only `&mut` methods write.
unsafe impl<F: OnStop + Send> Sync for StopCallback<'_, F> {}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use ::loom::sync::Arc;
    use ::loom::sync::atomic::AtomicUsize;
    use alloc::boxed::Box;
    use core::pin::pin;

    use crate::loom::cell::UnsafeCell;

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

    /// The notifier runs two callbacks in a row while the owner of the
    /// first deregisters it: the owner may stop waiting when it sees the
    /// notifier move on to the second node (not only when it sees the
    /// first cleared); either way the first callback's writes must be
    /// visible to the owner once its drop returned.
    #[test]
    fn waiter_reads_the_next_node() {
        ::loom::model(|| {
            let source = Arc::new(StopSource::new());
            let data = Arc::new(UnsafeCell::new(0u32));
            // Registered first, so it runs second.
            let mut second = Box::pin(StopCallback::new(
                // SAFETY: the source (an `Arc` held here) outlives the callback.
                unsafe { source.token().detach() },
                || {},
            ));
            second.as_mut().register();
            let d2 = data.clone();
            let mut first = Box::pin(StopCallback::new(
                // SAFETY: as above.
                unsafe { source.token().detach() },
                move || {
                    // SAFETY: the owner reads it only after deregistering,
                    // which waits for this callback.
                    d2.with_mut(|d| unsafe { *d = 1 });
                },
            ));
            first.as_mut().register();
            let s2 = source.clone();
            let t = ::loom::thread::spawn(move || {
                s2.request_stop();
            });
            drop(first); // deregisters, waiting if it is running
            // SAFETY: the callback either ran before the drop returned (and
            // happens-before this) or never runs.
            let seen = data.with(|d| unsafe { *d });
            t.join().unwrap();
            assert!(seen == 0 || seen == 1);
            drop(second);
        });
    }

    /// A chained child source and its owner's forwarder (which requests
    /// stop on the child), as `Join` sets them up.
    struct Chained {
        child: Arc<StopSource>,
        link: Pin<Box<StopCallback<'static, Forward>>>,
        /// Forwarder runs begun / finished.
        begun: Arc<AtomicUsize>,
        ended: Arc<AtomicUsize>,
    }

    struct Forward {
        child: Arc<StopSource>,
        begun: Arc<AtomicUsize>,
        ended: Arc<AtomicUsize>,
    }

    impl OnStop for Forward {
        fn on_stop(self) {
            self.begun.fetch_add(1, Ordering::Relaxed);
            self.child.request_stop();
            self.ended.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn chained(parent: &StopSource) -> Chained {
        let child = Arc::new(StopSource::new());
        let begun = Arc::new(AtomicUsize::new(0));
        let ended = Arc::new(AtomicUsize::new(0));
        // SAFETY: the parent outlives the model's use of the child.
        let token = unsafe { parent.token().detach() };
        let mut link = Box::pin(StopCallback::new(
            token,
            Forward {
                child: child.clone(),
                begun: begun.clone(),
                ended: ended.clone(),
            },
        ));
        // SAFETY: fresh source, no token out yet; the parent outlives it;
        // the link is pinned, registered by nobody else, requests stop on
        // the child, and is dropped only after `unchain`.
        assert!(unsafe { child.chain(token, link.as_mut().node_ptr()) });
        Chained {
            child,
            link,
            begun,
            ended,
        }
    }

    /// A callback registering with a chained child (which links it to the
    /// parent) races a stop request on the parent: the callback runs
    /// exactly once, and a poller that sees the stop through the chain also
    /// sees what the requester wrote before requesting (the walk's Acquire).
    #[test]
    fn chained_link_races_parent_stop() {
        ::loom::model(|| {
            let parent = Arc::new(StopSource::new());
            let data = Arc::new(UnsafeCell::new(0u32));
            let c = chained(&parent);
            let (p2, d2) = (parent.clone(), data.clone());
            let t = ::loom::thread::spawn(move || {
                // SAFETY: read by the other thread only after it saw the
                // stop request published below.
                d2.with_mut(|d| unsafe { *d = 7 });
                p2.request_stop();
            });
            let counter = Arc::new(AtomicUsize::new(0));
            let c2 = counter.clone();
            let token = c.child.token();
            {
                let mut cb = pin!(StopCallback::new(token, move || {
                    c2.fetch_add(1, Ordering::Relaxed);
                }));
                cb.as_mut().register();
                if token.stop_requested() {
                    // SAFETY: the request happened after the write (Acquire).
                    assert_eq!(data.with(|d| unsafe { *d }), 7);
                }
                t.join().unwrap();
                assert!(token.stop_requested());
                assert_eq!(counter.load(Ordering::Relaxed), 1);
            } // The callback (pinned in this block) deregisters here.
            // SAFETY: nothing uses the child's tokens any more.
            unsafe { c.child.unchain() };
            assert_eq!(c.begun.load(Ordering::Relaxed), 1);
            drop(c.link);
        });
    }

    /// A source in the middle of a chain is stopped (a failed sibling, say)
    /// while a source below it polls: nothing is linked, so only the walk
    /// (past the top's filter) finds it; what the requester wrote before
    /// is visible to a poll that sees the stop.
    #[test]
    fn mid_chain_stop_reaches_polls_below() {
        ::loom::model(|| {
            let top = StopSource::new();
            let mid = chained(&top);
            let low = chained(&mid.child);
            let data = Arc::new(UnsafeCell::new(0u32));
            let (m2, d2) = (mid.child.clone(), data.clone());
            let t = ::loom::thread::spawn(move || {
                // SAFETY: read by the other thread only after it saw the
                // stop request published below.
                d2.with_mut(|d| unsafe { *d = 7 });
                m2.request_stop();
            });
            let token = low.child.token();
            if token.stop_requested() {
                // SAFETY: the request happened after the write (Acquire).
                assert_eq!(data.with(|d| unsafe { *d }), 7);
            }
            t.join().unwrap();
            assert!(token.stop_requested());
            assert!(!top.stop_requested());
            // SAFETY: nothing uses the tokens any more (nothing linked).
            unsafe {
                low.child.unchain();
                mid.child.unchain();
            }
        });
    }

    /// The owner unchains while the parent's stop runs the forwarder on
    /// another thread: `unchain` returns only after the forwarder did (or
    /// it never runs), so the forwarder's captures outlive it.
    #[test]
    fn unchain_waits_for_running_forwarder() {
        ::loom::model(|| {
            let parent = Arc::new(StopSource::new());
            let c = chained(&parent);
            {
                let mut cb = pin!(StopCallback::new(c.child.token(), || {}));
                // Links the child to the parent (or runs inline if stopped).
                cb.as_mut().register();
            }
            let p2 = parent.clone();
            let t = ::loom::thread::spawn(move || {
                p2.request_stop();
            });
            // SAFETY: the callback above was dropped: no user is left.
            unsafe { c.child.unchain() };
            let (begun, ended) = (
                c.begun.load(Ordering::Relaxed),
                c.ended.load(Ordering::Relaxed),
            );
            assert_eq!(begun, ended, "forwarder still running after unchain");
            drop(c.link);
            t.join().unwrap();
            assert_eq!(
                c.begun.load(Ordering::Relaxed),
                begun,
                "forwarder ran after unchain"
            );
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
            // SAFETY: the source (in an `Arc` held here) outlives the
            // callback, which is dropped at the end of the model.
            let detached = unsafe { token.detach() };
            let mut cb = Box::pin(StopCallback::new(detached, move || {
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
