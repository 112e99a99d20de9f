//! `from_future_on`: the future is polled on the given scheduler (first
//! poll included), wake-ups schedule a poll there, stop and the
//! scheduler's own stopped channel, panics, no leaks.
// The fixtures of exec-core (recorders, drop counters, manual scheduler).
#[path = "../../exec-core/tests/common/mod.rs"]
#[allow(clippy::collapsible_if, clippy::type_complexity)]
mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::thread::ThreadId;

use common::*;
use exec_adapters::from_future_on;
use exec_core::{InlineScheduler, SenderExt, StopSource, sync_wait};
use futures::channel::oneshot;

fn here() -> ThreadId {
    std::thread::current().id()
}

#[test]
fn nothing_is_polled_until_the_scheduler_runs() {
    let sch = ManualScheduler::new();
    let (op, rec) = start(from_future_on(sch.clone(), async { here() }));
    assert!(!rec.is_complete());
    assert_eq!(sch.pending(), 1, "the first poll is scheduled");
    let runner = std::thread::spawn(move || {
        sch.run_all();
        here()
    })
    .join()
    .unwrap();
    assert_eq!(
        rec.expect_value(),
        runner,
        "polled on the scheduler's thread"
    );
    op.finish();
}

#[test]
fn a_wake_from_elsewhere_schedules_a_poll_instead_of_polling() {
    let sch = ManualScheduler::new();
    let (tx, rx) = oneshot::channel::<u32>();
    let (op, rec) = start(from_future_on(sch.clone(), async move {
        (rx.await.unwrap(), here())
    }));
    assert_eq!(sch.run_all(), 1); // first poll: pending
    assert!(!rec.is_complete());
    std::thread::spawn(move || tx.send(5).unwrap())
        .join()
        .unwrap();
    assert!(!rec.is_complete(), "the waking thread did not poll");
    assert_eq!(sch.pending(), 1, "it scheduled a poll");
    assert_eq!(sch.run_all(), 1);
    assert_eq!(rec.expect_value(), (5, here()));
    op.finish();
}

#[test]
fn stop_while_idle_completes_stopped_on_the_scheduler() {
    let drops = DropCounter::new();
    let t = drops.track(());
    let sch = ManualScheduler::new();
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<(), Infallible>(source.clone());
    let op = start_with(
        from_future_on(sch.clone(), async move {
            let _keep = t;
            std::future::pending::<()>().await
        }),
        r,
        &rec,
    );
    sch.run_all();
    source.request_stop();
    assert!(!rec.is_complete(), "handled by a scheduled run");
    assert_eq!(drops.alive(), 1);
    sch.run_all();
    rec.expect_stopped();
    assert_eq!(drops.alive(), 0);
    op.finish();
}

#[test]
fn a_stopped_schedule_completes_stopped() {
    let drops = DropCounter::new();
    let t = drops.track(());
    let sch = ManualScheduler::new();
    let (op, rec) = start(from_future_on(sch.clone(), async move {
        let _keep = t;
        1
    }));
    assert_eq!(sch.stop_all(), 1);
    rec.expect_stopped();
    assert_eq!(drops.alive(), 0, "future dropped unpolled");
    op.finish();
}

#[test]
fn on_a_stopped_scheduler_completes_stopped() {
    assert_eq!(
        sync_wait(from_future_on(StoppedScheduler, async { 1 })),
        Ok(None)
    );
}

#[test]
fn a_panicking_future_is_delivered_through_set_panic() {
    let sch = ManualScheduler::new();
    let (op, rec) = start(from_future_on(sch.clone(), async {
        if true {
            panic!("polled on the scheduler");
        }
    }));
    sch.run_all();
    assert_eq!(rec.expect_panic(), "polled on the scheduler");
    op.finish();
}

#[test]
fn inline_scheduler_and_sync_wait() {
    let (tx, rx) = oneshot::channel::<i32>();
    let th = std::thread::spawn(move || tx.send(20).unwrap());
    let r = sync_wait(from_future_on(InlineScheduler, rx).then(|v| v.unwrap() + 22));
    th.join().unwrap();
    assert_eq!(r, Ok(Some(42)));
}

#[test]
fn many_wakes_from_two_threads_complete_once() {
    let rounds = if cfg!(miri) { 2 } else { 50 };
    for _ in 0..rounds {
        let sch = ManualScheduler::new();
        let (tx1, rx1) = oneshot::channel::<u32>();
        let (tx2, rx2) = oneshot::channel::<u32>();
        let (op, rec) = start(from_future_on(sch.clone(), async move {
            rx1.await.unwrap() + rx2.await.unwrap()
        }));
        let s2 = sch.clone();
        let driver = std::thread::spawn(move || {
            let mut n = 0;
            while n < if cfg!(miri) { 50 } else { 1000 } {
                s2.run_all();
                n += 1;
                std::thread::yield_now();
            }
        });
        let a = std::thread::spawn(move || tx1.send(1).unwrap());
        let b = std::thread::spawn(move || tx2.send(2).unwrap());
        a.join().unwrap();
        b.join().unwrap();
        driver.join().unwrap();
        sch.run_all();
        assert_eq!(rec.expect_value(), 3);
        op.finish();
    }
}

#[cfg(feature = "tokio")]
#[test]
fn polled_on_tokio_workers() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("from-future-on-worker")
        .enable_all()
        .build()
        .unwrap();
    let sch = exec_adapters::TokioScheduler::new(rt.handle().clone());
    let names = sync_wait(from_future_on(sch.clone(), async {
        let first = std::thread::current().name().map(String::from);
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        (first, std::thread::current().name().map(String::from))
    }));
    let (a, b) = names.unwrap().unwrap();
    assert_eq!(a.as_deref(), Some("from-future-on-worker"));
    assert_eq!(b.as_deref(), Some("from-future-on-worker"));
}
