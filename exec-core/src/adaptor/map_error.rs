use core::fmt;

use crate::{Env, PanicPayload, Receiver, Sender, SenderTo, catch_unwind};

/// Sender for the [`map_error`](crate::SenderExt::map_error) method.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone)]
pub struct MapError<S, F> {
    sender: S,
    f: F,
}

impl<S, F> MapError<S, F> {
    pub(crate) fn new(sender: S, f: F) -> Self {
        MapError { sender, f }
    }
}

impl<S: fmt::Debug, F> fmt::Debug for MapError<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapError")
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

impl<S, F, E2> Sender for MapError<S, F>
where
    S: Sender,
    F: FnOnce(S::Error) -> E2,
{
    type Output = S::Output;
    type Error = E2;
    const SENDS_STOPPED: bool = S::SENDS_STOPPED;
}

impl<S, F, E2, R> SenderTo<R> for MapError<S, F>
where
    S: SenderTo<MapErrorReceiver<R, F>>,
    F: FnOnce(S::Error) -> E2,
    R: Receiver<S::Output, E2>,
{
    type Operation = S::Operation;
    fn connect(self, receiver: R) -> S::Operation {
        self.sender.connect(MapErrorReceiver {
            receiver,
            f: self.f,
        })
    }
}

/// The receiver [`MapError`] connects its predecessor to.
pub struct MapErrorReceiver<R, F> {
    receiver: R,
    f: F,
}

impl<R: fmt::Debug, F> fmt::Debug for MapErrorReceiver<R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapErrorReceiver")
            .field("receiver", &self.receiver)
            .finish_non_exhaustive()
    }
}

impl<R, F, T, E, E2> Receiver<T, E> for MapErrorReceiver<R, F>
where
    F: FnOnce(E) -> E2,
    R: Receiver<T, E2>,
{
    fn set_value(self, value: T) {
        let MapErrorReceiver { receiver, f } = self;
        drop(f);
        receiver.set_value(value)
    }
    fn set_error(self, error: E) {
        let MapErrorReceiver { receiver, f } = self;
        match catch_unwind(move || f(error)) {
            Ok(e) => receiver.set_error(e),
            Err(payload) => receiver.set_panic(payload),
        }
    }
    fn set_stopped(self) {
        let MapErrorReceiver { receiver, f } = self;
        drop(f);
        receiver.set_stopped()
    }
    fn set_panic(self, payload: PanicPayload) {
        let MapErrorReceiver { receiver, f } = self;
        drop(f);
        receiver.set_panic(payload)
    }
    fn env(&self) -> impl Env<'_> {
        self.receiver.env()
    }
}
