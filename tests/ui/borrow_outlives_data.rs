// A sender that borrows a local cannot be used after the local is gone.
use exec::{just, sync_wait, SenderExt};

fn main() {
    let sender = {
        let data = vec![1, 2, 3];
        just(()).then(|()| data.len())
    };
    let _ = sync_wait(sender);
}
