//! A guided run through what exec does. `cargo run --release --example tour`
//!
//! Each part prints what it shows; the code is the documentation.

use exec::{
    AnySender, SenderExt, StopSource, just, just_error, just_stopped, sync_wait, when_all, when_any,
};

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

    part("2b. Errors recover; stopped becomes a value or an error");
    let recovered = sync_wait(just_error::<usize, &str>("parse failed").upon_error(|e| e.len()));
    println!("   just_error(..).upon_error(len) -> {recovered:?}");
    let stopped = sync_wait(just_stopped::<i32, ()>());
    println!("   just_stopped()                  -> {stopped:?} (None = stopped)");
    let optional = sync_wait(just_stopped::<i32, ()>().stopped_as_optional());
    println!("   .stopped_as_optional()          -> {optional:?}");

    part("2c. Composition: when_all, when_any, let_value");
    let both = sync_wait(when_all(just(1).then(|x| x + 1), just("two")));
    println!("   when_all(just(1).then(+1), just(\"two\")) -> {both:?}");
    let first = sync_wait(when_any(just(7), just(8)));
    println!("   when_any(just(7), just(8))             -> {first:?}");
    let chained = sync_wait(just(3).let_value(|n| when_all(just(n), just(n * n))));
    println!("   just(3).let_value(|n| when_all(n, n*n)) -> {chained:?}");
    let failed = sync_wait(when_all(
        just(1).with_error::<String>(),
        just_error::<i32, String>("the second child failed".into()),
    ));
    println!(
        "   when_all(value, error) -> {failed:?} (the error wins; siblings were asked to stop)"
    );

    part("2d. Type erasure makes recursion possible: 100,000 nested let_value steps");
    fn count_down(n: u64) -> AnySender<u64, std::convert::Infallible> {
        if n == 0 {
            just(0).boxed()
        } else {
            just(n)
                .let_value(move |n| count_down(n - 1).then(move |acc| acc + n))
                .boxed()
        }
    }
    println!(
        "   sum 1..=100000 = {:?} (no stack overflow)",
        sync_wait(count_down(100_000))
    );

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

    part("6. The work-stealing pool: fan-out/fan-in, bulk, borrowing");
    {
        use exec::Scheduler;
        let pool = exec::pool::ThreadPool::builder()
            .threads(2)
            .build()
            .unwrap();
        let sched = pool.scheduler();
        // Fan out two computations onto the pool, join them with when_all.
        let (a, b) = sync_wait(when_all(
            sched.schedule().then(|()| (1..=1_000u64).sum::<u64>()),
            sched.schedule().then(|()| (1..=10u64).product::<u64>()),
        ))
        .unwrap()
        .unwrap();
        println!("   when_all on the pool -> ({a}, {b})");
        // bulk over a slice that lives on this stack frame (no 'static).
        let data: Vec<u64> = (1..=100_000).collect();
        let total = std::sync::atomic::AtomicU64::new(0);
        sync_wait(exec::pool::bulk_chunked(
            &sched,
            just(()),
            data.len(),
            |range, &()| {
                let part: u64 = data[range].iter().sum();
                total.fetch_add(part, std::sync::atomic::Ordering::Relaxed);
            },
        ))
        .unwrap();
        println!(
            "   bulk_chunked sum of a borrowed Vec -> {}",
            total.into_inner()
        );
        // sync_wait on a worker would deadlock: it panics with advice instead.
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let trap =
            std::panic::catch_unwind(|| sync_wait(sched.schedule().then(|()| sync_wait(just(1)))));
        std::panic::set_hook(default_hook);
        println!("   sync_wait on a worker -> panicked: {}", trap.is_err());
    }

    part("7. I/O on the loop, CPU work on the pool, one sender graph");
    {
        use exec::Scheduler;
        use exec::io::{IoContext, TcpListener, TcpStream};
        let pool = exec::pool::ThreadPool::builder()
            .threads(2)
            .build()
            .unwrap();
        let cpu = pool.scheduler();
        let ctx = IoContext::new().unwrap();
        let io = ctx.scheduler();
        let listener = TcpListener::bind(&io, "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        // Server: accept, read on the loop, uppercase on the pool, write the
        // answer back on the loop.
        let (cpu2, io2) = (cpu.clone(), io.clone());
        let server = listener.accept().let_value(move |(conn, _peer)| {
            let reply = conn.clone();
            conn.read(vec![0; 64])
                .continues_on(cpu2)
                .then(|(n, mut buf)| {
                    buf.truncate(n);
                    buf.make_ascii_uppercase();
                    buf
                })
                .continues_on(io2)
                .let_value(move |buf| reply.write_all(buf))
        });
        // Client: connect, send, read the answer; meanwhile the pool sums.
        let client = TcpStream::connect(&io, addr).let_value(|conn| {
            let reader = conn.clone();
            conn.write_all(b"hello, loop".to_vec())
                .let_value(move |_| reader.read(vec![0; 64]))
        });
        let sum = cpu.schedule().then(|()| (1..=1_000_000u64).sum::<u64>());
        let (_, (n, answer), total) = ctx
            .run_until(exec::when_all!(
                server,
                client,
                sum.with_error::<std::io::Error>()
            ))
            .unwrap()
            .unwrap();
        println!(
            "   loopback echo via the pool -> {:?}; pool sum meanwhile -> {total}",
            String::from_utf8_lossy(&answer[..n])
        );
    }

    println!("\ntour finished");
}
