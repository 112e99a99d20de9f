//! Stress: many tasks with random stop requests and stealing, every
//! operation completes exactly once, drop counters return to zero; many
//! create-submit-drop cycles with in-flight work. Bounded in time.
#[path = "../../exec-core/tests/common/mod.rs"]
#[allow(clippy::collapsible_if, clippy::type_complexity)]
mod common;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::DropCounter;
use exec_core::StopSource;
use exec_pool::ThreadPool;
use support::{Counts, spawn};

/// A tiny xorshift, so the test needs no dependency and is reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn a_million_tasks_with_random_stops_complete_exactly_once() {
    let total: usize = if cfg!(miri) { 200 } else { 1_000_000 };
    let pool = ThreadPool::builder().threads(2).build().unwrap();
    let sched = pool.scheduler();
    let counts = Counts::new();
    let drops = DropCounter::new();
    let ran = Arc::new(AtomicUsize::new(0));
    let stop_requested = Arc::new(AtomicUsize::new(0));
    // Tasks that will be started: outside submissions, plus the fan-out of
    // each fan-out task that ran (a stopped one spawns nothing).
    let planned = Arc::new(AtomicUsize::new(0));
    // Two outside submitters and, through fan-out tasks, the workers
    // themselves (local queues, LIFO slot, overflow, stealing).
    let per_thread = total / 2;
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (sched, counts, drops, ran, stop_requested, planned) = (
                sched.clone(),
                counts.clone(),
                drops.clone(),
                ran.clone(),
                stop_requested.clone(),
                planned.clone(),
            );
            s.spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t + 1));
                let mut i = 0;
                while i < per_thread {
                    // Every 100th submission fans out 99 more from a worker.
                    let fan = if i % 100 == 0 && i + 100 <= per_thread {
                        99
                    } else {
                        0
                    };
                    let stop = (rng.next().is_multiple_of(8)).then(|| Arc::new(StopSource::new()));
                    let held = drops.track(());
                    let (s2, c2, d2, r2, p2) = (
                        sched.clone(),
                        counts.clone(),
                        drops.clone(),
                        ran.clone(),
                        planned.clone(),
                    );
                    planned.fetch_add(1, Ordering::Relaxed);
                    let seed = rng.next();
                    spawn(&sched, &counts, stop.clone(), move || {
                        drop(held);
                        r2.fetch_add(1, Ordering::Relaxed);
                        p2.fetch_add(fan, Ordering::Relaxed);
                        let mut rng = Rng(seed | 1);
                        for _ in 0..fan {
                            let held = d2.track(());
                            let r3 = r2.clone();
                            let stop = (rng.next().is_multiple_of(8)).then(|| {
                                let s = Arc::new(StopSource::new());
                                if rng.next().is_multiple_of(2) {
                                    s.request_stop();
                                }
                                s
                            });
                            spawn(&s2, &c2, stop, move || {
                                drop(held);
                                r3.fetch_add(1, Ordering::Relaxed);
                            });
                        }
                    });
                    if let Some(s) = stop
                        && rng.next().is_multiple_of(2)
                    {
                        s.request_stop();
                        stop_requested.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1 + fan;
                }
            });
        }
    });
    counts.wait_all(Duration::from_secs(120));
    let started = counts.started.load(Ordering::SeqCst);
    assert_eq!(started, planned.load(Ordering::SeqCst));
    assert!(started > total / 2, "{started}");
    assert_eq!(counts.completed(), started);
    assert_eq!(
        counts.values.load(Ordering::SeqCst),
        ran.load(Ordering::SeqCst)
    );
    assert!(counts.stopped.load(Ordering::SeqCst) > 0 || cfg!(miri));
    drop(pool);
    assert_eq!(counts.completed(), counts.started.load(Ordering::SeqCst));
    assert_eq!(drops.alive(), 0, "every closure was dropped exactly once");
    assert_eq!(drops.created(), counts.started.load(Ordering::SeqCst));
}

#[test]
fn create_submit_drop_cycles_with_in_flight_work() {
    let cycles = if cfg!(miri) { 3 } else { 1_000 };
    let drops = DropCounter::new();
    let counts = Counts::new();
    for c in 0..cycles {
        let pool = ThreadPool::builder().threads(2).build().unwrap();
        let sched = pool.scheduler();
        for _ in 0..(c % 7) {
            let held = drops.track(());
            let (s2, c2, d2) = (sched.clone(), counts.clone(), drops.clone());
            spawn(&sched, &counts, None, move || {
                drop(held);
                // In flight when the pool is dropped: more work from a worker.
                for _ in 0..3 {
                    let held = d2.track(());
                    spawn(&s2, &c2, None, move || drop(held));
                }
            });
        }
        drop(pool);
        // Drop returned: everything queued or in flight has completed.
        assert_eq!(
            counts.completed(),
            counts.started.load(Ordering::SeqCst),
            "cycle {c}"
        );
        assert_eq!(drops.alive(), 0, "cycle {c}");
    }
}
