//! Functor laws of `then`, property-tested:
//! `just(x).then(f) ≡ just(f(x))`, `s.then(id) ≡ s`,
//! `s.then(f).then(g) ≡ s.then(g ∘ f)`, for random `x`, random pure
//! functions (one of which panics) and random senders that complete with a
//! value, an error, stopped or a panic, inline or from another thread.
//! Two senders are equivalent when they complete on the same channel with
//! the same payload (a panic compares by its message), exactly once.
//!
//! 1,000 cases per property; `PROPTEST_CASES=N` overrides.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Kind, Leaf, Out, PLANTED, catch, proptest_config, quiet_planted_panics, run};
use exec::{SenderExt, just};
use proptest::prelude::*;

/// A small family of pure functions on `i64`; `Panic` panics.
#[derive(Clone, Copy, Debug)]
enum Fun {
    Add(i64),
    Mul(i64),
    Xor(i64),
    Neg,
    Const(i64),
    Panic,
}

impl Fun {
    fn apply(self, x: i64) -> i64 {
        match self {
            Fun::Add(k) => x.wrapping_add(k),
            Fun::Mul(k) => x.wrapping_mul(k),
            Fun::Xor(k) => x ^ k,
            Fun::Neg => x.wrapping_neg(),
            Fun::Const(k) => k,
            Fun::Panic => panic!("{PLANTED}: fun"),
        }
    }
}

fn fun() -> impl Strategy<Value = Fun> {
    prop_oneof![
        3 => any::<i64>().prop_map(Fun::Add),
        3 => any::<i64>().prop_map(Fun::Mul),
        2 => any::<i64>().prop_map(Fun::Xor),
        1 => Just(Fun::Neg),
        1 => any::<i64>().prop_map(Fun::Const),
        1 => Just(Fun::Panic),
    ]
}

fn kind() -> impl Strategy<Value = Kind<i64, i32>> {
    prop_oneof![
        4 => any::<i64>().prop_map(Kind::Value),
        2 => any::<i32>().prop_map(Kind::Error),
        1 => Just(Kind::Stopped),
        1 => any::<u8>().prop_map(|n| Kind::Panic(format!("{PLANTED}: leaf {n}"))),
    ]
}

/// A leaf completing as `kind`, inline or (one time in four) on the pool.
fn leaf() -> impl Strategy<Value = Leaf<i64, i32>> {
    (kind(), prop::bool::weighted(0.25)).prop_map(|(kind, remote)| Leaf { kind, remote })
}

/// `just(v)` when `f()` returns `v`; the panic channel when `f` panics.
fn just_of(f: impl FnOnce() -> i64) -> Out<i64, std::convert::Infallible> {
    match catch(f) {
        Ok(v) => run(just(v)),
        Err(message) => Out::Panic(message),
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn then_of_just_is_just_of_application(x in any::<i64>(), f in fun()) {
        quiet_planted_panics();
        let lhs = run(just(x).then(move |v| f.apply(v)));
        let rhs = just_of(|| f.apply(x));
        prop_assert_eq!(lhs, rhs);
    }

    #[test]
    fn then_identity_is_identity(s in leaf()) {
        quiet_planted_panics();
        let lhs = run(s.clone().then(|v| v));
        let rhs = run(s);
        prop_assert_eq!(lhs, rhs);
    }

    #[test]
    fn then_composes(s in leaf(), f in fun(), g in fun()) {
        quiet_planted_panics();
        let lhs = run(s.clone().then(move |v| f.apply(v)).then(move |v| g.apply(v)));
        let rhs = run(s.then(move |v| g.apply(f.apply(v))));
        prop_assert_eq!(lhs, rhs);
    }

    /// The law with the expected outcome spelled out: `then(f)` maps the
    /// value channel and nothing else, and calls `f` exactly when there is
    /// a value.
    #[test]
    fn then_maps_only_the_value_channel(s in leaf(), f in fun()) {
        quiet_planted_panics();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let got = run(s.clone().then(move |v| {
            counted.fetch_add(1, Ordering::Relaxed);
            f.apply(v)
        }));
        let want = match s.kind.clone() {
            Kind::Value(x) => match catch(|| f.apply(x)) {
                Ok(y) => Out::Value(y),
                Err(m) => Out::Panic(m),
            },
            other => other.out(),
        };
        prop_assert_eq!(got, want);
        let called = usize::from(matches!(s.kind, Kind::Value(_)));
        prop_assert_eq!(calls.load(Ordering::Relaxed), called);
    }

    /// Composing through a deeper chain: n random functions applied one
    /// `then` at a time equal their composition in one `then`.
    #[test]
    fn then_chain_equals_folded_composition(
        s in leaf(),
        fs in prop::collection::vec(fun(), 0..8),
    ) {
        quiet_planted_panics();
        let mut chain = s.clone().boxed();
        for f in fs.clone() {
            chain = chain.then(move |v| f.apply(v)).boxed();
        }
        let lhs = run(chain);
        let rhs = run(s.then(move |v| fs.iter().fold(v, |acc, f| f.apply(acc))));
        prop_assert_eq!(lhs, rhs);
    }
}
