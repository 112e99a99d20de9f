//! The pool side of `benches/pool_vs.rs`'s `fib_join`, for instruction
//! counting without tokio and rayon in the process:
//! `valgrind --tool=callgrind target/release/examples/fib_pool_cost <n> <threads>
//! <reps>` runs fib(n) `reps` times (default 1) on a pool of `threads`
//! workers (default 1, so callgrind's serialised threads do not count an
//! idle worker's spinning) and prints the number of forks per run; run with
//! two `reps` and divide the difference by the forks in between (this
//! removes start-up and the first run's growth of the frame cache).

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

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(25, |s| s.parse().expect("n"));
    let threads: usize = args.next().map_or(1, |s| s.parse().expect("threads"));
    let reps: u32 = args.next().map_or(1, |s| s.parse().expect("reps"));
    let pool = ThreadPool::builder()
        .threads(threads)
        .build()
        .expect("pool");
    let sched = pool.scheduler();
    let t = std::time::Instant::now();
    for _ in 0..reps {
        let got = sync_wait(exec_fib(sched.clone(), n));
        assert_eq!(got, Ok(Some(fib_seq(n))));
    }
    let el = t.elapsed();
    let f = forks(n);
    println!(
        "fib({n}) on {threads} worker(s): {f} forks, {:.1} ns/fork",
        el.as_nanos() as f64 / (f * u64::from(reps)) as f64
    );
    pool.shutdown();
}
