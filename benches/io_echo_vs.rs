//! Echo round trips: exec-io's loop against tokio's, in one run.
//!
//! ```text
//! cargo bench --bench io_echo_vs --features io
//! ```
//!
//! Each server runs in a child process (this binary re-executed with
//! `server <kind> <port>`) on the same number of threads, one per core by
//! default (`EXEC_BENCH_SERVER_THREADS=n` to choose):
//! - exec-io (`ours`: epoll backend, `ours-uring`: io_uring backend): one
//!   `IoContext` per thread (the child's main thread runs one, the others
//!   run on `IoContextBuilder::spawn` threads), each with its own listener
//!   bound to the same port with `SO_REUSEPORT`, as in
//!   `examples/echo_server.rs`; the kernel spreads the connections and
//!   each stays on the loop that accepted it.
//! - tokio: a multi-thread runtime with that many worker threads; the
//!   accept loop is a task on the workers too (the child's main thread
//!   only waits), one task per connection.
//!
//! The same tokio client (one worker thread, in this process) opens `N`
//! loopback connections and does 100 round trips of 64 bytes on each, all
//! connections at once. It shares the machine's cores with the server
//! (on a 2-core machine: 2 server threads and 1 client thread), so a
//! server that needs less CPU per round trip leaves more to the client.
//! Printed per size: round trips per second, server CPU per round trip
//! (all the child's threads), server RSS per connection (growth of the
//! child's VmRSS from before the clients connected to when all are
//! connected), and the ratios ours/tokio.
//!
//! `EXEC_BENCH_CONNS=1000,10000` and `EXEC_BENCH_SERVERS=tokio,ours,ours-uring`
//! choose a subset (ratios need `tokio`; for profiling one server).
//! `EXEC_BENCH_REPS=n` runs every server `n` times, interleaved, and prints
//! the median of each figure (on a shared machine round trips/s swing
//! with the load; the CPU and RSS figures much less).
//! Sizes: 1,000 and 10,000 connections; 50,000 when `EXEC_BENCH_50K=1`
//! and the descriptor limit can be raised that far (not on the machine
//! these figures come from: its hard `RLIMIT_NOFILE` is 20,000, and the
//! client process and the server process each need 50,000 descriptors
//! plus a few; the bench then says it skipped the size).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROUND_TRIPS: usize = 100;
const MSG: usize = 64;

fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls with valid pointers.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        let target = libc::rlimit {
            rlim_cur: want.max(lim.rlim_cur),
            rlim_max: want.max(lim.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &target) != 0 {
            let capped = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &capped);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

/// Server threads: `EXEC_BENCH_SERVER_THREADS`, default one per core.
fn server_threads() -> usize {
    std::env::var("EXEC_BENCH_SERVER_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

// ------------------------------------------------------------- servers

mod ours {
    use std::ops::ControlFlow::{Break, Continue};

    use exec::io::{
        DetachedReceiver, IoContext, TcpListener, TcpStream, loop_with_state, spawn_detached,
    };
    use exec::{SenderExt, SenderTo};

    /// The loop of `examples/echo_server.rs`: one operation state per
    /// connection, the buffer handed from one round trip to the next.
    fn echo(stream: TcpStream) -> impl SenderTo<DetachedReceiver, Operation: Send> + 'static {
        loop_with_state(vec![0u8; super::MSG], move |buf| {
            let s = stream.clone();
            stream
                .read(buf)
                .let_value(move |(n, mut buf)| {
                    buf.truncate(n);
                    s.write_all(buf)
                })
                .then(|mut buf| match buf.len() {
                    0 => Break(()),
                    _ => Continue({
                        buf.resize(super::MSG, 0);
                        buf
                    }),
                })
        })
    }

    fn serve(listener: TcpListener) -> impl SenderTo<DetachedReceiver, Operation: Send> + 'static {
        loop_with_state((), move |()| {
            listener.accept().then(|(stream, _)| {
                let _ = stream.set_nodelay(true);
                spawn_detached(echo(stream));
                Continue::<(), ()>(())
            })
        })
    }

    /// One loop per core: this thread runs one, the others run on threads
    /// of their own; each owns a listener on the same port
    /// (`SO_REUSEPORT`), as in `examples/echo_server.rs`.
    pub(crate) fn run(port: u16, backend: exec::io::Backend, threads: usize) {
        let ctx = IoContext::builder().backend(backend).build().unwrap();
        let others: Vec<_> = (1..threads)
            .map(|_| IoContext::builder().backend(backend).spawn().unwrap())
            .collect();
        let schedulers =
            std::iter::once(ctx.scheduler()).chain(others.iter().map(|t| t.scheduler()));
        let addr =
            TcpListener::serve_on_each(schedulers, ([127, 0, 0, 1], port).into(), serve).unwrap();
        println!("ready {}", addr.port());
        ctx.run().unwrap();
    }
}

mod theirs {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A multi-thread runtime with `threads` workers; the accept loop is a
    /// task on them too (the main thread only waits).
    pub(crate) fn run(port: u16, threads: usize) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .unwrap();
        let server = rt.spawn(async move {
            let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap();
            println!("ready {}", l.local_addr().unwrap().port());
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let _ = s.set_nodelay(true);
                tokio::spawn(async move {
                    let mut buf = vec![0; super::MSG];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        rt.block_on(server).unwrap();
    }
}

// ------------------------------------------------------------- client

struct Stats {
    rts_per_sec: f64,
    cpu_ns_per_rt: f64,
    rss_per_conn: f64,
}

/// Per figure, the median of several runs.
fn median(runs: Vec<Stats>) -> Stats {
    let pick = |f: fn(&Stats) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Stats {
        rts_per_sec: pick(|s| s.rts_per_sec),
        cpu_ns_per_rt: pick(|s| s.cpu_ns_per_rt),
        rss_per_conn: pick(|s| s.rss_per_conn),
    }
}

fn proc_rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn proc_cpu_ns(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = &s[s.rfind(')').map(|i| i + 2).unwrap_or(0)..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // utime, stime are fields 14, 15 (1-based) → 11, 12 after the name.
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: plain query.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    ticks * 1_000_000_000 / hz.max(1)
}

fn spawn_server(kind: &str, nofile: u64) -> (Child, u16) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["server", kind, "0", &nofile.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().strip_prefix("ready ").unwrap().parse().unwrap();
    (child, port)
}

fn run_clients(kind: &str, conns: usize, nofile: u64) -> Stats {
    let (mut child, port) = spawn_server(kind, nofile);
    let pid = child.id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let rss0 = proc_rss_kb(pid);
    let stats = rt.block_on(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // Connect everyone first (spread over 127.0.0.x source addresses so
        // ports do not run short).
        let server: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut streams = Vec::with_capacity(conns);
        for i in 0..conns {
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            let src: SocketAddr = ([127, 0, 0, 1 + (i % 8) as u8], 0).into();
            sock.bind(src).unwrap();
            let s = sock.connect(server).await.unwrap();
            s.set_nodelay(true).unwrap();
            streams.push(s);
        }
        // Let the server accept them all, then measure its RSS.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rss1 = proc_rss_kb(pid);
        let cpu0 = proc_cpu_ns(pid);
        let t0 = Instant::now();
        let mut tasks = Vec::with_capacity(conns);
        for mut s in streams {
            tasks.push(tokio::spawn(async move {
                let out = [7u8; MSG];
                let mut inb = [0u8; MSG];
                for _ in 0..ROUND_TRIPS {
                    s.write_all(&out).await.unwrap();
                    s.read_exact(&mut inb).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let elapsed = t0.elapsed();
        let cpu = proc_cpu_ns(pid) - cpu0;
        let rts = (conns * ROUND_TRIPS) as f64;
        Stats {
            rts_per_sec: rts / elapsed.as_secs_f64(),
            cpu_ns_per_rt: cpu as f64 / rts,
            rss_per_conn: (rss1.saturating_sub(rss0) * 1024) as f64 / conns as f64,
        }
    });
    drop(rt);
    let _ = child.kill();
    let _ = child.wait();
    stats
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("server") {
        raise_nofile(args[4].parse().unwrap());
        let port = args[3].parse().unwrap();
        let threads = server_threads();
        match args[2].as_str() {
            "ours" => ours::run(port, exec::io::Backend::Readiness, threads),
            "ours-uring" => ours::run(port, exec::io::Backend::IoUring, threads),
            _ => theirs::run(port, threads),
        }
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    // `EXEC_BENCH_CONNS=1000` / `EXEC_BENCH_SERVERS=tokio,ours-uring`:
    // run a subset (for profiling one server; the ratios need tokio).
    let mut sizes: Vec<usize> = match std::env::var("EXEC_BENCH_CONNS") {
        Ok(v) => v.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
        Err(_) => vec![1_000usize, 10_000],
    };
    let servers = std::env::var("EXEC_BENCH_SERVERS").unwrap_or_default();
    let reps: usize = std::env::var("EXEC_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let wanted = |k: &str| servers.is_empty() || servers.split(',').any(|s| s == k);
    let want50 = std::env::var("EXEC_BENCH_50K").as_deref() == Ok("1");
    let need = if want50 { 50_000 } else { 10_000 } as u64 + 1024;
    let nofile = raise_nofile(need);
    if want50 {
        if nofile >= need {
            sizes.push(50_000);
        } else {
            println!("50,000 connections skipped: RLIMIT_NOFILE is capped at {nofile}");
        }
    }
    println!(
        "echo, {MSG}-byte messages, {ROUND_TRIPS} round trips per connection, server on {} threads",
        server_threads()
    );
    println!(
        "{:>7} {:>10} | {:>12} {:>6} | {:>9} | {:>9} {:>6}",
        "conns", "server", "rt/s", "ratio", "cpu ns", "RSS B", "ratio"
    );
    for &n in &sizes {
        let servers: Vec<(&str, &str)> = [
            ("tokio", "tokio"),
            ("exec epoll", "ours"),
            ("exec uring", "ours-uring"),
        ]
        .into_iter()
        .filter(|(_, kind)| wanted(kind))
        .collect();
        // Repetitions interleave the servers (so a change of the machine's
        // load hits them alike); each figure is the median of its runs.
        let mut runs: Vec<Vec<Stats>> = servers.iter().map(|_| Vec::new()).collect();
        for _ in 0..reps {
            for (i, (_, kind)) in servers.iter().enumerate() {
                runs[i].push(run_clients(kind, n, nofile));
            }
        }
        let rows: Vec<(&str, Stats)> = servers
            .iter()
            .zip(runs)
            .map(|((name, _), r)| (*name, median(r)))
            .collect();
        let base = rows
            .iter()
            .find(|(name, _)| *name == "tokio")
            .map(|(_, b)| b);
        for (name, a) in &rows {
            let (rt_ratio, rss_ratio) = match base {
                Some(b) => (
                    a.rts_per_sec / b.rts_per_sec,
                    a.rss_per_conn / b.rss_per_conn.max(1.0),
                ),
                None => (f64::NAN, f64::NAN),
            };
            println!(
                "{:>7} {:>10} | {:>12.0} {:>5.2}x | {:>9.0} | {:>9.0} {:>5.2}x",
                n, name, a.rts_per_sec, rt_ratio, a.cpu_ns_per_rt, a.rss_per_conn, rss_ratio
            );
        }
    }
    println!(
        "(ratios against tokio; cpu ns = server CPU per round trip; RSS B = server RSS growth per connection)"
    );
}
