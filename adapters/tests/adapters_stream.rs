//! Streams as senders (`next`, `for_each`) and senders as a stream
//! (`repeat_stream`): channels, stop, panics, no leaks.
// The fixtures of exec-core (recorders, drop counters, manual scheduler).
#[path = "../../exec-core/tests/common/mod.rs"]
#[allow(clippy::collapsible_if, clippy::type_complexity)]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use exec_adapters::{for_each, next, repeat_stream};
use exec_core::{Completion, SenderExt, StopSource, just, sync_wait};
use futures::StreamExt;
use futures::channel::mpsc;
use futures::executor::block_on;

#[test]
fn next_yields_items_then_none() {
    let mut s = futures::stream::iter(["a", "b"]);
    assert_eq!(sync_wait(next(&mut s)), Ok(Some(Some("a"))));
    assert_eq!(sync_wait(next(&mut s)), Ok(Some(Some("b"))));
    assert_eq!(sync_wait(next(&mut s)), Ok(Some(None)));
}

#[test]
fn next_waits_for_an_item_from_another_thread() {
    let (mut tx, mut rx) = mpsc::channel::<u32>(1);
    let th = std::thread::spawn(move || block_on(futures::SinkExt::send(&mut tx, 5)).unwrap());
    assert_eq!(
        sync_wait(next(&mut rx).then(|x| x.map(|v| v + 1))),
        Ok(Some(Some(6)))
    );
    th.join().unwrap();
    // Sender gone: the stream ends.
    assert_eq!(sync_wait(next(&mut rx)), Ok(Some(None)));
}

#[test]
fn next_is_stopped_without_losing_items() {
    let (mut tx, mut rx) = mpsc::unbounded::<u32>();
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<Option<u32>, std::convert::Infallible>(source.clone());
    let op = start_with(next(&mut rx), r, &rec);
    assert!(!rec.is_complete());
    source.request_stop();
    rec.expect_stopped();
    op.finish();
    tx.start_send(3).unwrap();
    assert_eq!(sync_wait(next(&mut rx)), Ok(Some(Some(3))));
}

#[test]
fn for_each_visits_every_item_then_completes() {
    let mut seen = Vec::new();
    let r = sync_wait(for_each(futures::stream::iter(1..=5), |x| seen.push(x)).then(|()| "end"));
    assert_eq!(r, Ok(Some("end")));
    assert_eq!(seen, [1, 2, 3, 4, 5]);
}

#[test]
fn for_each_over_items_sent_from_another_thread() {
    let (tx, rx) = mpsc::unbounded::<u32>();
    let th = std::thread::spawn(move || {
        for i in 0..10 {
            tx.unbounded_send(i).unwrap();
        }
    });
    let mut sum = 0;
    assert_eq!(sync_wait(for_each(rx, |x| sum += x)), Ok(Some(())));
    th.join().unwrap();
    assert_eq!(sum, 45);
}

#[test]
fn for_each_panic_is_delivered_and_everything_dropped() {
    let drops = DropCounter::new();
    let t = drops.track(());
    let (op, rec) = start(for_each(futures::stream::iter(0..10), move |x| {
        let _keep = &t;
        if x == 3 {
            panic!("item 3");
        }
    }));
    assert_eq!(rec.expect_panic(), "item 3");
    assert_eq!(drops.alive(), 0);
    op.finish();
}

#[test]
fn for_each_sees_a_stop_on_an_always_ready_stream() {
    let drops = DropCounter::new();
    let t = drops.track(());
    let source = Arc::new(StopSource::new());
    let count = Arc::new(AtomicUsize::new(0));
    let (c, s2) = (count.clone(), source.clone());
    let (r, rec) = recorder_with_stop::<(), std::convert::Infallible>(source.clone());
    let endless = futures::stream::repeat(1u32);
    let op = start_with(
        for_each(endless, move |_| {
            let _keep = &t;
            if c.fetch_add(1, Ordering::SeqCst) == 5 {
                s2.request_stop();
            }
        }),
        r,
        &rec,
    );
    rec.expect_stopped();
    let n = count.load(Ordering::SeqCst);
    assert!(
        (6..=64).contains(&n),
        "stopped within one budget, saw {n} items"
    );
    assert_eq!(drops.alive(), 0, "stream and closure dropped");
    op.finish();
}

#[test]
fn repeat_stream_yields_values_and_errors_and_ends_on_stopped() {
    let mut script = vec![
        Completion::Value(1),
        Completion::Error("e"),
        Completion::Value(2),
        Completion::Stopped,
        Completion::Value(99),
    ]
    .into_iter();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let items: Vec<Result<i32, &str>> = block_on(
        repeat_stream(move || {
            c.fetch_add(1, Ordering::SeqCst);
            Fixed(script.next().unwrap())
        })
        .collect(),
    );
    assert_eq!(items, [Ok(1), Err("e"), Ok(2)]);
    assert_eq!(calls.load(Ordering::SeqCst), 4, "not called after stopped");
}

#[test]
fn repeat_stream_is_fused_after_stopped() {
    let mut s = repeat_stream(|| Fixed::<i32, ()>(Completion::Stopped));
    assert_eq!(block_on(s.next()), None);
    assert_eq!(block_on(s.next()), None);
}

#[test]
fn repeat_stream_runs_senders_completing_elsewhere() {
    let sch = ManualScheduler::new();
    let s2 = sch.clone();
    let stop = Arc::new(AtomicUsize::new(0));
    let st = stop.clone();
    let driver = std::thread::spawn(move || {
        let mut ran = 0;
        while ran < 3 {
            ran += s2.run_all();
            std::thread::yield_now();
        }
        st.store(1, Ordering::SeqCst);
    });
    let mut n = 0;
    let items: Vec<_> = block_on(
        repeat_stream(move || {
            n += 1;
            exec_core::Scheduler::schedule(&sch).then(move |()| n)
        })
        .take(3)
        .collect(),
    );
    driver.join().unwrap();
    assert_eq!(items, [Ok(1), Ok(2), Ok(3)]);
}

#[test]
fn dropping_repeat_stream_mid_item_stops_it() {
    let drops = DropCounter::new();
    let sch = ManualScheduler::new();
    let d = drops.clone();
    let s1 = sch.clone();
    let mut s = repeat_stream(move || {
        let t = d.track(());
        exec_core::Scheduler::schedule(&s1).then(move |()| {
            let _keep = &t;
        })
    });
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(s.poll_next_unpin(&mut cx).is_pending());
    assert_eq!(drops.alive(), 1);
    drop(s);
    sch.run_all(); // the queued op completes stopped and frees itself
    assert_eq!(drops.alive(), 0);
}

#[test]
fn repeat_stream_of_a_panicking_sender_resumes_in_the_poller() {
    let mut s = repeat_stream(|| just(()).then(|()| -> i32 { panic!("item panicked") }));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| block_on(s.next())));
    assert_eq!(payload_message(r.unwrap_err().as_ref()), "item panicked");
}
