use core::convert::Infallible;
use core::fmt;
use core::marker::PhantomData;

use crate::{Env, PanicPayload, Receiver, Sender, SenderTo};

/// Sender for the [`with_error`](crate::SenderExt::with_error) method.
#[must_use = "senders do nothing unless connected and started"]
pub struct WithError<S, E> {
    sender: S,
    _error: PhantomData<fn() -> E>,
}

impl<S, E> WithError<S, E> {
    pub(crate) fn new(sender: S) -> Self {
        WithError {
            sender,
            _error: PhantomData,
        }
    }
}

impl<S: Clone, E> Clone for WithError<S, E> {
    fn clone(&self) -> Self {
        WithError::new(self.sender.clone())
    }
}

impl<S: fmt::Debug, E> fmt::Debug for WithError<S, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithError")
            .field("sender", &self.sender)
            .finish()
    }
}

impl<S, E> Sender for WithError<S, E>
where
    S: Sender<Error = Infallible>,
{
    type Output = S::Output;
    type Error = E;
    const SENDS_STOPPED: bool = S::SENDS_STOPPED;
}

impl<S, E, R> SenderTo<R> for WithError<S, E>
where
    S: SenderTo<WithErrorReceiver<R, E>, Error = Infallible>,
    R: Receiver<S::Output, E>,
{
    type Operation = S::Operation;
    fn connect(self, receiver: R) -> S::Operation {
        self.sender.connect(WithErrorReceiver {
            receiver,
            _error: PhantomData,
        })
    }
}

/// The receiver [`WithError`] connects its predecessor to.
pub struct WithErrorReceiver<R, E> {
    receiver: R,
    _error: PhantomData<fn() -> E>,
}

impl<R: fmt::Debug, E> fmt::Debug for WithErrorReceiver<R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithErrorReceiver")
            .field("receiver", &self.receiver)
            .finish()
    }
}

impl<R, T, E> Receiver<T, Infallible> for WithErrorReceiver<R, E>
where
    R: Receiver<T, E>,
{
    #[inline]
    fn set_value(self, value: T) {
        self.receiver.set_value(value)
    }
    #[inline]
    fn set_error(self, error: Infallible) {
        match error {}
    }
    #[inline]
    fn set_stopped(self) {
        self.receiver.set_stopped()
    }
    #[inline]
    fn set_panic(self, payload: PanicPayload) {
        self.receiver.set_panic(payload)
    }
    fn env(&self) -> impl Env<'_> {
        self.receiver.env()
    }
}
