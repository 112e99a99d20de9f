//! In-place plumbing for the adaptors that run children one after another
//! and connect a child at the moment it is needed (`finally`,
//! `continues_on`, `starts_on`): a slot for a value handed between
//! children, a slot for the downstream receiver, and a child operation
//! connected inside the pinned parent.
//!
//! # Invariant
//! These adaptors are *sequential*: at any time at most one child is
//! running, and a child is started only by the completion of the previous
//! one (or by the parent's `start`). Each access below happens either in the
//! parent's `start` or inside a completion of the child that is running, so
//! two accesses never overlap, and each hand-off (start → child completion →
//! next start) is ordered by the child's own guarantee that its completion
//! happens after its start. That is what makes the unsynchronized cells
//! exclusive; every `unsafe fn` here names the part its caller upholds.

use core::fmt;
use core::pin::Pin;

use crate::loom::cell::UnsafeCell;
use crate::{OperationState, PanicPayload, Receiver, SenderTo};

/// A value slot written and read by the children of a sequential parent.
pub(crate) struct Slot<T> {
    cell: UnsafeCell<Option<T>>,
}

impl<T> Slot<T> {
    pub(crate) fn new(value: Option<T>) -> Self {
        Slot {
            cell: UnsafeCell::new(value),
        }
    }

    /// Stores `value`, dropping what was there.
    ///
    /// # Safety
    /// No other access to this slot overlaps this call (module invariant).
    pub(crate) unsafe fn put(&self, value: T) {
        // SAFETY: exclusive per the caller.
        self.cell.with_mut(|c| unsafe { *c = Some(value) });
    }

    /// Takes the value out.
    ///
    /// # Safety
    /// No other access to this slot overlaps this call, and no reference
    /// from [`get`](Self::get) is alive.
    pub(crate) unsafe fn take(&self) -> Option<T> {
        // SAFETY: exclusive per the caller.
        self.cell.with_mut(|c| unsafe { (*c).take() })
    }
}

// SAFETY: `&Slot` only gives access through the `unsafe fn`s above, whose
// callers guarantee exclusivity; a value put on one thread may be taken
// (and dropped) on another, hence `T: Send`.
unsafe impl<T: Send> Sync for Slot<T> {}

/// The downstream receiver of a sequential parent: borrowed by the running
/// child's `env()` queries, taken once by the final completion.
pub(crate) struct ReceiverSlot<R> {
    cell: UnsafeCell<Option<R>>,
}

impl<R> ReceiverSlot<R> {
    pub(crate) fn new(receiver: R) -> Self {
        ReceiverSlot {
            cell: UnsafeCell::new(Some(receiver)),
        }
    }

    /// Borrows the receiver (for `env()`).
    ///
    /// # Safety
    /// [`take`](Self::take) is not called while the returned reference is
    /// alive. (Holds for `env()` of a child receiver: the final completion,
    /// which takes, consumes the last child receiver first.)
    pub(crate) unsafe fn get(&self) -> &R {
        // SAFETY: no writer while the reference lives, per the caller.
        self.cell
            .with(|c| unsafe { (*c).as_ref() })
            .expect("exec: receiver queried after the operation completed")
    }

    /// Takes the receiver to complete it.
    ///
    /// # Safety
    /// Called at most once, by the final completion, with no reference from
    /// [`get`](Self::get) alive.
    pub(crate) unsafe fn take(&self) -> R {
        // SAFETY: exclusive per the caller.
        self.cell
            .with_mut(|c| unsafe { (*c).take() })
            .expect("exec: operation completed twice")
    }
}

// SAFETY: the receiver may be taken (and completed, dropped) on another
// thread than the one that stored it: `R: Send`. `get` hands out `&R`, and a
// child may query its environment from several threads at once (through a
// receiver it shares, like `when_all`'s): `R: Sync`.
unsafe impl<R: Send + Sync> Sync for ReceiverSlot<R> {}

