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
use core::pin::Pin;
use core::ptr::NonNull;

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
