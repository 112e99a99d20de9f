//! Randomized exactly-once suite: 10,000 random trees (depth ≤ 4) of
//! algorithms — `then`, `upon_error`, `let_value`, `let_error`, `when_all`,
//! `when_any`, `stop_when`, `continues_on`, `finally`,
//! `stopped_as_optional`, `split` (consumed twice), every node type-erased through `AnySender` — over
//! leaves that complete with a value, an error, stopped or a panic, inline
//! or from a pool of two threads, with stop requests at random moments from
//! a third thread.
//!
//! For every tree:
//! - the root completes exactly once;
//! - every node (each is wrapped in a probe) was started at most once and,
//!   by the time the root completed, every started node had completed
//!   exactly once (work never outlives its parent);
//! - every value and error is drop-counted, and the count of live ones is
//!   zero once the root's result and the operation are dropped;
//! - without a stop request, the result agrees with a reference evaluator
//!   of the tree wherever the result is deterministic (no race decides it).
//!
//! Reproduce a failure with `EXACTLY_ONCE_SEED=<seed printed> EXACTLY_ONCE_TREES=1`.
//! `EXACTLY_ONCE_TREES=N` changes the number of trees (default 10,000).

mod common;

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use common::{
    DropCounter, Kind, Leaf, Out, PLANTED, PoolScheduler, Tracked, catch, quiet_planted_panics,
    run_with, sink, xorshift,
};
use exec::{
    AnySender, Completion, Env, OperationState, PanicPayload, Receiver, Sender, SenderExt,
    SenderTo, ops::AnyReceiver, stop_when, when_all, when_any,
};

type Val = Tracked<i64>;
type Node = AnySender<Val, Val>;

// -------------------------------------------------------------------- rng

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so nearby seeds give unrelated streams.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 = xorshift(self.0);
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn small(&mut self) -> i64 {
        self.below(1000) as i64 - 500
    }
}

// ------------------------------------------------------------------- tree

#[derive(Clone, Copy, Debug)]
enum Fun {
    Add(i64),
    Mul(i64),
    Panic,
}

impl Fun {
    fn apply(self, x: i64) -> i64 {
        match self {
            Fun::Add(k) => x.wrapping_add(k),
            Fun::Mul(k) => x.wrapping_mul(k),
            Fun::Panic => panic!("{PLANTED}: fun"),
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Leaf(Kind<i64, i64>, bool),
    Then(Box<Tree>, Fun),
    UponError(Box<Tree>, Fun),
    LetValue(Box<Tree>, Box<Tree>),
    LetError(Box<Tree>, Box<Tree>),
    WhenAll(Box<Tree>, Box<Tree>),
    WhenAny(Box<Tree>, Box<Tree>),
    StopWhen(Box<Tree>, Box<Tree>),
    ContinuesOn(Box<Tree>),
    Finally(Box<Tree>, Box<Tree>),
    StoppedAsOptional(Box<Tree>),
    /// `split`, consumed twice inside a `when_all`.
    Split(Box<Tree>),
}

/// A node of a random tree; `id` indexes its probe.
#[derive(Clone)]
struct Tree {
    id: usize,
    op: Op,
}

impl fmt::Debug for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.op {
            Op::Leaf(k, remote) => write!(f, "{}{k:?}", if *remote { "remote " } else { "" }),
            Op::Then(a, g) => write!(f, "then({a:?}, {g:?})"),
            Op::UponError(a, g) => write!(f, "upon_error({a:?}, {g:?})"),
            Op::LetValue(a, b) => write!(f, "let_value({a:?}, {b:?})"),
            Op::LetError(a, b) => write!(f, "let_error({a:?}, {b:?})"),
            Op::WhenAll(a, b) => write!(f, "when_all({a:?}, {b:?})"),
            Op::WhenAny(a, b) => write!(f, "when_any({a:?}, {b:?})"),
            Op::StopWhen(a, b) => write!(f, "stop_when({a:?}, {b:?})"),
            Op::ContinuesOn(a) => write!(f, "continues_on({a:?})"),
            Op::Finally(a, b) => write!(f, "finally({a:?}, {b:?})"),
            Op::StoppedAsOptional(a) => write!(f, "stopped_as_optional({a:?})"),
            Op::Split(a) => write!(f, "split({a:?})"),
        }
    }
}

