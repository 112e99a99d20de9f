//! Senders: lazy descriptions of asynchronous work.

use crate::operation::OperationState;

/// A lazy description of work that completes with a value of type
/// [`Output`](Self::Output), an error of type [`Error`](Self::Error) or
/// *stopped*.
///
/// A sender does nothing until it is connected to a receiver
/// ([`SenderTo::connect`]) and the resulting operation state is started.
/// Multiple values are sent as a tuple; no value as `()`. A sender that
/// cannot fail says `Error = Infallible`-like types of its choosing (the
/// factories use [`core::convert::Infallible`]).
pub trait Sender {
    /// The value sent on success.
    type Output;
    /// The error sent on failure.
    type Error;
    /// Whether the sender may complete with *stopped*. Algorithms use it to
    /// skip machinery nobody needs. Conservative default: `true`.
    const SENDS_STOPPED: bool = true;
}

/// A sender that can be connected to a receiver of type `R`.
///
/// The impls of the algorithms say which receivers they accept: a sender
/// that completes on another thread requires `R: Send`, so a `!Send`
/// receiver (holding an `Rc`, say) cannot be sent there.
pub trait SenderTo<R>: Sender {
    /// The operation state `connect` returns.
    type Operation: OperationState;
    /// Connects this sender to `receiver`. Nothing starts yet.
    fn connect(self, receiver: R) -> Self::Operation;
}
