//! The pool side of `benches/pool_vs.rs`'s `fib_join`, for instruction
//! counting without tokio and rayon in the process:
//!
//! ```text
//! cargo build --release -p exec-pool --example fib_pool_cost
//! valgrind --tool=callgrind target/release/examples/fib_pool_cost <n> <threads> <reps> [mode]
//! ```
//!
//! runs fib(n) `reps` times (default 1) on a pool of `threads` workers
//! (default 1, so callgrind's serialised threads do not count an idle
//! worker's spinning) and prints the number of forks per run; run with two
//! `reps` and divide the difference (minus `fib_seq`'s share) by the forks
//! in between: that removes start-up and the first run's growth of the
//! frame cache. `mode` picks the composition:
//! - `pool` (default): the benchmark's `exec_fib`, started from outside;
//! - `pool_on_worker`: the same, started on a worker;
//! - `inline`: the benchmark's `exec_fib_inline` (no pool: what the
//!   composition costs by itself) on the calling thread;
//! - `inline_on_worker`: `exec_fib_inline` run on a worker.

use core::convert::Infallible;

use exec_core::{AnySender, Scheduler, SenderExt, just, sync_wait, when_all};
use exec_pool::{PoolScheduler, ThreadPool};

fn fib_seq(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib_seq(n - 1) + fib_seq(n - 2)
    }
}

fn forks(n: u64) -> u64 {
    if n < 10 {
        0
    } else {
        1 + forks(n - 1) + forks(n - 2)
    }
}

/// The same recursion as the benchmark's `exec_fib`.
fn exec_fib(sched: PoolScheduler, n: u64) -> AnySender<u64, Infallible> {
    if n < 10 {
        return AnySender::new(just(fib_seq(n)));
    }
    let s1 = sched.clone();
    let left = sched.schedule().let_value(move |()| exec_fib(s1, n - 1));
    let right = exec_fib(sched, n - 2);
    AnySender::new(when_all(left, right).then(|(a, b)| a + b))
}

/// The same recursion as the benchmark's `exec_fib_inline`.
fn exec_fib_inline(n: u64) -> AnySender<u64, Infallible> {
    if n < 10 {
        return AnySender::new(just(fib_seq(n)));
    }
    let left = just(()).let_value(move |()| exec_fib_inline(n - 1));
    let right = exec_fib_inline(n - 2);
    AnySender::new(when_all(left, right).then(|(a, b)| a + b))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(25, |s| s.parse().expect("n"));
    let threads: usize = args.next().map_or(1, |s| s.parse().expect("threads"));
    let reps: u32 = args.next().map_or(1, |s| s.parse().expect("reps"));
    let mode = args.next().unwrap_or_else(|| "pool".into());
    let pool = ThreadPool::builder()
        .threads(threads)
        .build()
        .expect("pool");
    let sched = pool.scheduler();
    let run: Box<dyn Fn() -> AnySender<u64, Infallible>> = match mode.as_str() {
        "pool" => Box::new(|| exec_fib(sched.clone(), n)),
        "pool_on_worker" => Box::new(|| {
            let s = sched.clone();
            AnySender::new(sched.schedule().let_value(move |()| exec_fib(s, n)))
        }),
        "inline" => Box::new(|| exec_fib_inline(n)),
        "inline_on_worker" => {
            Box::new(|| AnySender::new(sched.schedule().let_value(move |()| exec_fib_inline(n))))
        }
        other => panic!("unknown mode {other:?} (pool, pool_on_worker, inline, inline_on_worker)"),
    };
    let t = std::time::Instant::now();
    for _ in 0..reps {
        assert_eq!(sync_wait(run()), Ok(Some(fib_seq(n))));
    }
    let el = t.elapsed();
    let f = forks(n);
    println!(
        "fib({n}), {mode}, {threads} worker(s): {f} forks, {:.1} ns/fork",
        el.as_nanos() as f64 / (f * u64::from(reps)) as f64
    );
    drop(run);
    pool.shutdown();
}
