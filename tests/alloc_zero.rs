//! The performance rule "no allocation on the path of a statically composed
//! sender, from connect to completion", proved with a counting global
//! allocator. Each test counts only allocations made by its own thread.
use std::cell::Cell;
use std::pin::pin;

use exec::{
    OperationState, Receiver, RunLoop, Scheduler, SenderExt, SenderTo, just, just_error, sync_wait,
    when_all,
};

#[path = "../exec-core/tests/support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations_during;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

#[test]
fn just_then_chain_allocates_nothing() {
    let (out, n) = allocations_during(|| {
        sync_wait(
            just(20)
                .then(|x| x * 2)
                .then(|x: i32| x + 2)
                .then(|x| (x, x)),
        )
    });
    assert_eq!(out, Ok(Some((42, 42))));
    assert_eq!(n, 0, "allocations on the just/then path");
}

struct Store<'a>(&'a Cell<Option<u64>>);
impl Receiver<u64, std::convert::Infallible> for Store<'_> {
    fn set_value(self, v: u64) {
        self.0.set(Some(v));
    }
    fn set_error(self, e: std::convert::Infallible) {
        match e {}
    }
    fn set_stopped(self) {
        panic!("unexpected stop");
    }
}
// SAFETY: test-only: the receiver runs on the thread that drives the loop,
// which is the thread that created it (the RunLoop requires `Send`).
unsafe impl Send for Store<'_> {}

#[test]
fn run_loop_scheduled_chain_allocates_nothing() {
    let run_loop = RunLoop::new();
    let result = Cell::new(None);
    let (_, n) = allocations_during(|| {
        let sender = run_loop
            .scheduler()
            .schedule()
            .then(|()| 40u64)
            .then(|x| x + 2);
        let mut op = pin!(sender.connect(Store(&result)));
        // SAFETY: `op` lives on this frame until the loop has run it.
        unsafe { op.as_mut().start() };
        run_loop.finish();
        run_loop.run();
    });
    assert_eq!(result.get(), Some(42));
    assert_eq!(n, 0, "allocations on the RunLoop path");
}

#[test]
fn when_all_of_then_and_let_value_allocates_nothing() {
    // The exact case of issue 2: a when_all over a `then` and a `let_value`,
    // followed by a `then`, run by sync_wait.
    let (out, n) = allocations_during(|| {
        sync_wait(
            when_all(
                just(1).then(|x| x + 10),
                just(2).let_value(|y| just(y * 100).then(|z| z + 1)),
            )
            .then(|(a, b)| a + b),
        )
    });
    assert_eq!(out, Ok(Some(11 + 201)));
    assert_eq!(n, 0, "allocations on the when_all/let_value path");
}

#[test]
fn when_all_with_stop_machinery_allocates_nothing() {
    // Children that can fail: when_all carries its stop source and chains it
    // to the receiver's token; an error stops the sibling. Still no heap.
    let (out, n) = allocations_during(|| {
        sync_wait(
            when_all(
                just(1).with_error::<u32>().then(|x| x + 10),
                just_error::<i32, u32>(7).let_value(|y| just(y * 100).with_error::<u32>()),
            )
            .then(|(a, b)| a + b),
        )
    });
    assert_eq!(out, Err(7));
    assert_eq!(n, 0, "allocations on the failing when_all path");
}
