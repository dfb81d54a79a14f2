//! The functions' global allocator on wasm32 (the default feature `arena`): a small bump arena in
//! front of the system allocator, wasi-libc's dlmalloc.
//!
//! wasmi charges a block's fuel for every instruction in it when the block is entered, so each
//! `malloc` costs about 1,800 fuel and each `free` about 650, however small the allocation: for
//! `trivial`, allocations were more than half of its fuel (21,400; 9,200 with the arena). Bumping
//! a pointer costs a few dozen.
//!
//! It only changes the cost, never how much a function can do: the arena is 16 KiB, taken from
//! the system allocator by the first allocation. Whatever does not fit goes to the system
//! allocator, which frees and reuses memory as always, so a function that allocates a lot, or
//! for long, holds at most those 16 KiB more than it would without the arena. In the arena,
//! memory is reused only when the last allocation is freed (the usual temporary) or reallocated
//! (a growing `Vec` or `String` grows in place); the rest waits for the instance to end, which
//! is at the end of the request.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ptr;

/// How much the arena holds: several times what a small handler allocates in all (`trivial` a
/// little over 1 KiB, most of it std's stdout buffer), and little enough that the examples take
/// it from the two pages (128 KiB, half of it stack) they start with, without growing memory.
pub(crate) const ARENA_SIZE: usize = 16 * 1024;

/// The arena's own layout, aligned for any type up to `u128`.
const ARENA_LAYOUT: Layout = match Layout::from_size_align(ARENA_SIZE, 16) {
    Ok(layout) => layout,
    Err(_) => panic!("the arena's layout is valid"),
};

/// No allocation to grow or free in place.
const NONE: usize = usize::MAX;

/// A bump arena of [`ARENA_SIZE`] bytes taken from `backing` on first use, which serves what
/// does not fit.
pub(crate) struct Arena<A = System> {
    backing: A,
    /// The arena's first byte; null until the first allocation takes it.
    base: Cell<*mut u8>,
    /// The offset where the next allocation may start.
    next: Cell<usize>,
    /// The offset of the last allocation, the only one that can be freed or grown in place, or
    /// [`NONE`].
    last: Cell<usize>,
}

// SAFETY: the arena is installed only where there are no threads (wasm32 without the atomics
// feature), so no two threads ever touch its cells.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl<A: Sync> Sync for Arena<A> {}

impl<A: GlobalAlloc> Arena<A> {
    pub(crate) const fn new(backing: A) -> Self {
        Arena {
            backing,
            base: Cell::new(ptr::null_mut()),
            next: Cell::new(0),
            last: Cell::new(NONE),
        }
    }

    /// Where `layout` fits in the arena, taken; null if it does not fit.
    fn bump(&self, layout: Layout) -> *mut u8 {
        let mut base = self.base.get();
        if base.is_null() {
            // SAFETY: the layout's size is not zero.
            base = unsafe { self.backing.alloc(ARENA_LAYOUT) };
            if base.is_null() {
                return base;
            }
            self.base.set(base);
        }
        let Some(start) = (base.addr() + self.next.get())
            .checked_next_multiple_of(layout.align())
            .map(|aligned| aligned - base.addr())
            .filter(|&start| layout.size() <= ARENA_SIZE.saturating_sub(start))
        else {
            return ptr::null_mut();
        };
        self.next.set(start + layout.size());
        self.last.set(start);
        base.wrapping_add(start)
    }

    /// The offset of `ptr` in the arena, if it is in it.
    fn offset(&self, ptr: *mut u8) -> Option<usize> {
        let offset = ptr.addr().wrapping_sub(self.base.get().addr());
        (offset < ARENA_SIZE && !self.base.get().is_null()).then_some(offset)
    }
}

// SAFETY: every block handed out is either a part of the arena that no other live block
// overlaps (`next` only moves back over the last block, when it is freed or resized), or a
// block of `backing`, and each call below tells the two apart by address before acting.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Arena<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let block = self.bump(layout);
        if !block.is_null() {
            return block;
        }
        // SAFETY: the caller's layout, as the caller promised.
        unsafe { self.backing.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let block = self.bump(layout);
        if !block.is_null() {
            // SAFETY: the block is `layout.size()` bytes of the arena; they may have been used
            // by a block freed before.
            unsafe { block.write_bytes(0, layout.size()) };
            return block;
        }
        // SAFETY: as in `alloc`; the backing allocator may have cheaper zeroed memory.
        unsafe { self.backing.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        match self.offset(block) {
            Some(offset) => {
                if offset == self.last.get() {
                    self.next.set(offset);
                    self.last.set(NONE);
                }
            }
            // SAFETY: not in the arena, so `backing` allocated it, with this layout.
            None => unsafe { self.backing.dealloc(block, layout) },
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(offset) = self.offset(block) else {
            // SAFETY: not in the arena, so `backing` allocated it, with this layout.
            return unsafe { self.backing.realloc(block, layout, new_size) };
        };
        if new_size <= layout.size() {
            if offset == self.last.get() {
                self.next.set(offset + new_size);
            }
            return block;
        }
        if offset == self.last.get() && new_size <= ARENA_SIZE - offset {
            self.next.set(offset + new_size);
            return block;
        }
        // SAFETY: the caller promises that `new_size`, rounded up to the alignment, does not
        // overflow, which makes the layout valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `new_size` is not zero, as the caller promised.
        let new_block = unsafe { self.alloc(new_layout) };
        if !new_block.is_null() {
            // SAFETY: both blocks are live and distinct, and hold at least the bytes copied.
            unsafe { ptr::copy_nonoverlapping(block, new_block, layout.size()) };
            // SAFETY: the old block is the caller's, with its layout.
            unsafe { self.dealloc(block, layout) };
        }
        new_block
    }
}
