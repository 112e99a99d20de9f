//! The executor-agnostic proof: one suite of compositions, written once,
//! run unchanged by every driver — exec's `sync_wait`, `futures`'
//! `block_on`, tokio `current_thread` and `multi_thread` (awaited in a
//! spawned task) — on the inline scheduler, on exec-pool and (feature
//! `tokio`) on a tokio runtime's scheduler, and on exec-io's loop.
//!
//! Compositions: `then` chains, the error and stopped channels, futures
//! inside pipelines (`from_future`, woken from another thread;
//! `from_future_on` the suite's scheduler), `let_value`
//! (including a future and a second schedule inside), `when_all` (values;
//! an error or a stop stopping a pending future sibling), `continues_on`,
//! panics. Schedulers: inline, exec-pool, exec-io (an `IoContext` whose
//! loop runs on a thread of its own), and (feature `tokio`) a tokio runtime.
// The fixtures of exec-core (recorders, drop counters, manual scheduler).
#[path = "../../exec-core/tests/common/mod.rs"]
#[allow(clippy::collapsible_if, clippy::type_complexity)]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use exec_adapters::ops::FutureReceiver;
use exec_adapters::{AwaitError, SenderFutureExt, from_future, from_future_on, from_try_future};
use exec_core::{
    Completion, InlineScheduler, Scheduler, Sender, SenderExt, SenderTo, just,
    ops::SyncWaitReceiver, sync_wait, when_all,
};

/// What every driver reports, normalised: `Completion` (value, error,
/// stopped); panics are resumed by every driver.
type Out<T, E> = Completion<T, E>;

/// A sender every driver accepts.
trait Portable:
    Sender
    + SenderTo<SyncWaitReceiver<<Self as Sender>::Output, <Self as Sender>::Error>>
    + SenderTo<
        FutureReceiver<<Self as Sender>::Output, <Self as Sender>::Error>,
        Operation: Send + 'static,
    > + Send
    + 'static
where
    Self::Output: Send + 'static,
    Self::Error: Send + 'static,
{
}
impl<S> Portable for S
where
    S: Sender
        + SenderTo<SyncWaitReceiver<<S as Sender>::Output, <S as Sender>::Error>>
        + SenderTo<
            FutureReceiver<<S as Sender>::Output, <S as Sender>::Error>,
            Operation: Send + 'static,
        > + Send
        + 'static,
    S::Output: Send + 'static,
    S::Error: Send + 'static,
{
}

fn from_result<T, E>(r: Result<T, AwaitError<E>>) -> Out<T, E> {
    match r {
        Ok(v) => Completion::Value(v),
        Err(AwaitError::Error(e)) => Completion::Error(e),
        Err(AwaitError::Stopped) => Completion::Stopped,
    }
}

fn by_sync_wait<S: Portable>(s: S) -> Out<S::Output, S::Error>
where
    S::Output: Send + 'static,
    S::Error: Send + 'static,
{
    match sync_wait(s) {
        Ok(Some(v)) => Completion::Value(v),
        Ok(None) => Completion::Stopped,
        Err(e) => Completion::Error(e),
    }
}

fn by_block_on<S: Portable>(s: S) -> Out<S::Output, S::Error>
where
    S::Output: Send + 'static,
    S::Error: Send + 'static,
{
    from_result(futures::executor::block_on(s.into_future()))
}

fn by_tokio_current<S: Portable>(s: S) -> Out<S::Output, S::Error>
where
    S::Output: Send + 'static,
    S::Error: Send + 'static,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    from_result(rt.block_on(s.into_future()))
}

fn by_tokio_multi<S: Portable>(s: S) -> Out<S::Output, S::Error>
where
    S::Output: Send + 'static,
    S::Error: Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let joined = rt.block_on(async move { tokio::spawn(s.into_future()).await });
    match joined {
        Ok(r) => from_result(r),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("task failed: {e}"),
    }
}

/// Runs the composition `$make` (an expression building a fresh sender)
/// under every driver and checks each reports `$expect`.
macro_rules! on_every_driver {
    ($make:expr, $expect:expr) => {{
        let expect = $expect;
        assert_eq!(by_sync_wait($make), expect, "sync_wait");
        assert_eq!(by_block_on($make), expect, "futures::executor::block_on");
        assert_eq!(by_tokio_current($make), expect, "tokio current_thread");
        assert_eq!(by_tokio_multi($make), expect, "tokio multi_thread");
    }};
}

