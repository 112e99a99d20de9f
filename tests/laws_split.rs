//! Laws of `split`, property-tested over random predecessors (value, error,
//! stopped or panic; inline or completing on another thread) and random
//! numbers of consumers:
//! - every consumer gets the predecessor's completion (the same value or
//!   error; a panic with the same message), whether the consumers run one
//!   after another or concurrently inside `when_all_vec`;
//! - the predecessor is started lazily (not before the first consumer
//!   starts) and exactly once, however many consumers there are;
//! - a consumer whose stop was requested before it starts completes
//!   *stopped*, even when the value is ready; the others are unaffected;
//! - the shared result is dropped once the last copy of the sender, every
//!   consumer and the predecessor's completion call are gone.
//!
//! 1,000 cases per property; `PROPTEST_CASES=N` overrides.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{
    DropCounter, Kind, Leaf, Out, PLANTED, proptest_config, quiet_planted_panics, run, run_with,
    sink,
};
use exec::{SenderExt, just, when_all_vec};
use proptest::prelude::*;

fn leaf() -> impl Strategy<Value = Leaf<i64, i32>> {
    let kind = prop_oneof![
        4 => any::<i64>().prop_map(Kind::Value),
        2 => any::<i32>().prop_map(Kind::Error),
        1 => Just(Kind::Stopped),
        1 => any::<u8>().prop_map(|n| Kind::Panic(format!("{PLANTED}: leaf {n}"))),
    ];
    (kind, prop::bool::weighted(0.3)).prop_map(|(kind, remote)| Leaf { kind, remote })
}

/// `leaf`, behind a step that counts how often it is started.
fn counted(
    leaf: Leaf<i64, i32>,
    starts: &Arc<AtomicUsize>,
) -> impl exec::SenderTo<exec::ops::SplitReceiver<i64, i32>, Operation: Send, Output = i64, Error = i32>
+ Send
+ 'static {
    let starts = starts.clone();
    just(())
        .then(move |()| {
            starts.fetch_add(1, Ordering::SeqCst);
        })
        .with_error::<i32>()
        .let_value(move |()| leaf)
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn every_consumer_gets_the_same_completion(s in leaf(), n in 1usize..6) {
        quiet_planted_panics();
        let want = run(s.clone());
        let starts = Arc::new(AtomicUsize::new(0));
        let shared = counted(s, &starts).split();
        prop_assert_eq!(starts.load(Ordering::SeqCst), 0, "started before a consumer");
        for _ in 0..n {
            prop_assert_eq!(run(shared.clone()), want.clone());
        }
        prop_assert_eq!(starts.load(Ordering::SeqCst), 1, "predecessor started more than once");
    }

    #[test]
    fn concurrent_consumers_share_one_run(s in leaf(), n in 1usize..6) {
        quiet_planted_panics();
        let want = run(s.clone()).map(|v| vec![v; n]);
        let starts = Arc::new(AtomicUsize::new(0));
        let shared = counted(s, &starts).split();
        let got = run(when_all_vec((0..n).map(|_| shared.clone())));
        prop_assert_eq!(got, want);
        prop_assert_eq!(starts.load(Ordering::SeqCst), 1, "predecessor started more than once");
    }

    /// Consumers whose stop was requested before they start complete
    /// stopped; the others get the value; the predecessor ran at most once,
    /// and exactly once if some consumer was not stopped.
    #[test]
    fn stopped_consumers_complete_stopped(x in any::<i64>(), remote in any::<bool>(), stops in prop::collection::vec(any::<bool>(), 1..6)) {
        let starts = Arc::new(AtomicUsize::new(0));
        let shared = counted(Leaf { kind: Kind::Value(x), remote }, &starts).split();
        for &stopped in &stops {
            let (sink, handle) = sink();
            if stopped {
                handle.request_stop();
            }
            let got = run_with(shared.clone(), sink, &handle);
            prop_assert_eq!(got, if stopped { Out::Stopped } else { Out::Value(x) });
        }
        let ran = starts.load(Ordering::SeqCst);
        prop_assert!(ran <= 1, "predecessor started {} times", ran);
        if stops.iter().any(|s| !s) {
            prop_assert_eq!(ran, 1);
        }
    }

    #[test]
    fn shared_value_is_dropped_with_the_last_copy(x in any::<i64>(), n in 0usize..5, remote in any::<bool>()) {
        let drops = DropCounter::new();
        let value = Arc::new(drops.track(x));
        let shared = Leaf::<_, i32> { kind: Kind::Value(value), remote }.split();
        for _ in 0..n {
            let got = run(shared.clone()).map(|v| v.value);
            prop_assert_eq!(got, Out::Value(x));
        }
        drop(shared);
        // The predecessor's completion holds a reference to the shared
        // block until its call returns (it wakes the consumers first), so
        // with a predecessor on the pool the last reference may go there,
        // a moment after the last consumer completed.
        let deadline = Instant::now() + Duration::from_secs(5);
        while drops.alive() != 0 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        prop_assert_eq!(drops.alive(), 0, "the shared result outlived every copy");
    }
}
