//! A cache of small freed blocks in front of the system allocator (`main.rs` installs it
//! on Linux). It was made for the static musl build users copy: musl's allocator serves
//! every thread under one lock, and a call through the gateway allocates and frees a few
//! dozen small blocks on several threads (the connection's, the backend's reader). The
//! glibc build gains from it too (measured in docs/performance.md).
//!
//! Freed blocks of up to 512 bytes are kept on a stack for their size class (16, 32 ...
//! 512 bytes), one set of stacks per CPU: the CPU a thread runs on picks the set, so a
//! block the backend's reader frees is taken again by the connection thread that runs
//! there next. At most 32 blocks per class and set: 32 KB a set, 256 KB for all eight at
//! most. A set another thread holds is passed by (the system allocator serves), never
//! waited for. Nothing is kept per thread, so an idle session or a thread's end costs
//! what it did without the cache.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

/// Size classes: `SMALLEST << c` bytes for c in 0..CLASSES.
const CLASSES: usize = 6;
const SMALLEST: usize = 16;
/// Blocks kept per class and set, and the sets.
const DEPTH: usize = 32;
const SETS: usize = 8;

/// One CPU's stacks; `busy` is its lock, only ever tried.
#[repr(align(64))]
struct Set {
    busy: AtomicBool,
    held: UnsafeCell<Held>,
}

struct Held {
    stacks: [[*mut u8; DEPTH]; CLASSES],
    lens: [usize; CLASSES],
}

// SAFETY: `held` is only read or written by the thread that set `busy` from false to true
// (Acquire), until it sets it back (Release); the pointers are blocks no one else holds.
unsafe impl Sync for Set {}

/// The allocator: the system's, with the per-CPU stacks of small freed blocks.
pub struct Blocks {
    sets: [Set; SETS],
}

/// A set taken; given back on drop.
struct Taken<'a>(&'a Set);

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
    }
}

impl Taken<'_> {
    fn held(&mut self) -> &mut Held {
        // SAFETY: this thread holds the set (`busy`) for as long as `self` lives.
        unsafe { &mut *self.0.held.get() }
    }
}

impl Blocks {
    pub const fn new() -> Blocks {
        Blocks {
            sets: [const {
                Set {
                    busy: AtomicBool::new(false),
                    held: UnsafeCell::new(Held {
                        stacks: [[std::ptr::null_mut(); DEPTH]; CLASSES],
                        lens: [0; CLASSES],
                    }),
                }
            }; SETS],
        }
    }

    /// The set of the CPU this thread runs on, unless another thread holds it.
    fn take(&self) -> Option<Taken<'_>> {
        let set = &self.sets[cpu() % SETS];
        set.busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Taken(set))
    }
}

impl Default for Blocks {
    fn default() -> Blocks {
        Blocks::new()
    }
}

#[cfg(target_os = "linux")]
fn cpu() -> usize {
    // SAFETY: no arguments; it returns the CPU number or -1.
    usize::try_from(unsafe { libc::sched_getcpu() }).unwrap_or(0)
}

#[cfg(not(target_os = "linux"))]
fn cpu() -> usize {
    0
}

/// The class of a block for `layout`: None when it is too large or too aligned to cache.
fn class(layout: &Layout) -> Option<usize> {
    if layout.align() > SMALLEST || layout.size() > SMALLEST << (CLASSES - 1) {
        return None;
    }
    let size = layout.size().max(1);
    Some(((size - 1) | (SMALLEST - 1)).ilog2() as usize + 1 - SMALLEST.ilog2() as usize)
}

/// The layout every block of class `c` is allocated with, so any of them serves any
/// request of the class.
fn block(c: usize) -> Layout {
    // SAFETY: SMALLEST is a power of two and the size one of its multiples, far below
    // isize::MAX.
    unsafe { Layout::from_size_align_unchecked(SMALLEST << c, SMALLEST) }
}

