use crate::{Env, PanicPayload, Receiver, Sender, SenderTo};

/// Sender for the [`stopped_as_optional`](crate::SenderExt::stopped_as_optional) method.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Debug)]
pub struct StoppedAsOptional<S> {
    sender: S,
}

impl<S> StoppedAsOptional<S> {
    pub(crate) fn new(sender: S) -> Self {
        StoppedAsOptional { sender }
    }
}

impl<S: Sender> Sender for StoppedAsOptional<S> {
    type Output = Option<S::Output>;
    type Error = S::Error;
    const SENDS_STOPPED: bool = false;
}

impl<S, R> SenderTo<R> for StoppedAsOptional<S>
where
    S: SenderTo<StoppedAsOptionalReceiver<R>>,
    R: Receiver<Option<S::Output>, S::Error>,
{
    type Operation = S::Operation;
    fn connect(self, receiver: R) -> S::Operation {
        self.sender.connect(StoppedAsOptionalReceiver { receiver })
    }
}

/// The receiver [`StoppedAsOptional`] connects its predecessor to.
#[derive(Debug)]
pub struct StoppedAsOptionalReceiver<R> {
    receiver: R,
}

impl<R, T, E> Receiver<T, E> for StoppedAsOptionalReceiver<R>
where
    R: Receiver<Option<T>, E>,
{
    fn set_value(self, value: T) {
        self.receiver.set_value(Some(value))
    }
    fn set_error(self, error: E) {
        self.receiver.set_error(error)
    }
    fn set_stopped(self) {
        self.receiver.set_value(None)
    }
    fn set_panic(self, payload: PanicPayload) {
        self.receiver.set_panic(payload)
    }
    fn env(&self) -> impl Env<'_> {
        self.receiver.env()
    }
}
