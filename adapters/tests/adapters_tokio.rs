//! `TokioScheduler`: schedule on workers, timed scheduling, stop, runtime
//! shutdown, tokio I/O futures driven from senders, senders awaited in
//! tokio tasks.
// The fixtures of exec-core (recorders, drop counters, manual scheduler).
#[path = "../../exec-core/tests/common/mod.rs"]
#[allow(clippy::collapsible_if, clippy::type_complexity)]
mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use exec_adapters::{SenderFutureExt, TokioScheduler};
use exec_core::{Scheduler, SenderExt, StopSource, TimedScheduler, just, sync_wait};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::{Builder, Runtime};

fn multi() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("test-tokio-worker")
        .enable_all()
        .build()
        .unwrap()
}

fn current() -> Runtime {
    Builder::new_current_thread().enable_all().build().unwrap()
}

/// Waits (bounded) until `rec` saw a completion.
fn wait_for<T, E>(rec: &Recorder<T, E>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !rec.is_complete() {
        assert!(Instant::now() < deadline, "operation did not complete");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn is_worker() -> bool {
    std::thread::current().name() == Some("test-tokio-worker")
}

#[test]
fn schedule_completes_on_a_worker_thread() {
    let rt = multi();
    let sch = TokioScheduler::new(rt.handle().clone());
    assert_eq!(
        sync_wait(sch.schedule().then(|()| is_worker())),
        Ok(Some(true))
    );
}

#[test]
fn schedule_on_a_current_thread_runtime_runs_inside_block_on() {
    let rt = current();
    let sch = TokioScheduler::new(rt.handle().clone());
    let here = std::thread::current().id();
    let ran_on = rt
        .block_on(
            sch.schedule()
                .then(|()| std::thread::current().id())
                .into_future(),
        )
        .unwrap();
    assert_eq!(ran_on, here);
}

#[test]
fn schedule_sees_a_stop_requested_before_it_runs() {
    let rt = multi();
    let sch = TokioScheduler::new(rt.handle().clone());
    let source = Arc::new(StopSource::new());
    source.request_stop();
    let (r, rec) = recorder_with_stop::<(), Infallible>(source);
    let op = start_with(sch.schedule(), r, &rec);
    wait_for(&rec);
    rec.expect_stopped();
    op.finish();
}

#[test]
fn runtime_shutdown_before_the_task_ran_completes_stopped() {
    let rt = current(); // never driven: the spawned task cannot run
    let sch = TokioScheduler::new(rt.handle().clone());
    let drops = DropCounter::new();
    let t = drops.track(());
    let (op, rec) = start(sch.schedule().then(move |()| {
        let _keep = &t;
    }));
    assert!(!rec.is_complete());
    drop(rt);
    rec.expect_stopped();
    assert_eq!(drops.alive(), 0);
    op.finish();
}

#[test]
fn schedule_on_a_shut_down_runtime_completes_stopped() {
    let rt = current();
    let sch = TokioScheduler::new(rt.handle().clone());
    drop(rt);
    assert_eq!(sync_wait(sch.schedule().then(|()| 1)), Ok(None));
}

#[test]
fn schedule_after_waits_and_completes_on_the_runtime() {
    let rt = multi();
    let sch = TokioScheduler::new(rt.handle().clone());
    let t0 = Instant::now();
    let r = sync_wait(
        sch.schedule_after(Duration::from_millis(20))
            .then(|()| is_worker()),
    );
    assert_eq!(r, Ok(Some(true)));
    assert!(t0.elapsed() >= Duration::from_millis(20));
}

#[test]
fn schedule_at_a_past_instant_still_completes_on_a_worker() {
    let rt = multi();
    let sch = TokioScheduler::new(rt.handle().clone());
    let past = sch.now() - Duration::from_millis(5);
    let r = sync_wait(sch.schedule_at(past).then(|()| is_worker()));
    assert_eq!(r, Ok(Some(true)));
}

#[test]
fn stopping_a_timer_completes_stopped_promptly() {
    let rt = multi();
    let sch = TokioScheduler::new(rt.handle().clone());
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<(), Infallible>(source.clone());
    let t0 = Instant::now();
    let op = start_with(sch.schedule_after(Duration::from_secs(30)), r, &rec);
    assert!(!rec.is_complete());
    source.request_stop();
    rec.expect_stopped();
    assert!(t0.elapsed() < Duration::from_secs(5));
    op.finish();
}

#[test]
fn timers_awaited_from_tokio_and_dropped_by_a_timeout() {
    let rt = current();
    let sch = TokioScheduler::new(rt.handle().clone());
    rt.block_on(async {
        let quick = sch
            .schedule_after(Duration::from_millis(1))
            .then(|()| 5)
            .into_future();
        assert_eq!(quick.await, Ok(5));
        let slow = sch.schedule_after(Duration::from_secs(30)).into_future();
        let t0 = Instant::now();
        // Dropping the awaited sender requests stop of its timer.
        assert!(
            tokio::time::timeout(Duration::from_millis(5), slow)
                .await
                .is_err()
        );
        assert!(t0.elapsed() < Duration::from_secs(5));
    });
}

#[test]
fn tokio_io_futures_run_as_senders_from_a_plain_thread() {
    let rt = multi();
    let sch = TokioScheduler::new(rt.handle().clone());
    // Everything below is created and polled by exec (`sync_wait` on this
    // thread, wake-ups from tokio's driver) with the runtime entered.
    let echoed = sync_wait(sch.from_future(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await?;
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await?;
            s.write_all(&buf).await?;
            Ok::<_, std::io::Error>(())
        });
        let mut c = tokio::net::TcpStream::connect(addr).await?;
        c.write_all(b"hello").await?;
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).await?;
        server.await.unwrap()?;
        Ok::<_, std::io::Error>(buf)
    }));
    assert_eq!(&echoed.unwrap().unwrap().unwrap(), b"hello");
}

