//! exec-core's zero-allocation chain against the same logic written with
//! futures-rs combinators on `futures::executor::block_on`.
//!
//! Run: `cargo bench --bench core_vs_futures`. Criterion prints both timings;
//! the ratio is exec / futures.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use futures::FutureExt;

use exec::{SenderExt, just, sync_wait};

fn chain(c: &mut Criterion) {
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

criterion_group!(benches, chain);
criterion_main!(benches);
