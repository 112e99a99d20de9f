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
//! Sizes: 1,000 and 10,000 connections; 50,000 with `EXEC_BENCH_50K=1`.
//!
//! # 50,000 connections
//! `EXEC_BENCH_50K=1 cargo bench --bench io_echo_vs --features io` adds
//! the size, served by `ours-uring-direct` ("exec direct"): the io_uring
//! server above whose loops each register a table of io_uring direct
//! descriptors (`IoContextBuilder::direct_descriptors`, as large as
//! `RLIMIT_NOFILE` allows), so accepted connections live in the rings'
//! tables rather than the process's descriptor table (and, once a table is
//! full, in ordinary descriptors); the listeners set `TCP_NODELAY`, which
//! accepted connections inherit. The other servers need one descriptor per
//! connection in one process: they run at this size only where the hard
//! `RLIMIT_NOFILE` allows 50,000 plus a few, and the bench says so when it
//! skips them. The client cannot hold 50,000 sockets in one process
//! either: at this size it runs as several child processes (this binary
//! re-executed with `client ...`), each under the limit, each with its own
//! 127.0.0.x source addresses (ports 32768-60999 per address), on one
//! tokio thread each; they connect, then wait at a start barrier (a line
//! on their stdin) so the round trips of all of them are timed together,
//! from the barrier to the last one's end. (So at this size the client
//! has more threads than at the others: compare the 50,000 row with the
//! others for CPU and RSS per connection, not for round trips/s.)
//! `EXEC_BENCH_SERVERS=ours-uring-direct` also runs that server at the
//! other sizes.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROUND_TRIPS: usize = 100;
const MSG: usize = 64;
/// The size run with `EXEC_BENCH_50K=1` (clients in several processes).
const BIG: usize = 50_000;

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

    /// The accept loop: one detached echo per connection. With
    /// `inherit_nodelay` (the direct server), `TCP_NODELAY` is also set on
    /// the listener, so accepted connections have it from the start (on a
    /// direct stream the per-connection `set_nodelay` below is only queued
    /// on the loop as an io_uring setsockopt).
    fn serve_with(
        listener: TcpListener,
        inherit_nodelay: bool,
    ) -> impl SenderTo<DetachedReceiver, Operation: Send> + 'static {
        if inherit_nodelay {
            listener.set_nodelay(true).unwrap();
        }
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
    ///
    /// `direct`: each loop registers a table of io_uring direct
    /// descriptors as large as `RLIMIT_NOFILE` allows.
    pub(crate) fn run(port: u16, backend: exec::io::Backend, threads: usize, direct: bool) {
        let builder = || {
            let b = IoContext::builder().backend(backend);
            if direct {
                b.direct_descriptors(u32::MAX)
            } else {
                b
            }
        };
        let ctx = builder().build().unwrap();
        if direct {
            eprintln!(
                "(exec direct: {threads} loops, each with a table of {} direct descriptors)",
                ctx.direct_descriptors()
            );
        }
        let others: Vec<_> = (1..threads).map(|_| builder().spawn().unwrap()).collect();
        let schedulers =
            std::iter::once(ctx.scheduler()).chain(others.iter().map(|t| t.scheduler()));
        let addr = TcpListener::serve_on_each(schedulers, ([127, 0, 0, 1], port).into(), |l| {
            serve_with(l, direct)
        })
        .unwrap();
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

/// Opens `conns` connections to the server on `port`, from the source
/// addresses 127.0.0.`first_ip` and the seven after it (so ports do not run
/// short).
async fn connect_all(port: u16, conns: usize, first_ip: u8) -> Vec<tokio::net::TcpStream> {
    let server: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut streams = Vec::with_capacity(conns);
    for i in 0..conns {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        let src: SocketAddr = ([127, 0, 0, first_ip + (i % 8) as u8], 0).into();
        sock.bind(src).unwrap();
        let s = sock.connect(server).await.unwrap();
        s.set_nodelay(true).unwrap();
        streams.push(s);
    }
    streams
}

/// `ROUND_TRIPS` round trips of `MSG` bytes on every stream at once (one
/// task per stream); returns when all are done.
async fn round_trips(streams: Vec<tokio::net::TcpStream>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tasks = Vec::with_capacity(streams.len());
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
        // Connect everyone first.
        let streams = connect_all(port, conns, 1).await;
        // Let the server accept them all, then measure its RSS.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rss1 = proc_rss_kb(pid);
        let cpu0 = proc_cpu_ns(pid);
        let t0 = Instant::now();
        round_trips(streams).await;
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

/// A client process of the `BIG` size: `conns` connections to `port`
/// from the source addresses 127.0.0.`first_ip`.. (eight of them); says
/// `connected`, waits for a line on stdin (the start barrier), does the
/// round trips on every connection at once, says `done`.
fn client_child(port: u16, conns: usize, first_ip: u8) {
    use std::io::Write as _;
    raise_nofile(conns as u64 + 256);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let streams = rt.block_on(connect_all(port, conns, first_ip));
    let mut out = std::io::stdout();
    writeln!(out, "connected").unwrap();
    out.flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    rt.block_on(round_trips(streams));
    writeln!(out, "done").unwrap();
    out.flush().unwrap();
}

/// `run_clients` for the `BIG` size: the connections spread over client
/// processes of at most 15,000 (and under `nofile`) each; the round trips
/// start together (a barrier) and are timed until the last one ended.
fn run_client_procs(kind: &str, conns: usize, nofile: u64) -> Stats {
    use std::io::Write as _;
    let (mut server, port) = spawn_server(kind, nofile);
    let pid = server.id();
    std::thread::sleep(Duration::from_millis(100));
    let rss0 = proc_rss_kb(pid);
    let per = 15_000.min(nofile.saturating_sub(512) as usize).max(1);
    let procs = conns.div_ceil(per);
    assert!(procs * 8 < 240, "too many client processes for 127.0.0.x");
    let mut clients: Vec<(Child, BufReader<std::process::ChildStdout>)> = (0..procs)
        .map(|k| {
            let n = conns / procs + usize::from(k < conns % procs);
            let mut c = Command::new(std::env::current_exe().unwrap())
                .args([
                    "client",
                    &port.to_string(),
                    &n.to_string(),
                    &(10 + 8 * k).to_string(),
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let out = BufReader::new(c.stdout.take().unwrap());
            (c, out)
        })
        .collect();
    let expect = |clients: &mut Vec<(Child, BufReader<std::process::ChildStdout>)>, what| {
        for (_, out) in clients.iter_mut() {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            assert_eq!(line.trim(), what, "a client process failed");
        }
    };
    expect(&mut clients, "connected");
    // Let the server accept them all, then measure its RSS.
    std::thread::sleep(Duration::from_millis(300));
    let rss1 = proc_rss_kb(pid);
    let cpu0 = proc_cpu_ns(pid);
    let t0 = Instant::now();
    for (c, _) in clients.iter_mut() {
        c.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    }
    expect(&mut clients, "done");
    let elapsed = t0.elapsed();
    let cpu = proc_cpu_ns(pid) - cpu0;
    for (mut c, _) in clients {
        let _ = c.wait();
    }
    let _ = server.kill();
    let _ = server.wait();
    let rts = (conns * ROUND_TRIPS) as f64;
    println!("({conns} connections from {procs} client processes)");
    Stats {
        rts_per_sec: rts / elapsed.as_secs_f64(),
        cpu_ns_per_rt: cpu as f64 / rts,
        rss_per_conn: (rss1.saturating_sub(rss0) * 1024) as f64 / conns as f64,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("server") {
        raise_nofile(args[4].parse().unwrap());
        let port = args[3].parse().unwrap();
        let threads = server_threads();
        match args[2].as_str() {
            "ours" => ours::run(port, exec::io::Backend::Readiness, threads, false),
            "ours-uring" => ours::run(port, exec::io::Backend::IoUring, threads, false),
            "ours-uring-direct" => ours::run(port, exec::io::Backend::IoUring, threads, true),
            _ => theirs::run(port, threads),
        }
        return;
    }
    if args.get(1).map(String::as_str) == Some("client") {
        client_child(
            args[2].parse().unwrap(),
            args[3].parse().unwrap(),
            args[4].parse().unwrap(),
        );
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
    let named = |k: &str| servers.split(',').any(|s| s == k);
    let wanted = |k: &str| servers.is_empty() || named(k);
    let want50 = std::env::var("EXEC_BENCH_50K").as_deref() == Ok("1");
    let need = if want50 { BIG } else { 10_000 } as u64 + 1024;
    let nofile = raise_nofile(need);
    if want50 {
        sizes.push(BIG);
        if nofile < need {
            println!(
                "{BIG} connections: tokio, exec epoll and exec uring skipped (each needs {BIG} \
                 descriptors plus a few in one process; RLIMIT_NOFILE is capped at {nofile} \
                 here); exec direct keeps its connections in io_uring direct descriptors"
            );
        }
    }
    println!(
        "echo, {MSG}-byte messages, {ROUND_TRIPS} round trips per connection, server on {} threads",
        server_threads()
    );
    println!(
        "{:>7} {:>11} | {:>12} {:>6} | {:>9} | {:>9} {:>6}",
        "conns", "server", "rt/s", "ratio", "cpu ns", "RSS B", "ratio"
    );
    for &n in &sizes {
        let servers: Vec<(&str, &str)> = [
            ("tokio", "tokio"),
            ("exec epoll", "ours"),
            ("exec uring", "ours-uring"),
            ("exec direct", "ours-uring-direct"),
        ]
        .into_iter()
        .filter(|(_, kind)| {
            if n == BIG {
                // One descriptor per connection in the server process, or
                // direct descriptors.
                (*kind == "ours-uring-direct" || nofile >= need) && wanted(kind)
            } else {
                // The direct server only on request at the other sizes.
                wanted(kind) && (*kind != "ours-uring-direct" || named(kind))
            }
        })
        .collect();
        // Repetitions interleave the servers (so a change of the machine's
        // load hits them alike); each figure is the median of its runs.
        let mut runs: Vec<Vec<Stats>> = servers.iter().map(|_| Vec::new()).collect();
        for _ in 0..reps {
            for (i, (_, kind)) in servers.iter().enumerate() {
                runs[i].push(if n == BIG {
                    run_client_procs(kind, n, nofile)
                } else {
                    run_clients(kind, n, nofile)
                });
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
            // No tokio row at this size: no ratios.
            let ratio = |r: f64| {
                if r.is_nan() {
                    "     -".to_string()
                } else {
                    format!("{r:>5.2}x")
                }
            };
            println!(
                "{:>7} {:>11} | {:>12.0} {} | {:>9.0} | {:>9.0} {}",
                n,
                name,
                a.rts_per_sec,
                ratio(rt_ratio),
                a.cpu_ns_per_rt,
                a.rss_per_conn,
                ratio(rss_ratio)
            );
        }
    }
    println!(
        "(ratios against tokio; cpu ns = server CPU per round trip; RSS B = server RSS growth per connection)"
    );
}
