//! `when_all_vec`: the dynamic `when_all` over an iterator of senders of one
//! type.
mod common;
mod nary_support;

use std::convert::Infallible;
use std::sync::Arc;

use common::*;
use exec_core::{
    Completion, Scheduler, SenderExt, StopSource, WhenAllVec, just, sync_wait, when_all_vec,
};
use nary_support::*;

#[test]
fn values_in_order() {
    let s = when_all_vec((0..10).map(|i| just(i).then(|x| x * 2)));
    assert_eq!(sync_wait(s), Ok(Some((0..10).map(|x| x * 2).collect())));
    let collected: WhenAllVec<_> = vec![just("a"), just("b")].into_iter().collect();
    assert_eq!(sync_wait(collected), Ok(Some(vec!["a", "b"])));
}

#[test]
fn empty_completes_at_once_with_empty_vec() {
    let (op, rec) = start(when_all_vec(Vec::<exec_core::Just<i32>>::new()));
    assert_eq!(rec.expect_value(), Vec::<i32>::new());
    op.finish();
}

#[test]
fn values_in_order_when_completed_in_reverse() {
    let (gates, handles): (Vec<_>, Vec<_>) = (0..5).map(|_| gate::<usize, &str>()).unzip();
    let (op, rec) = start(when_all_vec(gates));
    for (i, h) in handles.iter().enumerate().rev() {
        assert_eq!(rec.completions(), 0);
        assert!(h.value(i * 10));
    }
    assert_eq!(rec.expect_value(), vec![0, 10, 20, 30, 40]);
    op.finish();
}

#[test]
fn first_error_wins_and_stops_siblings() {
    let (gates, handles): (Vec<_>, Vec<_>) = (0..4).map(|_| gate::<i32, &str>()).unzip();
    let (op, rec) = start(when_all_vec(gates));
    assert!(handles[1].complete(Delivery::Stopped));
    // the stop of child 1 stopped the others already (they complete stopped
    // from their stop callbacks) ...
    assert!(handles[0].stopped_by_request() && handles[3].stopped_by_request());
    rec.expect_stopped();
    op.finish();

    let (op, rec) = start(when_all_vec(vec![
        Fixed::<i32, &str>(Completion::Stopped),
        Fixed(Completion::Error("first error")),
        Fixed(Completion::Error("second error")),
        Fixed(Completion::Value(1)),
    ]));
    assert_eq!(rec.expect_error(), "first error");
    op.finish();
}

#[test]
fn stop_request_from_outside() {
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop::<Vec<i32>, &str>(source.clone());
    let (gates, handles): (Vec<_>, Vec<_>) = (0..3).map(|_| gate::<i32, &str>()).unzip();
    let op = start_with(when_all_vec(gates), r, &rec);
    assert!(handles[2].value(2));
    source.request_stop();
    assert!(handles[0].stopped_by_request() && handles[1].stopped_by_request());
    rec.expect_stopped();
    op.finish();
}

#[test]
fn panic_delivered_once_after_siblings() {
    let sch = ManualScheduler::new();
    type Body = Box<dyn FnOnce(()) -> i32 + Send>;
    let children: Vec<exec_core::Then<_, Body>> = vec![
        sch.schedule().then(Box::new(|()| 1)),
        sch.schedule()
            .then(Box::new(|()| panic!("vec child panicked"))),
        sch.schedule().then(Box::new(|()| 3)),
    ];
    let (op, rec) = start(when_all_vec(children));
    assert_eq!(sch.run_one() as usize + sch.run_one() as usize, 2);
    assert_eq!(rec.completions(), 0, "third child still pending");
    sch.run_one();
    assert_eq!(rec.expect_panic(), "vec child panicked");
    op.finish();
}

#[test]
fn completions_from_other_threads() {
    let schedulers: Vec<_> = (0..4).map(|_| ManualScheduler::new()).collect();
    let (op, rec) = start(when_all_vec(
        schedulers
            .iter()
            .enumerate()
            .map(|(i, s)| s.schedule().then(move |()| i)),
    ));
    let threads: Vec<_> = schedulers
        .into_iter()
        .map(|s| std::thread::spawn(move || s.run_all()))
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 1);
    }
    assert_eq!(rec.expect_value(), vec![0, 1, 2, 3]);
    op.finish();
}

#[test]
fn drop_counters_return_to_zero() {
    let drops = DropCounter::new();
    {
        let (op, rec) = start(when_all_vec((0..3).map(|i| just(drops.track(i)))));
        assert_eq!(rec.expect_value().len(), 3);
        op.finish();
    }
    {
        let (op, rec) = start(when_all_vec(vec![
            Fixed::<Tracked<i32>, &str>(Completion::Value(drops.track(1))),
            Fixed(Completion::Error("e")),
            Fixed(Completion::Value(drops.track(2))),
        ]));
        assert_eq!(rec.expect_error(), "e");
        assert_eq!(drops.alive(), 0, "values dropped at completion");
        op.finish();
    }
    drop(when_all_vec((0..3).map(|i| just(drops.track(i)))));
    assert_eq!(drops.alive(), 0);
}

#[test]
fn stress_threads_random_stop() {
    let iterations = if cfg!(miri) { 10 } else { 1_000 };
    let mut rng = Rng::new(42);
    for i in 0..iterations {
        let source = Arc::new(StopSource::new());
        let (r, rec) = recorder_with_stop::<Vec<u64>, Infallible>(source.clone());
        let (gates, handles): (Vec<_>, Vec<_>) = (0..3).map(|_| gate::<u64, Infallible>()).unzip();
        let op = start_with(when_all_vec(gates), r, &rec);
        let stop_first = rng.below(2) == 0;
        let mut hs = handles.into_iter();
        let h0 = hs.next().unwrap();
        let h1 = hs.next().unwrap();
        let h2 = hs.next().unwrap();
        let t = std::thread::spawn(move || {
            h0.value(0);
            h0
        });
        if stop_first {
            source.request_stop();
        }
        h1.value(1);
        let h0 = t.join().unwrap();
        h2.value(2);
        assert_eq!(rec.completions(), 1, "iteration {i}");
        match rec.take() {
            Seen::Value(v) => {
                assert_eq!(v, vec![0, 1, 2]);
                assert!([h0.delivered(), h1.delivered(), h2.delivered()] == [1, 1, 1]);
            }
            Seen::Stopped => assert!(stop_first),
            other => panic!("unexpected {other:?}"),
        }
        op.finish();
    }
}
