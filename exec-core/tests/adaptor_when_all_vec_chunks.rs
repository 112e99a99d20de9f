//! `when_all_vec` with many children: from 64 children on, arrivals are
//! counted per chunk of 32 consecutive children before the shared count.
//! The sizes straddle the threshold and the chunk boundaries; children
//! complete on several threads, in random order and in contiguous runs (as
//! a pool's workers steal them).
mod common;
mod nary_support;

use std::convert::Infallible;
use std::sync::Arc;

use common::*;
use exec_core::{Completion, SenderExt, StopSource, just, when_all_vec};
use nary_support::*;

/// Below, at and above the threshold (64); a short last chunk; many chunks.
const SIZES: &[usize] = if cfg!(miri) {
    &[63, 64, 65, 97]
} else {
    &[63, 64, 65, 100, 1000]
};

fn shuffled(n: usize, rng: &mut Rng) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        v.swap(i, rng.below(i as u64 + 1) as usize);
    }
    v
}

/// Splits `order` into `threads` contiguous parts and, on one thread per
/// part, calls `deliver` for each index of the part (in order).
fn on_threads(order: &[usize], threads: usize, deliver: impl Fn(usize) + Sync) {
    let per = order.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for part in order.chunks(per) {
            let deliver = &deliver;
            s.spawn(move || part.iter().for_each(|&i| deliver(i)));
        }
    });
}

#[test]
fn values_in_order_from_several_threads_in_random_order() {
    let mut rng = Rng::new(7);
    for &n in SIZES {
        for contiguous in [false, true] {
            let (gates, handles): (Vec<_>, Vec<_>) = (0..n).map(|_| gate::<usize, &str>()).unzip();
            let (op, rec) = start(when_all_vec(gates));
            // Contiguous runs of a third each (not aligned to chunks), or a
            // random order split three ways; one child kept for the end.
            let mut order = if contiguous {
                (0..n).collect()
            } else {
                shuffled(n, &mut rng)
            };
            let last = order.remove(rng.below(n as u64) as usize);
            on_threads(&order, 3, |i| assert!(handles[i].value(i * 3)));
            assert_eq!(rec.completions(), 0, "n = {n}: child {last} is pending");
            assert!(handles[last].value(last * 3));
            let expect: Vec<usize> = (0..n).map(|i| i * 3).collect();
            assert_eq!(rec.expect_value(), expect, "n = {n}");
            assert!(handles.iter().all(|h| h.delivered() == 1));
            op.finish();
        }
    }
}

#[test]
fn first_error_wins_across_chunks() {
    for &n in SIZES {
        // Completing inline at `start`, in order: a stop in the first chunk,
        // then two errors in later chunks.
        let children: Vec<Fixed<usize, &str>> = (0..n)
            .map(|i| match i {
                10 => Fixed(Completion::Stopped),
                40 => Fixed(Completion::Error("first")),
                60 => Fixed(Completion::Error("second")),
                _ => Fixed(Completion::Value(i)),
            })
            .collect();
        let (op, rec) = start(when_all_vec(children));
        assert_eq!(rec.expect_error(), "first", "n = {n}");
        op.finish();
    }
}

#[test]
fn error_stops_the_siblings_in_every_chunk() {
    let mut rng = Rng::new(11);
    for &n in SIZES {
        let (gates, handles): (Vec<_>, Vec<_>) = (0..n).map(|_| gate::<usize, &str>()).unzip();
        let (op, rec) = start(when_all_vec(gates));
        let order = shuffled(n, &mut rng);
        let (done, rest) = order.split_at(n / 2);
        on_threads(done, 2, |i| assert!(handles[i].value(i)));
        assert!(handles[rest[0]].complete(Delivery::Error("boom")));
        // The error stopped every pending sibling, in every chunk, which
        // completed the parent.
        for &i in &rest[1..] {
            assert!(handles[i].stopped_by_request(), "n = {n}: child {i}");
            assert!(!handles[i].complete(Delivery::Error("too late")));
        }
        assert_eq!(rec.expect_error(), "boom");
        op.finish();
    }
}

#[test]
fn errors_racing_on_threads_deliver_one() {
    let rounds = if cfg!(miri) { 2 } else { 50 };
    let mut rng = Rng::new(5);
    for _ in 0..rounds {
        let n = 64 + rng.below(200) as usize;
        let (gates, handles): (Vec<_>, Vec<_>) = (0..n).map(|_| gate::<usize, usize>()).unzip();
        let (op, rec) = start(when_all_vec(gates));
        // Two failing children far apart; everyone else sends a value.
        let (a, b) = (rng.below(32) as usize, n - 1 - rng.below(32) as usize);
        let order = shuffled(n, &mut rng);
        on_threads(&order, 3, |i| {
            let d = if i == a || i == b {
                Delivery::Error(i)
            } else {
                Delivery::Value(i)
            };
            handles[i].complete(d);
        });
        let e = rec.expect_error();
        assert!(e == a || e == b, "error {e} from neither {a} nor {b}");
        assert!(handles.iter().all(|h| h.delivered() != 0));
        op.finish();
    }
}

