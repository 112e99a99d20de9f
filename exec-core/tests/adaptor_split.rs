//! `split`: every consumer gets a clone of one shared run; cancellation per
//! consumer; the predecessor starts once and is stopped only when no
//! consumer is left; panics reach every consumer; everything is dropped.
mod common;

use common::*;
use exec_core::{Completion, Scheduler, SenderExt, StopSource, just, sync_wait};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[test]
fn every_consumer_gets_the_value_and_the_predecessor_runs_once() {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let shared = just(20)
        .then(move |x| {
            r.fetch_add(1, Ordering::SeqCst);
            x * 2 + 2
        })
        .split();
    for _ in 0..10 {
        assert_eq!(sync_wait(shared.clone()), Ok(Some(42)));
    }
    assert_eq!(sync_wait(shared.then(|x| x + 1)), Ok(Some(43)));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[test]
fn consumers_waiting_on_a_manual_scheduler_all_complete_once() {
    let sch = ManualScheduler::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let shared = sch
        .schedule()
        .then(move |()| {
            r.fetch_add(1, Ordering::SeqCst);
            String::from("hi")
        })
        .split();
    let started: Vec<_> = (0..5).map(|_| start(shared.clone())).collect();
    for (_, rec) in &started {
        assert!(!rec.is_complete());
    }
    assert_eq!(sch.pending(), 1, "predecessor scheduled once");
    assert_eq!(sch.run_all(), 1);
    for (op, rec) in started {
        assert_eq!(rec.expect_value(), "hi");
        op.finish();
    }
    // A late consumer completes inline with the stored value.
    let (op, rec) = start(shared);
    assert_eq!(rec.expect_value(), "hi");
    op.finish();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[test]
fn error_is_cloned_to_every_consumer() {
    let shared = Fixed::<i32, String>(Completion::Error("bad".into())).split();
    for _ in 0..3 {
        let (op, rec) = start(shared.clone());
        assert_eq!(rec.expect_error(), "bad");
        op.finish();
    }
}

#[test]
fn stopped_reaches_every_consumer() {
    let shared = Fixed::<i32, ()>(Completion::Stopped).split();
    for _ in 0..3 {
        let (op, rec) = start(shared.clone());
        rec.expect_stopped();
        op.finish();
    }
    assert_eq!(sync_wait(shared), Ok(None));
}

#[test]
fn panic_reaches_every_consumer_with_its_message() {
    let sch = ManualScheduler::new();
    let shared = sch
        .schedule()
        .then(|()| -> i32 { panic!("shared boom") })
        .split();
    let a = start(shared.clone());
    let b = start(shared.clone());
    sch.run_all();
    let first = a.1.take();
    let second = b.1.take();
    // The first gets the original `&str` payload, the other a `String`.
    match (&first, &second) {
        (Seen::Panic(p1), Seen::Panic(p2)) => {
            assert_eq!(p1.downcast_ref::<&str>(), Some(&"shared boom"));
            assert_eq!(
                p2.downcast_ref::<String>().map(|s| s.as_str()),
                Some("shared boom")
            );
        }
        other => panic!("expected two panics, got {other:?}"),
    }
    a.0.finish();
    b.0.finish();
    // A late consumer too, and sync_wait re-raises it.
    let late = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sync_wait(shared)));
    assert_eq!(payload_message(late.unwrap_err().as_ref()), "shared boom");
}

#[test]
fn stop_before_start_completes_stopped_even_if_value_ready() {
    let shared = just(1).split();
    assert_eq!(sync_wait(shared.clone()), Ok(Some(1)));
    let source = Arc::new(StopSource::new());
    source.request_stop();
    let (r, rec) = recorder_with_stop(source);
    let op = start_with(shared, r, &rec);
    rec.expect_stopped();
    op.finish();
}

#[test]
fn stop_while_waiting_deregisters_and_keeps_the_work_for_others() {
    let sch = ManualScheduler::new();
    let called = Arc::new(AtomicUsize::new(0));
    let c = called.clone();
    let shared = sch
        .schedule()
        .then(move |()| {
            c.fetch_add(1, Ordering::SeqCst);
            5
        })
        .split();
    let source = Arc::new(StopSource::new());
    let (r, stopped_rec) = recorder_with_stop(source.clone());
    let stopped_op = start_with(shared.clone(), r, &stopped_rec);
    let (other_op, other_rec) = start(shared.clone());
    source.request_stop();
    stopped_rec.expect_stopped();
    stopped_op.finish();
    assert!(!other_rec.is_complete());
    sch.run_all();
    assert_eq!(
        other_rec.expect_value(),
        5,
        "work not stopped: a consumer waits"
    );
    assert_eq!(called.load(Ordering::SeqCst), 1);
    other_op.finish();
}

