//! The blob's program under construction: its operations, and a bump allocator over the
//! hole's data pages for everything they point to.
#![allow(unsafe_code)]

use super::super::blob::{END, Op};
use super::Refusal;
use mig_image::{Pod, bytes_of};

/// Bump allocator over the hole's data pages.
pub(super) struct Arena {
    next: usize,
    end: usize,
    /// Something did not fit: the restore is refused (`check`) before the blob runs.
    full: bool,
}

impl Arena {
    /// Room for `len` bytes; 0 (and `full`) when there is none left.
    pub(super) fn alloc(&mut self, len: usize, align: usize) -> usize {
        let at = self.next.next_multiple_of(align);
        match at.checked_add(len) {
            Some(end) if end <= self.end && !self.full => {
                self.next = end;
                at
            }
            _ => {
                self.full = true;
                0
            }
        }
    }
    /// A copy of `b`, NUL-terminated; its address (0 if it did not fit).
    pub(super) fn bytes(&mut self, b: &[u8]) -> u64 {
        let at = self.alloc(b.len() + 1, 8);
        if at != 0 {
            // SAFETY: `alloc` returned `len + 1` writable bytes inside the hole mapping.
            unsafe {
                std::ptr::copy_nonoverlapping(b.as_ptr(), at as *mut u8, b.len());
                *((at + b.len()) as *mut u8) = 0;
            }
        }
        at as u64
    }
    /// Refuses the restore if anything so far did not fit.
    pub(super) fn check(&self) -> Result<(), Refusal> {
        if self.full { Err("the image has more to restore than the restore area holds".into()) } else { Ok(()) }
    }
    pub(super) fn put<T: Pod>(&mut self, v: &T) -> u64 {
        self.bytes(bytes_of(v))
    }
}

/// The blob's program under construction.
pub(super) struct Program {
    pub(super) arena: Arena,
    pub(super) ops: Vec<Op>,
}

impl Program {
    /// A program whose data goes to `[from, end)` of the hole.
    pub(super) fn new(from: u64, end: u64) -> Self {
        Program { arena: Arena { next: from as usize, end: end as usize, full: false }, ops: Vec::new() }
    }
    /// Adds system call `nr` with `args`, checked as `check` says; `what` names it in
    /// the blob's message should it fail.
    pub(super) fn op(&mut self, nr: i64, args: &[u64], check: u64, what: &str) -> &mut Op {
        let mut a = [0u64; 6];
        a[..args.len()].copy_from_slice(args);
        let what_ptr = self.arena.bytes(what.as_bytes());
        self.ops.push(Op { nr: nr as u64, args: a, check, store: 0, what: what_ptr, what_len: what.len() as u64 });
        self.ops.last_mut().expect("just pushed")
    }
    /// Ends the program.
    pub(super) fn end(&mut self) {
        self.ops.push(Op { nr: END, ..Op::default() });
    }
}
