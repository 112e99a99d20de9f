//! The pool's hot paths in isolation, for `perf stat`/`perf record`:
//! the exec side of `benches/pool_vs.rs`'s `chained_spawn`, `yield_many`,
//! `ping_pong`, `when_all_fanout` and `pool_roundtrip`, without tokio
//! and rayon in the process.
//!
//! `cargo run --release -p exec-pool --example hot_paths -- yield_many 50 [threads]`
//! runs the named scenario (`chained_spawn`, `yield_many`, `spawn_many`,
//! `ping_pong`, `when_all_fanout`, `pool_roundtrip`)
//! the given number of rounds and prints the median wall-clock ns/op and
//! the CPU time all threads of the process used per op (less sensitive to
//! other processes on a busy machine; includes idle workers' spinning).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use exec_core::{AsyncScope, Scheduler, SenderExt, oneshot, sync_wait, when_all_vec};
use exec_pool::{PoolScheduler, ThreadPool};

struct Latch {
    remaining: AtomicUsize,
    done: Mutex<bool>,
    cv: Condvar,
}

impl Latch {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Latch {
            remaining: AtomicUsize::new(n),
            done: Mutex::new(false),
            cv: Condvar::new(),
        })
    }
    fn count_down(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.done.lock().unwrap() = true;
            self.cv.notify_all();
        }
    }
    fn wait(&self) {
        let mut done = self.done.lock().unwrap();
        while !*done {
            done = self.cv.wait(done).unwrap();
        }
    }
}

fn chain(scope: Arc<AsyncScope<'static>>, sched: PoolScheduler, n: usize, latch: Arc<Latch>) {
    if n == 0 {
        latch.count_down();
    } else {
        let (s2, sc2) = (sched.clone(), scope.clone());
        scope.spawn(
            sched
                .schedule()
                .then(move |()| chain(sc2, s2, n - 1, latch)),
        );
    }
}

/// CPU time used so far by all threads of this process, in ns (Linux
/// `schedstat`; 0 elsewhere).
fn cpu_ns() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "yield_many".into());
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let pool = ThreadPool::builder().threads(threads).build().unwrap();
    let sched = pool.scheduler();
    let (ops, f): (usize, Box<dyn Fn()>) = match which.as_str() {
        "chained_spawn" => (
            1_000,
            Box::new(|| {
                let scope = Arc::new(AsyncScope::new());
                let latch = Latch::new(1);
                chain(scope.clone(), sched.clone(), 1_000, latch.clone());
                latch.wait();
                sync_wait(scope.join()).unwrap();
            }),
        ),
        "yield_many" => (
            200 * 1_000,
            Box::new(|| {
                let scope = AsyncScope::new();
                for _ in 0..200 {
                    scope.spawn(sched.schedule().repeat_n(1_000));
                }
                sync_wait(scope.join()).unwrap();
            }),
        ),
        "spawn_many" => (
            100_000,
            Box::new(|| {
                let scope = AsyncScope::new();
                for _ in 0..100_000 {
                    scope.spawn(sched.schedule());
                }
                sync_wait(scope.join()).unwrap();
            }),
        ),
        "ping_pong" => (
            1_000,
            Box::new(|| {
                // As in `benches/pool_vs.rs`: per round trip, one task waits
                // for a ping and answers with a pong, another sends the ping
                // and waits for the pong; both spawned from this thread.
                let scope = AsyncScope::new();
                for _ in 0..1_000 {
                    let (ping_tx, ping_rx) = oneshot::channel::<()>();
                    let (pong_tx, pong_rx) = oneshot::channel::<()>();
                    scope.spawn(
                        sched
                            .schedule()
                            .with_error::<oneshot::RecvError>()
                            .let_value(move |()| {
                                ping_rx.then(move |()| {
                                    let _ = pong_tx.send(());
                                })
                            })
                            .upon_error(|_| ()),
                    );
                    scope.spawn(
                        sched
                            .schedule()
                            .with_error::<oneshot::RecvError>()
                            .let_value(move |()| {
                                let _ = ping_tx.send(());
                                pong_rx
                            })
                            .upon_error(|_| ()),
                    );
                }
                sync_wait(scope.join()).unwrap();
            }),
        ),
        "when_all_fanout" => (
            1_000,
            Box::new(|| {
                // As in `benches/pool_vs.rs`: 1,000 tiny children of a
                // `when_all_vec`, started from a worker.
                let s = sched.clone();
                let all = sched.schedule().let_value(move |()| {
                    when_all_vec(
                        (0..1_000u64)
                            .map(move |i| s.schedule().then(move |()| std::hint::black_box(i) * 2)),
                    )
                });
                let sum: u64 = sync_wait(all).unwrap().unwrap().iter().sum();
                assert_eq!(sum, 999 * 1_000);
            }),
        ),
        "pool_roundtrip" => (
            1_000,
            Box::new(|| {
                // As in `benches/pool_vs.rs`: `sync_wait` from outside the
                // pool, one tiny job at a time.
                for i in 0..1_000usize {
                    let r = sync_wait(sched.schedule().then(move |()| std::hint::black_box(i) + 1));
                    assert_eq!(r, Ok(Some(i + 1)));
                }
            }),
        ),
        other => panic!("unknown scenario {other}"),
    };
    f();
    let mut wall = Vec::with_capacity(rounds);
    let c = cpu_ns();
    for _ in 0..rounds {
        let t = Instant::now();
        f();
        wall.push(t.elapsed().as_nanos() as f64 / ops as f64);
    }
    let cpu = (cpu_ns() - c) as f64 / (rounds * ops) as f64;
    wall.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{which}: median {:.1} ns/op wall, mean {cpu:.1} ns/op cpu, over {rounds} rounds",
        wall[rounds / 2],
    );
}
