//! Streams and senders: consume a `futures_core::Stream` with senders
//! ([`next`], [`for_each`]) and expose a repeated sender as a `Stream`
//! ([`repeat_stream`]).
//!
//! The stream-consuming senders are [`from_future`](crate::from_future)
//! over a small future, so they poll, wake, stop and report panics exactly
//! like it.

use core::convert::Infallible;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use exec_core::{Receiver, Sender, SenderTo};
use futures_core::{FusedStream, Stream};

use crate::from_future::{FromFuture, FromFutureOp, from_future};
use crate::into_future::{AwaitError, FutureReceiver, SenderFuture, SenderFutureExt};

/// How many ready items [`for_each`] handles per poll before it yields, so
/// that a stop request is seen even on a stream that is always ready.
const FOR_EACH_BUDGET: usize = 32;

/// A sender of the next item of `stream` (`None` once it has ended).
///
/// # Completion
/// - value: `Some(item)`, or `None` when the stream has ended; on the
///   thread that polled the stream to readiness (see
///   [`from_future`](crate::from_future)).
/// - error: never.
/// - stopped: on a stop request before an item arrived; no item is lost
///   (the stream is only borrowed).
///
/// # Cancellation
/// A stop request stops waiting for the item.
///
/// # Panics
/// A panic in the stream's `poll_next` is delivered through
/// [`Receiver::set_panic`].
///
/// # Example
/// ```
/// use exec_adapters::next;
/// use exec_core::sync_wait;
///
/// let mut s = futures::stream::iter([1, 2]);
/// assert_eq!(sync_wait(next(&mut s)), Ok(Some(Some(1))));
/// assert_eq!(sync_wait(next(&mut s)), Ok(Some(Some(2))));
/// assert_eq!(sync_wait(next(&mut s)), Ok(Some(None)));
/// ```
///
/// # See also
/// [`for_each`], [`repeat_stream`].
pub fn next<St: Stream + Unpin>(stream: &mut St) -> Next<'_, St> {
    Next {
        inner: from_future(NextFuture { stream }),
    }
}

/// Sender for the [`next`] function.
#[must_use = "senders do nothing unless connected and started"]
pub struct Next<'a, St> {
    inner: FromFuture<NextFuture<'a, St>>,
}

impl<St> fmt::Debug for Next<'_, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Next").finish_non_exhaustive()
    }
}

impl<St: Stream + Unpin> Sender for Next<'_, St> {
    type Output = Option<St::Item>;
    type Error = Infallible;
}

impl<'a, St, R> SenderTo<R> for Next<'a, St>
where
    St: Stream + Unpin + Send,
    R: Receiver<Option<St::Item>, Infallible> + Send,
{
    type Operation = FromFutureOp<NextFuture<'a, St>, R>;
    fn connect(self, receiver: R) -> Self::Operation {
        self.inner.connect(receiver)
    }
}

/// The future behind [`next`]: polls the borrowed stream once for an item.
#[must_use = "futures do nothing unless polled"]
pub struct NextFuture<'a, St> {
    stream: &'a mut St,
}

impl<St> fmt::Debug for NextFuture<'_, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NextFuture").finish_non_exhaustive()
    }
}

impl<St: Stream + Unpin> Future for NextFuture<'_, St> {
    type Output = Option<St::Item>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut *self.get_mut().stream).poll_next(cx)
    }
}

/// A sender that drives `stream` to its end, calling `f` on every item.
///
/// # Completion
/// - value: `()` once the stream has ended; on the thread that polled it
///   last (see [`from_future`](crate::from_future)).
/// - error: never (map a fallible stream's items in `f`, or end it).
/// - stopped: on a stop request; the stream and `f` are dropped first.
///
/// # Cancellation
/// A stop request is seen between polls; on a stream that is always ready
/// `for_each` yields every 32 items so that it is seen promptly.
///
/// # Panics
/// A panic in `f` or in the stream is caught; stream and `f` are dropped
/// and the panic is delivered through [`Receiver::set_panic`].
///
/// # Example
/// ```
/// use exec_adapters::for_each;
/// use exec_core::{sync_wait, SenderExt};
///
/// let mut sum = 0;
/// let done = sync_wait(for_each(futures::stream::iter(1..=4), |x| sum += x).then(|()| "done"));
/// assert_eq!(done, Ok(Some("done")));
/// assert_eq!(sum, 10);
/// ```
///
/// # See also
/// [`next`], [`repeat_stream`].
pub fn for_each<St, F>(stream: St, f: F) -> ForEach<St, F>
where
    St: Stream,
    F: FnMut(St::Item),
{
    ForEach {
        inner: from_future(ForEachFuture { stream, f }),
    }
}

/// Sender for the [`for_each`] function.
#[must_use = "senders do nothing unless connected and started"]
pub struct ForEach<St, F> {
    inner: FromFuture<ForEachFuture<St, F>>,
}

impl<St, F> fmt::Debug for ForEach<St, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForEach").finish_non_exhaustive()
    }
}

