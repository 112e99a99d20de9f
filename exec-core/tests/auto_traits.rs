//! `Send`, `Sync`, `Unpin` and `Copy` of the public types, as intended.
//!
//! Everything here is checked at compile time: the test binary builds only
//! if every assertion holds. `assert_impl!` requires the traits;
//! `assert_not_impl!` makes the build ambiguous (and fail) if the type *does*
//! implement the trait (the trick of the `static_assertions` crate, written
//! out here to avoid the dependency).
#![allow(dead_code)]

use std::cell::Cell;
use std::convert::Infallible;
use std::rc::Rc;

use exec_core::ops::*;
use exec_core::*;

/// Requires `$ty: $trait + ...`.
macro_rules! assert_impl {
    ($ty:ty: $($trait:path),+ $(,)?) => {
        const _: fn() = || {
            fn check<T: ?Sized $(+ $trait)+>() {}
            check::<$ty>();
        };
    };
}

/// Fails to build if `$ty: $trait`.
macro_rules! assert_not_impl {
    ($ty:ty: $trait:path) => {
        const _: fn() = || {
            trait AmbiguousIfImpl<A> {
                fn some_item() {}
            }
            impl<T: ?Sized> AmbiguousIfImpl<()> for T {}
            struct Invalid;
            impl<T: ?Sized + $trait> AmbiguousIfImpl<Invalid> for T {}
            // Two candidate impls (and a failed inference) if `$ty: $trait`.
            let _ = <$ty as AmbiguousIfImpl<_>>::some_item;
        };
    };
}

/// The operation `$sender` makes for receiver `$recv`.
macro_rules! op {
    ($sender:ty, $recv:ty) => {
        <$sender as SenderTo<$recv>>::Operation
    };
}

type F = fn(i32) -> i32;
type Rx<T> = SyncWaitReceiver<T, Infallible>;
type LoopF = fn(u32) -> Just<std::ops::ControlFlow<u32, u32>>;

/// A receiver that must stay on its thread.
struct LocalReceiver(Rc<()>);
impl<T, E> Receiver<T, E> for LocalReceiver {
    fn set_value(self, _: T) {}
    fn set_error(self, _: E) {}
    fn set_stopped(self) {}
}

