//! `Send`/`Sync`/`Unpin` of the public types, asserted at compile time.
use std::convert::Infallible;

use exec_adapters::ops::FutureReceiver;
use exec_adapters::{AwaitError, FromFuture, FromTryFuture, RepeatStream, SenderFuture};
use exec_core::{Just, Then};

fn send<T: Send>() {}
fn sync<T: Sync>() {}
fn unpin<T: Unpin>() {}

type Ready = std::future::Ready<i32>;

#[test]
fn auto_traits() {
    // A sender future is Send when its sender is, and always Unpin (the
    // operation lives on the heap), so it can be spawned and `select!`ed.
    send::<SenderFuture<Just<i32>>>();
    send::<SenderFuture<Then<Just<i32>, fn(i32) -> i32>>>();
    unpin::<SenderFuture<Just<std::marker::PhantomPinned>>>();
    sync::<SenderFuture<Just<i32>>>();
    // The receiver crosses threads with the completion.
    send::<FutureReceiver<i32, ()>>();
    sync::<FutureReceiver<i32, ()>>();
    // Future-made senders are Send when the future is.
    send::<FromFuture<Ready>>();
    send::<FromTryFuture<std::future::Ready<Result<i32, ()>>>>();
    unpin::<RepeatStream<fn() -> Just<i32>, Just<i32>>>();
    send::<AwaitError<Infallible>>();
    #[cfg(feature = "tokio")]
    {
        send::<exec_adapters::TokioScheduler>();
        sync::<exec_adapters::TokioScheduler>();
        send::<exec_adapters::TokioScheduleSender>();
        send::<exec_adapters::TokioTimedSender>();
    }
}
