//! The one audited place where a receiver refers to its pinned parent.
//!
//! Rust moves values after `connect` returns, so a child's receiver cannot
//! point at its parent operation from `connect` on. Algorithms with children
//! therefore connect them at `start`, inside the pinned parent, handing each
//! child receiver a [`ParentRef`] to the parent's shared state. Every
//! algorithm with a back-pointer (`when_all`, `let_value`, `split`,
//! `sync_wait`, the scopes, …) goes through this type and holds no raw
//! pointer of its own.
//!
//! # Invariant
//! A `ParentRef<P>` is created only from a pinned `P` that stays alive and in
//! place for as long as the `ParentRef` or any copy of it exists. Operation
//! states uphold this because a parent does not complete, and thus is not
//! dropped ([`OperationState::start`](crate::OperationState::start)'s
//! contract), before all of its children have completed — and a child
//! consumes its receiver (and the `ParentRef` in it) when it completes.
//!
//! The parent's shared state should keep everything a child touches behind
//! atomics or `UnsafeCell`s: children on other threads read it through
//! shared references concurrently.

use core::fmt;
use core::marker::PhantomData;
use core::pin::Pin;
use core::ptr::NonNull;

use crate::env::CapturedEnv;

/// A pointer from a child receiver to state inside its pinned parent.
pub struct ParentRef<P: ?Sized> {
    ptr: NonNull<P>,
}

impl<P: ?Sized> ParentRef<P> {
    /// Refers to `parent`.
    ///
    /// # Safety
    /// `parent` must stay alive, at this address, for as long as the
    /// returned value (or a clone, or a reference obtained from
    /// [`get`](Self::get)) is used. For operation states: the parent is
    /// started (so pinned and not dropped before it completes) and does not
    /// complete before every child holding the reference has completed.
    #[inline]
    pub unsafe fn new(parent: Pin<&P>) -> Self {
        ParentRef {
            ptr: NonNull::from(parent.get_ref()),
        }
    }

    /// The parent's state.
    #[inline]
    pub fn get(&self) -> &P {
        // SAFETY: the constructor's contract keeps the pointee alive and in
        // place while `self` exists; we only hand out shared references.
        unsafe { self.ptr.as_ref() }
    }

    /// The parent's state, pinned (it is, by the constructor's contract).
    #[inline]
    pub fn get_pin(&self) -> Pin<&P> {
        // SAFETY: created from a `Pin<&P>`; the pointee never moves.
        unsafe { Pin::new_unchecked(self.get()) }
    }

    /// Duplicates the reference (for parents with several children that
    /// share one state).
    ///
    /// # Safety
    /// The clone is subject to the same contract as the original: it must
    /// not outlive the parent.
    #[inline]
    pub unsafe fn clone_ref(&self) -> Self {
        ParentRef { ptr: self.ptr }
    }
}

// SAFETY: a `ParentRef<P>` hands out only `&P`, so sending it to another
// thread is sharing `P`: sound when `P: Sync`.
unsafe impl<P: ?Sized + Sync> Send for ParentRef<P> {}
// SAFETY: as above.
unsafe impl<P: ?Sized + Sync> Sync for ParentRef<P> {}

impl<P: ?Sized> fmt::Debug for ParentRef<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ParentRef").field(&self.ptr).finish()
    }
}

/// A parent that a type-erased child receiver notifies through an
/// [`ErasedParentRef`].
///
/// `notify` receives the parent as a [`ParentRef`] *by value*, not as
/// `&self`: notifying usually ends in the parent completing, after which its
/// owner may free it, and a `&self` argument would still assert that the
/// memory is live for the whole call.
pub trait Notify<M>: Sized {
    /// Delivers `message` to the parent.
    fn notify(parent: ParentRef<Self>, message: M);
}

/// A [`ParentRef`] whose parent type is erased: it only knows how to
/// deliver one message of type `M` to it ([`Notify`]).
///
/// Needed by parents that store a child operation whose receiver points
/// back to them (`let_value`, `repeat_effect_until`, `AnySender`): the
/// child's receiver type cannot name the parent's type, because that type
/// contains the child's operation, which contains the receiver.
///
/// Not `Send`/`Sync` by itself: the receiver embedding it says when it may
/// cross threads.
pub struct ErasedParentRef<M> {
    ptr: NonNull<()>,
    notify: unsafe fn(NonNull<()>, M),
}