struct Gen<'a> {
    rng: &'a mut Rng,
    next_id: usize,
    remote_percent: u64,
}

impl Gen<'_> {
    fn tree(&mut self, depth: u32) -> Tree {
        let id = self.next_id;
        self.next_id += 1;
        let leaf = depth == 0 || self.rng.chance(15);
        let op = if leaf {
            let kind = match self.rng.below(20) {
                0..=9 => Kind::Value(self.rng.small()),
                10..=14 => Kind::Error(self.rng.small()),
                15..=17 => Kind::Stopped,
                _ => Kind::Panic(format!("{PLANTED}: leaf {id}")),
            };
            Op::Leaf(kind, self.rng.chance(self.remote_percent))
        } else {
            let d = depth - 1;
            match self.rng.below(13) {
                0 | 1 => Op::Then(Box::new(self.tree(d)), self.fun()),
                2 => Op::UponError(Box::new(self.tree(d)), self.fun()),
                3 => Op::LetValue(Box::new(self.tree(d)), Box::new(self.tree(d))),
                4 => Op::LetError(Box::new(self.tree(d)), Box::new(self.tree(d))),
                5 | 6 => Op::WhenAll(Box::new(self.tree(d)), Box::new(self.tree(d))),
                7 => Op::WhenAny(Box::new(self.tree(d)), Box::new(self.tree(d))),
                8 => Op::StopWhen(Box::new(self.tree(d)), Box::new(self.tree(d))),
                9 => Op::ContinuesOn(Box::new(self.tree(d))),
                10 => Op::Finally(Box::new(self.tree(d)), Box::new(self.tree(d))),
                11 => Op::StoppedAsOptional(Box::new(self.tree(d))),
                _ => Op::Split(Box::new(self.tree(d))),
            }
        };
        Tree { id, op }
    }
    fn fun(&mut self) -> Fun {
        match self.rng.below(10) {
            0..=4 => Fun::Add(self.rng.small()),
            5..=8 => Fun::Mul(self.rng.small()),
            _ => Fun::Panic,
        }
    }
}

// ------------------------------------------------------------------ probe

/// Per node: how often it was started and how often it completed.
struct Probes(Vec<(AtomicUsize, AtomicUsize)>);

/// Wraps a node's sender to count its starts and completions.
struct Probe<S> {
    inner: S,
    id: usize,
    probes: Arc<Probes>,
}

impl<S: Sender> Sender for Probe<S> {
    type Output = S::Output;
    type Error = S::Error;
}

impl<S, R> SenderTo<R> for Probe<S>
where
    S: Sender + SenderTo<ProbeReceiver<R>>,
{
    type Operation = ProbeOp<S::Operation>;
    fn connect(self, receiver: R) -> Self::Operation {
        let receiver = ProbeReceiver {
            inner: receiver,
            id: self.id,
            probes: self.probes.clone(),
        };
        ProbeOp {
            inner: Box::pin(self.inner.connect(receiver)),
            id: self.id,
            probes: self.probes,
        }
    }
}

/// Operation of [`Probe`]; the inner operation lives in its own box, so
/// this one is `Unpin`.
struct ProbeOp<O> {
    inner: Pin<Box<O>>,
    id: usize,
    probes: Arc<Probes>,
}

impl<O: OperationState> OperationState for ProbeOp<O> {
    unsafe fn start(self: Pin<&mut Self>) {
        let this = self.get_mut();
        this.probes.0[this.id].0.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the inner op is boxed inside this op, which our caller
        // keeps alive until it completed; its completion is ours.
        unsafe { this.inner.as_mut().start() }
    }
}

struct ProbeReceiver<R> {
    inner: R,
    id: usize,
    probes: Arc<Probes>,
}

impl<R> ProbeReceiver<R> {
    fn count(self) -> R {
        self.probes.0[self.id].1.fetch_add(1, Ordering::SeqCst);
        self.inner
    }
}

impl<T, E, R: Receiver<T, E>> Receiver<T, E> for ProbeReceiver<R> {
    fn set_value(self, value: T) {
        self.count().set_value(value)
    }
    fn set_error(self, error: E) {
        self.count().set_error(error)
    }
    fn set_stopped(self) {
        self.count().set_stopped()
    }
    fn set_panic(self, payload: PanicPayload) {
        self.count().set_panic(payload)
    }
    fn env(&self) -> impl Env<'_> {
        self.inner.env()
    }
}