/// The suite, for one scheduler expression `$sch`.
macro_rules! suite {
    ($sch:expr) => {{
        // then chains on the scheduler
        on_every_driver!(
            $sch.schedule().then(|()| 20).then(|x| x + 22),
            Completion::<i32, std::convert::Infallible>::Value(42)
        );
        // error channel through then
        on_every_driver!(
            Fixed::<i32, &str>(Completion::Error("e")).then(|x| x + 1),
            Completion::<i32, &str>::Error("e")
        );
        // stopped channel
        on_every_driver!(
            Fixed::<i32, &str>(Completion::Stopped).then(|x| x + 1),
            Completion::<i32, &str>::Stopped
        );
        // a future inside a pipeline, both ways round
        on_every_driver!(
            from_future(async { 40 }).then(|x| x + 2),
            Completion::<i32, std::convert::Infallible>::Value(42)
        );
        on_every_driver!(
            from_try_future(async { Err::<i32, _>("bad") }),
            Completion::<i32, &str>::Error("bad")
        );
        // a future polled on the suite's scheduler
        on_every_driver!(
            {
                let (tx, rx) = futures::channel::oneshot::channel::<i32>();
                std::thread::spawn(move || tx.send(40).unwrap());
                from_future_on($sch.clone(), rx).then(|r| r.unwrap() + 2)
            },
            Completion::<i32, std::convert::Infallible>::Value(42)
        );
        // a future that is woken from another thread
        on_every_driver!(
            {
                let (tx, rx) = futures::channel::oneshot::channel::<i32>();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(1));
                    tx.send(7).unwrap()
                });
                from_future(rx).then(|r| r.unwrap() * 6)
            },
            Completion::<i32, std::convert::Infallible>::Value(42)
        );
        // let_value: a sender made from the value, including a future
        on_every_driver!(
            $sch.schedule()
                .then(|()| String::from("forty-two"))
                .let_value(|s| from_future(async move { s.len() })),
            Completion::<usize, std::convert::Infallible>::Value(9)
        );
        on_every_driver!(
            {
                let sch = $sch.clone();
                $sch.schedule()
                    .then(|()| 6)
                    .let_value(move |x| sch.schedule().then(move |()| x * 7))
            },
            Completion::<i32, std::convert::Infallible>::Value(42)
        );
        // let_value whose inner sender stops
        on_every_driver!(
            just(1).let_value(|_| Fixed::<i32, std::convert::Infallible>(Completion::Stopped)),
            Completion::<i32, std::convert::Infallible>::Stopped
        );
        // when_all: values from both sides, one of them a future woken elsewhere
        on_every_driver!(
            {
                let (tx, rx) = futures::channel::oneshot::channel::<i32>();
                std::thread::spawn(move || tx.send(2).unwrap());
                when_all(
                    $sch.schedule().then(|()| 40),
                    from_future(rx).then(|r| r.unwrap()),
                )
                .then(|(a, b)| a + b)
            },
            Completion::<i32, std::convert::Infallible>::Value(42)
        );
        // when_all: an error stops the pending sibling (a future that never
        // completes on its own) and wins
        on_every_driver!(
            when_all(
                from_future(std::future::pending::<i32>()).with_error::<&str>(),
                $sch.schedule()
                    .with_error::<&str>()
                    .let_value(|()| Fixed::<i32, &str>(Completion::Error("first"))),
            ),
            Completion::<(i32, i32), &str>::Error("first")
        );
        // when_all: a stopped child stops the other and the whole
        on_every_driver!(
            when_all(
                from_future(std::future::pending::<i32>()),
                Fixed::<i32, std::convert::Infallible>(Completion::Stopped),
            ),
            Completion::<(i32, i32), std::convert::Infallible>::Stopped
        );
        // continues_on: hop back onto the scheduler after a future
        on_every_driver!(
            from_future(async { 21 })
                .continues_on($sch.clone())
                .then(|x| x * 2),
            Completion::<i32, std::convert::Infallible>::Value(42)
        );
        // panics are resumed by every driver with their payload
        for (name, run) in [
            ("sync_wait", by_sync_wait::<_> as fn(_) -> _),
            ("block_on", by_block_on::<_>),
            ("tokio current_thread", by_tokio_current::<_>),
            ("tokio multi_thread", by_tokio_multi::<_>),
        ] {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run($sch.schedule().then(|()| -> i32 { panic!("suite panic") }))
            }));
            let msg = payload_message(r.expect_err(name).as_ref());
            assert_eq!(msg, "suite panic", "{name}");
        }
    }};
}

#[test]
fn suite_on_the_inline_scheduler() {
    suite!(InlineScheduler);
}

#[test]
fn suite_on_the_exec_pool() {
    let pool = exec_pool::ThreadPool::builder().threads(2).build().unwrap();
    suite!(pool.scheduler());
}

