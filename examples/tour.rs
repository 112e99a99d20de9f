//! A guided run through what exec does. `cargo run --release --example tour`
//!
//! Each part prints what it shows; the code is the documentation.

use exec::{SenderExt, StopSource, just, sync_wait};

fn part(title: &str) {
    println!("\n== {title} ==");
}

fn main() {
    part("1. Senders are lazy descriptions of work");
    let sender = just(20).then(|x| {
        println!("   the closure runs only when the sender is started");
        x * 2 + 2
    });
    println!("   built a sender; nothing has run yet");
    println!("   sync_wait(..) = {:?}", sync_wait(sender));

    part("2. Three channels: value, error, stopped");
    let ok: Result<Option<i32>, std::convert::Infallible> = sync_wait(just(1));
    println!("   value   -> {ok:?}");

    part("3. Work borrows the caller's stack, no 'static needed");
    let words = vec!["structured", "concurrency"];
    let total = sync_wait(just(()).then(|()| words.iter().map(|w| w.len()).sum::<usize>()));
    println!("   total length of {words:?} = {total:?}");

    part("4. Panics are delivered where the result is awaited");
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {})); // keep the demo's output quiet
    let caught = std::panic::catch_unwind(|| {
        sync_wait(just(()).then(|()| -> i32 { panic!("a closure panicked") }))
    });
    std::panic::set_hook(default_hook);
    let msg = caught
        .err()
        .and_then(|p| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    println!("   sync_wait re-raised: {msg:?}");

    part("5. Stop tokens: no allocation, callbacks run once");
    let source = StopSource::new();
    let token = source.token();
    println!("   before: stop_requested = {}", token.stop_requested());
    source.request_stop();
    println!("   after:  stop_requested = {}", token.stop_requested());

    println!("\ntour finished");
}
