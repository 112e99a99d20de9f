//! `PoolScheduler::schedule`: where it completes, the stopped channel, the
//! sync_wait-on-a-worker trap, borrowing, scheduling from workers.
#[path = "../../exec-core/tests/common/mod.rs"]
#[allow(clippy::collapsible_if, clippy::type_complexity)]
mod common;
mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use exec_core::{Scheduler, SenderExt, StopSource, just, sync_wait};
use exec_pool::{BlockingScheduler, PoolScheduler, ThreadPool};
use support::wait_until;

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn handles_are_send_sync_and_compare_by_pool() {
    assert_send_sync::<PoolScheduler>();
    assert_send_sync::<BlockingScheduler>();
    assert_send_sync::<ThreadPool>();
    let a = ThreadPool::builder().threads(1).build().unwrap();
    let b = ThreadPool::builder().threads(1).build().unwrap();
    assert_eq!(a.scheduler(), a.scheduler().clone());
    assert_ne!(a.scheduler(), b.scheduler());
}

#[test]
fn completes_on_a_worker() {
    let pool = ThreadPool::builder()
        .threads(2)
        .thread_name("t")
        .build()
        .unwrap();
    let sched = pool.scheduler();
    let s2 = sched.clone();
    let (name, on_worker) = sync_wait(sched.schedule().then(move |()| {
        (
            std::thread::current().name().unwrap().to_owned(),
            s2.is_worker_thread(),
        )
    }))
    .unwrap()
    .unwrap();
    assert!(name == "t-0" || name == "t-1", "{name}");
    assert!(on_worker);
    assert!(!sched.is_worker_thread());
}

#[test]
fn borrows_a_local_vec_without_static() {
    let pool = ThreadPool::builder().threads(2).build().unwrap();
    let data: Vec<u64> = (0..1000).collect();
    let mut out = Vec::new();
    let sum = sync_wait(pool.scheduler().schedule().then(|()| {
        out.push(data.len());
        data.iter().sum::<u64>()
    }));
    assert_eq!(sum, Ok(Some(499_500)));
    assert_eq!(out, [1000]);
}

#[test]
fn stop_requested_before_start_completes_stopped_and_skips_closure() {
    let pool = ThreadPool::builder().threads(1).build().unwrap();
    let source = Arc::new(StopSource::new());
    source.request_stop();
    let called = Arc::new(AtomicUsize::new(0));
    let c = called.clone();
    let (r, rec) = recorder_with_stop(source);
    let op = start_with(
        pool.scheduler()
            .schedule()
            .then(move |()| c.fetch_add(1, Ordering::SeqCst)),
        r,
        &rec,
    );
    wait_until(|| rec.is_complete());
    rec.expect_stopped();
    assert_eq!(called.load(Ordering::SeqCst), 0);
    op.finish();
}

#[test]
fn value_channel_through_recorder() {
    let pool = ThreadPool::builder().threads(2).build().unwrap();
    let (op, rec) = start(pool.scheduler().schedule().then(|()| 5));
    wait_until(|| rec.is_complete());
    assert_eq!(rec.expect_value(), 5);
    op.finish();
}

#[test]
fn sync_wait_on_a_worker_panics_with_a_clear_message() {
    let pool = ThreadPool::builder().threads(1).build().unwrap();
    let result = std::panic::catch_unwind(|| {
        sync_wait(pool.scheduler().schedule().then(|()| sync_wait(just(1))))
    });
    let payload = result.expect_err("must panic");
    let msg = payload_message(payload.as_ref());
    assert!(msg.contains("sync_wait"), "{msg}");
    assert!(msg.contains("an exec-pool worker"), "{msg}");
    // The worker survived.
    assert_eq!(
        sync_wait(pool.scheduler().schedule().then(|()| 3)),
        Ok(Some(3))
    );
    assert_eq!(pool.contained_panics(), 0);
}

