// Work holding an `Rc` cannot be scheduled onto a context other threads run.
use std::rc::Rc;

use exec::{sync_wait, RunLoop, Scheduler, SenderExt};

fn main() {
    let run_loop = RunLoop::new();
    let shared = Rc::new(5);
    let _ = sync_wait(run_loop.scheduler().schedule().then(move |()| *shared));
}
