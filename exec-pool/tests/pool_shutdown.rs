//! Shutdown: every queued or in-flight operation completes exactly once
//! (run, or stopped), workers are joined, nothing leaks; scheduling onto a
//! shut-down pool completes stopped.
#[path = "../../exec-core/tests/common/mod.rs"]
#[allow(clippy::collapsible_if, clippy::type_complexity)]
mod common;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::DropCounter;
use exec_core::{Scheduler, SenderExt, sync_wait};
use exec_pool::ThreadPool;
use support::{Counts, spawn, wait_until};

const WAIT: Duration = Duration::from_secs(60);

/// Spawns probes until one completes stopped: the pool is shut down.
fn wait_for_shutdown(sched: &exec_pool::PoolScheduler) {
    let probes = Counts::new();
    wait_until(|| {
        spawn(sched, &probes, None, || {});
        probes.stopped.load(Ordering::SeqCst) > 0
    });
}

#[test]
fn schedule_on_a_shut_down_pool_completes_stopped() {
    let pool = ThreadPool::builder().threads(2).build().unwrap();
    let sched = pool.scheduler();
    pool.shutdown();
    let called = AtomicBool::new(false);
    let r = sync_wait(
        sched
            .schedule()
            .then(|()| called.store(true, Ordering::SeqCst)),
    );
    assert_eq!(r, Ok(None));
    assert!(!called.load(Ordering::SeqCst));
    let blocking = {
        let pool = ThreadPool::builder().threads(1).build().unwrap();
        pool.blocking_scheduler()
    };
    assert_eq!(sync_wait(blocking.schedule().then(|()| 1)), Ok(None));
}

#[test]
fn queued_work_is_stopped_and_nothing_leaks() {
    let drops = DropCounter::new();
    let pool = ThreadPool::builder().threads(1).build().unwrap();
    let sched = pool.scheduler();
    let counts = Counts::new();
    let release = Arc::new(AtomicBool::new(false));
    let running = Arc::new(AtomicBool::new(false));
    let (rel, run) = (release.clone(), running.clone());
    // Occupy the only worker.
    spawn(&sched, &counts, None, move || {
        run.store(true, Ordering::SeqCst);
        while !rel.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
    });
    wait_until(|| running.load(Ordering::SeqCst));
    let n = if cfg!(miri) { 5 } else { 100 };
    for _ in 0..n {
        let held = drops.track(());
        spawn(&sched, &counts, None, move || drop(held));
    }
    let dropper = std::thread::spawn(move || drop(pool));
    wait_for_shutdown(&sched);
    release.store(true, Ordering::SeqCst);
    dropper.join().unwrap();
    // Everything completed before drop returned: no waiting needed.
    assert_eq!(counts.completed(), counts.started.load(Ordering::SeqCst));
    assert_eq!(
        counts.values.load(Ordering::SeqCst),
        1,
        "only the blocker ran"
    );
    assert_eq!(counts.stopped.load(Ordering::SeqCst), n);
    assert_eq!(drops.alive(), 0, "stopped closures were dropped");
}

#[test]
fn in_flight_work_in_local_queues_completes_once() {
    let drops = DropCounter::new();
    let pool = ThreadPool::builder().threads(2).build().unwrap();
    let sched = pool.scheduler();
    let counts = Counts::new();
    let release = Arc::new(AtomicBool::new(false));
    let n = if cfg!(miri) { 5 } else { 500 };
    let (rel, s2, c2, d2) = (
        release.clone(),
        sched.clone(),
        counts.clone(),
        drops.clone(),
    );
    spawn(&sched, &counts, None, move || {
        // These go to this worker's LIFO slot and local queue.
        for _ in 0..n {
            let held = d2.track(());
            spawn(&s2, &c2, None, move || drop(held));
        }
        while !rel.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        // Scheduled after shutdown began: completes stopped.
        let held = d2.track(());
        spawn(&s2, &c2, None, move || drop(held));
    });
    wait_until(|| counts.started.load(Ordering::SeqCst) > n);
    let dropper = std::thread::spawn(move || drop(pool));
    wait_for_shutdown(&sched);
    release.store(true, Ordering::SeqCst);
    dropper.join().unwrap();
    assert_eq!(counts.completed(), counts.started.load(Ordering::SeqCst));
    assert_eq!(counts.started.load(Ordering::SeqCst), n + 2);
    assert!(counts.stopped.load(Ordering::SeqCst) >= 1);
    assert_eq!(drops.alive(), 0);
}

#[test]
fn sync_wait_on_a_pool_being_dropped_returns() {
    // Waiters outside the pool get a completion (value or stopped) either way.
    for _ in 0..if cfg!(miri) { 2 } else { 50 } {
        let pool = ThreadPool::builder().threads(2).build().unwrap();
        let sched = pool.scheduler();
        let waiter = std::thread::spawn(move || {
            (0..20)
                .map(|i| sync_wait(sched.schedule().then(move |()| i)).unwrap())
                .collect::<Vec<_>>()
        });
        drop(pool);
        let results = waiter.join().unwrap();
        // Once stopped, stays stopped.
        let first_stop = results
            .iter()
            .position(Option::is_none)
            .unwrap_or(results.len());
        assert!(
            results[first_stop..].iter().all(Option::is_none),
            "{results:?}"
        );
    }
}

#[test]
fn dropping_the_pool_on_its_own_worker_does_not_deadlock() {
    let pool = ThreadPool::builder().threads(2).build().unwrap();
    let sched = pool.scheduler();
    let r = sync_wait(sched.schedule().then(move |()| {
        drop(pool);
        7
    }));
    assert_eq!(r, Ok(Some(7)));
    assert_eq!(sync_wait(sched.schedule()), Ok(None));
    let _ = WAIT;
}
