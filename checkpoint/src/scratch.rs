//! Working memory of a checkpoint: one anonymous `MAP_NORESERVE` mapping, carved into
//! fixed-capacity lists. Only the pages actually used are ever backed, the mapping is
//! excluded from the image, and it is unmapped when the checkpoint ends.
#![allow(unsafe_code)]

use crate::sys;
use core::marker::PhantomData;
use mig_image::Pod;

/// Total reservation (virtual only).
const SIZE: usize = 1 << 30;

pub struct Scratch {
    pub base: usize,
    pub len: usize,
    used: usize,
}

impl Scratch {
    pub fn new() -> Option<Self> {
        Self::sized(SIZE)
    }

    /// A reservation of `len` bytes (virtual only, like `new`'s).
    pub fn sized(len: usize) -> Option<Self> {
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        // SAFETY: a new anonymous mapping where the kernel chooses (no MAP_FIXED).
        let base = unsafe { sys::mmap(0, len, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0) }.ok()?;
        Some(Scratch { base, len, used: 0 })
    }

    /// A list of at most `cap` records of `T`, carved from the reservation.
    pub fn list<T: Pod>(&mut self, cap: usize) -> Option<List<T>> {
        let align = core::mem::align_of::<T>().max(16);
        let start = self.used.next_multiple_of(align);
        let bytes = cap.checked_mul(core::mem::size_of::<T>())?;
        if start.checked_add(bytes)? > self.len {
            return None;
        }
        self.used = start + bytes;
        Some(List { ptr: (self.base + start) as *mut T, cap, len: 0, _p: PhantomData })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // SAFETY: the lists carved from it borrow the `Scratch` and so are gone.
        let _ = unsafe { sys::munmap(self.base, self.len) };
    }
}

/// A fixed-capacity vector in scratch memory. Must not outlive its `Scratch`, which
/// unmaps the memory when dropped; nothing checks that: a checkpoint keeps both in one
/// stack frame, a pre-copy both in its session.
pub struct List<T> {
    ptr: *mut T,
    cap: usize,
    len: usize,
    _p: PhantomData<T>,
}

#[derive(Debug)]
pub struct Full;

impl<T: Pod> List<T> {
    /// A list with no room, to stand in for one taken out of a struct for a while.
    pub fn empty() -> Self {
        List { ptr: core::ptr::NonNull::dangling().as_ptr(), cap: 0, len: 0, _p: PhantomData }
    }
    pub fn push(&mut self, v: T) -> Result<usize, Full> {
        if self.len == self.cap {
            return Err(Full);
        }
        // SAFETY: `len < cap`, and the `cap` slots starting at `ptr` lie in the scratch
        // mapping, which stays mapped while the list is used.
        unsafe { self.ptr.add(self.len).write(v) };
        self.len += 1;
        Ok(self.len - 1)
    }
    pub fn extend(&mut self, vs: &[T]) -> Result<usize, Full> {
        let at = self.len;
        for v in vs {
            self.push(*v)?;
        }
        Ok(at)
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: the first `len` slots were written by `push`.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the borrow unique.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
    /// The unused capacity, for reading into (then `grow` by what was read).
    pub fn spare(&mut self) -> &mut [T] {
        // SAFETY: slots `len..cap` belong to this list; zero pages read as valid `Pod`.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.add(self.len), self.cap - self.len) }
    }
    pub fn grow(&mut self, n: usize) {
        self.len = (self.len + n).min(self.cap);
    }
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }
    /// Inserts `v` before index `at` (`at <= len`).
    pub fn insert(&mut self, at: usize, v: T) -> Result<(), Full> {
        if self.len == self.cap || at > self.len {
            return Err(Full);
        }
        // SAFETY: `at <= len < cap`: moving `len - at` records one slot up stays within
        // the list's capacity; `ptr::copy` allows the overlap.
        unsafe {
            core::ptr::copy(self.ptr.add(at), self.ptr.add(at + 1), self.len - at);
            self.ptr.add(at).write(v);
        }
        self.len += 1;
        Ok(())
    }
}