// ------------------------------------------------------------------ build

#[derive(Clone)]
struct Ctx {
    drops: DropCounter,
    probes: Arc<Probes>,
}

impl Ctx {
    fn track(&self, v: i64) -> Val {
        self.drops.track(v)
    }
}

/// Wraps `sender` in the probe of node `id` and erases its type: one
/// `AnySender` per node.
fn probe<S>(ctx: &Ctx, id: usize, sender: S) -> Node
where
    S: Sender<Output = Val, Error = Val>
        + SenderTo<ProbeReceiver<AnyReceiver<Val, Val>>>
        + Send
        + 'static,
    S::Operation: Send + 'static,
{
    Probe {
        inner: sender,
        id,
        probes: ctx.probes.clone(),
    }
    .boxed()
}

fn build(t: &Tree, ctx: &Ctx) -> Node {
    let c = ctx.clone();
    let id = t.id;
    match &t.op {
        Op::Leaf(kind, remote) => {
            let kind = match kind.clone() {
                Kind::Value(v) => Kind::Value(ctx.track(v)),
                Kind::Error(e) => Kind::Error(ctx.track(e)),
                Kind::Stopped => Kind::Stopped,
                Kind::Panic(m) => Kind::Panic(m),
            };
            let remote = *remote;
            probe(ctx, id, Leaf { kind, remote })
        }
        Op::Then(a, f) => {
            let f = *f;
            let s = build(a, ctx).then(move |v: Val| c.track(f.apply(v.value)));
            probe(ctx, id, s)
        }
        Op::UponError(a, f) => {
            let f = *f;
            let s = build(a, ctx)
                .upon_error(move |e: Val| c.track(f.apply(e.value)))
                .map_error(|never: Infallible| -> Val { match never {} });
            probe(ctx, id, s)
        }
        Op::LetValue(a, b) => {
            let b = (**b).clone();
            let s = build(a, ctx).let_value(move |v: Val| {
                let c2 = c.clone();
                build(&b, &c).then(move |w: Val| c2.track(v.value.wrapping_add(w.value)))
            });
            probe(ctx, id, s)
        }
        Op::LetError(a, b) => {
            let b = (**b).clone();
            let s = build(a, ctx).let_error(move |e: Val| {
                let c2 = c.clone();
                build(&b, &c).then(move |w: Val| c2.track(e.value ^ w.value))
            });
            probe(ctx, id, s)
        }
        Op::WhenAll(a, b) => {
            let s = when_all(build(a, ctx), build(b, ctx))
                .then(move |(x, y): (Val, Val)| c.track(x.value.wrapping_add(y.value)));
            probe(ctx, id, s)
        }
        Op::WhenAny(a, b) => probe(ctx, id, when_any(build(a, ctx), build(b, ctx))),
        Op::StopWhen(a, b) => probe(ctx, id, stop_when(build(a, ctx), build(b, ctx))),
        Op::ContinuesOn(a) => probe(ctx, id, build(a, ctx).continues_on(PoolScheduler)),
        Op::Finally(a, b) => probe(ctx, id, build(a, ctx).finally(second(b, ctx))),
        Op::StoppedAsOptional(a) => {
            let s = build(a, ctx)
                .stopped_as_optional()
                .then(move |o: Option<Val>| o.unwrap_or_else(|| c.track(-7)));
            probe(ctx, id, s)
        }
        Op::Split(a) => {
            let shared = build(a, ctx).then(Arc::new).map_error(Arc::new).split();
            let c2 = c.clone();
            let consumer = move |c: Ctx| {
                let c2 = c.clone();
                shared
                    .clone()
                    .then(move |v: Arc<Val>| c.track(v.value))
                    .map_error(move |e: Arc<Val>| c2.track(e.value))
            };
            let (first, second) = (consumer(c.clone()), consumer(c.clone()));
            drop(consumer);
            let s = when_all(first, second)
                .then(move |(x, y): (Val, Val)| c2.track(x.value.wrapping_add(y.value)));
            probe(ctx, id, s)
        }
    }
}