/// An exec-io context of `backend` with its loop running on a thread of its
/// own for the duration of `body`; `None` if the backend cannot start here.
fn with_io_loop(backend: exec_io::Backend, body: impl FnOnce(&exec_io::IoContext)) -> Option<()> {
    let ctx = match exec_io::IoContext::builder().backend(backend).build() {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("skipping exec-io {backend:?}: {e}");
            return None;
        }
    };
    std::thread::scope(|s| {
        let looper = s.spawn(|| ctx.run());
        body(&ctx);
        ctx.stop();
        looper.join().unwrap().unwrap();
    });
    Some(())
}

#[test]
fn suite_on_an_exec_io_loop() {
    let ran = with_io_loop(exec_io::Backend::Readiness, |ctx| suite!(ctx.scheduler()));
    assert!(ran.is_some(), "the readiness backend always starts");
    // io_uring where the kernel allows it (skipped, with a message, if not).
    with_io_loop(exec_io::Backend::IoUring, |ctx| suite!(ctx.scheduler()));
}

/// exec-io work awaited from tokio tasks: a pipe read (written from a plain
/// thread) and a `schedule()` both complete on the loop thread, and the
/// awaiting tasks are woken from there.
#[test]
fn io_work_awaited_from_tokio_runs_on_the_loop_thread() {
    with_io_loop(exec_io::Backend::Readiness, |ctx| {
        let sch = ctx.scheduler();
        let (reader, writer) = exec_io::pipe(&sch).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (read, hop) = rt.block_on(async {
            let probe = sch.clone();
            let read = tokio::spawn(
                reader
                    .read(vec![0; 16])
                    .then(move |(n, buf)| (buf[..n].to_vec(), probe.is_loop_thread()))
                    .into_future(),
            );
            let probe = sch.clone();
            let hop = tokio::spawn(
                sch.schedule()
                    .then(move |()| probe.is_loop_thread())
                    .into_future(),
            );
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(2));
                futures::executor::block_on(writer.write(b"ping".to_vec()).into_future())
            });
            (read.await.unwrap(), hop.await.unwrap())
        });
        assert_eq!(read.unwrap(), (b"ping".to_vec(), true));
        assert_eq!(hop, Ok(true));
    })
    .expect("the readiness backend always starts");
}

/// Work on the pool, awaited from tokio tasks: the continuation runs on a
/// pool worker, the awaiting task is woken from there.
#[test]
fn pool_work_awaited_from_tokio_runs_on_pool_workers() {
    let pool = exec_pool::ThreadPool::builder().threads(2).build().unwrap();
    let sch = pool.scheduler();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let on_workers = rt.block_on(async move {
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let sch = sch.clone();
                tokio::spawn(async move {
                    let probe = sch.clone();
                    sch.schedule()
                        .then(move |()| (i * 2, probe.is_worker_thread()))
                        .into_future()
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut all = true;
        for (i, t) in tasks.into_iter().enumerate() {
            let (v, on_worker) = t.await.unwrap();
            assert_eq!(v, i * 2);
            all &= on_worker;
        }
        all
    });
    assert!(on_workers);
}

#[cfg(feature = "tokio")]
#[test]
fn suite_on_a_tokio_scheduler() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sch = exec_adapters::TokioScheduler::new(rt.handle().clone());
    suite!(sch);
}

/// Cancellation from the async side: every runtime's timeout drops the
/// awaited sender, which stops the future inside it.
#[test]
fn dropping_the_awaited_sender_stops_it_on_every_runtime() {
    fn pending_probe(
        dropped: Arc<AtomicBool>,
    ) -> impl Portable<Output = (), Error = std::convert::Infallible> {
        struct Probe(Arc<AtomicBool>);
        impl Drop for Probe {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let p = Probe(dropped);
        from_future(async move {
            let _p = p;
            std::future::pending::<()>().await
        })
    }
    // tokio current_thread and multi_thread
    for multi in [false, true] {
        let rt = if multi {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        let dropped = Arc::new(AtomicBool::new(false));
        let fut = pending_probe(dropped.clone()).into_future();
        let r = rt.block_on(async { tokio::time::timeout(Duration::from_millis(5), fut).await });
        assert!(r.is_err());
        assert!(dropped.load(Ordering::SeqCst), "multi={multi}");
    }
    // futures: a select against a ready future
    let dropped = Arc::new(AtomicBool::new(false));
    let fut = pending_probe(dropped.clone()).into_future();
    futures::executor::block_on(async {
        let first = futures::future::select(fut, futures::future::ready(())).await;
        assert!(matches!(first, futures::future::Either::Right(_)));
    });
    assert!(dropped.load(Ordering::SeqCst));
}
