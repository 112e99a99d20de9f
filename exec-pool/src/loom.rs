//! The one place concurrent code gets its atomics, cells, locks and threads
//! from, so that `--cfg loom` swaps in loom's model-checked versions (after
//! tokio's `src/loom/mod.rs` and exec-core's facade).
#![allow(unused_imports, dead_code, unreachable_pub)]

#[cfg(loom)]
pub(crate) use ::loom::{cell, hint, sync, thread, thread_local};

#[cfg(not(loom))]
pub(crate) use std::thread_local;

#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) mod atomic {
        pub(crate) use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering, fence};
    }
    pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};
}

#[cfg(not(loom))]
pub(crate) mod hint {
    pub(crate) use core::hint::spin_loop;
}

#[cfg(not(loom))]
pub(crate) mod thread {
    pub(crate) use std::thread::{Builder, JoinHandle, ThreadId, current, yield_now};
}

/// `UnsafeCell` with loom's closure-based API, so accesses are tracked under loom.
#[cfg(not(loom))]
pub(crate) mod cell {
    #[derive(Debug, Default)]
    #[repr(transparent)]
    pub(crate) struct UnsafeCell<T: ?Sized>(core::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            Self(core::cell::UnsafeCell::new(value))
        }
    }

    impl<T: ?Sized> UnsafeCell<T> {
        #[inline(always)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }
        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

/// One step of a spin loop: a CPU hint natively, a yield under loom (which
/// must see the other threads make progress).
#[inline]
pub(crate) fn spin() {
    #[cfg(loom)]
    ::loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}
