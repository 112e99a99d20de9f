//! exec-core's zero-allocation chains against the same logic written with
//! futures-rs combinators on `futures::executor::block_on`.
//!
//! Run: `cargo bench --bench core_vs_futures`. Criterion prints both timings
//! per group; the ratio is exec / futures.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use futures::FutureExt;

use exec::{SenderExt, just, sync_wait, when_all};

fn then_chain(c: &mut Criterion) {
    let mut g = c.benchmark_group("then_chain");
    g.bench_function("exec sync_wait", |b| {
        b.iter(|| {
            let x = black_box(20u64);
            sync_wait(just(x).then(|x| x * 2).then(|x| x + 1).then(|x| x ^ 3)).unwrap()
        })
    });
    g.bench_function("futures block_on", |b| {
        b.iter(|| {
            let x = black_box(20u64);
            futures::executor::block_on(
                futures::future::ready(x)
                    .map(|x| x * 2)
                    .map(|x| x + 1)
                    .map(|x| x ^ 3),
            )
        })
    });
    g.finish();
}

/// The chain: `sync_wait(when_all(just(1).then(..), just(2).let_value(..)).then(..))`.
fn when_all_let_value(c: &mut Criterion) {
    let mut g = c.benchmark_group("when_all_let_value");
    g.bench_function("exec sync_wait", |b| {
        b.iter(|| {
            let (x, y) = black_box((1u64, 2u64));
            sync_wait(
                when_all(just(x).then(|x| x + 1), just(y).let_value(|y| just(y * 10)))
                    .then(|(a, b)| a + b),
            )
            .unwrap()
        })
    });
    g.bench_function("futures block_on", |b| {
        b.iter(|| {
            let (x, y) = black_box((1u64, 2u64));
            futures::executor::block_on(
                futures::future::join(
                    futures::future::ready(x).map(|x| x + 1),
                    futures::future::ready(y).then(|y| futures::future::ready(y * 10)),
                )
                .map(|(a, b)| a + b),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, then_chain, when_all_let_value);
criterion_main!(benches);
