//! `loop_with_state`: hands owned state from iteration to iteration; every
//! channel, panics, drops, cancellation, asynchronous iterations (exactly
//! once, across threads) and deep inline iteration. (Moved here from
//! exec-io, where the algorithm used to live.)
mod common;

use common::*;
use exec_core::{
    Scheduler, SenderExt, StopSource, just, just_error, just_stopped, loop_with_state, sync_wait,
};
use std::cell::Cell;
use std::convert::Infallible;
use std::ops::ControlFlow::{self, Break, Continue};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn step(n: u32) -> ControlFlow<u32, u32> {
    if n >= 10 {
        Break(n * 100)
    } else {
        Continue(n + 1)
    }
}

#[test]
fn value_after_the_last_iteration() {
    let calls = Cell::new(0);
    let s = loop_with_state(0u32, |n| {
        calls.set(calls.get() + 1);
        just(n).then(step)
    });
    assert_eq!(sync_wait(s), Ok(Some(1000)));
    assert_eq!(calls.get(), 11);
}

#[test]
fn error_ends_the_loop_and_f_is_not_called_again() {
    let calls = AtomicUsize::new(0);
    let s = loop_with_state(0u32, |n| {
        calls.fetch_add(1, Ordering::SeqCst);
        if n == 3 {
            just_error::<ControlFlow<(), u32>, &str>("boom").boxed()
        } else {
            just(Continue(n + 1)).map_error(|e| match e {}).boxed()
        }
    });
    assert_eq!(sync_wait(s), Err("boom"));
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[test]
fn stopped_iteration_ends_the_loop_stopped() {
    let calls = AtomicUsize::new(0);
    let s = loop_with_state(0u32, |n| {
        calls.fetch_add(1, Ordering::SeqCst);
        if n == 2 {
            just_stopped().boxed::<ControlFlow<(), u32>, Infallible>()
        } else {
            just(Continue(n + 1)).boxed()
        }
    });
    assert_eq!(sync_wait(s), Ok(None));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[test]
fn stop_request_is_checked_between_iterations() {
    let source = StopSource::new();
    let calls = Cell::new(0);
    let s = loop_with_state(0u32, |n| {
        calls.set(calls.get() + 1);
        if n == 5 {
            source.request_stop();
        }
        just(Continue::<(), u32>(n + 1))
    });
    let s = s.write_env(exec_core::WithStopToken::source(&source));
    assert_eq!(sync_wait(s), Ok(None));
    assert_eq!(calls.get(), 6);
}

#[test]
fn stop_requested_before_start_calls_f_never_and_drops_the_state() {
    let drops = DropCounter::new();
    let source = Arc::new(StopSource::new());
    source.request_stop();
    let calls = Cell::new(0);
    let (r, rec) = recorder_with_stop::<(), Infallible>(source.clone());
    let s = loop_with_state(drops.track(0u32), |t| {
        calls.set(calls.get() + 1);
        just(Continue(t))
    });
    let op = start_with(s, r, &rec);
    rec.expect_stopped();
    assert_eq!(calls.get(), 0);
    assert_eq!(drops.alive(), 0, "state dropped before completing");
    op.finish();
}

#[test]
fn panic_in_f_is_delivered() {
    let s = loop_with_state(0u32, |n| {
        assert!(n < 2, "f panicked");
        just(Continue::<(), u32>(n + 1))
    });
    let (op, rec) = start(s);
    assert_eq!(rec.expect_panic(), "f panicked");
    op.finish();
}

#[test]
fn panic_of_an_iteration_is_delivered() {
    let s = loop_with_state(0u32, |n| {
        just(n).then(|n| -> ControlFlow<(), u32> {
            assert!(n < 2, "iteration panicked");
            Continue(n + 1)
        })
    });
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sync_wait(s)));
    assert_eq!(
        r.unwrap_err().downcast_ref::<&str>(),
        Some(&"iteration panicked")
    );
}

#[test]
fn state_and_f_are_dropped_when_the_loop_ends() {
    let drops = DropCounter::new();
    let in_f = drops.track(());
    let d2 = drops.clone();
    let s = loop_with_state((0u32, drops.track(())), move |(n, t)| {
        let _keep = &in_f;
        // At most: the state in hand, `f`'s capture.
        assert!(d2.alive() <= 2);
        just(()).then(move |()| {
            if n == 3 {
                drop(t);
                Break(n)
            } else {
                Continue((n + 1, t))
            }
        })
    });
    let d3 = drops.clone();
    let s = s.then(move |n| {
        assert_eq!(d3.alive(), 0, "f and state dropped before completing");
        n
    });
    assert_eq!(sync_wait(s), Ok(Some(3)));
    assert_eq!(drops.alive(), 0);
}

#[test]
fn state_and_f_are_dropped_on_error() {
    let drops = DropCounter::new();
    let in_f = drops.track(());
    let s = loop_with_state(drops.track(()), move |t| {
        let _keep = &in_f;
        just_error::<ControlFlow<(), Tracked<()>>, _>(7).then(move |c| {
            drop(t);
            c
        })
    });
    let (op, rec) = start(s);
    assert_eq!(rec.expect_error(), 7);
    assert_eq!(drops.alive(), 0);
    op.finish();
}

