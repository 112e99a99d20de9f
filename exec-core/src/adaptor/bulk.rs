use core::fmt;

use crate::{Env, PanicPayload, Receiver, Sender, SenderTo, catch_unwind};

/// Sender for the [`bulk`](crate::SenderExt::bulk) method.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone)]
pub struct Bulk<S, F> {
    sender: S,
    n: usize,
    f: F,
}

impl<S, F> Bulk<S, F> {
    pub(crate) fn new(sender: S, n: usize, f: F) -> Self {
        Bulk { sender, n, f }
    }
}

impl<S: fmt::Debug, F> fmt::Debug for Bulk<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulk")
            .field("sender", &self.sender)
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

impl<S, F> Sender for Bulk<S, F>
where
    S: Sender,
    F: FnMut(usize, &mut S::Output),
{
    type Output = S::Output;
    type Error = S::Error;
    const SENDS_STOPPED: bool = S::SENDS_STOPPED;
}

impl<S, F, R> SenderTo<R> for Bulk<S, F>
where
    S: SenderTo<BulkReceiver<R, F>>,
    F: FnMut(usize, &mut S::Output),
    R: Receiver<S::Output, S::Error>,
{
    type Operation = S::Operation;
    fn connect(self, receiver: R) -> S::Operation {
        self.sender.connect(BulkReceiver {
            receiver,
            n: self.n,
            f: self.f,
        })
    }
}

/// The receiver [`Bulk`] connects its predecessor to.
pub struct BulkReceiver<R, F> {
    receiver: R,
    n: usize,
    f: F,
}

impl<R: fmt::Debug, F> fmt::Debug for BulkReceiver<R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkReceiver")
            .field("receiver", &self.receiver)
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

impl<R, F, T, E> Receiver<T, E> for BulkReceiver<R, F>
where
    F: FnMut(usize, &mut T),
    R: Receiver<T, E>,
{
    fn set_value(self, value: T) {
        let BulkReceiver { receiver, n, mut f } = self;
        let mut value = value;
        let outcome = catch_unwind(|| {
            for i in 0..n {
                f(i, &mut value);
            }
        });
        drop(f);
        match outcome {
            Ok(()) => receiver.set_value(value),
            Err(payload) => {
                drop(value);
                receiver.set_panic(payload)
            }
        }
    }
    fn set_error(self, error: E) {
        let BulkReceiver { receiver, f, .. } = self;
        drop(f);
        receiver.set_error(error)
    }
    fn set_stopped(self) {
        let BulkReceiver { receiver, f, .. } = self;
        drop(f);
        receiver.set_stopped()
    }
    fn set_panic(self, payload: PanicPayload) {
        let BulkReceiver { receiver, f, .. } = self;
        drop(f);
        receiver.set_panic(payload)
    }
    fn env(&self) -> impl Env<'_> {
        self.receiver.env()
    }
}
