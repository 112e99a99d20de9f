//! The adapters against the native tokio path, measured in the same run.
//!
//! `cargo bench -p exec-adapters --features tokio --bench adapters_vs`
//!
//! - `schedule(tokio).then(f)` awaited from a tokio task vs
//!   `tokio::spawn(f)` awaited: both hop to a worker and back.
//! - `just(x).then(f)` awaited (one heap block per await) vs a boxed
//!   `async` block awaited (one allocation, no hop): the bare cost of
//!   `into_future`.
//! - a tokio future run as a sender by `sync_wait` (from a plain thread)
//!   vs the same future under `Runtime::block_on`. The future yields once:
//!   its self-wake sends the operation through `sync_wait`'s run loop (the
//!   receiver's scheduler), where `block_on` re-polls in place.
//!
//! - `schedule(pool).then(f)` awaited from a tokio task (exec-pool, 2
//!   workers) vs `tokio::spawn(f)` awaited: the target row; and vs
//!   `tokio::task::spawn_blocking(f)` awaited, tokio's own hop to another
//!   thread pool and back (the pool row pays two cross-pool wake-ups,
//!   `tokio::spawn` from a worker none); and vs the same round trip run by
//!   `sync_wait` from a plain thread (exec alone, no tokio, no adapter).
//! - a tokio future run by `from_future_on(pool, …)` with the runtime
//!   entered, awaited from a tokio task, vs the same future spawned on tokio.
//!
//! - both pool rows again with `.spin_for(20µs)` on the future: the tokio
//!   thread busy-waits for the pool's completion instead of parking, which
//!   removes the tokio-side wake-up (the cost that dominates the plain rows).
//!
//! Prints ns per operation (best of 5 rounds) and the ratio adapter / native.
use std::hint::black_box;
use std::time::{Duration, Instant};

use exec_adapters::{SenderFutureExt, TokioScheduler, from_future_on};
use exec_core::{Scheduler, SenderExt, just, sync_wait};

/// The `spin_for` budget of the spinning rows: about what parking and
/// waking a thread costs here.
const SPIN: Duration = Duration::from_micros(20);

fn work(x: u64) -> u64 {
    black_box(x)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(7)
}

/// Best-of-5 time per iteration of `run(iters)`.
fn measure(iters: u64, mut run: impl FnMut(u64)) -> Duration {
    run(iters / 10); // warm-up
    (0..5)
        .map(|_| {
            let t0 = Instant::now();
            run(iters);
            t0.elapsed() / iters as u32
        })
        .min()
        .unwrap()
}