/// `finally`'s second sender: `b`, with its value and error turned into
/// `()` (its error type must be `Infallible`); stopped and panics stay.
fn second(b: &Tree, ctx: &Ctx) -> AnySender<(), Infallible> {
    build(b, ctx)
        .materialize()
        .let_value(|c: Completion<Val, Val>| match c {
            Completion::Stopped => Leaf::inline(Kind::Stopped),
            _ => Leaf::inline(Kind::Value(())),
        })
        .boxed()
}

// -------------------------------------------------------------- reference

/// What the reference evaluator knows about a subtree run with no stop
/// requested from outside.
#[derive(Clone, Debug)]
struct Ev {
    out: Out<i64, i64>,
    /// No part of it runs on the pool: it ignores stop requests.
    insensitive: bool,
    /// It completes inside its `start`, before a sibling started after it.
    first: bool,
}

fn apply_fun(f: Fun, x: i64) -> Out<i64, i64> {
    match catch(|| f.apply(x)) {
        Ok(v) => Out::Value(v),
        Err(m) => Out::Panic(m),
    }
}

/// The most `AnySender`s nested on a path from `t` to a leaf (one per node,
/// one more for `finally`'s second sender).
fn boxes(t: &Tree) -> usize {
    1 + match &t.op {
        Op::Leaf(..) => 0,
        Op::Then(a, _)
        | Op::UponError(a, _)
        | Op::ContinuesOn(a)
        | Op::StoppedAsOptional(a)
        | Op::Split(a) => boxes(a),
        Op::LetValue(a, b)
        | Op::LetError(a, b)
        | Op::WhenAll(a, b)
        | Op::WhenAny(a, b)
        | Op::StopWhen(a, b) => boxes(a).max(boxes(b)),
        Op::Finally(a, b) => boxes(a).max(1 + boxes(b)),
    }
}

/// The outcome of the whole tree `t` without outside stop requests, or
/// `None` when a race decides it.
///
/// An `AnySender` defers starts and completions to the thread's trampoline
/// once 16 of them are nested, so an inline subtree completes in order
/// (before a sibling started after it) only if the tree is shallow enough:
/// a start and the completion back up nest at most twice the number of
/// boxes on a path.
fn reference(t: &Tree) -> Option<Out<i64, i64>> {
    let ordered = 2 * boxes(t) < 16;
    eval(t, ordered).map(|ev| ev.out)
}