// ------------------------------------------------------------- stop tokens
assert_impl!(StopSource: Send, Sync);
assert_impl!(StopToken<'static>: Send, Sync, Copy, Unpin);
assert_impl!(NeverStopToken: Send, Sync, Copy, Unpin);
assert_impl!(StopCallback<'static, fn()>: Send, Sync);
assert_not_impl!(StopCallback<'static, fn()>: Unpin);
// A callback that must stay on its thread makes the registration `!Send`.
assert_not_impl!(StopCallback<'static, LocalCallback>: Send);
assert_not_impl!(StopCallback<'static, LocalCallback>: Sync);
struct LocalCallback(Rc<()>);
impl OnStop for LocalCallback {
    fn on_stop(self) {}
}

// ------------------------------------------------------- environments, misc
assert_impl!(EmptyEnv: Send, Sync, Copy, Unpin);
assert_impl!(Completion<i32, String>: Send, Sync, Unpin);
assert_impl!(PanicPayload: Send);
assert_impl!(ParentRef<std::sync::atomic::AtomicBool>: Send, Sync);
assert_not_impl!(ParentRef<Cell<i32>>: Send);
assert_not_impl!(ParentRef<Cell<i32>>: Sync);
// The receiver embedding it decides.
assert_not_impl!(ErasedParentRef<i32>: Send);
assert_not_impl!(ErasedParentRef<i32>: Sync);

// ---------------------------------------------------- contexts / schedulers
assert_impl!(RunLoop: Send, Sync);
assert_impl!(RunLoopScheduler<'static>: Send, Sync, Copy, Unpin);
assert_impl!(RunLoopSender<'static>: Send, Sync, Copy, Unpin);
assert_impl!(InlineScheduler: Send, Sync, Copy, Unpin);
assert_impl!(TrampolineScheduler: Send, Sync, Copy, Unpin);
assert_impl!(SyncWaitReceiver<i32, String>: Send, Sync);
assert_impl!(SchedulerRef<'static>: Send, Sync, Copy, Unpin);
assert_impl!(SchedulerRefSender<'static>: Send, Sync, Copy, Unpin);
assert_impl!(ScheduleOnCurrent: Send, Sync, Copy, Unpin);
assert_impl!(WithScheduler<'static>: Send, Sync, Copy, Unpin);
assert_impl!(TaskNode: Send, Sync);
assert_not_impl!(TaskNode: Unpin);

// ------------------------------------------------ senders: Send when parts are
assert_impl!(Just<i32>: Send, Sync, Unpin);
assert_not_impl!(Just<Rc<i32>>: Send);
assert_impl!(JustError<i32, String>: Send, Sync, Unpin);
assert_impl!(JustStopped<i32, String>: Send, Sync, Unpin);
assert_impl!(Then<Just<i32>, F>: Send, Sync, Unpin);
assert_not_impl!(Then<Just<i32>, Rc<F>>: Send);
assert_impl!(LetValue<Just<i32>, fn(i32) -> Just<i32>>: Send, Sync, Unpin);
assert_impl!(WhenAll<(Just<i32>, Just<u8>)>: Send, Sync, Unpin);
assert_impl!(WhenAny<(Just<i32>, Just<i32>)>: Send, Sync, Unpin);
assert_impl!(StopWhen<Just<i32>, JustStopped<(), Infallible>>: Send, Sync, Unpin);
assert_impl!(Finally<Just<i32>, Just<()>>: Send, Sync, Unpin);
assert_impl!(ContinuesOn<Just<i32>, InlineScheduler>: Send, Sync, Unpin);
assert_impl!(RepeatN<Just<()>>: Send, Sync, Unpin);
assert_impl!(LoopWithState<u32, LoopF>: Send, Sync, Unpin);
assert_impl!(StartsOn<InlineScheduler, Just<i32>>: Send, Sync, Unpin);
assert_impl!(On<InlineScheduler, Just<i32>>: Send, Sync, Unpin);
assert_impl!(OnReturningTo<InlineScheduler, Just<i32>, InlineScheduler>: Send, Sync, Unpin);
// Type-erased: always `Send` (that is what `AnySender::new` requires).
assert_impl!(AnySender<i32, Infallible>: Send, Unpin);
assert_impl!(AnySender<i32, String>: Send, Unpin);

// ----------------------------------------- operation states: never `Unpin`
// (see `OperationState`: the owner may free an op inside its `start`).
assert_not_impl!(op!(Just<i32>, Rx<i32>): Unpin);
assert_not_impl!(op!(JustError<i32, Infallible>, Rx<i32>): Unpin);
assert_not_impl!(op!(JustStopped<i32, Infallible>, Rx<i32>): Unpin);
assert_not_impl!(op!(ReadEnv<fn(&dyn Env<'_>) -> i32>, Rx<i32>): Unpin);
assert_not_impl!(op!(InlineSender, Rx<()>): Unpin);
assert_not_impl!(op!(TrampolineSender, Rx<()>): Unpin);
assert_not_impl!(op!(RunLoopSender<'static>, Rx<()>): Unpin);
assert_not_impl!(op!(LetValue<Just<i32>, fn(i32) -> Just<i32>>, Rx<i32>): Unpin);
assert_not_impl!(op!(WhenAll<(Just<i32>, Just<i32>)>, Rx<(i32, i32)>): Unpin);
assert_not_impl!(op!(WhenAny<(Just<i32>, Just<i32>)>, Rx<i32>): Unpin);
assert_not_impl!(op!(Finally<Just<i32>, Just<()>>, Rx<i32>): Unpin);
assert_not_impl!(op!(RepeatN<Just<()>>, Rx<()>): Unpin);
assert_not_impl!(op!(LoopWithState<u32, LoopF>, Rx<u32>): Unpin);
assert_not_impl!(op!(SchedulerRefSender<'static>, Rx<()>): Unpin);
assert_not_impl!(op!(ScheduleOnCurrent, Rx<()>): Unpin);
assert_not_impl!(op!(StartsOn<InlineScheduler, Just<i32>>, Rx<i32>): Unpin);
assert_not_impl!(op!(On<InlineScheduler, Just<i32>>, Rx<i32>): Unpin);
assert_not_impl!(op!(AnySender<i32, Infallible>, Rx<i32>): Unpin);

// ------------------------ operation states: Send when their parts are, not else
assert_impl!(op!(Just<i32>, Rx<i32>): Send);
assert_impl!(op!(Then<Just<i32>, F>, Rx<i32>): Send);
assert_impl!(op!(LetValue<Just<i32>, fn(i32) -> Just<i32>>, Rx<i32>): Send);
assert_impl!(op!(WhenAll<(Just<i32>, Just<i32>)>, Rx<(i32, i32)>): Send);
assert_impl!(op!(AnySender<i32, Infallible>, Rx<i32>): Send);
assert_impl!(op!(ScheduleOnCurrent, Rx<()>): Send);
assert_impl!(op!(On<InlineScheduler, Just<i32>>, Rx<i32>): Send);
assert_impl!(op!(RepeatN<Just<()>>, Rx<()>): Send);
assert_impl!(op!(LoopWithState<u32, LoopF>, Rx<u32>): Send);
// The hop may complete on another thread: a `!Send` receiver is refused.
assert_not_impl!(ScheduleOnCurrent: SenderTo<LocalReceiver>);
assert_not_impl!(op!(Just<i32>, LocalReceiver): Send);
assert_not_impl!(op!(Just<Rc<i32>>, Rx<Rc<i32>>): Send);
assert_not_impl!(op!(Then<Just<i32>, F>, LocalReceiver): Send);
assert_not_impl!(op!(LetValue<Just<i32>, fn(i32) -> Just<i32>>, LocalReceiver): Send);
assert_not_impl!(op!(RepeatN<Just<()>>, LocalReceiver): Send);
assert_not_impl!(op!(LoopWithState<u32, LoopF>, LocalReceiver): Send);

#[test]
fn assertions_are_checked_at_compile_time() {}