#[test]
fn sender_futures_can_be_spawned_on_tokio() {
    let rt = multi();
    let sch = TokioScheduler::new(rt.handle().clone());
    let s2 = sch.clone();
    let v = rt.block_on(async move {
        tokio::spawn(s2.schedule().then(|()| 21 * 2).into_future())
            .await
            .unwrap()
    });
    assert_eq!(v, Ok(42));
}

#[test]
fn sync_wait_on_a_tokio_worker_is_refused_not_deadlocked() {
    let rt = current();
    let sch = TokioScheduler::new(rt.handle().clone());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(sch.schedule().then(|()| sync_wait(just(1))).into_future())
    }));
    let msg = payload_message(r.unwrap_err().as_ref());
    assert!(msg.contains("a tokio worker"), "{msg}");
}

#[test]
fn panic_in_a_continuation_on_a_worker_reaches_the_waiter() {
    let rt = multi();
    let sch = TokioScheduler::new(rt.handle().clone());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        sync_wait(sch.schedule().then(|()| -> i32 { panic!("on a worker") }))
    }));
    assert_eq!(payload_message(r.unwrap_err().as_ref()), "on a worker");
}

#[test]
fn equality_is_runtime_identity() {
    let a = multi();
    let b = current();
    let sa = TokioScheduler::new(a.handle().clone());
    assert_eq!(sa, TokioScheduler::new(a.handle().clone()));
    assert_ne!(sa, TokioScheduler::new(b.handle().clone()));
    let inside = a.block_on(async { TokioScheduler::current() });
    assert_eq!(sa, inside);
}

#[test]
fn runtime_shutdown_with_a_pending_timer_does_not_hang_the_waiter() {
    let rt = multi();
    let sch = TokioScheduler::new(rt.handle().clone());
    let (op, rec) = start(sch.schedule_after(Duration::from_secs(30)));
    assert!(!rec.is_complete());
    drop(rt);
    wait_for(&rec);
    // tokio fails the timer on shutdown; the failure arrives as a panic
    // (documented), never as a hang or a value.
    match rec.take() {
        Seen::Panic(_) | Seen::Stopped => {}
        other => panic!("unexpected {other:?}"),
    }
    op.finish();
}

#[test]
fn stress_drops_racing_completions_leak_nothing() {
    // Timeouts of 0..=2 ms race timers of 0..=2 ms (and plain schedules):
    // some futures resolve, some are dropped mid-flight (stop requested,
    // the op frees itself later). Every held value is dropped in the end.
    let rt = multi();
    let sch = TokioScheduler::new(rt.handle().clone());
    let drops = DropCounter::new();
    let (d, s) = (drops.clone(), sch.clone());
    let resolved = rt.block_on(async move {
        let tasks: Vec<_> = (0..200u64)
            .map(|i| {
                let t = d.track(i);
                let s = s.clone();
                tokio::spawn(async move {
                    let work = s
                        .schedule_after(Duration::from_micros((i % 3) * 700))
                        .let_value({
                            let s = s.clone();
                            move |()| s.schedule()
                        })
                        .then(move |()| t.value);
                    let limit = Duration::from_micros(((i / 3) % 3) * 700);
                    tokio::time::timeout(limit, work.into_future())
                        .await
                        .is_ok()
                })
            })
            .collect();
        let mut resolved = 0;
        for t in tasks {
            resolved += t.await.unwrap() as usize;
        }
        resolved
    });
    assert!(
        resolved > 0 && resolved < 200,
        "a mix of resolved and dropped: {resolved}"
    );
    drop(rt); // completes whatever is still pending (stopped)
    assert_eq!(drops.created(), 200);
    assert_eq!(drops.alive(), 0, "resolved {resolved} of 200");
}

#[test]
fn on_a_pool_inside_a_tokio_task_comes_back_to_the_task() {
    // `on(pool, work)` returns to the scheduler it started from: awaited in
    // a task, that is the task itself (the future's environment).
    let pool = exec_pool::ThreadPool::builder().threads(1).build().unwrap();
    let rt = current();
    let runtime_thread = std::thread::current().id();
    let (there, back) = rt.block_on(async {
        tokio::spawn(async move {
            exec_core::on(
                pool.scheduler(),
                just(()).then(|()| std::thread::current().id()),
            )
            .then(|there| (there, std::thread::current().id()))
            .into_future()
            .await
            .unwrap()
        })
        .await
        .unwrap()
    });
    assert_ne!(there, runtime_thread, "the work ran on the pool");
    assert_eq!(back, runtime_thread, "the rest ran in the tokio task");
}
