//! The cross-thread path into the loop: an intrusive, mutex-guarded FIFO of
//! links embedded in pinned operation states, plus the "is the loop asleep"
//! flag that decides whether a push must wake the driver.
//!
//! # Protocol (no lost wake-ups)
//! - A pusher takes the lock, links its node, and if `sleeping` is set clears
//!   it and, after unlocking, calls the waker once.
//! - The loop takes the lock before it blocks: if the list is empty it sets
//!   `sleeping` and blocks in the driver; otherwise it does not block.
//!   After the driver returns it clears `sleeping` under the lock.
//! - So a push either happens before the loop's check (the loop sees a
//!   non-empty list and does not block) or after it (the pusher sees
//!   `sleeping` and wakes the driver, whose wake-up is level: a wake sent
//!   before the driver blocks still ends the next block).
//!
//! The `loom_tests` module models this with a mock driver.

use core::ptr::{self, NonNull};

use exec_core::TaskNode;

use crate::loom::cell::UnsafeCell;
use crate::loom::sync::{Mutex, MutexGuard};
use core::sync::atomic::Ordering;

/// An intrusive list node: two words (every operation carries one). Every
/// field is guarded by the inbox mutex.
///
/// A link is in the list iff its `prev` is not null or it is the head
/// (`unlink` nulls both pointers), so it needs no "linked" flag; what it
/// was queued for (a start or a cancel, see [`InboxState::push_start`] and
/// [`InboxState::push_cancel`]) is bit 0 of `prev`, which is never a real
/// address bit (links are 8-aligned) and which every write of `prev`
/// keeps.
#[derive(Debug)]
pub(crate) struct Link {
    /// The previous link (null if first or not linked) | the kind bit.
    prev: UnsafeCell<*const Link>,
    /// The next link (null if last or not linked).
    next: UnsafeCell<*const Link>,
}

/// Bit 0 of `Link::prev`: a cancel link.
const CANCEL_BIT: usize = 1;

impl Link {
    pub(crate) fn new() -> Self {
        Link {
            prev: UnsafeCell::new(ptr::null()),
            next: UnsafeCell::new(ptr::null()),
        }
    }

    /// Whether the link was last queued for a cancel (set by the push that
    /// linked it, or turned into a start by [`InboxState::push_start`]
    /// while linked).
    ///
    /// # Safety
    /// Inbox lock held, or no other thread can be linking or unlinking a
    /// neighbour of this link (it is not linked).
    pub(crate) unsafe fn is_cancel(&self) -> bool {
        // SAFETY: per the contract, no concurrent write.
        self.prev.with(|p| unsafe { (*p).addr() } & CANCEL_BIT != 0)
    }

    /// # Safety
    /// Inbox lock held.
    unsafe fn prev(&self) -> *const Link {
        // SAFETY: lock held.
        self.prev
            .with(|p| unsafe { (*p).map_addr(|a| a & !CANCEL_BIT) })
    }

    /// Sets the kind bit (a cancel or not), keeping `prev`.
    ///
    /// # Safety
    /// Inbox lock held.
    unsafe fn set_kind(&self, cancel: bool) {
        // SAFETY: lock held.
        self.prev.with_mut(|p| unsafe {
            let kind = if cancel { CANCEL_BIT } else { 0 };
            *p = (*p).map_addr(|a| (a & !CANCEL_BIT) | kind);
        })
    }

    /// Sets `prev`, keeping the kind bit.
    ///
    /// # Safety
    /// Inbox lock held.
    unsafe fn set_prev(&self, prev: *const Link) {
        // SAFETY: lock held.
        self.prev.with_mut(|p| unsafe {
            let kind = (*p).addr() & CANCEL_BIT;
            *p = prev.map_addr(|a| a | kind);
        })
    }
}

/// What the inbox holds besides links: state the loop reads under the lock.
pub(crate) struct InboxState {
    head: *const Link,
    tail: *const Link,
    /// Type-erased nodes ([`TaskNode`], `DynScheduler::enqueue`): a FIFO
    /// linked through the nodes' own `next` links (read and written only
    /// with the lock held).
    task_head: *mut TaskNode,
    task_tail: *mut TaskNode,
    /// The loop is (about to be) blocked in its driver.
    pub(crate) sleeping: bool,
    /// The context was dropped: nothing may be pushed any more.
    pub(crate) closed: bool,
    /// Readiness-registration keys released by sources dropped off the loop.
    pub(crate) released: Vec<u64>,
    /// io_uring: operations on direct descriptors asked for off the loop
    /// (a close by a dropped stream, a shutdown), in order.
    pub(crate) slot_ops: Vec<crate::uring::SlotOp>,
}

