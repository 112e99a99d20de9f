//! [`SendProbe`]: a receiver type that exists only to be named in bounds
//! (the same device as exec-core's `adaptor/probe.rs`).
//!
//! [`LoopReceiver`](crate::LoopReceiver) drops the iteration operation it
//! belongs to on the thread that completes it, so it may be `Send` only if
//! that operation is; the operation's type contains the receiver, so the
//! receiver's `Send` impl asks instead whether the operation the iteration
//! sender makes for a `SendProbe` is `Send`. The answer is the same for any
//! operation whose `Send`-ness depends on its receiver only through the
//! receiver's own `Send`-ness — every operation, since `SendProbe` cannot be
//! named outside this crate, so no impl can treat it specially.

use core::convert::Infallible;
use core::fmt;
use core::marker::PhantomData;

use exec_core::{PanicPayload, Receiver};

/// A receiver that is `Send` and `Sync` and cannot be constructed; see the
/// module docs. `pub` only so it may appear in bounds of public impls; not
/// re-exported.
#[allow(unreachable_pub)]
pub struct SendProbe<T, E> {
    never: Infallible,
    _types: PhantomData<fn() -> (T, E)>,
}

impl<T, E> fmt::Debug for SendProbe<T, E> {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.never {}
    }
}

impl<T, E> Receiver<T, E> for SendProbe<T, E> {
    fn set_value(self, _: T) {
        match self.never {}
    }
    fn set_error(self, _: E) {
        match self.never {}
    }
    fn set_stopped(self) {
        match self.never {}
    }
    fn set_panic(self, _: PanicPayload) {
        match self.never {}
    }
}