fn report(name: &str, adapter: Duration, native: Duration) {
    println!(
        "{name:<48} adapter {:>8.0} ns  native {:>8.0} ns  ratio {:.2}",
        adapter.as_nanos() as f64,
        native.as_nanos() as f64,
        adapter.as_secs_f64() / native.as_secs_f64()
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let n = if quick { 100 } else { 50_000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sch = TokioScheduler::new(rt.handle().clone());

    let adapter = measure(n, |iters| {
        let sch = sch.clone();
        rt.block_on(async move {
            tokio::spawn(async move {
                let mut acc = 0u64;
                for i in 0..iters {
                    acc ^= sch
                        .schedule()
                        .then(move |()| work(i))
                        .into_future()
                        .await
                        .unwrap();
                }
                black_box(acc)
            })
            .await
            .unwrap()
        });
    });
    let native = measure(n, |iters| {
        rt.block_on(async move {
            tokio::spawn(async move {
                let mut acc = 0u64;
                for i in 0..iters {
                    acc ^= tokio::spawn(async move { work(i) }).await.unwrap();
                }
                black_box(acc)
            })
            .await
            .unwrap()
        });
    });
    report(
        "schedule(tokio).then(f).await vs spawn(f).await",
        adapter,
        native,
    );

    let pool = exec_pool::ThreadPool::builder().threads(2).build().unwrap();
    let adapter = measure(n, |iters| {
        let pool_sch = pool.scheduler();
        rt.block_on(async move {
            tokio::spawn(async move {
                let mut acc = 0u64;
                for i in 0..iters {
                    acc ^= pool_sch
                        .schedule()
                        .then(move |()| work(i))
                        .into_future()
                        .await
                        .unwrap();
                }
                black_box(acc)
            })
            .await
            .unwrap()
        });
    });
    report(
        "schedule(pool).then(f).await vs spawn(f).await",
        adapter,
        native,
    );
    // The same await with `spin_for(SPIN)`: the tokio task's thread waits
    // for the pool's completion instead of parking (no wake-up to pay).
    let spun = measure(n, |iters| {
        let pool_sch = pool.scheduler();
        rt.block_on(async move {
            tokio::spawn(async move {
                let mut acc = 0u64;
                for i in 0..iters {
                    acc ^= pool_sch
                        .schedule()
                        .then(move |()| work(i))
                        .into_future()
                        .spin_for(SPIN)
                        .await
                        .unwrap();
                }
                black_box(acc)
            })
            .await
            .unwrap()
        });
    });
    report("  the same .spin_for(20µs) vs spawn(f).await", spun, native);
    // The same cross-thread-pool hop, done by tokio itself: a reference for
    // what waking another pool's parked thread and back costs here.
    let hop = measure(n, |iters| {
        rt.block_on(async move {
            tokio::spawn(async move {
                let mut acc = 0u64;
                for i in 0..iters {
                    acc ^= tokio::task::spawn_blocking(move || work(i)).await.unwrap();
                }
                black_box(acc)
            })
            .await
            .unwrap()
        });
    });
    report(
        "schedule(pool).then(f).await vs spawn_blocking(f).await",
        adapter,
        hop,
    );
    // The same pool round trip driven by exec itself, from a plain thread:
    // what the hop costs without tokio or the adapter (sync_wait's run loop
    // is woken by the pool worker, as the tokio task is above).
    let exec_only = measure(n, |iters| {
        let pool_sch = pool.scheduler();
        let mut acc = 0u64;
        for i in 0..iters {
            acc ^= sync_wait(pool_sch.schedule().then(move |()| work(i)))
                .unwrap()
                .unwrap();
        }
        black_box(acc);
    });
    report(
        "schedule(pool).then(f): .await in tokio vs sync_wait",
        adapter,
        exec_only,
    );

    let adapter = measure(n, |iters| {
        let (pool_sch, sch) = (pool.scheduler(), sch.clone());
        rt.block_on(async move {
            tokio::spawn(async move {
                let mut acc = 0u64;
                for i in 0..iters {
                    let fut = sch.enter(async move {
                        tokio::task::yield_now().await;
                        work(i)
                    });
                    acc ^= from_future_on(pool_sch.clone(), fut)
                        .into_future()
                        .await
                        .unwrap();
                }
                black_box(acc)
            })
            .await
            .unwrap()
        });
    });
    let native = measure(n, |iters| {
        rt.block_on(async move {
            tokio::spawn(async move {
                let mut acc = 0u64;
                for i in 0..iters {
                    acc ^= tokio::spawn(async move {
                        tokio::task::yield_now().await;
                        work(i)
                    })
                    .await
                    .unwrap();
                }
                black_box(acc)
            })
            .await
            .unwrap()
        });
    });
    report(
        "tokio fut: from_future_on(pool) vs tokio::spawn",
        adapter,
        native,
    );
    let spun = measure(n, |iters| {
        let (pool_sch, sch) = (pool.scheduler(), sch.clone());
        rt.block_on(async move {
            tokio::spawn(async move {
                let mut acc = 0u64;
                for i in 0..iters {
                    let fut = sch.enter(async move {
                        tokio::task::yield_now().await;
                        work(i)
                    });
                    acc ^= from_future_on(pool_sch.clone(), fut)
                        .into_future()
                        .spin_for(SPIN)
                        .await
                        .unwrap();
                }
                black_box(acc)
            })
            .await
            .unwrap()
        });
    });
    report("  the same .spin_for(20µs) vs tokio::spawn", spun, native);

    let adapter = measure(n * 4, |iters| {
        rt.block_on(async move {
            let mut acc = 0u64;
            for i in 0..iters {
                acc ^= just(i).then(work).into_future().await.unwrap();
            }
            black_box(acc)
        });
    });
    let native = measure(n * 4, |iters| {
        rt.block_on(async move {
            let mut acc = 0u64;
            for i in 0..iters {
                acc ^= Box::pin(async move { work(i) }).await;
            }
            black_box(acc)
        });
    });
    report(
        "just(x).then(f).await vs Box::pin(async { f(x) }).await",
        adapter,
        native,
    );

    let adapter = measure(n, |iters| {
        let mut acc = 0u64;
        for i in 0..iters {
            let fut = async move {
                tokio::task::yield_now().await;
                work(i)
            };
            acc ^= sync_wait(sch.from_future(fut)).unwrap().unwrap();
        }
        black_box(acc);
    });
    let native = measure(n, |iters| {
        let mut acc = 0u64;
        for i in 0..iters {
            acc ^= rt.block_on(async move {
                tokio::task::yield_now().await;
                work(i)
            });
        }
        black_box(acc);
    });
    report(
        "sync_wait(from_future(tokio fut)) vs block_on",
        adapter,
        native,
    );

    let adapter = measure(n, |iters| {
        let mut acc = 0u64;
        for i in 0..iters {
            acc ^= sync_wait(exec_adapters::from_future(async move { work(i) }))
                .unwrap()
                .unwrap();
        }
        black_box(acc);
    });
    let native = measure(n, |iters| {
        let mut acc = 0u64;
        for i in 0..iters {
            acc ^= futures::executor::block_on(async move { work(i) });
        }
        black_box(acc);
    });
    report(
        "sync_wait(from_future(ready)) vs futures block_on",
        adapter,
        native,
    );
}
