use core::fmt;

use crate::{Env, PanicPayload, Receiver, Sender, SenderTo, catch_unwind};

/// Sender for the [`upon_stopped`](crate::SenderExt::upon_stopped) method.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone)]
pub struct UponStopped<S, F> {
    sender: S,
    f: F,
}

impl<S, F> UponStopped<S, F> {
    pub(crate) fn new(sender: S, f: F) -> Self {
        UponStopped { sender, f }
    }
}

impl<S: fmt::Debug, F> fmt::Debug for UponStopped<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UponStopped")
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

impl<S, F> Sender for UponStopped<S, F>
where
    S: Sender,
    F: FnOnce() -> S::Output,
{
    type Output = S::Output;
    type Error = S::Error;
    const SENDS_STOPPED: bool = false;
}

impl<S, F, R> SenderTo<R> for UponStopped<S, F>
where
    S: SenderTo<UponStoppedReceiver<R, F>>,
    F: FnOnce() -> S::Output,
    R: Receiver<S::Output, S::Error>,
{
    type Operation = S::Operation;
    fn connect(self, receiver: R) -> S::Operation {
        self.sender.connect(UponStoppedReceiver {
            receiver,
            f: self.f,
        })
    }
}

/// The receiver [`UponStopped`] connects its predecessor to.
pub struct UponStoppedReceiver<R, F> {
    receiver: R,
    f: F,
}

impl<R: fmt::Debug, F> fmt::Debug for UponStoppedReceiver<R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UponStoppedReceiver")
            .field("receiver", &self.receiver)
            .finish_non_exhaustive()
    }
}

impl<R, F, T, E> Receiver<T, E> for UponStoppedReceiver<R, F>
where
    F: FnOnce() -> T,
    R: Receiver<T, E>,
{
    fn set_value(self, value: T) {
        let UponStoppedReceiver { receiver, f } = self;
        drop(f);
        receiver.set_value(value)
    }
    fn set_error(self, error: E) {
        let UponStoppedReceiver { receiver, f } = self;
        drop(f);
        receiver.set_error(error)
    }
    fn set_stopped(self) {
        let UponStoppedReceiver { receiver, f } = self;
        match catch_unwind(f) {
            Ok(v) => receiver.set_value(v),
            Err(payload) => receiver.set_panic(payload),
        }
    }
    fn set_panic(self, payload: PanicPayload) {
        let UponStoppedReceiver { receiver, f } = self;
        drop(f);
        receiver.set_panic(payload)
    }
    fn env(&self) -> impl Env<'_> {
        self.receiver.env()
    }
}
