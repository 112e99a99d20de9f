//! An owner may free an operation state as soon as its receiver has been
//! completed, even while the completion is still running on the stack of the
//! operation's `start` (a scope's `spawn` frees its heap frame that way).
//!
//! The consumer here does exactly that: it heap-allocates the operation and
//! frees it from inside the receiver's completion. Under miri this catches an
//! operation state whose `start` asserts, through a `Pin<&mut Self>` of an
//! `Unpin` type, that its memory stays valid for the whole call (regression:
//! `JustOp`, `InlineOp`, `JustErrorOp`, … were `Unpin`; miri reported
//! "deallocating while item is strongly protected").
mod common;

use std::convert::Infallible;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use common::Fixed;
use exec_core::{
    Completion, InlineScheduler, OperationState, PanicPayload, Receiver, Scheduler, Sender,
    SenderExt, SenderTo, TrampolineScheduler, WithScheduler, just, just_error, just_stopped,
    loop_with_state, on, on_returning_to, read_env, schedule_on_current, starts_on, stop_when,
    when_all, when_all_vec, when_any,
};

type Out<T, E> = Arc<Mutex<Option<Result<Completion<T, E>, PanicPayload>>>>;

/// Records the completion, then frees the operation it belongs to.
struct FreeingReceiver<T, E> {
    op: *mut (),
    free: unsafe fn(*mut ()),
    out: Out<T, E>,
}

// SAFETY: the pointer is only used to free the operation (once, from the
// completion), which the owner may do from any thread for these `Send` ops.
unsafe impl<T: Send, E: Send> Send for FreeingReceiver<T, E> {}
// SAFETY: `&FreeingReceiver` gives access to nothing but the `Sync` mutex.
unsafe impl<T: Send, E: Send> Sync for FreeingReceiver<T, E> {}

impl<T, E> FreeingReceiver<T, E> {
    fn finish(self, result: Result<Completion<T, E>, PanicPayload>) {
        *self.out.lock().unwrap() = Some(result);
        // SAFETY: `op` is the box `run_and_free` leaked for this operation;
        // the operation has completed (this is its receiver's completion).
        unsafe { (self.free)(self.op) }
    }
}

impl<T, E> Receiver<T, E> for FreeingReceiver<T, E> {
    fn set_value(self, value: T) {
        self.finish(Ok(Completion::Value(value)))
    }
    fn set_error(self, error: E) {
        self.finish(Ok(Completion::Error(error)))
    }
    fn set_stopped(self) {
        self.finish(Ok(Completion::Stopped))
    }
    fn set_panic(self, payload: PanicPayload) {
        self.finish(Err(payload))
    }
}

/// # Safety
/// `p` came from `Box::<MaybeUninit<O>>::into_raw` and holds an initialised `O`.
unsafe fn free_box<O>(p: *mut ()) {
    // SAFETY: per the contract (`MaybeUninit<O>` and `O` share a layout).
    drop(unsafe { Box::from_raw(p.cast::<O>()) })
}