#[test]
fn hooks_run_on_every_worker() {
    let started = Arc::new(Mutex::new(HashSet::new()));
    let stopped = Arc::new(AtomicUsize::new(0));
    let (s, t) = (started.clone(), stopped.clone());
    let pool = ThreadPool::builder()
        .threads(2)
        .thread_name("hook")
        .stack_size(512 * 1024)
        .on_thread_start(move || {
            s.lock()
                .unwrap()
                .insert(std::thread::current().name().unwrap().to_owned());
        })
        .on_thread_stop(move || {
            t.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    assert_eq!(sync_wait(pool.scheduler().schedule()), Ok(Some(())));
    drop(pool);
    let names = started.lock().unwrap().clone();
    assert_eq!(
        names,
        HashSet::from(["hook-0".to_owned(), "hook-1".to_owned()])
    );
    assert_eq!(stopped.load(Ordering::SeqCst), 2);
}

#[test]
fn many_outside_threads_schedule_concurrently() {
    let pool = ThreadPool::builder().threads(2).build().unwrap();
    let n = if cfg!(miri) { 3 } else { 200 };
    std::thread::scope(|s| {
        for t in 0..4 {
            let sched = pool.scheduler();
            s.spawn(move || {
                for i in 0..n {
                    assert_eq!(
                        sync_wait(sched.schedule().then(|()| t * i)),
                        Ok(Some(t * i))
                    );
                }
            });
        }
    });
}

#[test]
fn scheduling_from_workers_runs_everything_and_wakes_idle_workers() {
    // A job on a worker schedules more work (LIFO slot, local queue): all of
    // it runs, and the other worker joins in (work-conserving).
    let pool = ThreadPool::builder().threads(2).build().unwrap();
    let sched = pool.scheduler();
    let counts = support::Counts::new();
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let n = if cfg!(miri) { 20 } else { 2000 };
    let (s2, c2, seen2) = (sched.clone(), counts.clone(), seen.clone());
    support::spawn(&sched, &counts, None, move || {
        for _ in 0..n {
            let seen = seen2.clone();
            support::spawn(&s2, &c2, None, move || {
                seen.lock().unwrap().insert(std::thread::current().id());
                std::thread::sleep(Duration::from_micros(if cfg!(miri) { 0 } else { 20 }));
            });
        }
    });
    counts.wait_all(Duration::from_secs(60));
    assert_eq!(counts.values.load(Ordering::SeqCst), n + 1);
    if !cfg!(miri) {
        assert_eq!(seen.lock().unwrap().len(), 2, "the idle worker stole work");
    }
}

#[test]
fn work_in_a_busy_workers_lifo_slot_is_taken_by_an_idle_worker() {
    // stdexec#1305: a job schedules a continuation (into its LIFO slot) and
    // then keeps its worker busy until the continuation has run. Only the
    // other, idle worker can run it: the pool must wake it and let it steal.
    let pool = ThreadPool::builder().threads(2).build().unwrap();
    let sched = pool.scheduler();
    let counts = support::Counts::new();
    let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stolen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for _ in 0..if cfg!(miri) { 1 } else { 20 } {
        ran.store(false, Ordering::SeqCst);
        // Let both workers go idle (and park) first.
        std::thread::sleep(Duration::from_millis(if cfg!(miri) { 0 } else { 2 }));
        let (s2, c2, r2, st2) = (sched.clone(), counts.clone(), ran.clone(), stolen.clone());
        support::spawn(&sched, &counts, None, move || {
            let r3 = r2.clone();
            support::spawn(&s2, &c2, None, move || r3.store(true, Ordering::SeqCst));
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !r2.load(Ordering::SeqCst) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "continuation never ran"
                );
                std::thread::yield_now();
            }
            st2.store(true, Ordering::SeqCst);
        });
        counts.wait_all(Duration::from_secs(30));
        assert!(stolen.load(Ordering::SeqCst));
    }
    assert_eq!(
        pool.contained_panics(),
        0,
        "no timeout assertion fired on a worker"
    );
}

#[test]
fn a_job_that_keeps_rescheduling_itself_gives_queued_work_a_turn() {
    // One worker. B is queued behind a loop A that reschedules itself (into
    // the LIFO slot) until B has run: A must leave the slot for the back of
    // the queue after a few turns, or B never runs.
    let pool = ThreadPool::builder().threads(1).build().unwrap();
    let sched = pool.scheduler();
    let scope = Arc::new(exec_core::AsyncScope::new());
    let b_ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let turns = Arc::new(AtomicUsize::new(0));
    let spawned = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (s2, sc2, b2, t2) = (sched.clone(), scope.clone(), b_ran.clone(), turns.clone());
    let sp2 = spawned.clone();
    scope.spawn(sched.schedule().then(move |()| {
        // On the worker: B fills the LIFO slot, then A's first schedule
        // displaces it into the local queue.
        let b3 = b2.clone();
        sc2.spawn(
            s2.schedule()
                .then(move |()| b3.store(true, Ordering::SeqCst)),
        );
        sc2.spawn(s2.schedule().repeat_effect_until(move |()| {
            // (Bounded, so that a starving B fails the assertion below
            // instead of hanging the test.)
            t2.fetch_add(1, Ordering::SeqCst) >= 100_000 || b2.load(Ordering::SeqCst)
        }));
        sp2.store(true, Ordering::SeqCst);
    }));
    // `join` closes the scope: only once both are in it.
    wait_until(|| spawned.load(Ordering::SeqCst));
    assert_eq!(sync_wait(scope.join()), Ok(Some(())));
    assert!(b_ran.load(Ordering::SeqCst));
    let turns = turns.load(Ordering::SeqCst);
    assert!(turns < 10, "B waited {turns} turns of A");
}