impl<St: Stream, F: FnMut(St::Item)> Sender for ForEach<St, F> {
    type Output = ();
    type Error = Infallible;
}

impl<St, F, R> SenderTo<R> for ForEach<St, F>
where
    St: Stream + Send,
    F: FnMut(St::Item) + Send,
    R: Receiver<(), Infallible> + Send,
{
    type Operation = FromFutureOp<ForEachFuture<St, F>, R>;
    fn connect(self, receiver: R) -> Self::Operation {
        self.inner.connect(receiver)
    }
}

/// The future behind [`for_each`].
#[must_use = "futures do nothing unless polled"]
pub struct ForEachFuture<St, F> {
    /// Structurally pinned.
    stream: St,
    f: F,
}

impl<St, F> fmt::Debug for ForEachFuture<St, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForEachFuture").finish_non_exhaustive()
    }
}

impl<St: Stream, F: FnMut(St::Item)> Future for ForEachFuture<St, F> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: `stream` is structurally pinned (never moved out, dropped
        // in place with `self`); `f` is not pinned and only borrowed.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above.
        let mut stream = unsafe { Pin::new_unchecked(&mut this.stream) };
        for _ in 0..FOR_EACH_BUDGET {
            match stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => (this.f)(item),
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
        // Out of budget: ask to be polled again, so a stop request (or other
        // work on this thread) gets a chance in between.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A `Stream` that runs the sender `make()` returns, again and again, and
/// yields each result.
///
/// # Completion
/// Each sender's value `v` is yielded as `Ok(v)`, its error `e` as
/// `Err(e)` (the stream goes on: stop it or drop it). The first sender that
/// completes *stopped* ends the stream (`None`, and `None` ever after;
/// `make` is not called again).
///
/// # Cancellation
/// Dropping the stream while a sender runs requests stop of that sender
/// (as dropping a [`SenderFuture`] does).
///
/// # Panics
/// A panic delivered by a sender is resumed in the task polling the stream.
///
/// # Allocation
/// One block per item (each sender is awaited through
/// [`into_future`](SenderFutureExt::into_future)).
///
/// # Example
/// ```
/// use exec_adapters::repeat_stream;
/// use exec_core::{just, SenderExt};
/// use futures::StreamExt;
///
/// let mut n = 0;
/// let items: Vec<_> = futures::executor::block_on(
///     repeat_stream(move || {
///         n += 1;
///         just(n).then(|n| n * 10)
///     })
///     .take(3)
///     .collect(),
/// );
/// assert_eq!(items, [Ok(10), Ok(20), Ok(30)]);
/// ```
///
/// # See also
/// [`for_each`], [`next`].
pub fn repeat_stream<Mk, S>(make: Mk) -> RepeatStream<Mk, S>
where
    Mk: FnMut() -> S,
    S: Sender,
{
    RepeatStream {
        make,
        current: None,
        ended: false,
    }
}

/// Stream for the [`repeat_stream`] function.
#[must_use = "streams do nothing unless polled"]
pub struct RepeatStream<Mk, S: Sender> {
    make: Mk,
    current: Option<SenderFuture<S>>,
    ended: bool,
}

// Nothing is structurally pinned: the sender future is `Unpin` and `make`
// is only called through `&mut`.
impl<Mk, S: Sender> Unpin for RepeatStream<Mk, S> {}

impl<Mk, S: Sender> fmt::Debug for RepeatStream<Mk, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepeatStream")
            .field("running", &self.current.is_some())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl<Mk, S> Stream for RepeatStream<Mk, S>
where
    Mk: FnMut() -> S,
    S: Sender + SenderTo<FutureReceiver<<S as Sender>::Output, <S as Sender>::Error>> + 'static,
    S::Output: Send + 'static,
    S::Error: Send + 'static,
    <S as SenderTo<FutureReceiver<<S as Sender>::Output, <S as Sender>::Error>>>::Operation:
        Send + 'static,
{
    type Item = Result<S::Output, S::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let fut = this
            .current
            .get_or_insert_with(|| (this.make)().into_future());
        let out = match Pin::new(fut).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(out) => out,
        };
        this.current = None;
        Poll::Ready(match out {
            Ok(v) => Some(Ok(v)),
            Err(AwaitError::Error(e)) => Some(Err(e)),
            Err(AwaitError::Stopped) => {
                this.ended = true;
                None
            }
        })
    }
}

impl<Mk, S> FusedStream for RepeatStream<Mk, S>
where
    Mk: FnMut() -> S,
    S: Sender + SenderTo<FutureReceiver<<S as Sender>::Output, <S as Sender>::Error>> + 'static,
    S::Output: Send + 'static,
    S::Error: Send + 'static,
    <S as SenderTo<FutureReceiver<<S as Sender>::Output, <S as Sender>::Error>>>::Operation:
        Send + 'static,
{
    /// `true` once a sender completed *stopped* (the stream has ended).
    fn is_terminated(&self) -> bool {
        self.ended
    }
}