#[test]
fn work_is_stopped_when_the_last_waiting_consumer_leaves() {
    let sch = ManualScheduler::new();
    let called = Arc::new(AtomicUsize::new(0));
    let c = called.clone();
    let shared = sch
        .schedule()
        .then(move |()| {
            c.fetch_add(1, Ordering::SeqCst);
            5
        })
        .split();
    let s1 = Arc::new(StopSource::new());
    let s2 = Arc::new(StopSource::new());
    let (r1, rec1) = recorder_with_stop(s1.clone());
    let (r2, rec2) = recorder_with_stop(s2.clone());
    let op1 = start_with(shared.clone(), r1, &rec1);
    let op2 = start_with(shared.clone(), r2, &rec2);
    s1.request_stop();
    s2.request_stop();
    rec1.expect_stopped();
    rec2.expect_stopped();
    op1.finish();
    op2.finish();
    // The predecessor sees its stop token triggered when it gets to run.
    sch.run_all();
    assert_eq!(
        called.load(Ordering::SeqCst),
        0,
        "then not called on stopped"
    );
    // A later consumer gets the (stopped) shared result.
    let (op3, rec3) = start(shared);
    rec3.expect_stopped();
    op3.finish();
}

#[test]
fn values_and_the_predecessor_are_dropped() {
    let drops = DropCounter::new();
    let held = drops.track(());
    let value = Arc::new(drops.track(7));
    let sch = ManualScheduler::new();
    let shared = sch
        .schedule()
        .then(move |()| {
            let _keep = &held;
            value
        })
        .split();
    let ops: Vec<_> = (0..3).map(|_| start(shared.clone())).collect();
    sch.run_all();
    for (op, rec) in ops {
        assert_eq!(rec.expect_value().value, 7);
        op.finish();
    }
    assert_eq!(
        drops.alive(),
        1,
        "the shared value lives while a handle does"
    );
    drop(shared);
    assert_eq!(drops.alive(), 0);
    assert_eq!(drops.created(), 2);
}

#[test]
fn unstarted_split_drops_its_sender() {
    let drops = DropCounter::new();
    let v = drops.track(1);
    let shared = just(v).then(|t| t.value).split();
    let op = {
        use exec_core::SenderTo;
        let (r, _rec) = recorder::<i32, std::convert::Infallible>();
        shared.clone().connect(r)
    };
    drop(shared);
    assert_eq!(drops.alive(), 1, "a connected op holds a reference");
    drop(op);
    assert_eq!(drops.alive(), 0);
}

#[test]
fn consumers_on_many_threads_with_completion_on_another() {
    let rounds = if cfg!(miri) { 3 } else { 200 };
    for _ in 0..rounds {
        let sch = ManualScheduler::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let shared = sch
            .schedule()
            .then(move |()| {
                r.fetch_add(1, Ordering::SeqCst);
                vec![1u8, 2, 3]
            })
            .split();
        let consumers: Vec<_> = (0..4)
            .map(|_| {
                let s = shared.clone();
                std::thread::spawn(move || sync_wait(s))
            })
            .collect();
        let driver = {
            let sch = sch.clone();
            std::thread::spawn(move || {
                while sch.pending() == 0 {
                    std::thread::yield_now();
                }
                sch.run_all()
            })
        };
        assert_eq!(driver.join().unwrap(), 1);
        for c in consumers {
            assert_eq!(c.join().unwrap(), Ok(Some(vec![1, 2, 3])));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}

#[test]
fn stop_races_completion_from_other_threads() {
    let rounds = if cfg!(miri) { 3 } else { 200 };
    for _ in 0..rounds {
        let sch = ManualScheduler::new();
        let shared = sch.schedule().then(|()| 9).split();
        let source = Arc::new(StopSource::new());
        let (r, rec) = recorder_with_stop(source.clone());
        let op = start_with(shared.clone(), r, &rec);
        let stopper = std::thread::spawn(move || source.request_stop());
        let runner = std::thread::spawn(move || sch.run_all());
        stopper.join().unwrap();
        runner.join().unwrap();
        assert_eq!(rec.completions(), 1);
        match rec.take() {
            Seen::Value(9) | Seen::Stopped => {}
            other => panic!("unexpected {other:?}"),
        }
        op.finish();
    }
}