#[test]
fn asynchronous_iterations_complete_exactly_once() {
    let sch = ManualScheduler::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let sch2 = sch.clone();
    let (op, rec) = start(loop_with_state(0u32, move |n| {
        c2.fetch_add(1, Ordering::SeqCst);
        sch2.schedule().then(move |()| {
            if n == 3 {
                Break(n * 10)
            } else {
                Continue(n + 1)
            }
        })
    }));
    for i in 0..3 {
        assert!(!rec.is_complete(), "iteration {i}");
        assert!(sch.run_one());
    }
    assert!(!rec.is_complete());
    assert!(sch.run_one());
    assert_eq!(rec.completions(), 1);
    assert_eq!(rec.expect_value(), 30);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(sch.pending(), 0, "no iteration after the last");
    op.finish();
}

#[test]
fn iterations_completing_on_another_thread() {
    let sch = ManualScheduler::new();
    let sch2 = sch.clone();
    let s = loop_with_state(0u32, move |n| {
        sch2.schedule()
            .then(move |()| if n == 5 { Break(n) } else { Continue(n + 1) })
    });
    let (op, rec) = start(s);
    let driver = std::thread::spawn(move || while sch.run_one() {});
    driver.join().unwrap();
    assert_eq!(rec.expect_value(), 5);
    op.finish();
}

#[test]
fn stopped_by_the_scheduler_ends_the_loop_stopped() {
    let sch = ManualScheduler::new();
    let sch2 = sch.clone();
    let (op, rec) = start(loop_with_state(0u32, move |n| {
        sch2.schedule().then(move |()| Continue::<(), u32>(n + 1))
    }));
    assert!(sch.run_one());
    assert_eq!(sch.stop_all(), 1);
    rec.expect_stopped();
    op.finish();
}

#[test]
fn a_million_inline_iterations_do_not_grow_the_stack() {
    let n = if cfg!(miri) { 1_000 } else { 1_000_000 };
    let s = loop_with_state(0usize, move |i| {
        just(i).then(move |i| if i == n { Break(i) } else { Continue(i + 1) })
    });
    assert_eq!(sync_wait(s), Ok(Some(n)));
}

/// A receiver holding a tracked value: its drop is counted.
struct TrackedSink(#[allow(dead_code)] Tracked<()>);
impl<T, E> exec_core::Receiver<T, E> for TrackedSink {
    fn set_value(self, _: T) {}
    fn set_error(self, _: E) {}
    fn set_stopped(self) {}
}

/// Whatever the loop holds when it is dropped — the state, the function
/// and the receiver before `start`; an iteration's operation after it
/// completed, if the loop has not dropped it yet — is dropped exactly once.
#[test]
fn dropping_the_op_drops_what_it_holds_once() {
    use exec_core::{OperationState, SenderTo};
    let drops = DropCounter::new();
    let (state, held) = (drops.track(0u32), drops.track(()));
    let op = loop_with_state(state, move |n| {
        let _keep = &held;
        just(Break::<u32, Tracked<u32>>(n.value))
    })
    .connect(TrackedSink(drops.track(())));
    assert_eq!(drops.alive(), 3);
    drop(op);
    assert_eq!((drops.created(), drops.dropped()), (3, 3));
    // Two iterations, completing inline; the loop finishes with the body
    // and the last iteration dropped before completing.
    let held = drops.track(());
    let mut op = Box::pin(
        loop_with_state(drops.track(0u32), move |n| {
            let _keep = &held;
            let v = n.value;
            just(n).then(move |mut n| match v {
                0 => {
                    n.value = 1;
                    Continue(n)
                }
                _ => Break(v),
            })
        })
        .connect(TrackedSink(drops.track(()))),
    );
    // SAFETY: completes inline; dropped afterwards.
    unsafe { op.as_mut().start() };
    assert_eq!(drops.alive(), 0, "state, function and receiver dropped");
    drop(op);
    assert_eq!((drops.created(), drops.dropped()), (6, 6));
}

/// A one-word receiver, to measure operation states with.
struct Sink(#[allow(dead_code)] Box<u8>);
impl<T, E> exec_core::Receiver<T, E> for Sink {
    fn set_value(self, _: T) {}
    fn set_error(self, _: E) {}
    fn set_stopped(self) {}
}

/// Memory: the loop keeps its body, its receiver, a slot for an inline
/// iteration's outcome (which holds the initial state until the loop
/// starts) and the iteration's operation, plus one word (its
/// phase and whether an iteration is there); the iterations' receiver is
/// two words (it answers the environment through the loop). Measured on
/// 64-bit targets; raising it is a decision.
#[cfg(target_pointer_width = "64")]
#[test]
fn operation_state_stays_small() {
    use exec_core::SenderTo;
    fn op_size<S: SenderTo<Sink>>(_: &S) -> usize {
        std::mem::size_of::<S::Operation>()
    }
    let s = loop_with_state(0u64, |n| {
        just(n + 1).then(|n| if n > 3 { Break(n) } else { Continue(n) })
    });
    let n = op_size(&s);
    eprintln!("loop_with_state(u64, just.then): {n} B");
    // (80 B when the body kept the initial state besides the stash.)
    assert!(n <= 64, "loop op: {n} B");
    // The initial state waits in the slot an inline iteration's outcome
    // uses later, not in a field of its own: a large state is stored once.
    let s = loop_with_state([0u64; 32], |_| {
        just(()).then(|()| Break::<(), [u64; 32]>(()))
    });
    let n = op_size(&s);
    eprintln!("loop_with_state([u64; 32], just.then): {n} B");
    assert!(n <= 256 + 64, "loop op with a 256-B state: {n} B");
}
