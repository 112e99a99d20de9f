use core::marker::PhantomData;

use crate::{Completion, Env, IntoError, PanicPayload, Receiver, Sender, SenderTo};

/// Sender for the [`dematerialize`](crate::SenderExt::dematerialize) method.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Debug)]
pub struct Dematerialize<S> {
    sender: S,
}

impl<S> Dematerialize<S> {
    pub(crate) fn new(sender: S) -> Self {
        Dematerialize { sender }
    }
}

impl<S, T, E> Sender for Dematerialize<S>
where
    S: Sender<Output = Completion<T, E>>,
    S::Error: IntoError<E>,
{
    type Output = T;
    type Error = E;
}

impl<S, T, E, R> SenderTo<R> for Dematerialize<S>
where
    S: SenderTo<DematerializeReceiver<R, E>, Output = Completion<T, E>>,
    S::Error: IntoError<E>,
    R: Receiver<T, E>,
{
    type Operation = S::Operation;
    fn connect(self, receiver: R) -> S::Operation {
        self.sender.connect(DematerializeReceiver {
            receiver,
            _error: PhantomData,
        })
    }
}

/// The receiver [`Dematerialize`] connects its predecessor to.
#[derive(Debug)]
pub struct DematerializeReceiver<R, E> {
    receiver: R,
    _error: PhantomData<fn() -> E>,
}

impl<R, T, E, SE> Receiver<Completion<T, E>, SE> for DematerializeReceiver<R, E>
where
    R: Receiver<T, E>,
    SE: IntoError<E>,
{
    fn set_value(self, value: Completion<T, E>) {
        value.deliver(self.receiver)
    }
    fn set_error(self, error: SE) {
        self.receiver.set_error(error.into_error())
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