impl<M> ErasedParentRef<M> {
    /// Refers to `parent`, erasing its type.
    ///
    /// # Safety
    /// As [`ParentRef::new`]: `parent` stays alive and in place until the
    /// returned value has been consumed by [`notify`](Self::notify) (or
    /// dropped).
    #[inline]
    pub unsafe fn new<P: Notify<M>>(parent: Pin<&P>) -> Self {
        ErasedParentRef {
            ptr: NonNull::from(parent.get_ref()).cast(),
            notify: notify_shim::<P, M>,
        }
    }

    /// Delivers `message` to the parent ([`Notify::notify`]).
    #[inline]
    pub fn notify(self, message: M) {
        // SAFETY: `ptr` and `notify` were made together from a live `P` in
        // `new`, whose contract keeps the parent alive until this call.
        unsafe { (self.notify)(self.ptr, message) }
    }
}

/// # Safety
/// `ptr` points to a live, pinned `P` (made by [`ErasedParentRef::new`]).
unsafe fn notify_shim<P: Notify<M>, M>(ptr: NonNull<()>, message: M) {
    P::notify(ParentRef { ptr: ptr.cast() }, message)
}

impl<M> fmt::Debug for ErasedParentRef<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ErasedParentRef").field(&self.ptr).finish()
    }
}

/// A parent that also answers its erased child's environment queries: the
/// child's receiver holds an [`ErasedParentEnvRef`] (two words) instead of
/// an [`ErasedParentRef`] plus a captured copy of the environment.
pub(crate) trait NotifyEnv<M>: Notify<M> {
    /// The environment the child sees: captured from the parent's own
    /// receiver at the time of the query.
    ///
    /// Called from any thread the child runs on, while the child has not
    /// completed; the answers must stay valid until it has (the
    /// [`CapturedEnv::capture`] contract).
    fn child_env(parent: &Self) -> CapturedEnv;
}

/// What an [`ErasedParentEnvRef`] can do with its erased parent.
struct ParentVTable<M> {
    notify: unsafe fn(NonNull<()>, M),
    env: unsafe fn(NonNull<()>) -> CapturedEnv,
}

struct VTableOf<P, M>(PhantomData<fn(P, M)>);

impl<P: NotifyEnv<M>, M> VTableOf<P, M> {
    const VTABLE: ParentVTable<M> = ParentVTable {
        notify: notify_shim::<P, M>,
        env: env_shim::<P, M>,
    };
}

/// # Safety
/// `ptr` points to a live, pinned `P` (made by [`ErasedParentEnvRef::new`]).
unsafe fn env_shim<P: NotifyEnv<M>, M>(ptr: NonNull<()>) -> CapturedEnv {
    // SAFETY: per the contract; only a shared reference is made.
    P::child_env(unsafe { ptr.cast::<P>().as_ref() })
}

/// An [`ErasedParentRef`] whose parent also answers the child's
/// environment ([`NotifyEnv`]); as small as an `ErasedParentRef`.
pub(crate) struct ErasedParentEnvRef<M> {
    ptr: NonNull<()>,
    /// A promoted constant (static memory), so valid forever; a pointer
    /// rather than `&'static` because `M` need not be `'static`.
    vtable: NonNull<ParentVTable<M>>,
}

impl<M> ErasedParentEnvRef<M> {
    /// Refers to `parent`, erasing its type.
    ///
    /// # Safety
    /// As [`ParentRef::new`]: `parent` stays alive and in place until the
    /// returned value has been consumed by [`notify`](Self::notify) (or
    /// dropped).
    #[inline]
    pub(crate) unsafe fn new<P: NotifyEnv<M>>(parent: Pin<&P>) -> Self {
        ErasedParentEnvRef {
            ptr: NonNull::from(parent.get_ref()).cast(),
            vtable: NonNull::from(&VTableOf::<P, M>::VTABLE),
        }
    }

    /// Delivers `message` to the parent ([`Notify::notify`]).
    #[inline]
    pub(crate) fn notify(self, message: M) {
        // SAFETY: `ptr` and the vtable were made together from a live `P` in
        // `new`, whose contract keeps the parent alive until this call.
        unsafe { (self.vtable.as_ref().notify)(self.ptr, message) }
    }

    /// The child's environment ([`NotifyEnv::child_env`]).
    #[inline]
    pub(crate) fn env(&self) -> CapturedEnv {
        // SAFETY: as for `notify`: the parent is alive while `self` is; the
        // vtable is static.
        unsafe { (self.vtable.as_ref().env)(self.ptr) }
    }
}

impl<M> fmt::Debug for ErasedParentEnvRef<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ErasedParentEnvRef")
            .field(&self.ptr)
            .finish()
    }
}