// SAFETY: every block handed out is either the system allocator's for the caller's own
// layout (too large or aligned to cache) or a whole block of the request's class, which
// is at least as large and as aligned as the request; a freed block of a class goes on
// its class's stack (or back to the system with its class's layout), and is handed out
// again only once, since a stack slot is popped under the set's lock.
unsafe impl GlobalAlloc for Blocks {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = class(&layout) else {
            // SAFETY: the caller's contract for `alloc`, passed on.
            return unsafe { System.alloc(layout) };
        };
        if let Some(mut set) = self.take() {
            let held = set.held();
            if held.lens[c] > 0 {
                held.lens[c] -= 1;
                return held.stacks[c][held.lens[c]];
            }
        }
        // SAFETY: a non-zero size.
        unsafe { System.alloc(block(c)) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(c) = class(&layout) else {
            // SAFETY: the caller's contract: `ptr` came from `alloc(layout)`, which passed
            // it on to the system allocator.
            return unsafe { System.dealloc(ptr, layout) };
        };
        if let Some(mut set) = self.take() {
            let held = set.held();
            if held.lens[c] < DEPTH {
                held.stacks[c][held.lens[c]] = ptr;
                held.lens[c] += 1;
                return;
            }
        }
        // SAFETY: a block of class `c`, allocated with `block(c)`.
        unsafe { System.dealloc(ptr, block(c)) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if class(&layout).is_none() {
            // SAFETY: the caller's contract for `alloc_zeroed`, passed on.
            return unsafe { System.alloc_zeroed(layout) };
        }
        // SAFETY: as `alloc`; a cached block is not zeroed, so it is zeroed here.
        unsafe {
            let ptr = self.alloc(layout);
            if !ptr.is_null() {
                std::ptr::write_bytes(ptr, 0, layout.size());
            }
            ptr
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract: `new_size` rounded up to the alignment does not
        // overflow isize, and the alignment is the old one's.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(&layout), class(&new)) {
            // SAFETY: both the system's own: the caller's contract, passed on.
            (None, None) => unsafe { System.realloc(ptr, layout, new_size) },
            // The block is its class's size already.
            (Some(a), Some(b)) if a == b => ptr,
            // SAFETY: a new block, the bytes both hold copied, the old one freed as it
            // was allocated.
            _ => unsafe {
                let moved = self.alloc(new);
                if !moved.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                moved
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn sizes_fall_in_the_smallest_class_that_holds_them() {
        let classes: Vec<Option<usize>> = [0, 1, 16, 17, 32, 33, 64, 100, 256, 257, 512, 513]
            .iter()
            .map(|&n| class(&layout(n, 1)))
            .collect();
        let want = [0, 0, 0, 1, 1, 2, 2, 3, 4, 5, 5];
        for (got, want) in classes.iter().zip(want) {
            assert_eq!(*got, Some(want));
        }
        assert_eq!(classes[11], None, "513 bytes go to the system");
        assert_eq!(
            class(&layout(64, 32)),
            None,
            "a wider alignment goes to the system"
        );
        for c in 0..CLASSES {
            assert!(block(c).size() >= SMALLEST << c);
        }
    }

    #[test]
    fn blocks_are_reused_whole_and_never_handed_out_twice() {
        let blocks = Blocks::new();
        let small = layout(24, 8);
        // SAFETY: every block is freed once, with the layout it was asked for, and only
        // touched within its size while held.
        unsafe {
            let first: Vec<*mut u8> = (0..40).map(|_| blocks.alloc(small)).collect();
            for (i, &p) in first.iter().enumerate() {
                std::ptr::write_bytes(p, i as u8, 24);
            }
            for &p in &first {
                blocks.dealloc(p, small);
            }
            // Taken again: distinct blocks, each whole (32 bytes) and writable.
            let again: Vec<*mut u8> = (0..40).map(|_| blocks.alloc(layout(30, 2))).collect();
            let mut seen = again.clone();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), again.len(), "a block handed out twice");
            for &p in &again {
                std::ptr::write_bytes(p, 0xAB, 30);
            }
            // Grown within its class it stays; grown past it, it moves with its bytes.
            let p = again[0];
            assert_eq!(blocks.realloc(p, layout(30, 2), 32), p);
            let q = blocks.realloc(p, layout(32, 2), 600);
            assert!((0..30).all(|i| *q.add(i) == 0xAB));
            let r = blocks.realloc(q, layout(600, 2), 20);
            assert!((0..20).all(|i| *r.add(i) == 0xAB));
            blocks.dealloc(r, layout(20, 2));
            for &p in &again[1..] {
                blocks.dealloc(p, layout(30, 2));
            }
            let z = blocks.alloc_zeroed(layout(48, 8));
            assert!((0..48).all(|i| *z.add(i) == 0));
            blocks.dealloc(z, layout(48, 8));
            let big = blocks.alloc_zeroed(layout(4096, 64));
            assert!((0..4096).all(|i| *big.add(i) == 0));
            blocks.dealloc(big, layout(4096, 64));
        }
    }

    #[test]
    fn threads_share_the_sets_without_losing_a_block() {
        static BLOCKS: Blocks = Blocks::new();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..20_000usize {
                        let size = 1 + (i * 7 + t) % 500;
                        let l = layout(size, 8);
                        // SAFETY: each block is written within its size, then freed once
                        // with its own layout.
                        unsafe {
                            let p = BLOCKS.alloc(l);
                            std::ptr::write_bytes(p, t as u8, size);
                            held.push((p as usize, l));
                            if held.len() > 16 {
                                let (p, l) = held.swap_remove(i % 16);
                                let p = p as *mut u8;
                                assert!((0..l.size()).all(|k| *p.add(k) == t as u8));
                                BLOCKS.dealloc(p, l);
                            }
                        }
                    }
                    for (p, l) in held {
                        // SAFETY: as above.
                        unsafe { BLOCKS.dealloc(p as *mut u8, l) };
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
