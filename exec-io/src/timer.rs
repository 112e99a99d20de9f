//! The loop's timers: a binary heap of `(deadline, id)` with lazy
//! cancellation, plus a generation-checked slot table mapping ids to the
//! waiting operations.
//!
//! Adding is `O(log n)`; cancelling is `O(1)` (the slot's generation is
//! bumped and the heap entry becomes garbage, skipped when it reaches the
//! top). When garbage outnumbers live timers the heap is compacted, so
//! memory stays proportional to the live timers.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::op::Header;

struct Slot {
    generation: u32,
    op: *const Header,
}

/// The timer table of one loop. Loop-thread only.
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
}

fn split(id: u64) -> (usize, u32) {
    ((id & 0xffff_ffff) as usize, (id >> 32) as u32)
}

impl Timers {
    pub(crate) fn new() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }

    /// Number of pending timers.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Registers `op` to run at `at`; returns its id.
    pub(crate) fn insert(&mut self, at: Instant, op: *const Header) -> u64 {
        let idx = match self.free.pop() {
            Some(i) => i as usize,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    op: core::ptr::null(),
                });
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[idx];
        slot.op = op;
        let id = ((slot.generation as u64) << 32) | idx as u64;
        self.heap.push(Reverse((at, id)));
        self.live += 1;
        id
    }

    fn release(&mut self, idx: usize) -> *const Header {
        let slot = &mut self.slots[idx];
        let op = core::mem::replace(&mut slot.op, core::ptr::null());
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(idx as u32);
        self.live -= 1;
        op
    }

    fn valid(&self, id: u64) -> bool {
        let (idx, generation) = split(id);
        self.slots
            .get(idx)
            .is_some_and(|s| s.generation == generation && !s.op.is_null())
    }

    /// Cancels timer `id`; returns its operation, or null if it already
    /// fired or was cancelled.
    pub(crate) fn cancel(&mut self, id: u64) -> *const Header {
        if !self.valid(id) {
            return core::ptr::null();
        }
        let op = self.release(split(id).0);
        if self.heap.len() > 64 && self.heap.len() > 4 * self.live {
            let slots = &self.slots;
            self.heap.retain(|Reverse((_, id))| {
                let (idx, generation) = split(*id);
                slots[idx].generation == generation && !slots[idx].op.is_null()
            });
        }
        op
    }

    /// The earliest live deadline (dropping cancelled entries on top).
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if self.valid(id) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// Pops every timer due at `now`, calling `fire` with its operation.
    pub(crate) fn expire(&mut self, now: Instant, mut fire: impl FnMut(*const Header)) {
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            if self.valid(id) {
                fire(self.release(split(id).0));
            }
        }
    }

    /// Removes every pending timer, calling `f` with its operation.
    pub(crate) fn drain(&mut self, mut f: impl FnMut(*const Header)) {
        while let Some(Reverse((_, id))) = self.heap.pop() {
            if self.valid(id) {
                f(self.release(split(id).0));
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expire_in_order_and_skip_cancelled() {
        let mut t = Timers::new();
        let now = Instant::now();
        // Distinct, never dereferenced pointers (no provenance needed).
        let p = |i: usize| std::ptr::without_provenance::<Header>(i);
        let a = t.insert(now + Duration::from_millis(3), p(8));
        let _b = t.insert(now + Duration::from_millis(1), p(16));
        let c = t.insert(now + Duration::from_millis(2), p(24));
        assert_eq!(t.cancel(c), p(24));
        assert!(t.cancel(c).is_null(), "cancelling twice finds nothing");
        assert_eq!(t.len(), 2);
        assert_eq!(t.next_deadline(), Some(now + Duration::from_millis(1)));
        let mut fired = Vec::new();
        t.expire(now + Duration::from_millis(5), |h| fired.push(h.addr()));
        assert_eq!(fired, vec![16, 8]);
        assert!(t.cancel(a).is_null(), "a fired timer cannot be cancelled");
        assert_eq!(t.len(), 0);
        assert_eq!(t.next_deadline(), None);
    }

    /// The raw cost of the structure: a million pending timers added, then
    /// all cancelled (memory is compacted as garbage accumulates).
    #[test]
    fn million_add_cancel() {
        let n: u64 = if cfg!(miri) { 1000 } else { 1_000_000 };
        let mut t = Timers::new();
        let now = Instant::now();
        let t0 = Instant::now();
        let ids: Vec<u64> = (0..n)
            .map(|i| {
                t.insert(
                    now + Duration::from_micros(i * 7919 % 1_000_003),
                    std::ptr::dangling::<Header>(),
                )
            })
            .collect();
        let add = t0.elapsed();
        let t1 = Instant::now();
        for id in ids {
            assert!(!t.cancel(id).is_null());
        }
        let cancel = t1.elapsed();
        assert_eq!(t.len(), 0);
        assert!(t.heap.len() <= 4 * 64 + 64);
        eprintln!(
            "timer table: {n} adds {:.0} ns each, {n} cancels {:.0} ns each",
            add.as_nanos() as f64 / n as f64,
            cancel.as_nanos() as f64 / n as f64
        );
    }
}