// SAFETY: the raw pointers refer to links inside pinned operation states
// that are `Send` and stay alive while linked; they are only touched with
// the mutex held.
unsafe impl Send for InboxState {}

/// The mutex-guarded list.
pub(crate) struct Inbox {
    state: Mutex<InboxState>,
}

impl Inbox {
    pub(crate) fn new() -> Self {
        Inbox {
            state: Mutex::new(InboxState {
                head: ptr::null(),
                tail: ptr::null(),
                task_head: ptr::null_mut(),
                task_tail: ptr::null_mut(),
                sleeping: false,
                closed: false,
                released: Vec::new(),
                slot_ops: Vec::new(),
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl InboxState {
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_null() && self.task_head.is_null()
    }

    /// Appends a type-erased node. Returns whether the loop must be woken
    /// (and clears `sleeping`).
    ///
    /// # Safety
    /// `node` is alive, pinned and queued nowhere else until it is taken
    /// by [`take_tasks`](Self::take_tasks).
    pub(crate) unsafe fn push_task(&mut self, node: NonNull<TaskNode>) -> bool {
        // SAFETY: the node and the current tail are alive and held by this
        // inbox (lock held).
        unsafe {
            TaskNode::set_next(node, ptr::null_mut(), Ordering::Relaxed);
            match NonNull::new(self.task_tail) {
                None => self.task_head = node.as_ptr(),
                Some(tail) => TaskNode::set_next(tail, node.as_ptr(), Ordering::Relaxed),
            }
        }
        self.task_tail = node.as_ptr();
        core::mem::replace(&mut self.sleeping, false)
    }

    /// Takes every queued type-erased node, oldest first: walk the result
    /// with [`TaskNode::next`] (read each link before executing its node).
    pub(crate) fn take_tasks(&mut self) -> *mut TaskNode {
        self.task_tail = ptr::null_mut();
        core::mem::replace(&mut self.task_head, ptr::null_mut())
    }

    /// Whether `link` is in the list.
    ///
    /// # Safety
    /// `link` is alive.
    unsafe fn is_linked(&self, link: *const Link) -> bool {
        // SAFETY: alive; the lock is held (`&mut self` / `&self` of the
        // guarded state).
        !unsafe { (*link).prev() }.is_null() || ptr::eq(self.head, link)
    }

    /// Queues `link` for a start (a new start, or an op handed back by a
    /// blocking thread). If it is already queued for a cancel, it is
    /// turned into a start where it is: the loop then runs the op's start,
    /// which completes it *stopped* since stop was requested (every start
    /// checks), so the cancel needs no entry of its own. Returns whether
    /// the loop must be woken (and clears `sleeping`).
    ///
    /// # Safety
    /// `link` is not queued for a start, is pinned, and stays alive until
    /// it is popped or unlinked (both under this lock).
    pub(crate) unsafe fn push_start(&mut self, link: *const Link) -> bool {
        // SAFETY: per the contract; lock held.
        unsafe {
            if self.is_linked(link) {
                (*link).set_kind(false);
                return core::mem::replace(&mut self.sleeping, false);
            }
            (*link).set_kind(false);
            self.push(link)
        }
    }

    /// Queues `link` for a cancel, unless it is already queued (for a
    /// start, which checks for stop itself: see
    /// [`push_start`](Self::push_start); a stop callback runs once, so not
    /// for a cancel). Returns whether the loop must be woken (and clears
    /// `sleeping`).
    ///
    /// # Safety
    /// As for [`push_start`](Self::push_start).
    pub(crate) unsafe fn push_cancel(&mut self, link: *const Link) -> bool {
        // SAFETY: per the contract; lock held.
        unsafe {
            if self.is_linked(link) {
                return core::mem::replace(&mut self.sleeping, false);
            }
            (*link).set_kind(true);
            self.push(link)
        }
    }

    /// Appends `link`, keeping its kind. Returns whether the loop must be
    /// woken (and clears `sleeping`).
    ///
    /// # Safety
    /// `link` is not linked, is pinned, and stays alive until it is popped
    /// or unlinked (both under this lock).
    unsafe fn push(&mut self, link: *const Link) -> bool {
        // SAFETY: lock held (we are behind `&mut InboxState` from the guard);
        // `link` and the current tail are alive per the contract.
        unsafe {
            (*link).set_prev(self.tail);
            (*link).next.with_mut(|n| *n = ptr::null());
            if self.tail.is_null() {
                self.head = link;
            } else {
                (*self.tail).next.with_mut(|n| *n = link);
            }
        }
        self.tail = link;
        core::mem::replace(&mut self.sleeping, false)
    }

    /// Removes and returns the oldest link, or null.
    pub(crate) fn pop(&mut self) -> *const Link {
        let link = self.head;
        if !link.is_null() {
            // SAFETY: linked nodes are alive; lock held.
            unsafe { self.unlink(link) };
        }
        link
    }

    /// Unlinks `link` if it is linked; returns whether it was.
    ///
    /// # Safety
    /// `link` is alive (owned by the caller or linked here).
    pub(crate) unsafe fn unlink(&mut self, link: *const Link) -> bool {
        // SAFETY: lock held; `link` alive per the contract and its
        // neighbours alive because linked.
        unsafe {
            let prev = (*link).prev();
            // Linked iff it has a predecessor or is the head (see `Link`).
            if prev.is_null() && !ptr::eq(self.head, link) {
                return false;
            }
            let next = (*link).next.with(|n| *n);
            if prev.is_null() {
                self.head = next;
            } else {
                (*prev).next.with_mut(|n| *n = next);
            }
            if next.is_null() {
                self.tail = prev;
            } else {
                (*next).set_prev(prev);
            }
            (*link).set_prev(ptr::null());
            (*link).next.with_mut(|n| *n = ptr::null());
        }
        true
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// The kind bit survives every write of `prev` (as a link, as a
    /// neighbour being relinked, after unlinking), and "linked" is told
    /// apart correctly for the head, the middle, the tail and a link that
    /// is not in the list.
    #[test]
    fn kind_bit_and_linked_state_survive_list_operations() {
        let links: Vec<Link> = (0..4).map(|_| Link::new()).collect();
        let kinds = || {
            // SAFETY: single thread: nobody else touches the links.
            links
                .iter()
                .map(|l| unsafe { l.is_cancel() })
                .collect::<Vec<_>>()
        };
        let expected = vec![false, true, false, true];
        let inbox = Inbox::new();
        let mut st = inbox.lock();
        for (i, l) in links.iter().enumerate() {
            // SAFETY: the links outlive the inbox state use below and are
            // pushed once each before being popped or unlinked.
            unsafe {
                if i % 2 == 1 {
                    st.push_cancel(l)
                } else {
                    st.push_start(l)
                }
            };
        }
        assert_eq!(kinds(), expected);
        // Unlink the middle (1), then the tail (3): neighbours relinked.
        // SAFETY: the links are alive (owned by this frame).
        assert!(unsafe { st.unlink(&links[1]) });
        // SAFETY: as above.
        assert!(!unsafe { st.unlink(&links[1]) }, "not linked any more");
        // SAFETY: as above.
        assert!(unsafe { st.unlink(&links[3]) });
        assert_eq!(kinds(), expected);
        // Pop the rest in order: 0 (head, prev null but linked), then 2.
        assert_eq!(st.pop(), &links[0] as *const Link);
        // SAFETY: alive; popped, so not linked.
        assert!(!unsafe { st.unlink(&links[0]) });
        assert_eq!(st.pop(), &links[2] as *const Link);
        assert!(st.pop().is_null());
        assert!(st.is_empty());
        assert_eq!(kinds(), expected);
        // A popped link can be pushed again (an op handed back), now for
        // a start.
        // SAFETY: alive, not linked.
        unsafe { st.push_start(&links[3]) };
        assert_eq!(st.pop(), &links[3] as *const Link);
        assert_eq!(kinds(), vec![false, true, false, false]);
    }

    /// One link per op serves both queues: a cancel posted while the op is
    /// queued for a start adds nothing (the start checks for stop); a
    /// start queued while a cancel is turns that entry into the start.
    /// Either way the op is in the list once, where it was first queued.
    #[test]
    fn a_start_and_a_cancel_share_one_entry() {
        let (a, b) = (Link::new(), Link::new());
        let inbox = Inbox::new();
        let mut st = inbox.lock();
        // SAFETY: the links outlive the state's use; single thread.
        unsafe {
            st.push_start(&a);
            st.push_cancel(&b);
            st.push_cancel(&a);
            assert!(!a.is_cancel(), "a cancel does not replace a start");
            st.push_start(&b);
            assert!(!b.is_cancel(), "a start replaces a cancel");
        }
        assert_eq!(st.pop(), &a as *const Link);
        assert_eq!(st.pop(), &b as *const Link);
        assert!(st.pop().is_null(), "each link queued once");
        // SAFETY: as above.
        unsafe {
            st.push_cancel(&a);
            assert!(a.is_cancel());
            assert!(st.unlink(&a));
        }
        assert!(st.is_empty());
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::{Arc, Condvar, Mutex};

    /// A mock driver: `wake` is level-triggered like an eventfd (a wake
    /// sent before `block` still ends the next `block`).
    struct Driver {
        woken: Mutex<bool>,
        cv: Condvar,
    }
    impl Driver {
        fn wake(&self) {
            *self.woken.lock().unwrap() = true;
            self.cv.notify_one();
        }
        fn block(&self) {
            let mut w = self.woken.lock().unwrap();
            while !*w {
                w = self.cv.wait(w).unwrap();
            }
            *w = false;
        }
    }

    struct Node {
        link: Link,
    }

    /// A remote push while the loop goes to sleep is never lost: the loop
    /// always ends up popping the node.
    #[test]
    fn remote_push_wakes_loop() {
        loom::model(|| {
            let inbox = Arc::new(Inbox::new());
            let driver = Arc::new(Driver {
                woken: Mutex::new(false),
                cv: Condvar::new(),
            });
            let node: &'static Node = Box::leak(Box::new(Node { link: Link::new() }));
            let (i2, d2) = (inbox.clone(), driver.clone());
            let pusher = loom::thread::spawn(move || {
                // SAFETY: the node is leaked (alive forever), pushed once.
                let wake = unsafe { i2.lock().push_start(&node.link) };
                if wake {
                    d2.wake();
                }
            });
            // The loop: poll until it has the node.
            loop {
                let mut st = inbox.lock();
                let got = st.pop();
                if !got.is_null() {
                    assert_eq!(got, &node.link as *const Link);
                    break;
                }
                st.sleeping = true;
                drop(st);
                driver.block();
                inbox.lock().sleeping = false;
            }
            pusher.join().unwrap();
        });
    }

    /// A start (from another thread) and a cancel (a stop callback) of the
    /// same op race each other and the loop draining the inbox, through
    /// the op's one link: the start is never lost (popped exactly once as
    /// a start), the link is popped at most twice, and the list ends empty.
    #[test]
    fn start_and_cancel_share_the_link() {
        loom::model(|| {
            let inbox = Arc::new(Inbox::new());
            let node: &'static Node = Box::leak(Box::new(Node { link: Link::new() }));
            let i2 = inbox.clone();
            let starter = loom::thread::spawn(move || {
                // SAFETY: leaked node, queued for a start once.
                unsafe { i2.lock().push_start(&node.link) };
            });
            let i3 = inbox.clone();
            let canceller = loom::thread::spawn(move || {
                // SAFETY: leaked node.
                unsafe { i3.lock().push_cancel(&node.link) };
            });
            let (mut starts, mut pops) = (0, 0);
            let mut drain = |st: &mut InboxState| {
                while !st.pop().is_null() {
                    pops += 1;
                    // SAFETY: just popped (lock held, leaked node).
                    if !unsafe { node.link.is_cancel() } {
                        starts += 1;
                    }
                }
            };
            drain(&mut inbox.lock());
            starter.join().unwrap();
            canceller.join().unwrap();
            drain(&mut inbox.lock());
            assert_eq!(starts, 1, "the start is taken once");
            assert!(pops <= 2);
            assert!(inbox.lock().is_empty());
        });
    }

    /// A stop callback posting a cancel link races the loop finishing the
    /// op (which unlinks it) and the loop draining the inbox: the link is
    /// taken exactly once (popped xor unlinked xor never pushed) and the
    /// list is left empty.
    #[test]
    fn cancel_link_posted_while_loop_finishes() {
        loom::model(|| {
            let inbox = Arc::new(Inbox::new());
            let node: &'static Node = Box::leak(Box::new(Node { link: Link::new() }));
            let posted = Arc::new(loom::sync::atomic::AtomicBool::new(false));
            let (i2, p2) = (inbox.clone(), posted.clone());
            let callback = loom::thread::spawn(move || {
                let mut st = i2.lock();
                p2.store(true, loom::sync::atomic::Ordering::Release);
                // SAFETY: leaked node, pushed once.
                unsafe { st.push_cancel(&node.link) };
            });
            // The loop drains once, then "finishes" the op: waits for the
            // callback (as dropping a StopCallback does) and unlinks.
            let popped = !inbox.lock().pop().is_null();
            callback.join().unwrap();
            let unlinked = posted.load(loom::sync::atomic::Ordering::Acquire)
                // SAFETY: the node is alive (leaked).
                && unsafe { inbox.lock().unlink(&node.link) };
            assert!(!(popped && unlinked));
            assert!(popped || unlinked);
            assert!(inbox.lock().is_empty());
        });
    }
}