impl<R> fmt::Debug for ReceiverSlot<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReceiverSlot")
    }
}

impl<T> fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Slot")
    }
}

enum ChildState<S, O> {
    /// Not connected yet: the sender, held until it is needed.
    Sender(S),
    /// Connected in place (and started).
    Op(O),
    /// The sender was dropped without being connected.
    Empty,
}

/// A child sender that is connected in place, inside the pinned parent, at
/// the moment it is started; `O` is its operation state.
pub(crate) struct Child<S, O> {
    state: UnsafeCell<ChildState<S, O>>,
}

impl<S, O> Child<S, O> {
    pub(crate) fn new(sender: S) -> Self {
        Child {
            state: UnsafeCell::new(ChildState::Sender(sender)),
        }
    }

    /// Connects the held sender to `receiver` at its final address and
    /// starts it. Does nothing if the sender is gone.
    ///
    /// # Safety
    /// - No other access to this child overlaps this call (module invariant)
    ///   and it is called at most once.
    /// - `self` stays alive, in place, until the started operation has
    ///   completed: the parent is pinned and, by its own `start` contract,
    ///   not dropped before it completes, which it does only after this
    ///   child completed.
    pub(crate) unsafe fn connect_and_start<R>(self: Pin<&Self>, receiver: R)
    where
        S: SenderTo<R, Operation = O>,
        O: OperationState,
    {
        let op: *mut O = self.state.with_mut(|state| {
            // SAFETY: exclusive access per the caller.
            let state = unsafe { &mut *state };
            match core::mem::replace(state, ChildState::Empty) {
                ChildState::Sender(sender) => {
                    *state = ChildState::Op(sender.connect(receiver));
                    match state {
                        ChildState::Op(op) => op as *mut O,
                        _ => unreachable!(),
                    }
                }
                other => {
                    *state = other;
                    core::ptr::null_mut()
                }
            }
        });
        if op.is_null() {
            return;
        }
        // SAFETY: `op` lives inside `self`, which is pinned and stays alive
        // until the operation completes (caller's contract), so it is pinned
        // too and `start`'s contract holds. Started once: the sender was
        // consumed above.
        unsafe { Pin::new_unchecked(&mut *op).start() };
    }

    /// Drops the held sender without connecting it (the parent completes
    /// without running this child).
    ///
    /// # Safety
    /// No other access to this child overlaps this call, and the child was
    /// not started.
    pub(crate) unsafe fn discard(&self) {
        let sender = self.state.with_mut(|state| {
            // SAFETY: exclusive access per the caller; a `Sender` state is
            // not structurally pinned, so moving it out is fine.
            let state = unsafe { &mut *state };
            match core::mem::replace(state, ChildState::Empty) {
                ChildState::Sender(s) => Some(s),
                other => {
                    *state = other;
                    None
                }
            }
        });
        drop(sender);
    }
}

// SAFETY: `&Child` only gives access through the `unsafe fn`s above, whose
// callers guarantee exclusivity. The sender is consumed, and the op created,
// on the thread where the previous child completed; the op is later dropped
// by the parent's owner, possibly on another thread: hence `S: Send` and
// `O: Send`.
unsafe impl<S: Send, O: Send> Sync for Child<S, O> {}

impl<S, O> fmt::Debug for Child<S, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Child")
    }
}

/// A completion held while another child runs.
#[derive(Debug)]
pub(crate) enum Stored<T, E> {
    Value(T),
    Error(E),
    Stopped,
    Panic(PanicPayload),
}

impl<T, E> Stored<T, E> {
    /// Delivers the held completion to `receiver` on its channel.
    pub(crate) fn deliver<R: Receiver<T, E>>(self, receiver: R) {
        match self {
            Stored::Value(v) => receiver.set_value(v),
            Stored::Error(e) => receiver.set_error(e),
            Stored::Stopped => receiver.set_stopped(),
            Stored::Panic(p) => receiver.set_panic(p),
        }
    }
}
