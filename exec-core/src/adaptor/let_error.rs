//! `let_error`: on error, run the sender a function makes from the error.
//! The operation is [`LetOp`](super::let_value::LetOp), shared with `let_value`.

use crate::adaptor::let_value::{LetBranch, LetInput, LetOp, LetReceiver, LetStep, run_or_forward};
use crate::{Receiver, Sender, SenderTo};

/// Sender for the [`let_error`](crate::SenderExt::let_error) method.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Debug)]
pub struct LetError<S, F> {
    sender: S,
    f: F,
}

impl<S, F> LetError<S, F> {
    pub(crate) fn new(sender: S, f: F) -> Self {
        LetError { sender, f }
    }
}

impl<S, F, N> Sender for LetError<S, F>
where
    S: Sender,
    F: FnOnce(S::Error) -> N,
    N: Sender,
    S::Output: Into<N::Output>,
{
    type Output = N::Output;
    type Error = N::Error;
    const SENDS_STOPPED: bool = S::SENDS_STOPPED || N::SENDS_STOPPED;
}

impl<S, F, N, R> SenderTo<R> for LetError<S, F>
where
    S: Sender
        + SenderTo<LetReceiver<<S as Sender>::Output, <S as Sender>::Error, (S, OnError<F>, R)>>,
    F: FnOnce(S::Error) -> N,
    N: SenderTo<R>,
    S::Output: Into<N::Output>,
    R: Receiver<N::Output, N::Error>,
{
    type Operation = LetOp<S, OnError<F>, R>;
    fn connect(self, receiver: R) -> Self::Operation {
        LetOp::new(self.sender, OnError(self.f), receiver)
    }
}

/// The [`LetBranch`] of [`let_error`](crate::SenderExt::let_error): `f`
/// receives the error.
#[derive(Clone, Debug)]
pub struct OnError<F>(F);

impl<T, E, F, N> LetBranch<T, E> for OnError<F>
where
    F: FnOnce(E) -> N,
    N: Sender,
    T: Into<N::Output>,
{
    type Next = N;
    fn branch(self, input: LetInput<T, E>) -> LetStep<N> {
        let picked = match input {
            LetInput::Value(v) => Err(LetInput::Value(v.into())),
            LetInput::Error(e) => Ok(e),
            LetInput::Stopped => Err(LetInput::Stopped),
            LetInput::Panic(p) => Err(LetInput::Panic(p)),
        };
        run_or_forward(self.0, picked, |f, e| f(e))
    }
}
