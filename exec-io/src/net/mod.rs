//! Sockets and pipes on the loop.

mod ops;
pub(crate) mod pipe;
pub(crate) mod tcp;
pub(crate) mod udp;
pub(crate) mod unix;

pub use ops::{ReadAction, WriteAction, WriteAllAction};

/// The read/write methods every byte stream has. `$io` is the mio type.
macro_rules! stream_methods {
    ($io:ty) => {
        /// Reads at most `buf.len()` bytes into `buf` once data is
        /// available; sends `(n, buf)`. `n == 0` (with a non-empty `buf`)
        /// means the peer closed its writing side (end of stream).
        ///
        /// The buffer is owned by the operation while it runs and handed
        /// back with the result; it is dropped if the operation fails or is
        /// stopped.
        ///
        /// # Errors
        /// The OS error of `read`, for example `ConnectionReset`.
        pub fn read(&self, buf: Vec<u8>) -> $crate::IoSender<$crate::net::ReadAction<$io>> {
            $crate::IoSender::new($crate::net::ReadAction {
                src: self.src.clone(),
                buf: Some(buf),
            })
        }

        /// Writes some of `buf` once the stream is writable; sends
        /// `(n, buf)` with the number of bytes written.
        ///
        /// # Errors
        /// The OS error of `write`, for example `BrokenPipe` when the peer
        /// is gone (never a `SIGPIPE`).
        pub fn write(&self, buf: Vec<u8>) -> $crate::IoSender<$crate::net::WriteAction<$io>> {
            $crate::IoSender::new($crate::net::WriteAction {
                src: self.src.clone(),
                buf: Some(buf),
            })
        }

        /// Writes all of `buf`, waiting for writability as needed; sends
        /// `buf` back.
        ///
        /// # Errors
        /// The first OS error, or `WriteZero`.
        pub fn write_all(
            &self,
            buf: Vec<u8>,
        ) -> $crate::IoSender<$crate::net::WriteAllAction<$io>> {
            $crate::IoSender::new($crate::net::WriteAllAction {
                src: self.src.clone(),
                buf: Some(buf),
                pos: 0,
            })
        }
    };
}
pub(crate) use stream_methods;
