//! How panics in user code travel: caught where they happen, delivered
//! through [`Receiver::set_panic`](crate::Receiver::set_panic).

use alloc::boxed::Box;
use core::any::Any;

/// The payload of a caught panic, as `std::panic::catch_unwind` returns it.
pub type PanicPayload = Box<dyn Any + Send + 'static>;

/// Runs `f`, catching a panic (with the `std` feature; without it, panics
/// are not caught).
///
/// Algorithms use this around user code and deliver `Err` with
/// [`Receiver::set_panic`](crate::Receiver::set_panic).
#[inline(always)]
pub fn catch_unwind<T>(f: impl FnOnce() -> T) -> Result<T, PanicPayload> {
    #[cfg(feature = "std")]
    {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
    }
    #[cfg(not(feature = "std"))]
    {
        Ok(f())
    }
}

/// Re-raises a caught panic with its original payload.
pub(crate) fn resume(payload: PanicPayload) -> ! {
    #[cfg(feature = "std")]
    {
        std::panic::resume_unwind(payload)
    }
    #[cfg(not(feature = "std"))]
    {
        let _ = payload;
        panic!("a panic was delivered to a receiver that cannot handle it")
    }
}
