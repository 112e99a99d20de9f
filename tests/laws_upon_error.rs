//! Recovery laws of `upon_error` (and its agreement with `let_error`),
//! property-tested over random values, random pure functions (one of which
//! panics) and random senders (value, error, stopped or panic; inline or on
//! another thread):
//! - `just_error(e).upon_error(f) ≡ just(f(e))`,
//! - a value, stopped or panic passes `upon_error` unchanged and `f` is not
//!   called; an error becomes `f(error)` and `f` is called once,
//! - `s.upon_error(f) ≡ s.let_error(|e| just(f(e)))`,
//! - `s.upon_error(f).upon_error(g) ≡ s.upon_error(f)` (nothing is left to
//!   recover).
//!
//! 1,000 cases per property; `PROPTEST_CASES=N` overrides.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Kind, Leaf, Out, PLANTED, catch, proptest_config, quiet_planted_panics, run};
use exec::{SenderExt, just, just_error};
use proptest::prelude::*;

/// A small family of pure recovery functions `i32 -> i64`; `Panic` panics.
#[derive(Clone, Copy, Debug)]
enum Fun {
    Widen,
    Add(i64),
    Mul(i64),
    Const(i64),
    Panic,
}

impl Fun {
    fn apply(self, e: i32) -> i64 {
        let e = i64::from(e);
        match self {
            Fun::Widen => e,
            Fun::Add(k) => e.wrapping_add(k),
            Fun::Mul(k) => e.wrapping_mul(k),
            Fun::Const(k) => k,
            Fun::Panic => panic!("{PLANTED}: recover({e})"),
        }
    }
}

fn fun() -> impl Strategy<Value = Fun> {
    prop_oneof![
        1 => Just(Fun::Widen),
        3 => any::<i64>().prop_map(Fun::Add),
        3 => any::<i64>().prop_map(Fun::Mul),
        1 => any::<i64>().prop_map(Fun::Const),
        1 => Just(Fun::Panic),
    ]
}

fn leaf() -> impl Strategy<Value = Leaf<i64, i32>> {
    let kind = prop_oneof![
        3 => any::<i64>().prop_map(Kind::Value),
        3 => any::<i32>().prop_map(Kind::Error),
        1 => Just(Kind::Stopped),
        1 => any::<u8>().prop_map(|n| Kind::Panic(format!("{PLANTED}: leaf {n}"))),
    ];
    (kind, prop::bool::weighted(0.25)).prop_map(|(kind, remote)| Leaf { kind, remote })
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn upon_error_of_just_error_is_just_of_application(e in any::<i32>(), f in fun()) {
        quiet_planted_panics();
        let lhs = run(just_error::<i64, i32>(e).upon_error(move |e| f.apply(e)));
        let rhs = match catch(|| f.apply(e)) {
            Ok(v) => run(just(v)),
            Err(m) => Out::Panic(m),
        };
        prop_assert_eq!(lhs, rhs);
    }

    #[test]
    fn upon_error_recovers_only_errors(s in leaf(), f in fun()) {
        quiet_planted_panics();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let got = run(s.clone().upon_error(move |e| {
            counted.fetch_add(1, Ordering::Relaxed);
            f.apply(e)
        }));
        let (want, want_calls) = match s.kind {
            Kind::Error(e) => match catch(|| f.apply(e)) {
                Ok(v) => (Out::Value(v), 1),
                Err(m) => (Out::Panic(m), 1),
            },
            Kind::Value(v) => (Out::Value(v), 0),
            Kind::Stopped => (Out::Stopped, 0),
            Kind::Panic(m) => (Out::Panic(m), 0),
        };
        prop_assert_eq!(got, want);
        prop_assert_eq!(calls.load(Ordering::Relaxed), want_calls);
    }

    #[test]
    fn upon_error_is_let_error_of_just(s in leaf(), f in fun()) {
        quiet_planted_panics();
        let lhs = run(s.clone().upon_error(move |e| f.apply(e)));
        let rhs = run(s.let_error(move |e| just(f.apply(e))));
        prop_assert_eq!(lhs, rhs);
    }

    #[test]
    fn upon_error_twice_is_upon_error_once(s in leaf(), f in fun(), g in fun()) {
        quiet_planted_panics();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let lhs = run(
            s.clone()
                .upon_error(move |e| f.apply(e))
                .map_error(|never| match never {})
                .upon_error(move |e: i32| {
                    counted.fetch_add(1, Ordering::Relaxed);
                    g.apply(e)
                }),
        );
        let rhs = run(s.upon_error(move |e| f.apply(e)));
        prop_assert_eq!(lhs, rhs);
        prop_assert_eq!(calls.load(Ordering::Relaxed), 0);
    }
}
