//! Profiling aid for issue 3 (`fib_join`): the recursive fork-join of
//! `benches/pool_vs.rs` (`exec_fib`, `exec_fib_inline`), run `ROUNDS` times
//! on a 2-worker pool (`pool`), on one worker (`pool1`) or on the calling
//! thread with no pool (`inline`).
//!
//! Instructions per fork, without the sequential leaves (`fib_seq`): run it
//! under callgrind with 1 and with 11 rounds and divide the difference,
//! minus `fib_seq`'s, by 10 × forks(22) = 6,090:
//!
//! ```text
//! cargo build --release --example fib_profile
//! valgrind --tool=callgrind target/release/examples/fib_profile pool 22 1
//! valgrind --tool=callgrind target/release/examples/fib_profile pool 22 11
//! ```
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

fn exec_fib(sched: PoolScheduler, n: u64) -> AnySender<u64, Infallible> {
    if n < 10 {
        return AnySender::new(just(fib_seq(n)));
    }
    let s1 = sched.clone();
    let left = sched.schedule().let_value(move |()| exec_fib(s1, n - 1));
    let right = exec_fib(sched, n - 2);
    AnySender::new(when_all(left, right).then(|(a, b)| a + b))
}

fn exec_fib_inline(n: u64) -> AnySender<u64, Infallible> {
    if n < 10 {
        return AnySender::new(just(fib_seq(n)));
    }
    let left = just(()).let_value(move |()| exec_fib_inline(n - 1));
    let right = exec_fib_inline(n - 2);
    AnySender::new(when_all(left, right).then(|(a, b)| a + b))
}

/// The composition of `exec_fib_inline`, started on a pool worker.
fn on_worker(sched: &PoolScheduler, n: u64) -> AnySender<u64, Infallible> {
    AnySender::new(sched.schedule().let_value(move |()| exec_fib_inline(n)))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "pool".into());
    let n: u64 = args.next().map_or(22, |a| a.parse().unwrap());
    let rounds: usize = args.next().map_or(1, |a| a.parse().unwrap());
    let expect = fib_seq(n);
    match mode.as_str() {
        "inline" => {
            for _ in 0..rounds {
                assert_eq!(sync_wait(exec_fib_inline(n)), Ok(Some(expect)));
            }
        }
        "inline_on_worker" => {
            let pool = ThreadPool::builder().threads(2).build().unwrap();
            let sched = pool.scheduler();
            for _ in 0..rounds {
                assert_eq!(sync_wait(on_worker(&sched, n)), Ok(Some(expect)));
            }
        }
        "pool_on_worker" => {
            let pool = ThreadPool::builder().threads(2).build().unwrap();
            let sched = pool.scheduler();
            for _ in 0..rounds {
                let s2 = sched.clone();
                let s = sched.schedule().let_value(move |()| exec_fib(s2, n));
                assert_eq!(sync_wait(s), Ok(Some(expect)));
            }
        }
        _ => {
            let threads = if mode == "pool1" { 1 } else { 2 };
            let pool = ThreadPool::builder().threads(threads).build().unwrap();
            let sched = pool.scheduler();
            for _ in 0..rounds {
                assert_eq!(sync_wait(exec_fib(sched.clone(), n)), Ok(Some(expect)));
            }
        }
    }
}
