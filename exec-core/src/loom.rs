//! The one place concurrent code gets its atomics, cells and locks from, so
//! that `--cfg loom` swaps in loom's model-checked versions.
#![allow(unused_imports, dead_code, unreachable_pub)]

#[cfg(loom)]
pub(crate) use ::loom::{cell, hint, sync, thread};

#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) mod atomic {
        pub(crate) use core::sync::atomic::{
            AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
        };
    }
    #[cfg(feature = "std")]
    pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};
}

#[cfg(not(loom))]
pub(crate) mod hint {
    pub(crate) use core::hint::spin_loop;
}

#[cfg(all(not(loom), feature = "std"))]
pub(crate) mod thread {
    pub(crate) use std::thread::yield_now;
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
        pub(crate) fn into_inner(self) -> T {
            self.0.into_inner()
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

/// Back off inside a spin loop: a CPU hint natively, a yield under loom (which
/// must see the other threads make progress).
#[inline]
pub(crate) fn spin() {
    #[cfg(loom)]
    ::loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}