#[test]
fn stopped_child_stops_all() {
    for &n in SIZES {
        let (gates, handles): (Vec<_>, Vec<_>) = (0..n).map(|_| gate::<usize, &str>()).unzip();
        let (op, rec) = start(when_all_vec(gates));
        on_threads(&(0..n / 2).collect::<Vec<_>>(), 2, |i| {
            assert!(handles[i].value(i));
        });
        assert!(handles[n - 2].complete(Delivery::Stopped));
        assert!(handles[n / 2..n - 2].iter().all(|h| h.stopped_by_request()));
        assert!(handles[n - 1].stopped_by_request());
        rec.expect_stopped();
        op.finish();
    }
}

#[test]
fn stop_request_from_outside_reaches_every_chunk() {
    for &n in SIZES {
        let source = Arc::new(StopSource::new());
        let (r, rec) = recorder_with_stop::<Vec<usize>, &str>(source.clone());
        let (gates, handles): (Vec<_>, Vec<_>) = (0..n).map(|_| gate::<usize, &str>()).unzip();
        let op = start_with(when_all_vec(gates), r, &rec);
        on_threads(&(0..n).step_by(3).collect::<Vec<_>>(), 2, |i| {
            assert!(handles[i].value(i));
        });
        assert_eq!(rec.completions(), 0);
        source.request_stop();
        for (i, h) in handles.iter().enumerate() {
            assert_eq!(h.stopped_by_request(), i % 3 != 0, "n = {n}: child {i}");
        }
        rec.expect_stopped();
        op.finish();
    }
}

#[test]
fn panic_delivered_once_across_chunks() {
    for &n in SIZES {
        let children = (0..n).map(|i| {
            just(i).then(move |x| {
                if x == 50 {
                    panic!("child 50 panicked");
                }
                x
            })
        });
        let (op, rec) = start(when_all_vec(children));
        assert_eq!(rec.expect_panic(), "child 50 panicked", "n = {n}");
        op.finish();

        // A panic from a gate on another thread, while others still run.
        let (gates, handles): (Vec<_>, Vec<_>) = (0..n).map(|_| gate::<usize, &str>()).unzip();
        let (op, rec) = start(when_all_vec(gates));
        on_threads(&(0..n - 1).collect::<Vec<_>>(), 3, |i| {
            let d = if i == n / 2 {
                Delivery::Panic("gate panicked")
            } else {
                Delivery::Value(i)
            };
            handles[i].complete(d);
        });
        assert!(handles[n - 1].stopped_by_request());
        assert_eq!(rec.expect_panic(), "gate panicked");
        op.finish();
    }
}

#[test]
fn values_dropped_at_completion() {
    let drops = DropCounter::new();
    for &n in SIZES {
        let (op, rec) = start(when_all_vec((0..n).map(|i| just(drops.track(i)))));
        let values = rec.expect_value();
        assert!(values.iter().enumerate().all(|(i, v)| v.value == i));
        assert_eq!(drops.alive(), n);
        drop(values);
        op.finish();

        for last in [Completion::Error("e"), Completion::Stopped] {
            let is_error = matches!(last, Completion::Error(_));
            let mut children: Vec<Fixed<Tracked<usize>, &str>> = (0..n - 1)
                .map(|i| Fixed(Completion::Value(drops.track(i))))
                .collect();
            children.push(Fixed(last));
            let (op, rec) = start(when_all_vec(children));
            if is_error {
                assert_eq!(rec.expect_error(), "e");
            } else {
                rec.expect_stopped();
            }
            assert_eq!(drops.alive(), 0, "n = {n}: values dropped at completion");
            op.finish();
        }
    }
    drop(when_all_vec((0..100).map(|i| just(drops.track(i)))));
    assert_eq!(drops.alive(), 0);
    assert_eq!(drops.created(), drops.dropped());
}

#[test]
fn stress_exactly_once_with_racing_stop() {
    let rounds = if cfg!(miri) { 3 } else { 300 };
    let mut rng = Rng::new(99);
    let drops = DropCounter::new();
    for round in 0..rounds {
        let n = 64 + rng.below(if cfg!(miri) { 40 } else { 400 }) as usize;
        let source = Arc::new(StopSource::new());
        let (r, rec) = recorder_with_stop::<Vec<Tracked<usize>>, Infallible>(source.clone());
        let (gates, handles): (Vec<_>, Vec<_>) =
            (0..n).map(|_| gate::<Tracked<usize>, Infallible>()).unzip();
        let op = start_with(when_all_vec(gates), r, &rec);
        let order = shuffled(n, &mut rng);
        let stop_at = (rng.below(3) == 0).then(|| rng.below(n as u64) as usize);
        std::thread::scope(|s| {
            let (a, b) = order.split_at(n / 2);
            let handles = &handles;
            let drops = &drops;
            s.spawn(move || {
                a.iter().for_each(|&i| {
                    handles[i].value(drops.track(i));
                })
            });
            for (k, &i) in b.iter().enumerate() {
                if Some(k) == stop_at {
                    source.request_stop();
                }
                handles[i].value(drops.track(i));
            }
        });
        assert_eq!(rec.completions(), 1, "round {round}");
        assert!(handles.iter().all(|h| h.delivered() != 0));
        match rec.take() {
            Seen::Value(v) => {
                assert!(v.iter().enumerate().all(|(i, t)| t.value == i));
            }
            Seen::Stopped => assert!(stop_at.is_some(), "round {round}"),
            _ => panic!("round {round}: neither values nor stopped"),
        }
        assert_eq!(drops.alive(), 0, "round {round}");
        op.finish();
    }
}
