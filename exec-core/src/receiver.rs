//! The receiving end of an operation.

use crate::env::{EmptyEnv, Env};
use crate::panic::PanicPayload;

/// The three completion channels of an operation, as a value.
///
/// Used by [`materialize`](crate::SenderExt::materialize) and by consumers
/// that store a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Completion<T, E> {
    /// The operation succeeded with a value.
    Value(T),
    /// The operation failed.
    Error(E),
    /// The operation was stopped before it produced a result.
    Stopped,
}

impl<T, E> Completion<T, E> {
    /// Delivers this completion to `receiver` on the matching channel.
    pub fn deliver<R: Receiver<T, E>>(self, receiver: R) {
        match self {
            Completion::Value(v) => receiver.set_value(v),
            Completion::Error(e) => receiver.set_error(e),
            Completion::Stopped => receiver.set_stopped(),
        }
    }
}

/// Where an operation delivers its result: exactly one of the completion
/// methods is called, exactly once, on every started operation.
///
/// Every method takes `self`, so "at most once" is a type fact; the
/// algorithms make "exactly once" a tested fact.
///
/// Besides the three P2300 channels there is [`set_panic`](Self::set_panic):
/// the way a panic in user code travels to the consumer. Its default
/// re-raises the panic on the completing thread, which is right for
/// receivers that are themselves driven from the stack that awaits the
/// result.
pub trait Receiver<T, E>: Sized {
    /// The operation succeeded with `value`.
    fn set_value(self, value: T);
    /// The operation failed with `error`.
    fn set_error(self, error: E);
    /// The operation was stopped (cancelled) and produced no result.
    fn set_stopped(self);
    /// User code run by the operation panicked with `payload`.
    ///
    /// Algorithms forward it; consumers re-raise it where the result is
    /// awaited. The default resumes unwinding here (with `std`) or panics
    /// (without).
    fn set_panic(self, payload: PanicPayload) {
        crate::panic::resume(payload)
    }
    /// The environment queries go to. Default: [`EmptyEnv`].
    fn env(&self) -> impl Env<'_> {
        EmptyEnv
    }
}
