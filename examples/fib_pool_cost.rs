//! Instruction cost of `benches/pool_vs.rs`'s `fib_join` composition on a
//! two-worker pool, for callgrind: `valgrind --tool=callgrind
//! target/release/examples/fib_pool_cost <n> <rounds>`; divide the total by
//! `rounds * forks` (printed), after subtracting a run with fewer rounds to
//! remove the start-up cost. Callgrind serialises the threads, so this counts
//! instructions, not contention.

use std::convert::Infallible;

use exec::pool::{PoolScheduler, ThreadPool};
use exec::{AnySender, Scheduler, SenderExt, just, sync_wait, when_all};

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

fn fib(sched: PoolScheduler, n: u64) -> AnySender<u64, Infallible> {
    if n < 10 {
        return AnySender::new(just(fib_seq(n)));
    }
    let s1 = sched.clone();
    let left = sched.schedule().let_value(move |()| fib(s1, n - 1));
    let right = fib(sched, n - 2);
    AnySender::new(when_all(left, right).then(|(a, b)| a + b))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(25, |s| s.parse().expect("n"));
    let rounds: u64 = args.next().map_or(1, |s| s.parse().expect("rounds"));
    let pool = ThreadPool::builder().threads(2).build().unwrap();
    let sched = pool.scheduler();
    let t = std::time::Instant::now();
    for _ in 0..rounds {
        assert_eq!(sync_wait(fib(sched.clone(), n)), Ok(Some(fib_seq(n))));
    }
    let f = forks(n) * rounds;
    println!(
        "forks {f}, {:.1} ns per fork",
        t.elapsed().as_nanos() as f64 / f as f64
    );
}
