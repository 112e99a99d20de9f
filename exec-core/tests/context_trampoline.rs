//! `TrampolineScheduler`: inline completion, deferral beyond the depth bound,
//! stopped, and deep recursion on a small stack.
mod common;

use common::*;
use exec_core::{
    Env, OperationState, Receiver, Scheduler, SenderExt, SenderTo, StopSource, StopToken,
    TrampolineScheduler, ops::TrampolineOp, sync_wait,
};
use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

#[test]
fn completes_inline_at_depth_zero() {
    let (op, rec) = start(TrampolineScheduler::new().schedule().then(|()| 3));
    assert!(rec.is_complete(), "completed inside start");
    assert_eq!(rec.expect_value(), 3);
    op.finish();
    assert_eq!(
        sync_wait(TrampolineScheduler::new().schedule()),
        Ok(Some(()))
    );
}

#[test]
fn stopped_when_stop_was_requested() {
    let source = Arc::new(StopSource::new());
    source.request_stop();
    let (r, rec) = recorder_with_stop::<(), Infallible>(source);
    let op = start_with(TrampolineScheduler::new().schedule(), r, &rec);
    rec.expect_stopped();
    op.finish();
}

#[test]
fn scheduler_equality_and_bound() {
    assert_eq!(TrampolineScheduler::new(), TrampolineScheduler::default());
    assert_eq!(TrampolineScheduler::with_max_depth(0).max_depth(), 1);
    assert_ne!(
        TrampolineScheduler::with_max_depth(3),
        TrampolineScheduler::new()
    );
}

/// A receiver that, on each completion, starts the next `schedule()` of a
/// chain from inside its own completion (the pattern that overflows the
/// stack without a trampoline), recording how deeply completions nest.
struct Chain {
    state: Rc<ChainState>,
}

struct ChainState {
    sch: TrampolineScheduler,
    remaining: Cell<usize>,
    done: Cell<usize>,
    nesting: Cell<usize>,
    max_nesting: Cell<usize>,
    ops: RefCell<Vec<Pin<Box<TrampolineOp<Chain>>>>>,
}

impl Receiver<(), Infallible> for Chain {
    fn set_value(self, (): ()) {
        let s = self.state.clone();
        s.done.set(s.done.get() + 1);
        s.nesting.set(s.nesting.get() + 1);
        s.max_nesting.set(s.max_nesting.get().max(s.nesting.get()));
        if s.remaining.get() > 0 {
            s.remaining.set(s.remaining.get() - 1);
            let mut op = Box::pin(s.sch.schedule().connect(Chain { state: s.clone() }));
            // SAFETY: only used to start it in place below; never moved.
            let p: *mut TrampolineOp<Chain> = unsafe { op.as_mut().get_unchecked_mut() };
            s.ops.borrow_mut().push(op);
            // SAFETY: the box is kept in `ops` (never removed) until the test ends.
            unsafe { Pin::new_unchecked(&mut *p).start() };
        }
        s.nesting.set(s.nesting.get() - 1);
    }
    fn set_error(self, e: Infallible) {
        match e {}
    }
    fn set_stopped(self) {
        panic!("unexpected stop")
    }
    fn env(&self) -> impl Env<'_> {
        NoStop
    }
}

struct NoStop;
impl<'a> Env<'a> for NoStop {
    fn stop_token(&self) -> StopToken<'a> {
        StopToken::never()
    }
}

fn run_chain(max_depth: usize, steps: usize) -> (usize, usize) {
    let state = Rc::new(ChainState {
        sch: TrampolineScheduler::with_max_depth(max_depth),
        remaining: Cell::new(steps - 1),
        done: Cell::new(0),
        nesting: Cell::new(0),
        max_nesting: Cell::new(0),
        ops: RefCell::new(Vec::new()),
    });
    let mut first = Box::pin(state.sch.schedule().connect(Chain {
        state: state.clone(),
    }));
    // SAFETY: `first` lives until the end of this function, after the chain
    // has completed (asserted below).
    unsafe { first.as_mut().start() };
    assert_eq!(state.done.get(), steps, "every step ran once");
    state.ops.borrow_mut().clear();
    (state.done.get(), state.max_nesting.get())
}

#[test]
fn nesting_is_bounded_by_max_depth() {
    for max_depth in [1, 2, 5, 16] {
        let (done, max_nesting) = run_chain(max_depth, 100);
        assert_eq!(done, 100);
        assert!(
            max_nesting <= max_depth,
            "max_depth {max_depth}: completions nested {max_nesting} deep"
        );
        assert_eq!(max_nesting, max_depth, "inline up to the bound");
    }
}

#[test]
fn deep_chain_on_a_two_mib_stack() {
    let steps = if cfg!(miri) { 200 } else { 200_000 };
    let h = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || run_chain(TrampolineScheduler::DEFAULT_MAX_DEPTH, steps))
        .unwrap();
    let (done, max_nesting) = h.join().unwrap();
    assert_eq!(done, steps);
    assert!(max_nesting <= TrampolineScheduler::DEFAULT_MAX_DEPTH);
}