/// [`run_and_free_raw`], re-raising a delivered panic.
fn run_and_free<S, T, E>(sender: S) -> Completion<T, E>
where
    S: Sender<Output = T, Error = E> + SenderTo<FreeingReceiver<T, E>>,
{
    match run_and_free_raw(sender) {
        Ok(c) => c,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// Connects `sender` in a heap frame, starts it and expects it to complete
/// inline; the receiver frees the frame inside the completion.
fn run_and_free_raw<S, T, E>(sender: S) -> Result<Completion<T, E>, PanicPayload>
where
    S: Sender<Output = T, Error = E> + SenderTo<FreeingReceiver<T, E>>,
{
    let out: Out<T, E> = Arc::new(Mutex::new(None));
    let frame: *mut MaybeUninit<S::Operation> = Box::into_raw(Box::new(MaybeUninit::uninit()));
    let op = frame.cast::<S::Operation>();
    let receiver = FreeingReceiver {
        op: op.cast(),
        free: free_box::<S::Operation>,
        out: out.clone(),
    };
    // SAFETY: `op` is valid for writes; once written it is never moved and
    // is freed only by the completion, after which this frame touches it no
    // more.
    unsafe {
        op.write(sender.connect(receiver));
        Pin::new_unchecked(&mut *op).start();
    }
    let result = out.lock().unwrap().take();
    result.expect("the operation did not complete inline")
}

#[test]
fn factories() {
    assert_eq!(run_and_free(just(1)), Completion::Value(1));
    assert_eq!(
        run_and_free(just_error::<i32, _>("e")),
        Completion::Error("e")
    );
    assert_eq!(
        run_and_free(just_stopped::<i32, Infallible>()),
        Completion::Stopped
    );
    assert_eq!(
        run_and_free(read_env(|_env| 5).then(|x: i32| x)),
        Completion::Value(5)
    );
    assert_eq!(
        run_and_free(Fixed::<i32, ()>(Completion::Value(3))),
        Completion::Value(3)
    );
}

#[test]
fn schedulers() {
    assert_eq!(
        run_and_free(InlineScheduler.schedule()),
        Completion::Value(())
    );
    assert_eq!(
        run_and_free(TrampolineScheduler::new().schedule()),
        Completion::Value(())
    );
    assert_eq!(
        run_and_free(just(1).continues_on(InlineScheduler)),
        Completion::Value(1)
    );
    assert_eq!(
        run_and_free(starts_on(InlineScheduler, just(2))),
        Completion::Value(2)
    );
    // The erased scheduler's operation (`DynScheduleOp`), executed inline
    // inside its own `start` by the inline context.
    let inline = InlineScheduler.erased().unwrap();
    assert_eq!(run_and_free(inline.schedule()), Completion::Value(()));
    assert_eq!(
        run_and_free(schedule_on_current().write_env(WithScheduler::new(Some(inline)))),
        Completion::Value(())
    );
    // No current scheduler: completes inline in `start`.
    assert_eq!(run_and_free(schedule_on_current()), Completion::Value(()));
    assert_eq!(
        run_and_free(on(InlineScheduler, just(3)).write_env(WithScheduler::new(Some(inline)))),
        Completion::Value(3)
    );
    assert_eq!(
        run_and_free(on(InlineScheduler, just(3))),
        Completion::Value(3)
    );
    assert_eq!(
        run_and_free(on_returning_to(InlineScheduler, just(2), InlineScheduler)),
        Completion::Value(2)
    );
}

#[test]
fn sequential_adaptors() {
    assert_eq!(run_and_free(just(1).then(|x| x + 1)), Completion::Value(2));
    assert_eq!(
        run_and_free(just(1).let_value(|x| just(x * 10))),
        Completion::Value(10)
    );
    assert_eq!(
        run_and_free(just_error::<i32, i32>(4).let_error(|e| just(e + 1))),
        Completion::Value(5)
    );
    assert_eq!(
        run_and_free(just(1).finally(just(()))),
        Completion::Value(1)
    );
    assert_eq!(run_and_free(just(()).repeat_n(3)), Completion::Value(()));
    assert_eq!(
        run_and_free(loop_with_state(0u32, |n| just(if n == 3 {
            std::ops::ControlFlow::Break(n)
        } else {
            std::ops::ControlFlow::Continue(n + 1)
        }))),
        Completion::Value(3)
    );
    assert_eq!(
        run_and_free(just(7).boxed::<i32, Infallible>()),
        Completion::Value(7)
    );
    assert_eq!(
        run_and_free(just(1).materialize().dematerialize()),
        Completion::Value(1)
    );
    assert_eq!(
        run_and_free(just(1).unstoppable().into_result()),
        Completion::Value(Ok(1))
    );
    assert_eq!(
        run_and_free(just(3).bulk(2, |_i, _x: &mut i32| {})),
        Completion::Value(3)
    );
}

#[test]
fn nary_adaptors() {
    assert_eq!(
        run_and_free(when_all(just(1), just(2))),
        Completion::Value((1, 2))
    );
    assert_eq!(
        run_and_free(when_any(just(1), just(2))),
        Completion::Value(1)
    );
    assert_eq!(
        run_and_free(when_all_vec(vec![just(1), just(2)])),
        Completion::Value(vec![1, 2])
    );
    // Enough children to be counted per chunk.
    assert_eq!(
        run_and_free(when_all_vec((0..100).map(just))),
        Completion::Value((0..100).collect())
    );
    assert_eq!(
        run_and_free(stop_when(just(1), just_stopped::<(), Infallible>())),
        Completion::Value(1)
    );
}

#[test]
fn panic_channel() {
    let boom = |_: i32| -> i32 { panic!("boom") };
    assert!(run_and_free_raw(just(1).then(boom)).is_err());
    assert!(run_and_free_raw(just(1).let_value(move |x| just(boom(x)))).is_err());
    assert!(run_and_free_raw(when_all(just(1).then(boom), just(2))).is_err());
    assert!(run_and_free_raw(just(1).then(boom).boxed::<i32, Infallible>()).is_err());
    let inline = WithScheduler::new(InlineScheduler.erased());
    assert!(run_and_free_raw(on(InlineScheduler, just(1).then(boom)).write_env(inline)).is_err());
}
