//! Monad laws of `let_value`, and the matching laws of `let_error`,
//! property-tested over random values, random continuation functions and
//! random senders (value, error, stopped or panic; inline or completing on
//! another thread):
//! - left identity: `just(x).let_value(k) ≡ k(x)`,
//! - right identity: `s.let_value(just) ≡ s`,
//! - associativity: `s.let_value(k).let_value(h) ≡ s.let_value(|x| k(x).let_value(h))`,
//! - and the same three for `let_error` with `just_error`, plus: a value or
//!   stopped passes `let_error` unchanged without calling its function.
//!
//! A continuation `k` returns a sender that completes with a value, an
//! error, stopped or a panic, inline or on another thread; or `k` itself
//! panics (the panic channel). 1,000 cases per property;
//! `PROPTEST_CASES=N` overrides.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Kind, Leaf, Out, PLANTED, catch, proptest_config, quiet_planted_panics, run};
use exec::{SenderExt, just, just_error};
use proptest::prelude::*;

/// A continuation `i64 -> sender of i64 (error i32)`.
#[derive(Clone, Copy, Debug)]
enum K {
    /// A value `x * m + a`.
    Value { m: i64, a: i64, remote: bool },
    /// An error derived from the input.
    Error { mask: i32, remote: bool },
    /// Completes stopped.
    Stopped { remote: bool },
    /// The returned sender completes on the panic channel.
    SendsPanic,
    /// The function itself panics.
    Panics,
}

impl K {
    fn apply(self, x: i64) -> Leaf<i64, i32> {
        match self {
            K::Value { m, a, remote } => Leaf {
                kind: Kind::Value(x.wrapping_mul(m).wrapping_add(a)),
                remote,
            },
            K::Error { mask, remote } => Leaf {
                kind: Kind::Error((x as i32) ^ mask),
                remote,
            },
            K::Stopped { remote } => Leaf {
                kind: Kind::Stopped,
                remote,
            },
            K::SendsPanic => Leaf::inline(Kind::Panic(format!("{PLANTED}: sent {x}"))),
            K::Panics => panic!("{PLANTED}: k({x})"),
        }
    }
}

/// The outcome of the sender `k(x)`, or of `k` panicking.
fn outcome_of(k: K, x: i64) -> Out<i64, i32> {
    match catch(|| k.apply(x)) {
        Ok(s) => run(s),
        Err(m) => Out::Panic(m),
    }
}

fn remote() -> impl Strategy<Value = bool> {
    prop::bool::weighted(0.2)
}

fn k() -> impl Strategy<Value = K> {
    prop_oneof![
        5 => (any::<i64>(), any::<i64>(), remote()).prop_map(|(m, a, remote)| K::Value { m, a, remote }),
        2 => (any::<i32>(), remote()).prop_map(|(mask, remote)| K::Error { mask, remote }),
        1 => remote().prop_map(|remote| K::Stopped { remote }),
        1 => Just(K::SendsPanic),
        1 => Just(K::Panics),
    ]
}

fn leaf() -> impl Strategy<Value = Leaf<i64, i32>> {
    let kind = prop_oneof![
        4 => any::<i64>().prop_map(Kind::Value),
        2 => any::<i32>().prop_map(Kind::Error),
        1 => Just(Kind::Stopped),
        1 => any::<u8>().prop_map(|n| Kind::Panic(format!("{PLANTED}: leaf {n}"))),
    ];
    (kind, remote()).prop_map(|(kind, remote)| Leaf { kind, remote })
}

proptest! {
    #![proptest_config(proptest_config())]

    // ------------------------------------------------------------ let_value

    #[test]
    fn let_value_left_identity(x in any::<i64>(), k in k()) {
        quiet_planted_panics();
        let lhs = run(just(x).with_error::<i32>().let_value(move |v| k.apply(v)));
        prop_assert_eq!(lhs, outcome_of(k, x));
    }

    #[test]
    fn let_value_right_identity(s in leaf()) {
        quiet_planted_panics();
        let lhs = run(s.clone().let_value(|v| just(v).with_error::<i32>()));
        prop_assert_eq!(lhs, run(s));
    }

    #[test]
    fn let_value_associativity(s in leaf(), k in k(), h in k()) {
        quiet_planted_panics();
        let lhs = run(s.clone().let_value(move |x| k.apply(x)).let_value(move |y| h.apply(y)));
        let rhs = run(s.let_value(move |x| k.apply(x).let_value(move |y| h.apply(y))));
        prop_assert_eq!(lhs, rhs);
    }

    /// A chain of `let_value` steps equals the reference fold: each step
    /// runs on a value and is skipped (its function not called) otherwise.
    #[test]
    fn let_value_chain_matches_reference(s in leaf(), ks in prop::collection::vec(k(), 0..8)) {
        quiet_planted_panics();
        let calls = Arc::new(AtomicUsize::new(0));
        let mut chain = s.clone().boxed();
        for k in ks.clone() {
            let calls = calls.clone();
            chain = chain
                .let_value(move |x| {
                    calls.fetch_add(1, Ordering::Relaxed);
                    k.apply(x)
                })
                .boxed();
        }
        let got = run(chain);
        let mut want = s.kind.out();
        let mut want_calls = 0;
        for k in ks {
            if let Out::Value(x) = want {
                want_calls += 1;
                want = outcome_of(k, x);
            }
        }
        prop_assert_eq!(got, want);
        prop_assert_eq!(calls.load(Ordering::Relaxed), want_calls);
    }

    // ------------------------------------------------------------ let_error

    #[test]
    fn let_error_left_identity(e in any::<i32>(), k in k()) {
        quiet_planted_panics();
        let lhs = run(just_error::<i64, i32>(e).let_error(move |e| k.apply(i64::from(e))));
        prop_assert_eq!(lhs, outcome_of(k, i64::from(e)));
    }

    #[test]
    fn let_error_right_identity(s in leaf()) {
        quiet_planted_panics();
        let lhs = run(s.clone().let_error(just_error::<i64, i32>));
        prop_assert_eq!(lhs, run(s));
    }

    #[test]
    fn let_error_associativity(s in leaf(), k in k(), h in k()) {
        quiet_planted_panics();
        let lhs = run(
            s.clone()
                .let_error(move |e| k.apply(i64::from(e)))
                .let_error(move |e| h.apply(i64::from(e))),
        );
        let rhs = run(s.let_error(move |e| {
            k.apply(i64::from(e)).let_error(move |e| h.apply(i64::from(e)))
        }));
        prop_assert_eq!(lhs, rhs);
    }

    /// `let_error` recovers an error with what its function returns, and
    /// passes value, stopped and panic through without calling it.
    #[test]
    fn let_error_recovers_only_errors(s in leaf(), k in k()) {
        quiet_planted_panics();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let got = run(s.clone().let_error(move |e| {
            counted.fetch_add(1, Ordering::Relaxed);
            k.apply(i64::from(e))
        }));
        let (want, want_calls) = match s.kind {
            Kind::Error(e) => (outcome_of(k, i64::from(e)), 1),
            other => (other.out(), 0),
        };
        prop_assert_eq!(got, want);
        prop_assert_eq!(calls.load(Ordering::Relaxed), want_calls);
    }
}