/// The outcome of `t` without outside stop requests, or `None` when a race
/// (the order of completions on the pool, or a stop request between
/// siblings that reaches a subtree still running on the pool) decides it.
///
/// Facts it relies on: a subtree with no part on the pool and no `split`
/// ignores stop requests (inline leaves do); the first completion among
/// siblings that is not a value cannot have been affected by a stop request
/// between them, because only such a completion requests one. Anything a
/// stop request may change in a sensitive subtree (its value into stopped,
/// its error into a value through `stopped_as_optional`, or a sibling's
/// failure winning a `when_any` in its place) makes the result `None`.
fn eval(t: &Tree, ordered: bool) -> Option<Ev> {
    let both = |a: &Ev, b: &Ev, out| Ev {
        out,
        insensitive: a.insensitive && b.insensitive,
        first: a.first && b.first,
    };
    Some(match &t.op {
        Op::Leaf(kind, remote) => Ev {
            out: kind.clone().out(),
            insensitive: !remote,
            first: ordered && !remote,
        },
        Op::Then(a, f) => {
            let a = eval(a, ordered)?;
            match a.out {
                Out::Value(x) => Ev {
                    out: apply_fun(*f, x),
                    ..a
                },
                _ => a,
            }
        }
        Op::UponError(a, f) => {
            let a = eval(a, ordered)?;
            match a.out {
                Out::Error(e) => Ev {
                    out: apply_fun(*f, e),
                    ..a
                },
                _ => a,
            }
        }
        Op::LetValue(a, b) => {
            let a = eval(a, ordered)?;
            match a.out {
                Out::Value(v) => {
                    let b = eval(b, ordered)?;
                    both(&a, &b, b.out.clone().map(|w| v.wrapping_add(w)))
                }
                _ => a,
            }
        }
        Op::LetError(a, b) => {
            let a = eval(a, ordered)?;
            match a.out {
                Out::Error(e) => {
                    let b = eval(b, ordered)?;
                    both(&a, &b, b.out.clone().map(|w| e ^ w))
                }
                _ => a,
            }
        }
        Op::WhenAll(a, b) => {
            let (a, b) = (eval(a, ordered)?, eval(b, ordered)?);
            let out = match (&a.out, &b.out) {
                (Out::Value(x), Out::Value(y)) => Out::Value(x.wrapping_add(*y)),
                (Out::Value(_), x) | (x, Out::Value(_)) => {
                    // `x` is the first completion that is not a value. A
                    // failure wins; after a stop, the value child (asked
                    // to stop) must not turn into a failure.
                    let valued = if a.out.is_value() { &a } else { &b };
                    if x.is_failure() || valued.insensitive {
                        x.clone()
                    } else {
                        return None;
                    }
                }
                (x, _) if a.first && x.is_failure() => x.clone(),
                (Out::Stopped, y) if a.first && b.insensitive => {
                    // `b` ran with stop requested, which it ignores.
                    if y.is_failure() {
                        y.clone()
                    } else {
                        Out::Stopped
                    }
                }
                (x, y) if a.insensitive && b.insensitive => {
                    // Neither is turned into stopped; a failure wins.
                    match (x.is_failure(), y.is_failure()) {
                        (true, false) => x.clone(),
                        (false, true) => y.clone(),
                        (false, false) => Out::Stopped,
                        (true, true) if x == y => x.clone(),
                        (true, true) => return None,
                    }
                }
                _ => return None,
            };
            both(&a, &b, out)
        }
        Op::WhenAny(a, b) => {
            let (a, b) = (eval(a, ordered)?, eval(b, ordered)?);
            let out = match (&a.out, &b.out) {
                (Out::Stopped, y) => y.clone(),
                (x, Out::Stopped) => x.clone(),
                (x, y) if x == y => x.clone(),
                (x, _) if a.first => x.clone(),
                _ => return None,
            };
            both(&a, &b, out)
        }
        Op::StopWhen(work, trigger) => {
            let (w, t) = (eval(work, ordered)?, eval(trigger, ordered)?);
            if !(w.first || (w.insensitive && t.insensitive)) {
                return None; // the trigger may stop the work
            }
            // Only the trigger's panic matters; the trigger may run with
            // stop requested, so its outcome is certain only if it ignores it.
            let out = match (&w.out, &t.out) {
                (Out::Panic(_), _) => w.out.clone(),
                // Asked to stop, a sensitive trigger may end otherwise
                // (even panic, when a sibling inside it wins instead).
                _ if !t.insensitive => return None,
                (_, Out::Panic(_)) => t.out.clone(),
                _ => w.out.clone(),
            };
            both(&w, &t, out)
        }
        Op::ContinuesOn(a) => Ev {
            out: eval(a, ordered)?.out,
            insensitive: false,
            first: false,
        },
        Op::Finally(a, b) => {
            let (a, b) = (eval(a, ordered)?, eval(b, ordered)?);
            let out = match &b.out {
                Out::Stopped => Out::Stopped,
                Out::Panic(m) => Out::Panic(m.clone()),
                Out::Value(_) | Out::Error(_) => a.out.clone(),
            };
            both(&a, &b, out)
        }
        Op::StoppedAsOptional(a) => {
            let a = eval(a, ordered)?;
            match a.out {
                Out::Stopped => Ev {
                    out: Out::Value(-7),
                    ..a
                },
                _ => a,
            }
        }
        Op::Split(a) => {
            // Both consumers get `a`'s completion. A consumer started with
            // stop already requested completes stopped even when the
            // value is ready: never insensitive to stop.
            let a = eval(a, ordered)?;
            Ev {
                out: a.out.map(|v| v.wrapping_mul(2)),
                insensitive: false,
                first: a.first,
            }
        }
    })
}

/// Whether every started node completed exactly once.
fn all_completed(probes: &Probes) -> bool {
    probes
        .0
        .iter()
        .all(|(s, c)| s.load(Ordering::SeqCst) == c.load(Ordering::SeqCst))
}

