//! `let_value`: all channels, panics, eager drops, async first/second
//! operations, cancellation, and no allocation.
mod common;

use common::*;
use exec_core::{Completion, Scheduler, SenderExt, StopSource, just, sync_wait};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations_in;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

#[test]
fn value_runs_the_next_sender() {
    assert_eq!(sync_wait(just(2).let_value(|x| just(x * 21))), Ok(Some(42)));
    let (op, rec) = start(just("abc").let_value(|s| just(s.len())));
    assert_eq!(rec.expect_value(), 3);
    op.finish();
}

#[test]
fn second_sender_error_and_stopped_are_forwarded() {
    let (op, rec) = start(
        Fixed::<i32, &str>(Completion::Value(1))
            .let_value(|_| Fixed::<i32, &str>(Completion::Error("second"))),
    );
    assert_eq!(rec.expect_error(), "second");
    op.finish();
    let (op, rec) = start(
        Fixed::<i32, &str>(Completion::Value(1))
            .let_value(|_| Fixed::<i32, &str>(Completion::Stopped)),
    );
    rec.expect_stopped();
    op.finish();
}

#[test]
fn error_skips_f_and_drops_it_before_forwarding() {
    let drops = DropCounter::new();
    let held = drops.track(());
    let called = Arc::new(AtomicBool::new(false));
    let c = called.clone();
    let (op, rec) = start(
        Fixed::<i32, &str>(Completion::Error("boom")).let_value(move |x| {
            let _keep = &held;
            c.store(true, Ordering::SeqCst);
            Fixed::<i32, &str>(Completion::Value(x))
        }),
    );
    assert_eq!(rec.expect_error(), "boom");
    assert!(!called.load(Ordering::SeqCst));
    assert_eq!(drops.alive(), 0, "f dropped");
    op.finish();
}

#[test]
fn error_is_converted_with_into() {
    #[derive(Debug, PartialEq)]
    struct Wide(String);
    impl From<&'static str> for Wide {
        fn from(s: &'static str) -> Self {
            Wide(s.into())
        }
    }
    let (op, rec) = start(
        Fixed::<i32, &'static str>(Completion::Error("narrow"))
            .let_value(|x| Fixed::<i32, Wide>(Completion::Value(x))),
    );
    assert_eq!(rec.expect_error(), Wide("narrow".into()));
    op.finish();
}

#[test]
fn stopped_skips_f() {
    let drops = DropCounter::new();
    let held = drops.track(());
    let (op, rec) = start(Fixed::<i32, ()>(Completion::Stopped).let_value(move |x| {
        let _keep = &held;
        Fixed::<i32, ()>(Completion::Value(x))
    }));
    rec.expect_stopped();
    assert_eq!(drops.alive(), 0);
    op.finish();
}

#[test]
fn panic_in_f_is_delivered() {
    let (op, rec) =
        start(just(1).let_value(|_: i32| -> exec_core::Just<i32> { panic!("f panicked") }));
    assert_eq!(rec.expect_panic(), "f panicked");
    op.finish();
    let r = std::panic::catch_unwind(|| {
        sync_wait(just(1).let_value(|_: i32| -> exec_core::Just<i32> { panic!("in sync_wait") }))
    });
    assert_eq!(payload_message(r.unwrap_err().as_ref()), "in sync_wait");
}

#[test]
fn panic_of_the_first_sender_is_forwarded_without_calling_f() {
    let called = Arc::new(AtomicBool::new(false));
    let c = called.clone();
    let (op, rec) = start(
        just(1)
            .then(|_: i32| -> i32 { panic!("first") })
            .let_value(move |x| {
                c.store(true, Ordering::SeqCst);
                just(x)
            }),
    );
    assert_eq!(rec.expect_panic(), "first");
    assert!(!called.load(Ordering::SeqCst));
    op.finish();
}

#[test]
fn value_lives_until_the_second_sender_completes_then_is_dropped() {
    let drops = DropCounter::new();
    let sch = ManualScheduler::new();
    let s2 = sch.clone();
    let (op, rec) = start(just(drops.track(7)).let_value(move |t| {
        s2.schedule().then(move |()| {
            let t = t;
            t.value * 6
        })
    }));
    assert!(!rec.is_complete());
    assert_eq!(drops.alive(), 1, "the value is kept by the second sender");
    assert_eq!(sch.run_all(), 1);
    assert_eq!(rec.expect_value(), 42);
    assert_eq!(drops.alive(), 0, "dropped once used");
    op.finish();
}

