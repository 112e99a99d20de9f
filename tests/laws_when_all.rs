//! Laws of `when_all` (tuples, `when_all!`, `when_all_vec`), property-tested:
//! - it keeps order and equals sequential composition for pure senders:
//!   `when_all(just(a), just(b)) ≡ just(a).let_value(|a| just(b).then(|b| (a, b)))`,
//!   also when the children complete on other threads in any order;
//! - with random outcomes per child (value, error, stopped, panic; inline or
//!   on another thread): values only when every child sent a value; a
//!   failure (error or panic) wins over stopped; stopped only when some child
//!   stopped; with inline children, the first failure in order wins;
//! - the first failure or stop requests stop of the siblings (observed by
//!   children that record their token when they run), a stop from outside
//!   reaches every child, and the whole completes exactly once, only after
//!   every child completed; held values are dropped.
//!
//! 1,000 cases per property; `PROPTEST_CASES=N` overrides.

mod common;

use common::{
    DropCounter, Kind, Leaf, ManualQueue, Observer, Out, PLANTED, proptest_config,
    quiet_planted_panics, run, sink,
};
use exec::{AnySender, SenderExt, just, when_all, when_all_vec};
use proptest::prelude::*;

fn remote() -> impl Strategy<Value = bool> {
    prop::bool::weighted(0.3)
}

fn kind() -> impl Strategy<Value = Kind<i64, i32>> {
    prop_oneof![
        5 => any::<i64>().prop_map(Kind::Value),
        2 => any::<i32>().prop_map(Kind::Error),
        2 => Just(Kind::Stopped),
        1 => any::<u8>().prop_map(|n| Kind::Panic(format!("{PLANTED}: child {n}"))),
    ]
}

fn leaf() -> impl Strategy<Value = Leaf<i64, i32>> {
    (kind(), remote()).prop_map(|(kind, remote)| Leaf { kind, remote })
}

fn value_leaf() -> impl Strategy<Value = Leaf<i64, i32>> {
    (any::<i64>(), remote()).prop_map(|(v, remote)| Leaf {
        kind: Kind::Value(v),
        remote,
    })
}

/// Checks what `when_all` over `children` may complete with, as a
/// property of the children's own outcomes (see the module docs). `got`
/// carries the values as a `Vec` in child order.
fn check_outcome(children: &[Leaf<i64, i32>], got: &Out<Vec<i64>, i32>) -> Result<(), String> {
    let outs: Vec<Out<i64, i32>> = children.iter().map(|c| c.kind.clone().out()).collect();
    if outs.iter().all(Out::is_value) {
        let values: Vec<i64> = outs
            .into_iter()
            .map(|o| match o {
                Out::Value(v) => v,
                _ => unreachable!(),
            })
            .collect();
        return if *got == Out::Value(values) {
            Ok(())
        } else {
            Err(format!("all values, got {got:?}"))
        };
    }
    let widen = |o: &Out<i64, i32>| o.clone().map(|v| vec![v]);
    match got {
        Out::Value(_) => Err(format!("a child did not send a value, got {got:?}")),
        Out::Stopped => {
            if outs.contains(&Out::Stopped) {
                if children
                    .iter()
                    .any(|c| !c.remote && c.kind.clone().out().is_failure())
                {
                    Err("an inline failure was hidden behind stopped".into())
                } else {
                    Ok(())
                }
            } else {
                Err("stopped, but no child stops by itself".into())
            }
        }
        failure => {
            if !outs.iter().any(|o| o.is_failure() && widen(o) == *failure) {
                return Err(format!("{failure:?} is no child's failure"));
            }
            if children.iter().all(|c| !c.remote) {
                // Inline children complete in order: the first failure wins.
                let first = outs.iter().find(|o| o.is_failure()).unwrap();
                if widen(first) != *failure {
                    return Err(format!("first failure {first:?}, got {failure:?}"));
                }
            }
            Ok(())
        }
    }
}

