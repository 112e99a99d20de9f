use core::convert::Infallible;
use core::fmt;

use crate::{Env, PanicPayload, Receiver, Sender, SenderTo, catch_unwind};

/// Sender for the [`upon_error`](crate::SenderExt::upon_error) method.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone)]
pub struct UponError<S, F> {
    sender: S,
    f: F,
}

impl<S, F> UponError<S, F> {
    pub(crate) fn new(sender: S, f: F) -> Self {
        UponError { sender, f }
    }
}

impl<S: fmt::Debug, F> fmt::Debug for UponError<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UponError")
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

impl<S, F> Sender for UponError<S, F>
where
    S: Sender,
    F: FnOnce(S::Error) -> S::Output,
{
    type Output = S::Output;
    type Error = Infallible;
    const SENDS_STOPPED: bool = S::SENDS_STOPPED;
}

impl<S, F, R> SenderTo<R> for UponError<S, F>
where
    S: SenderTo<UponErrorReceiver<R, F>>,
    F: FnOnce(S::Error) -> S::Output,
    R: Receiver<S::Output, Infallible>,
{
    type Operation = S::Operation;
    fn connect(self, receiver: R) -> S::Operation {
        self.sender.connect(UponErrorReceiver {
            receiver,
            f: self.f,
        })
    }
}

/// The receiver [`UponError`] connects its predecessor to.
pub struct UponErrorReceiver<R, F> {
    receiver: R,
    f: F,
}

impl<R: fmt::Debug, F> fmt::Debug for UponErrorReceiver<R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UponErrorReceiver")
            .field("receiver", &self.receiver)
            .finish_non_exhaustive()
    }
}

impl<R, F, T, E> Receiver<T, E> for UponErrorReceiver<R, F>
where
    F: FnOnce(E) -> T,
    R: Receiver<T, Infallible>,
{
    fn set_value(self, value: T) {
        let UponErrorReceiver { receiver, f } = self;
        drop(f);
        receiver.set_value(value)
    }
    fn set_error(self, error: E) {
        let UponErrorReceiver { receiver, f } = self;
        match catch_unwind(move || f(error)) {
            Ok(v) => receiver.set_value(v),
            Err(payload) => receiver.set_panic(payload),
        }
    }
    fn set_stopped(self) {
        let UponErrorReceiver { receiver, f } = self;
        drop(f);
        receiver.set_stopped()
    }
    fn set_panic(self, payload: PanicPayload) {
        let UponErrorReceiver { receiver, f } = self;
        drop(f);
        receiver.set_panic(payload)
    }
    fn env(&self) -> impl Env<'_> {
        self.receiver.env()
    }
}
