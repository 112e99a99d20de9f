//! Sender adaptors: senders built from other senders.

mod then;

pub use then::{Then, ThenReceiver};

mod nary;
mod when_all;

pub use when_all::{WhenAll, WhenAllOp, WhenAllReceiver, WhenAllState, when_all};
mod when_all_vec;

pub use when_all_vec::{
    WhenAllVec, WhenAllVecOp, WhenAllVecReceiver, WhenAllVecState, when_all_vec,
};
mod when_any;

pub use when_any::{WhenAny, WhenAnyOp, WhenAnyReceiver, WhenAnyState, when_any};
mod stop_when;

pub use stop_when::{
    StopWhen, StopWhenOp, StopWhenReceiver, StopWhenState, StopWhenTriggerReceiver, stop_when,
};
