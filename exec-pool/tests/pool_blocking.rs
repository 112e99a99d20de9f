//! The blocking scheduler: runs off the workers, may block and `sync_wait`,
//! does not stall the workers, completes stopped after shutdown.
#[path = "../../exec-core/tests/common/mod.rs"]
#[allow(clippy::collapsible_if, clippy::type_complexity)]
mod common;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use exec_core::{Scheduler, SenderExt, StopSource, just, sync_wait};
use exec_pool::ThreadPool;

#[test]
fn runs_on_a_blocking_thread_where_sync_wait_is_allowed() {
    let pool = ThreadPool::builder()
        .threads(1)
        .thread_name("p")
        .build()
        .unwrap();
    let sched = pool.scheduler();
    let r = sync_wait(pool.blocking_scheduler().schedule().then(move |()| {
        let name = std::thread::current().name().unwrap().to_owned();
        (name, sched.is_worker_thread(), sync_wait(just(5)))
    }));
    assert_eq!(r, Ok(Some(("p-blocking".to_owned(), false, Ok(Some(5))))));
}

#[test]
fn a_blocking_call_does_not_stall_the_workers() {
    let pool = ThreadPool::builder().threads(1).build().unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let rel = release.clone();
    let blocking = pool.blocking_scheduler();
    let waiter = std::thread::spawn(move || {
        sync_wait(blocking.schedule().then(move |()| {
            while !rel.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            "unblocked"
        }))
    });
    // The single worker still runs work while the blocking call waits.
    for i in 0..10 {
        assert_eq!(
            sync_wait(pool.scheduler().schedule().then(move |()| i)),
            Ok(Some(i))
        );
    }
    release.store(true, Ordering::SeqCst);
    assert_eq!(waiter.join().unwrap(), Ok(Some("unblocked")));
}

#[test]
fn several_blocking_calls_run_concurrently_up_to_the_limit() {
    let pool = ThreadPool::builder()
        .threads(1)
        .max_blocking_threads(3)
        .build()
        .unwrap();
    let blocking = pool.blocking_scheduler();
    let barrier = Arc::new(std::sync::Barrier::new(3));
    let handles: Vec<_> = (0..3)
        .map(|i| {
            let (b, bar) = (blocking.clone(), barrier.clone());
            std::thread::spawn(move || {
                sync_wait(b.schedule().then(move |()| {
                    bar.wait(); // deadlocks unless 3 threads run at once
                    i
                }))
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), Ok(Some(i)));
    }
    assert!(blocking.threads() <= 3);
}

#[test]
fn idle_blocking_threads_exit_after_keep_alive() {
    let pool = ThreadPool::builder()
        .threads(1)
        .blocking_keep_alive(Duration::from_millis(20))
        .build()
        .unwrap();
    let blocking = pool.blocking_scheduler();
    assert_eq!(sync_wait(blocking.schedule().then(|()| 1)), Ok(Some(1)));
    support::wait_until(|| blocking.threads() == 0);
    assert_eq!(sync_wait(blocking.schedule().then(|()| 2)), Ok(Some(2)));
}

#[test]
fn stop_requested_completes_stopped() {
    let pool = ThreadPool::builder().threads(1).build().unwrap();
    let source = Arc::new(StopSource::new());
    source.request_stop();
    let (r, rec) = common::recorder_with_stop(source);
    let op = common::start_with(pool.blocking_scheduler().schedule().then(|()| 1), r, &rec);
    support::wait_until(|| rec.is_complete());
    rec.expect_stopped();
    op.finish();
}

#[test]
fn shutdown_waits_for_running_blocking_work_and_stops_queued() {
    let pool = ThreadPool::builder()
        .threads(1)
        .max_blocking_threads(1)
        .build()
        .unwrap();
    let blocking = pool.blocking_scheduler();
    let started = Arc::new(AtomicBool::new(false));
    let st = started.clone();
    let b1 = blocking.clone();
    let first = std::thread::spawn(move || {
        sync_wait(b1.schedule().then(move |()| {
            st.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
            1
        }))
    });
    support::wait_until(|| started.load(Ordering::SeqCst));
    let b2 = blocking.clone();
    let second = std::thread::spawn(move || sync_wait(b2.schedule().then(|()| 2)));
    std::thread::sleep(Duration::from_millis(10)); // let it queue behind the first
    drop(pool);
    assert_eq!(first.join().unwrap(), Ok(Some(1)), "running work finished");
    let second = second.join().unwrap();
    assert!(second == Ok(None) || second == Ok(Some(2)), "{second:?}");
    assert_eq!(sync_wait(blocking.schedule()), Ok(None));
}
