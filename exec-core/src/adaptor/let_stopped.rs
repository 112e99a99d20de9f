//! `let_stopped`: when stopped, run the sender a function makes.
//! The operation is [`LetOp`](super::let_value::LetOp), shared with `let_value`.

use crate::adaptor::let_value::{LetBranch, LetInput, LetOp, LetReceiver, LetStep, run_or_forward};
use crate::{Receiver, Sender, SenderTo};

/// Sender for the [`let_stopped`](crate::SenderExt::let_stopped) method.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Debug)]
pub struct LetStopped<S, F> {
    sender: S,
    f: F,
}

impl<S, F> LetStopped<S, F> {
    pub(crate) fn new(sender: S, f: F) -> Self {
        LetStopped { sender, f }
    }
}

impl<S, F, N> Sender for LetStopped<S, F>
where
    S: Sender,
    F: FnOnce() -> N,
    N: Sender,
    S::Output: Into<N::Output>,
    S::Error: Into<N::Error>,
{
    type Output = N::Output;
    type Error = N::Error;
    const SENDS_STOPPED: bool = N::SENDS_STOPPED;
}

impl<S, F, N, R> SenderTo<R> for LetStopped<S, F>
where
    S: Sender
        + SenderTo<LetReceiver<<S as Sender>::Output, <S as Sender>::Error, (S, OnStopped<F>, R)>>,
    F: FnOnce() -> N,
    N: SenderTo<R>,
    S::Output: Into<N::Output>,
    S::Error: Into<N::Error>,
    R: Receiver<N::Output, N::Error>,
{
    type Operation = LetOp<S, OnStopped<F>, R>;
    fn connect(self, receiver: R) -> Self::Operation {
        LetOp::new(self.sender, OnStopped(self.f), receiver)
    }
}

/// The [`LetBranch`] of [`let_stopped`](crate::SenderExt::let_stopped): `f`
/// runs when the first sender was stopped.
#[derive(Clone, Debug)]
pub struct OnStopped<F>(F);

impl<T, E, F, N> LetBranch<T, E> for OnStopped<F>
where
    F: FnOnce() -> N,
    N: Sender,
    T: Into<N::Output>,
    E: Into<N::Error>,
{
    type Next = N;
    fn branch(self, input: LetInput<T, E>) -> LetStep<N> {
        let picked = match input {
            LetInput::Value(v) => Err(LetInput::Value(v.into())),
            LetInput::Error(e) => Err(LetInput::Error(e.into())),
            LetInput::Stopped => Ok(()),
            LetInput::Panic(p) => Err(LetInput::Panic(p)),
        };
        run_or_forward(self.0, picked, |f, ()| f())
    }
}
