//! `RunLoop`: FIFO, driven by the thread calling `run`, work scheduled from
//! other threads, `finish` semantics, stop of queued work.
mod common;

use common::*;
use exec_core::{RunLoop, Scheduler, SenderExt, StopSource, just, starts_on, sync_wait};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

#[test]
fn runs_queued_work_in_fifo_order_then_returns_after_finish() {
    let run_loop = RunLoop::new();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut started = Vec::new();
    for i in 0..3 {
        let o = order.clone();
        let (r, rec) = recorder::<(), std::convert::Infallible>();
        let op = start_with(
            run_loop
                .scheduler()
                .schedule()
                .then(move |()| o.lock().unwrap().push(i)),
            r,
            &rec,
        );
        assert!(!rec.is_complete(), "nothing runs before run()");
        started.push((op, rec));
    }
    run_loop.finish();
    run_loop.run();
    assert_eq!(*order.lock().unwrap(), [0, 1, 2]);
    for (op, rec) in started {
        rec.expect_value();
        op.finish();
    }
}

#[test]
fn finish_before_run_with_empty_queue_returns_at_once() {
    let run_loop = RunLoop::new();
    run_loop.finish();
    run_loop.run();
}

#[test]
fn driven_by_one_thread_fed_by_others() {
    let run_loop = RunLoop::new();
    let producers = if cfg!(miri) { 2 } else { 4 };
    let per_producer = if cfg!(miri) { 3 } else { 50 };
    let ran = AtomicUsize::new(0);
    thread::scope(|s| {
        let driver = s.spawn(|| {
            run_loop.run();
            thread::current().id()
        });
        let mut handles = Vec::new();
        for p in 0..producers {
            let run_loop = &run_loop;
            let ran = &ran;
            handles.push(s.spawn(move || {
                let mut seen = Vec::new();
                for i in 0..per_producer {
                    let got = sync_wait(starts_on(
                        run_loop.scheduler(),
                        just(p * 1000 + i).then(|x| {
                            ran.fetch_add(1, Ordering::SeqCst);
                            (x, thread::current().id())
                        }),
                    ));
                    seen.push(got.unwrap().unwrap());
                }
                seen
            }));
        }
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        run_loop.finish();
        let driver_id = driver.join().unwrap();
        for (p, seen) in results.into_iter().enumerate() {
            assert_eq!(seen.len(), per_producer);
            for (i, (x, tid)) in seen.into_iter().enumerate() {
                assert_eq!(x, p * 1000 + i);
                assert_eq!(tid, driver_id, "work ran on the driving thread");
            }
        }
    });
    assert_eq!(ran.load(Ordering::SeqCst), producers * per_producer);
}

#[test]
fn finish_from_another_thread_wakes_an_idle_run() {
    let run_loop = RunLoop::new();
    thread::scope(|s| {
        let driver = s.spawn(|| run_loop.run());
        thread::sleep(std::time::Duration::from_millis(10));
        run_loop.finish();
        driver.join().unwrap();
    });
}

#[test]
fn work_scheduled_after_finish_still_runs_before_run_returns() {
    let run_loop = RunLoop::new();
    run_loop.finish();
    let (op, rec) = start(run_loop.scheduler().schedule().then(|()| 3));
    run_loop.run();
    assert_eq!(rec.expect_value(), 3);
    op.finish();
}

#[test]
fn queued_work_sees_a_stop_request() {
    let run_loop = RunLoop::new();
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    let op = start_with(run_loop.scheduler().schedule().then(|()| 1), r, &rec);
    source.request_stop();
    run_loop.finish();
    run_loop.run();
    rec.expect_stopped();
    op.finish();
}

#[test]
fn scheduler_equality_is_per_loop() {
    let a = RunLoop::new();
    let b = RunLoop::new();
    assert!(a.scheduler() == a.scheduler());
    assert!(a.scheduler() != b.scheduler());
}