fn to_vec3<E>(out: Out<(i64, i64, i64), E>) -> Out<Vec<i64>, E> {
    out.map(|(a, b, c)| vec![a, b, c])
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn when_all_of_justs_is_sequential_composition(a in any::<i64>(), b in any::<i64>()) {
        let lhs = run(when_all(just(a), just(b)));
        let rhs = run(just(a).let_value(move |a| just(b).then(move |b| (a, b))));
        prop_assert_eq!(lhs.clone(), rhs);
        prop_assert_eq!(lhs, Out::Value((a, b)));
    }

    /// Values come back in child order whatever order the children
    /// complete in (some complete on the pool, in random order).
    #[test]
    fn when_all_keeps_order(a in value_leaf(), b in value_leaf(), c in value_leaf()) {
        let want = Out::Value((a.kind.clone(), b.kind.clone(), c.kind.clone()))
            .map(|(a, b, c)| match (a, b, c) {
                (Kind::Value(a), Kind::Value(b), Kind::Value(c)) => (a, b, c),
                _ => unreachable!(),
            });
        let seq = {
            let (b, c) = (b.clone(), c.clone());
            run(a.clone().let_value(move |a| {
                b.let_value(move |b| c.then(move |c| (a, b, c)))
            }))
        };
        let got = run(exec::when_all!(a, b, c));
        prop_assert_eq!(got.clone(), want);
        prop_assert_eq!(got, seq);
    }

    #[test]
    fn when_all_vec_keeps_order(children in prop::collection::vec(value_leaf(), 0..8)) {
        let want: Vec<i64> = children
            .iter()
            .map(|c| match c.kind {
                Kind::Value(v) => v,
                _ => unreachable!(),
            })
            .collect();
        prop_assert_eq!(run(when_all_vec(children)), Out::Value(want));
    }

    #[test]
    fn when_all_channel_rules(a in leaf(), b in leaf(), c in leaf()) {
        quiet_planted_panics();
        let got = to_vec3(run(exec::when_all!(a.clone(), b.clone(), c.clone())));
        check_outcome(&[a, b, c], &got).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn when_all_vec_channel_rules(children in prop::collection::vec(leaf(), 0..7)) {
        quiet_planted_panics();
        let got = run(when_all_vec(children.clone()));
        check_outcome(&children, &got).map_err(TestCaseError::fail)?;
    }

    /// Two observers around a child completing inline as `kind`: they see a
    /// stop request exactly when `kind` is not a value; nothing completes
    /// before they ran; then the whole completes once, as the rules say;
    /// every held value is dropped.
    #[test]
    fn first_failure_or_stop_stops_the_siblings(kind in kind(), x in any::<i64>(), y in any::<i64>()) {
        quiet_planted_panics();
        let drops = DropCounter::new();
        let queue = ManualQueue::new();
        let first = Observer::new(&queue, drops.track(x));
        let last = Observer::new(&queue, drops.track(y));
        let middle = Leaf::inline(match kind.clone() {
            Kind::Value(v) => Kind::Value(drops.track(v)),
            Kind::Error(e) => Kind::Error(e),
            Kind::Stopped => Kind::Stopped,
            Kind::Panic(m) => Kind::Panic(m),
        });
        let (first_saw, last_saw) = (first.saw_stop.clone(), last.saw_stop.clone());
        let (sink, handle) = sink();
        let s = exec::when_all!(first, middle, last)
            .then(|(a, b, c)| (a.value, b.value, c.value));
        let mut op = Box::pin(exec::SenderTo::connect(s, sink));
        // SAFETY: `op` is dropped below, after the sink saw its completion.
        unsafe { exec::OperationState::start(op.as_mut()) };
        prop_assert_eq!(handle.completions(), 0, "completed before the observers ran");
        prop_assert_eq!(queue.run_all(), 2);
        prop_assert_eq!(handle.completions(), 1);
        let got = handle.wait_for(common::HANG).unwrap();
        drop(op);
        let stop_expected = !matches!(kind, Kind::Value(_));
        prop_assert_eq!(*first_saw.lock().unwrap(), Some(stop_expected));
        prop_assert_eq!(*last_saw.lock().unwrap(), Some(stop_expected));
        let want = kind.out().map(|v| (x, v, y));
        prop_assert_eq!(got, want);
        prop_assert_eq!(drops.alive(), 0, "a value was not dropped");
    }

    /// The same with `when_all_vec` over type-erased children: observers
    /// at random positions, one child completing inline as `kind`.
    #[test]
    fn when_all_vec_stops_the_siblings(kind in kind(), n in 1usize..6, at in 0usize..6) {
        quiet_planted_panics();
        let queue = ManualQueue::new();
        let observers: Vec<Observer<i64>> = (0..n).map(|i| Observer::new(&queue, i as i64)).collect();
        let at = at.min(n);
        let mut children: Vec<AnySender<i64, i32>> =
            observers.iter().map(|o| o.clone().boxed()).collect();
        children.insert(at, Leaf::inline(kind.clone()).boxed());
        let (sink, handle) = sink();
        let mut op = Box::pin(exec::SenderTo::connect(when_all_vec(children), sink));
        // SAFETY: `op` is dropped below, after the sink saw its completion.
        unsafe { exec::OperationState::start(op.as_mut()) };
        prop_assert_eq!(handle.completions(), 0, "completed before the observers ran");
        prop_assert_eq!(queue.run_all(), n);
        let got = handle.wait_for(common::HANG).unwrap();
        drop(op);
        prop_assert_eq!(handle.completions(), 1);
        let stop_expected = !matches!(kind, Kind::Value(_));
        for o in &observers {
            prop_assert_eq!(o.saw_stop(), Some(stop_expected));
        }
        let want = kind.out().map(|v| {
            let mut all: Vec<i64> = (0..n as i64).collect();
            all.insert(at, v);
            all
        });
        prop_assert_eq!(got, want);
    }

    /// A stop request from outside reaches every child; children that all
    /// send values anyway make the whole send the values.
    #[test]
    fn outside_stop_reaches_every_child_and_values_still_win(x in any::<i64>(), y in any::<i64>()) {
        let queue = ManualQueue::new();
        let a = Observer::new(&queue, x);
        let b = Observer::new(&queue, y);
        let (sink, handle) = sink();
        let mut op = Box::pin(exec::SenderTo::connect(when_all(a.clone(), b.clone()), sink));
        // SAFETY: `op` is dropped below, after the sink saw its completion.
        unsafe { exec::OperationState::start(op.as_mut()) };
        handle.request_stop();
        prop_assert_eq!(queue.run_all(), 2);
        let got = handle.wait_for(common::HANG).unwrap();
        drop(op);
        prop_assert_eq!(a.saw_stop(), Some(true));
        prop_assert_eq!(b.saw_stop(), Some(true));
        prop_assert_eq!(got, Out::Value((x, y)));
    }
}
