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
