// Starting an operation is a promise to keep it alive until it completes:
// safe code cannot make it.
use std::pin::pin;

use exec::{just, OperationState, Receiver, SenderTo};

struct Ignore;
impl Receiver<i32, std::convert::Infallible> for Ignore {
    fn set_value(self, _: i32) {}
    fn set_error(self, _: std::convert::Infallible) {}
    fn set_stopped(self) {}
}

fn main() {
    let mut op = pin!(just(1).connect(Ignore));
    op.as_mut().start();
}