/// The ids of the nodes inside some `split`'s predecessor.
fn detached_ids(t: &Tree) -> Vec<usize> {
    fn all(t: &Tree, out: &mut Vec<usize>) {
        out.push(t.id);
        children(t).into_iter().for_each(|c| all(c, out));
    }
    fn walk(t: &Tree, out: &mut Vec<usize>) {
        match &t.op {
            Op::Split(a) => all(a, out),
            _ => children(t).into_iter().for_each(|c| walk(c, out)),
        }
    }
    let mut out = Vec::new();
    walk(t, &mut out);
    out
}

fn children(t: &Tree) -> Vec<&Tree> {
    match &t.op {
        Op::Leaf(..) => vec![],
        Op::Then(a, _)
        | Op::UponError(a, _)
        | Op::StoppedAsOptional(a)
        | Op::ContinuesOn(a)
        | Op::Split(a) => vec![a],
        Op::LetValue(a, b)
        | Op::LetError(a, b)
        | Op::WhenAll(a, b)
        | Op::WhenAny(a, b)
        | Op::StopWhen(a, b)
        | Op::Finally(a, b) => vec![a, b],
    }
}

/// Whether `t` has a `split` node.
fn has_split(t: &Tree) -> bool {
    match &t.op {
        Op::Leaf(..) => false,
        Op::Split(_) => true,
        Op::Then(a, _) | Op::UponError(a, _) | Op::StoppedAsOptional(a) | Op::ContinuesOn(a) => {
            has_split(a)
        }
        Op::LetValue(a, b)
        | Op::LetError(a, b)
        | Op::WhenAll(a, b)
        | Op::WhenAny(a, b)
        | Op::StopWhen(a, b)
        | Op::Finally(a, b) => has_split(a) || has_split(b),
    }
}

/// Whether some part of `t` runs on the pool.
fn has_pool_part(t: &Tree) -> bool {
    match &t.op {
        Op::Leaf(_, remote) => *remote,
        Op::ContinuesOn(_) => true,
        Op::Then(a, _) | Op::UponError(a, _) | Op::StoppedAsOptional(a) | Op::Split(a) => {
            has_pool_part(a)
        }
        Op::LetValue(a, b)
        | Op::LetError(a, b)
        | Op::WhenAll(a, b)
        | Op::WhenAny(a, b)
        | Op::StopWhen(a, b)
        | Op::Finally(a, b) => has_pool_part(a) || has_pool_part(b),
    }
}

// ---------------------------------------------------------------- stopper

type StopJob = Box<dyn FnOnce() + Send>;
type StopMsg = (u64, Arc<AtomicBool>, StopJob);

/// The third thread: takes a stop request, says it is armed (the test
/// starts the tree only then, so the thread's wake-up latency is not part
/// of the delay), spins a random while, then requests stop.
fn stopper() -> mpsc::Sender<StopMsg> {
    let (tx, rx) = mpsc::channel::<StopMsg>();
    std::thread::Builder::new()
        .name("test-stopper".into())
        .spawn(move || {
            for (spins, armed, job) in rx {
                armed.store(true, Ordering::Release);
                for _ in 0..spins {
                    std::hint::spin_loop();
                }
                job();
            }
        })
        .expect("spawn stopper");
    tx
}

// ------------------------------------------------------------------- test

/// Prints the seed and tree of a failing case.
struct Report<'a> {
    seed: u64,
    tree: &'a Tree,
    stop: bool,
}

impl Drop for Report<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "exactly_once failed: EXACTLY_ONCE_SEED={} (stop request: {})\ntree: {:?}",
                self.seed, self.stop, self.tree
            );
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number"))
    })
}

#[derive(Default)]
struct Stats {
    compared: usize,
    /// Of `compared`: trees with a part on the pool.
    compared_remote: usize,
    stopped_runs: usize,
    nodes: usize,
}