#[test]
fn first_operation_completing_later_and_its_state_dropped_before_f() {
    let drops = DropCounter::new();
    let sch = ManualScheduler::new();
    let held = drops.track(());
    let d2 = drops.clone();
    let first = sch.schedule().then(move |()| {
        let _keep = &held;
        5
    });
    let (op, rec) = start(first.let_value(move |x| {
        // The first operation (which held `held`) is gone by now.
        assert_eq!(d2.alive(), 0);
        just(x + 1)
    }));
    assert!(!rec.is_complete());
    sch.run_all();
    assert_eq!(rec.expect_value(), 6);
    op.finish();
}

/// The first operation completes inside its own `start`: `let_value`
/// drops it (and what it held) right there, before calling `f`, and runs
/// the second operation in its place, without keeping the value aside.
#[test]
fn first_operation_completing_inline_is_dropped_before_f() {
    let drops = DropCounter::new();
    let held = drops.track(());
    let d2 = drops.clone();
    let v = drops.track(5);
    let first = just(v).then(move |v| {
        let _keep = &held;
        v
    });
    let (op, rec) = start(first.let_value(move |x| {
        // The first operation (which held `held`) is gone; `x` is alive.
        assert_eq!(d2.alive(), 1);
        just(x.value + 1)
    }));
    assert_eq!(rec.expect_value(), 6);
    assert_eq!((drops.created(), drops.dropped()), (2, 2));
    op.finish();
}

/// Without a slot for an inline completion, an inline `let_value` nests
/// its second `start` in its first; a loop of them must still not grow
/// the stack (the loop iterates): a million on a 256 KiB stack.
#[test]
fn inline_let_values_in_a_loop_do_not_grow_the_stack() {
    let n: usize = if cfg!(miri) { 500 } else { 1_000_000 };
    let h = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || {
            let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let c = count.clone();
            let s = just(())
                .let_value(move |()| {
                    c.fetch_add(1, Ordering::Relaxed);
                    just(()).let_value(|()| just(()))
                })
                .repeat_n(n);
            (sync_wait(s), count.load(Ordering::Relaxed))
        })
        .unwrap();
    assert_eq!(h.join().unwrap(), (Ok(Some(())), n));
}

#[test]
fn stop_request_reaches_both_operations() {
    let source = Arc::new(StopSource::new());
    let sch = ManualScheduler::new();
    let called = Arc::new(AtomicBool::new(false));
    let c = called.clone();
    let (r, rec) = recorder_with_stop::<(), std::convert::Infallible>(source.clone());
    let op = start_with(
        sch.schedule().let_value(move |()| {
            c.store(true, Ordering::SeqCst);
            just(())
        }),
        r,
        &rec,
    );
    source.request_stop();
    sch.run_all();
    rec.expect_stopped();
    assert!(!called.load(Ordering::SeqCst), "f not called when stopped");
    op.finish();

    // Stop requested while the second operation waits.
    let source = Arc::new(StopSource::new());
    let s2 = sch.clone();
    let (r, rec) = recorder_with_stop::<(), std::convert::Infallible>(source.clone());
    let op = start_with(just(()).let_value(move |()| s2.schedule()), r, &rec);
    source.request_stop();
    sch.run_all();
    rec.expect_stopped();
    op.finish();
}

#[test]
fn nested_and_chained_inline_let_values() {
    let s = just(1)
        .let_value(|x| just(x + 1).let_value(|y| just(y * 10)))
        .let_value(|z| just(z + 2))
        .then(|v| v + 1);
    assert_eq!(sync_wait(s), Ok(Some(23)));
}

#[test]
fn a_let_value_chain_allocates_nothing() {
    assert_eq!(
        allocations_in(|| drop(Box::new(1u64))),
        1,
        "the counter counts"
    );
    // Warm up the run loop's lazily initialised parts.
    let _ = sync_wait(just(0));
    let n = allocations_in(|| {
        let r = sync_wait(
            just(1)
                .let_value(|x| just(x + 1))
                .let_value(|x| just(x * 2).let_value(|y| just(y + 1)))
                .then(|v| v * 10),
        );
        assert_eq!(r, Ok(Some(50)));
    });
    assert_eq!(n, 0, "let_value chain allocated");
}

