use core::convert::Infallible;

use crate::{Completion, Env, PanicPayload, Receiver, Sender, SenderTo};

/// Sender for the [`materialize`](crate::SenderExt::materialize) method.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Debug)]
pub struct Materialize<S> {
    sender: S,
}

impl<S> Materialize<S> {
    pub(crate) fn new(sender: S) -> Self {
        Materialize { sender }
    }
}

impl<S: Sender> Sender for Materialize<S> {
    type Output = Completion<S::Output, S::Error>;
    type Error = Infallible;
    const SENDS_STOPPED: bool = false;
}

impl<S, R> SenderTo<R> for Materialize<S>
where
    S: SenderTo<MaterializeReceiver<R>>,
    R: Receiver<Completion<S::Output, S::Error>, Infallible>,
{
    type Operation = S::Operation;
    fn connect(self, receiver: R) -> S::Operation {
        self.sender.connect(MaterializeReceiver { receiver })
    }
}

/// The receiver [`Materialize`] connects its predecessor to.
#[derive(Debug)]
pub struct MaterializeReceiver<R> {
    receiver: R,
}

impl<R, T, E> Receiver<T, E> for MaterializeReceiver<R>
where
    R: Receiver<Completion<T, E>, Infallible>,
{
    fn set_value(self, value: T) {
        self.receiver.set_value(Completion::Value(value))
    }
    fn set_error(self, error: E) {
        self.receiver.set_value(Completion::Error(error))
    }
    fn set_stopped(self) {
        self.receiver.set_value(Completion::Stopped)
    }
    fn set_panic(self, payload: PanicPayload) {
        self.receiver.set_panic(payload)
    }
    fn env(&self) -> impl Env<'_> {
        self.receiver.env()
    }
}