fn one_tree(
    seed: u64,
    stopper: &mpsc::Sender<StopMsg>,
    landed: &Arc<AtomicUsize>,
    stats: &mut Stats,
) {
    let mut rng = Rng::new(seed);
    let remote_percent = [0, 20, 50][rng.below(3) as usize];
    let mut generator = Gen {
        rng: &mut rng,
        next_id: 0,
        remote_percent,
    };
    let depth = 2 + generator.rng.below(3) as u32;
    let tree = generator.tree(depth);
    let n = generator.next_id;
    let stop = rng.chance(35);
    let spins = match rng.below(3) {
        0 => rng.below(100),    // before or while starting
        1 => rng.below(5_000),  // while running, typically
        _ => rng.below(50_000), // often after completion
    };
    let report = Report {
        seed,
        tree: &tree,
        stop,
    };

    let ctx = Ctx {
        drops: DropCounter::new(),
        probes: Arc::new(Probes(
            (0..n)
                .map(|_| (AtomicUsize::new(0), AtomicUsize::new(0)))
                .collect(),
        )),
    };
    let sender = build(&tree, &ctx);
    let (sink, handle) = sink::<Val, Val>();
    if stop {
        let h = handle.clone();
        let landed = landed.clone();
        let job = move || {
            h.request_stop();
            if h.completions() == 0 {
                landed.fetch_add(1, Ordering::Relaxed); // while the tree ran
            }
        };
        let armed = Arc::new(AtomicBool::new(false));
        stopper.send((spins, armed.clone(), Box::new(job))).unwrap();
        while !armed.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
    }
    // `run_with` waits for the root's completion and checks it came once.
    let got = run_with(sender, sink, &handle)
        .map(|v| v.value)
        .map_err(|e| e.value);

    // When the root completed, every started node had completed, once,
    // except inside a split's predecessor, which is detached when all its
    // consumers were stopped (checked below, after a wait).
    let detached = detached_ids(&tree);
    for (id, (started, completed)) in ctx.probes.0.iter().enumerate() {
        let (s, c) = (
            started.load(Ordering::SeqCst),
            completed.load(Ordering::SeqCst),
        );
        assert!(s <= 1, "node {id} started {s} times");
        assert!(c <= s, "node {id}: started {s} times, completed {c} times");
        if !detached.contains(&id) {
            assert_eq!(c, s, "node {id}: started {s} times, completed {c} times");
        }
    }
    assert!(
        ctx.probes.0[0].0.load(Ordering::SeqCst) == 1,
        "root not started"
    );

    // Every value and error was dropped (the root's went with `map`). A
    // `split` block is released by the predecessor's completion call after
    // it woke the consumers, and split's predecessor is left running when
    // every consumer was stopped: with a split in the tree, wait for both.
    if has_split(&tree) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !(ctx.drops.alive() == 0 && all_completed(&ctx.probes))
            && std::time::Instant::now() < deadline
        {
            std::thread::yield_now();
        }
        assert!(
            all_completed(&ctx.probes),
            "split's predecessor never completed"
        );
    }
    assert_eq!(
        ctx.drops.alive(),
        0,
        "values alive after the tree completed"
    );

    if stop {
        stats.stopped_runs += 1;
    } else if let Some(want) = reference(&tree) {
        stats.compared += 1;
        stats.compared_remote += usize::from(has_pool_part(&tree));
        assert_eq!(got, want, "result differs from the reference evaluator");
    }
    stats.nodes += n;
    drop(report);
}

#[test]
fn random_trees_complete_exactly_once() {
    quiet_planted_panics();
    let base = env_u64("EXACTLY_ONCE_SEED").unwrap_or(0x5EED_0000);
    let trees = env_u64("EXACTLY_ONCE_TREES").unwrap_or(10_000);
    let stopper = stopper();
    let mut stats = Stats::default();
    let landed = Arc::new(AtomicUsize::new(0));
    let started = std::time::Instant::now();
    for i in 0..trees {
        one_tree(base.wrapping_add(i), &stopper, &landed, &mut stats);
    }
    let landed = landed.load(Ordering::Relaxed);
    eprintln!(
        "exactly_once: {trees} trees ({} nodes) in {:?}; {} compared with the reference ({} of them with parts on the pool), {} with a stop request ({landed} of which arrived while the tree ran)",
        stats.nodes,
        started.elapsed(),
        stats.compared,
        stats.compared_remote,
        stats.stopped_runs
    );
    // The suite must actually check results, not only completion counts,
    // and stop requests must race the trees, not only come after them.
    if trees >= 1000 {
        assert!(
            stats.compared * 4 > trees as usize,
            "too few deterministic trees"
        );
        assert!(
            landed * 10 > stats.stopped_runs,
            "too few stop requests raced the trees"
        );
    }
}