/// A one-word receiver, to measure operation states with.
struct Sink(#[allow(dead_code)] Box<u8>);
impl<T, E> exec_core::Receiver<T, E> for Sink {
    fn set_value(self, _: T) {}
    fn set_error(self, _: E) {}
    fn set_stopped(self) {}
}

fn op_size<S: exec_core::SenderTo<Sink>>(_: &S) -> usize {
    std::mem::size_of::<S::Operation>()
}

/// Memory: everything a `let_value` keeps besides its own word (the
/// branch, the downstream receiver and the slot for an inline completion)
/// overlaps the second operation, which takes the first one's place.
/// Bounds measured on 64-bit targets; raising one is a decision.
#[cfg(target_pointer_width = "64")]
#[test]
fn operation_state_overlaps_what_it_keeps_with_the_second_operation() {
    let big = op_size(&just([0u8; 256]));
    let s = just(1u64).let_value(|_| just([0u8; 256]));
    assert_eq!(op_size(&s), big + 8, "one word besides the second op");
    // A large first value is not kept aside (there is no slot for an
    // inline completion): it is only in the first operation. Was 528 B.
    let s = just([0u8; 256]).let_value(|_| just(0u8));
    let n = op_size(&s);
    assert!(n <= big + 32, "large first value stored twice: {n} B");
    // A plain chain: was 120 B (a separate receiver-and-branch slot, stash
    // slot and enum tag word), then 112 B (with the stash and the phase).
    let chain = just(1u64)
        .let_value(|x| just(x + 1))
        .let_value(|x| just(x * 2));
    let n = op_size(&chain);
    eprintln!("just.let_value.let_value: {n} B");
    assert!(n <= 64, "chained let_value op: {n} B");
}

/// A receiver holding a tracked value: its drop is counted.
struct TrackedSink(#[allow(dead_code)] Tracked<()>);
impl<T, E> exec_core::Receiver<T, E> for TrackedSink {
    fn set_value(self, _: T) {}
    fn set_error(self, _: E) {}
    fn set_stopped(self) {}
}

/// Whatever the operation holds when it is dropped — the sender, function
/// and receiver before `start`; the second operation after it completed;
/// nothing after a forwarded completion — is dropped exactly once.
#[test]
fn dropping_the_op_drops_what_it_holds_once_in_every_state() {
    use exec_core::{OperationState, SenderTo, just_error};
    let drops = DropCounter::new();
    // Never started.
    let (v, held) = (drops.track(1), drops.track(()));
    let op = just(v)
        .let_value(move |_| {
            let _keep = &held;
            just(0)
        })
        .connect(TrackedSink(drops.track(())));
    assert_eq!(drops.alive(), 3);
    drop(op);
    assert_eq!((drops.created(), drops.dropped()), (3, 3));
    // Ran the second operation, which is still in the op when it is dropped.
    let v = drops.track(2);
    let mut op = Box::pin(
        just(v)
            .let_value(|v| just(v.value * 2))
            .connect(TrackedSink(drops.track(()))),
    );
    // SAFETY: completes inline; dropped afterwards.
    unsafe { op.as_mut().start() };
    assert_eq!(drops.alive(), 0, "value and receiver used up");
    drop(op);
    assert_eq!((drops.created(), drops.dropped()), (5, 5));
    // Forwarded an error: nothing is left in the op.
    let f_held = drops.track(());
    let mut op = Box::pin(
        just_error::<u32, _>(drops.track(3))
            .let_value(move |x| {
                let _keep = &f_held;
                just(x).with_error::<Tracked<i32>>()
            })
            .connect(TrackedSink(drops.track(()))),
    );
    // SAFETY: completes inline; dropped afterwards.
    unsafe { op.as_mut().start() };
    assert_eq!(
        drops.alive(),
        0,
        "function dropped, error and receiver used up"
    );
    drop(op);
    assert_eq!((drops.created(), drops.dropped()), (8, 8));
}
