//! Single-threaded cost of the composition primitives, for instruction
//! counting: `valgrind --tool=callgrind target/release/examples/compose_cost
//! <scenario> <iterations>` and divide the total by the iterations (run with
//! two iteration counts and subtract to remove the fixed start-up cost).
//!
//! Scenarios: `base` (`sync_wait(just)`), `then`, `let_value`, `when_all`,
//! `any` (`AnySender` around `just`), `oneshot_wait` / `oneshot_ready` (a
//! oneshot receive spawned into an `AsyncScope`, the value sent after /
//! before it starts), `fib` (the inline fork of
//! `benches/pool_vs.rs`'s fib_join reference: `when_all` + `let_value` +
//! `AnySender` per fork; the iteration count is `n` of fib(n), and the
//! per-fork cost is the total over the number of forks printed).

use core::convert::Infallible;
use std::hint::black_box;

use exec_core::{AnySender, AsyncScope, SenderExt, just, oneshot, sync_wait, when_all};

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

fn fib(n: u64) -> AnySender<u64, Infallible> {
    if n < 10 {
        return AnySender::new(just(fib_seq(n)));
    }
    let left = just(()).let_value(move |()| fib(n - 1));
    let right = fib(n - 2);
    AnySender::new(when_all(left, right).then(|(a, b)| a + b))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().unwrap_or_else(|| "fib".to_owned());
    let n: u64 = args
        .next()
        .map_or(100_000, |s| s.parse().expect("iterations"));
    let t = std::time::Instant::now();
    let mut acc = 0u64;
    let ops = match scenario.as_str() {
        "base" => {
            for i in 0..n {
                acc += sync_wait(just(black_box(i))).unwrap().unwrap();
            }
            n
        }
        "then" => {
            for i in 0..n {
                acc += sync_wait(just(black_box(i)).then(|x| x + 1))
                    .unwrap()
                    .unwrap();
            }
            n
        }
        "let_value" => {
            for i in 0..n {
                acc += sync_wait(just(black_box(i)).let_value(|x| just(x + 1)))
                    .unwrap()
                    .unwrap();
            }
            n
        }
        "when_all" => {
            for i in 0..n {
                let (a, b) = sync_wait(when_all(just(black_box(i)), just(1u64)))
                    .unwrap()
                    .unwrap();
                acc += a + b;
            }
            n
        }
        "any" => {
            for i in 0..n {
                acc += sync_wait(AnySender::<u64, Infallible>::new(just(black_box(i))))
                    .unwrap()
                    .unwrap();
            }
            n
        }
        "fib" => {
            acc = sync_wait(fib(black_box(n))).unwrap().unwrap();
            assert_eq!(acc, fib_seq(n));
            forks(n)
        }
        "oneshot_wait" | "oneshot_ready" => {
            // A task spawned into a scope (whose stop token makes a waiting
            // receive register a stop callback) receives from a oneshot;
            // `oneshot_wait` sends after the task waits, `oneshot_ready`
            // before it starts.
            let ready = scenario == "oneshot_ready";
            let scope = AsyncScope::new();
            for i in 0..n {
                let (tx, rx) = oneshot::channel::<u64>();
                if ready {
                    tx.send(black_box(i)).unwrap();
                    scope.spawn(
                        rx.then(|v| {
                            black_box(v);
                        })
                        .upon_error(|_| ()),
                    );
                } else {
                    scope.spawn(
                        rx.then(|v| {
                            black_box(v);
                        })
                        .upon_error(|_| ()),
                    );
                    tx.send(black_box(i)).unwrap();
                }
            }
            sync_wait(scope.join()).unwrap();
            acc = n;
            n
        }
        other => panic!("unknown scenario {other}"),
    };
    let ns = t.elapsed().as_nanos() as f64 / ops as f64;
    println!("{scenario}: {ops} ops, {ns:.1} ns/op (acc {acc})");
}
