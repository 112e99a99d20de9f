//! No allocation on the path of the adaptors from this branch: the hop of
//! `continues_on`/`starts_on`/`finally` is connected in place, inside the
//! pinned operation state. Counts only the test thread's allocations.
use std::cell::Cell;
use std::convert::Infallible;
use std::pin::pin;

use exec_core::{
    Completion, InlineScheduler, OperationState, Receiver, RunLoop, SenderExt, SenderTo, just, on,
    on_returning_to, read_env, starts_on, sync_wait,
};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations_during;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

#[test]
fn every_adaptor_of_this_branch_allocates_nothing() {
    let (out, n) = allocations_during(|| {
        let s = starts_on(InlineScheduler, just(1))
            .continues_on(InlineScheduler)
            .finally(just(()))
            .with_error::<u8>()
            .map_error(|e| e as u16)
            .upon_error(|_| 0)
            .materialize()
            .dematerialize::<i32, Infallible>()
            .bulk(3, |i, v| *v += i as i32)
            .stopped_as_optional()
            .into_result()
            .into_variant()
            .unstoppable()
            .write_env(())
            .upon_stopped(|| Ok(None));
        let s = on_returning_to(InlineScheduler, s, InlineScheduler);
        let s = on(InlineScheduler, s);
        let t = read_env(|env| env.stop_token().stop_possible())
            .then(Completion::<bool, Infallible>::Value)
            .dematerialize();
        (sync_wait(s), sync_wait(t))
    });
    assert_eq!(out, (Ok(Some(Ok(Some(4)))), Ok(Some(false))));
    assert_eq!(n, 0, "allocations on the adaptor path");
}

struct Store<'a>(&'a Cell<Option<u64>>);
impl Receiver<u64, Infallible> for Store<'_> {
    fn set_value(self, v: u64) {
        self.0.set(Some(v));
    }
    fn set_error(self, e: Infallible) {
        match e {}
    }
    fn set_stopped(self) {
        panic!("unexpected stop");
    }
}
// SAFETY: test-only: the receiver runs on the thread that drives the loop,
// which is the thread that created it (the RunLoop requires `Send`).
unsafe impl Send for Store<'_> {}
// SAFETY: as above; never shared with another thread.
unsafe impl Sync for Store<'_> {}

#[test]
fn run_loop_hops_allocate_nothing() {
    let run_loop = RunLoop::new();
    let result = Cell::new(None);
    let (_, n) = allocations_during(|| {
        let sender = starts_on(run_loop.scheduler(), just(40u64))
            .continues_on(run_loop.scheduler())
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
