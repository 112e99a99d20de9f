use core::convert::Infallible;

use crate::{Env, PanicPayload, Receiver, Sender, SenderTo};

/// Sender for the [`into_result`](crate::SenderExt::into_result) method.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Debug)]
pub struct IntoResult<S> {
    sender: S,
}

impl<S> IntoResult<S> {
    pub(crate) fn new(sender: S) -> Self {
        IntoResult { sender }
    }
}

impl<S: Sender> Sender for IntoResult<S> {
    type Output = Result<S::Output, S::Error>;
    type Error = Infallible;
    const SENDS_STOPPED: bool = S::SENDS_STOPPED;
}

impl<S, R> SenderTo<R> for IntoResult<S>
where
    S: SenderTo<IntoResultReceiver<R>>,
    R: Receiver<Result<S::Output, S::Error>, Infallible>,
{
    type Operation = S::Operation;
    fn connect(self, receiver: R) -> S::Operation {
        self.sender.connect(IntoResultReceiver { receiver })
    }
}

/// The receiver [`IntoResult`] connects its predecessor to.
#[derive(Debug)]
pub struct IntoResultReceiver<R> {
    receiver: R,
}

impl<R, T, E> Receiver<T, E> for IntoResultReceiver<R>
where
    R: Receiver<Result<T, E>, Infallible>,
{
    fn set_value(self, value: T) {
        self.receiver.set_value(Ok(value))
    }
    fn set_error(self, error: E) {
        self.receiver.set_value(Err(error))
    }
    fn set_stopped(self) {
        self.receiver.set_stopped()
    }
    fn set_panic(self, payload: PanicPayload) {
        self.receiver.set_panic(payload)
    }
    fn env(&self) -> impl Env<'_> {
        self.receiver.env()
    }
}
