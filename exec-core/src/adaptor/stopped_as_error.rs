use crate::{Env, PanicPayload, Receiver, Sender, SenderTo};

/// Sender for the [`stopped_as_error`](crate::SenderExt::stopped_as_error) method.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Debug)]
pub struct StoppedAsError<S, E> {
    sender: S,
    error: E,
}

impl<S, E> StoppedAsError<S, E> {
    pub(crate) fn new(sender: S, error: E) -> Self {
        StoppedAsError { sender, error }
    }
}

impl<S: Sender<Error = E>, E> Sender for StoppedAsError<S, E> {
    type Output = S::Output;
    type Error = E;
    const SENDS_STOPPED: bool = false;
}

impl<S, E, R> SenderTo<R> for StoppedAsError<S, E>
where
    S: SenderTo<StoppedAsErrorReceiver<R, E>, Error = E>,
    R: Receiver<S::Output, E>,
{
    type Operation = S::Operation;
    fn connect(self, receiver: R) -> S::Operation {
        self.sender.connect(StoppedAsErrorReceiver {
            receiver,
            error: self.error,
        })
    }
}

/// The receiver [`StoppedAsError`] connects its predecessor to.
#[derive(Debug)]
pub struct StoppedAsErrorReceiver<R, E> {
    receiver: R,
    error: E,
}

impl<R, T, E> Receiver<T, E> for StoppedAsErrorReceiver<R, E>
where
    R: Receiver<T, E>,
{
    fn set_value(self, value: T) {
        let StoppedAsErrorReceiver { receiver, error } = self;
        drop(error);
        receiver.set_value(value)
    }
    fn set_error(self, error: E) {
        let StoppedAsErrorReceiver {
            receiver,
            error: replacement,
        } = self;
        drop(replacement);
        receiver.set_error(error)
    }
    fn set_stopped(self) {
        let StoppedAsErrorReceiver { receiver, error } = self;
        receiver.set_error(error)
    }
    fn set_panic(self, payload: PanicPayload) {
        let StoppedAsErrorReceiver { receiver, error } = self;
        drop(error);
        receiver.set_panic(payload)
    }
    fn env(&self) -> impl Env<'_> {
        self.receiver.env()
    }
}
