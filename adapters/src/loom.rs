//! The one place this crate gets its atomics and cells from, so that
//! `--cfg loom` swaps in loom's model-checked versions.
#![allow(unused_imports, dead_code, unreachable_pub)]

#[cfg(loom)]
pub(crate) use ::loom::{cell, sync};

#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) use std::sync::{Mutex, MutexGuard};
    pub(crate) mod atomic {
        pub(crate) use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
    }
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
