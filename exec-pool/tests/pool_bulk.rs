//! Parallel `bulk` / `bulk_chunked`: every index exactly once, adaptive
//! chunks, all channels, panics gathered once, cancellation, shutdown.
#[path = "../../exec-core/tests/common/mod.rs"]
#[allow(clippy::collapsible_if, clippy::type_complexity)]
mod common;
mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use exec_core::{Completion, Scheduler, StopSource, just, sync_wait};
use exec_pool::{ThreadPool, bulk, bulk_chunked};
use support::wait_until;

fn pool() -> ThreadPool {
    ThreadPool::builder().threads(2).build().unwrap()
}

#[test]
fn every_index_runs_exactly_once_and_the_value_is_forwarded() {
    let pool = pool();
    for n in [0usize, 1, 2, 7, 1000, if cfg!(miri) { 50 } else { 100_000 }] {
        let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
        let r = sync_wait(bulk(&pool.scheduler(), just(n * 2), n, |i, v: &usize| {
            assert_eq!(*v, n * 2);
            hits[i].fetch_add(1, Ordering::Relaxed);
        }));
        assert_eq!(r, Ok(Some(n * 2)));
        assert!(
            hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
            "n = {n}"
        );
    }
}

#[test]
fn chunks_are_disjoint_cover_the_range_and_adapt() {
    let pool = pool();
    let n = if cfg!(miri) { 100 } else { 100_000 };
    let chunks = Mutex::new(Vec::new());
    sync_wait(bulk_chunked(&pool.scheduler(), just(()), n, |r, &()| {
        chunks.lock().unwrap().push(r);
    }))
    .unwrap()
    .unwrap();
    let mut chunks = chunks.into_inner().unwrap();
    chunks.sort_by_key(|r| r.start);
    let mut expect = 0;
    for r in &chunks {
        assert_eq!(r.start, expect);
        assert!(r.end > r.start);
        expect = r.end;
    }
    assert_eq!(expect, n);
    // Not one static chunk per worker: chunks shrink as the work runs out.
    assert!(chunks.len() > 2 * 2, "{} chunks", chunks.len());
    assert!(chunks.first().unwrap().len() > chunks.last().unwrap().len());
}

#[test]
fn work_is_spread_over_the_workers() {
    let pool = pool();
    let threads = Mutex::new(HashSet::new());
    sync_wait(bulk(&pool.scheduler(), just(()), 64, |_, &()| {
        threads.lock().unwrap().insert(std::thread::current().id());
        std::thread::sleep(Duration::from_millis(if cfg!(miri) { 0 } else { 2 }));
    }))
    .unwrap();
    if !cfg!(miri) {
        assert_eq!(threads.into_inner().unwrap().len(), 2);
    }
}

#[test]
fn from_a_worker_borrowing_a_local_slice() {
    let pool = pool();
    let input: Vec<u64> = (0..1000).collect();
    let out: Vec<AtomicUsize> = (0..1000).map(|_| AtomicUsize::new(0)).collect();
    // The input completes on a worker: one helper runs inline there.
    let r = sync_wait(bulk(
        &pool.scheduler(),
        pool.scheduler().schedule(),
        input.len(),
        |i, &()| {
            out[i].store(input[i] as usize * 2, Ordering::Relaxed);
        },
    ));
    assert_eq!(r, Ok(Some(())));
    assert!(
        out.iter()
            .enumerate()
            .all(|(i, o)| o.load(Ordering::Relaxed) == i * 2)
    );
}

#[test]
fn error_stopped_and_panic_of_the_input_are_forwarded_without_calling_f() {
    let pool = pool();
    let drops = DropCounter::new();
    let called = Arc::new(AtomicBool::new(false));

    let held = drops.track(());
    let c = called.clone();
    let (op, rec) = start(bulk(
        &pool.scheduler(),
        Fixed::<(), &str>(Completion::Error("bad")),
        10,
        move |_, &()| {
            let _ = &held;
            c.store(true, Ordering::SeqCst);
        },
    ));
    assert_eq!(rec.expect_error(), "bad");
    assert_eq!(drops.alive(), 0, "f dropped before the error was forwarded");
    op.finish();

    let c = called.clone();
    let (op, rec) = start(bulk(
        &pool.scheduler(),
        Fixed::<(), ()>(Completion::Stopped),
        10,
        move |_, &()| c.store(true, Ordering::SeqCst),
    ));
    rec.expect_stopped();
    op.finish();

    let c = called.clone();
    let input = exec_core::SenderExt::then(just(()), |()| -> u8 { panic!("input") });
    let (op, rec) = start(bulk(&pool.scheduler(), input, 10, move |_, _: &u8| {
        c.store(true, Ordering::SeqCst)
    }));
    assert_eq!(rec.expect_panic(), "input");
    op.finish();
    assert!(!called.load(Ordering::SeqCst));
}

#[test]
fn panics_in_f_are_delivered_exactly_once_and_workers_survive() {
    let pool = pool();
    let drops = DropCounter::new();
    let value = drops.track(5);
    let (r, rec) = recorder();
    let op = start_with(
        bulk(
            &pool.scheduler(),
            just(value),
            1000,
            |i, _: &Tracked<i32>| {
                if i % 3 == 0 {
                    panic!("index {i}");
                }
            },
        ),
        r,
        &rec,
    );
    wait_until(|| rec.is_complete());
    let msg = rec.expect_panic();
    assert!(msg.starts_with("index "), "{msg}");
    assert_eq!(rec.completions(), 1);
    assert_eq!(drops.alive(), 0, "the input value was dropped");
    op.finish();
    assert_eq!(pool.contained_panics(), 0);
    // Through sync_wait the payload is re-raised.
    let r = std::panic::catch_unwind(|| {
        sync_wait(bulk(&pool.scheduler(), just(()), 10, |i, &()| {
            if i == 7 {
                panic!("seven")
            }
        }))
    });
    assert_eq!(payload_message(r.unwrap_err().as_ref()), "seven");
    assert_eq!(
        sync_wait(bulk(&pool.scheduler(), just(1), 10, |_, _| {})),
        Ok(Some(1))
    );
}

#[test]
fn stop_request_skips_remaining_chunks_and_completes_stopped() {
    let pool = pool();
    let source = Arc::new(StopSource::new());
    let ran = Arc::new(AtomicUsize::new(0));
    let n = if cfg!(miri) { 200 } else { 100_000 };
    let (r, rec) = recorder_with_stop(source.clone());
    let s2 = source.clone();
    let ran_ref = ran.clone();
    let op = start_with(
        bulk(&pool.scheduler(), just(()), n, move |i, &()| {
            ran_ref.fetch_add(1, Ordering::Relaxed);
            if i == 10 {
                s2.request_stop();
            }
        }),
        r,
        &rec,
    );
    wait_until(|| rec.is_complete());
    rec.expect_stopped();
    assert!(ran.load(Ordering::Relaxed) < n);
    op.finish();
}

#[test]
fn shutdown_with_a_bulk_in_flight_completes_it_once() {
    for _ in 0..if cfg!(miri) { 2 } else { 100 } {
        let pool = pool();
        let (r, rec) = recorder::<(), std::convert::Infallible>();
        let op = start_with(
            bulk(&pool.scheduler(), just(()), 10_000, |_, &()| {
                std::hint::black_box(0);
            }),
            r,
            &rec,
        );
        drop(pool);
        wait_until(|| rec.is_complete());
        assert_eq!(rec.completions(), 1);
        match rec.take() {
            Seen::Value(()) | Seen::Stopped => {}
            other => panic!("{other:?}"),
        }
        op.finish();
    }
}
