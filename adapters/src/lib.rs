//! placeholder; see the crate README
