//! A lazily restored process, later: its saved pages are mapped privately from the
//! image, the never-touched ones anonymous between them, several mappings where the
//! program had one. Such memory differs from anonymous memory in what `madvise` and
//! `mremap` do with it: `MADV_DONTNEED` brings the image's contents back instead of
//! zeros, `MADV_FREE` and `MADV_WIPEONFORK` are refused, `mremap` across the mappings
//! fails, and one that grows a mapping of the image goes on into the file (other data,
//! or `SIGBUS` past its end) instead of zeros. The interposed calls (`interpose::memory`) first turn the range
//! they are given into anonymous memory. No allocation, no locks: allocators call these.
#![allow(unsafe_code)]

use crate::checkpoint::maps::{self, MapLine};
use crate::sys;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

const PAGE: u64 = 4096;

/// (dev, ino) of the image this process maps memory from; ino 0: none (any more).
static IMAGE: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];

pub fn set_image((dev, ino): (u64, u64)) {
    IMAGE[0].store(dev, Relaxed);
    IMAGE[1].store(ino, Relaxed);
}

fn active() -> bool {
    IMAGE[1].load(Relaxed) != 0
}

/// A mapping of the image: memory of the program, not a file it mapped.
pub fn from_image(l: &MapLine) -> bool {
    let ino = IMAGE[1].load(Relaxed);
    ino != 0 && l.ino == ino && libc::makedev(l.dev_major, l.dev_minor) == IMAGE[0].load(Relaxed)
}

/// The pages `[addr, addr+len)` covers; `None` for an address the call itself refuses
/// (not page-aligned).
fn page_range(addr: usize, len: usize) -> Option<(u64, u64)> {
    let a = addr as u64;
    a.is_multiple_of(PAGE).then(|| (a, a.saturating_add(len as u64).saturating_add(PAGE - 1) & !(PAGE - 1)))
}

/// Before `MADV_DONTNEED` or `MADV_FREE` on `[addr, addr+len)`: the image's pages in it
/// become fresh anonymous memory, which reads as zeros as discarded pages do. Once no
/// mapping of the image is left, this costs nothing any more.
pub fn discard(addr: usize, len: usize) {
    if !active() {
        return;
    }
    let Some((a, b)) = page_range(addr, len) else { return };
    let mut left = false;
    let mut buf = [0u8; 4096];
    let read = maps::each_line(&mut buf, |l| {
        if !from_image(l) {
            // Past the range, once a mapping of the image is known to stay: done.
            return !(left && l.start >= b);
        }
        let (s, e) = (l.start.max(a), l.end.min(b));
        let fresh = s < e && {
            let flags = libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
            sys::mmap(s as usize, (e - s) as usize, l.prot as i32, flags, -1, 0).is_ok()
        };
        left |= !fresh || s > l.start || e < l.end;
        true
    });
    if read && !left {
        set_image((0, 0));
    }
}

/// `[a, b)` holds the image's memory, and only memory a copy can stand for: private
/// anonymous memory or the image's, one protection, readable, no holes.
fn replaceable(a: u64, b: u64) -> Option<u32> {
    let (mut at, mut prot, mut image, mut ok) = (a, None, false, true);
    let mut buf = [0u8; 4096];
    let read = maps::each_line(&mut buf, |l| {
        if l.end <= a {
            return true;
        }
        if l.start >= b {
            return false;
        }
        let anon = l.path.is_empty() && !l.shared;
        image |= from_image(l);
        ok &= l.start <= at && (anon || from_image(l)) && l.prot & libc::PROT_READ as u32 != 0 && *prot.get_or_insert(l.prot) == l.prot;
        at = l.end;
        ok
    });
    (read && ok && image && at >= b).then_some(prot.unwrap_or(0))
}

/// Before `mremap` grows `[addr, addr+len)` (grown, the image's pages would go on with
/// what follows them in the file), after one failed with `EFAULT` (the range spans
/// several mappings), or before `MADV_WIPEONFORK` (refused on file mappings), if the
/// range holds any of the image's pages: the range becomes
/// one anonymous mapping with the same contents, made in place, so that it has the page
/// offset a fresh mapping there has and merges with later neighbours as one would (an
/// mremap'd mapping keeps the offset of where it was made). Its contents are copied
/// aside and back, pages that read as zeros left untouched; meanwhile the range reads
/// as zeros, which only a thread racing the program's own mremap could see. Returns
/// whether it was done; the caller tries again.
pub fn replace(addr: usize, len: usize) -> bool {
    if !active() {
        return false;
    }
    let Some((a, b)) = page_range(addr, len) else { return false };
    let Some(prot) = replaceable(a, b) else { return false };
    let n = (b - a) as usize;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let anon = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    let Ok(aside) = sys::mmap(0, n, rw, anon, -1, 0) else { return false };
    // SAFETY: `[a, b)` is mapped readable (`replaceable`) and the program does not unmap
    // it while it asks for it to be remapped; `aside` is fresh, read-write, as long.
    unsafe { copy_pages(a as usize, aside, n) };
    let done = if sys::mmap(a as usize, n, rw, anon | libc::MAP_FIXED, -1, 0).is_ok() {
        // SAFETY: both are read-write mappings of `n` bytes made above.
        unsafe { copy_pages(aside, a as usize, n) };
        let _ = sys::munmap(aside, n);
        true
    } else {
        // No room for a new mapping: the copy goes in place as it is.
        // SAFETY: moves a mapping made above over the range the program asked to change.
        unsafe { sys::syscall6(libc::SYS_mremap as usize, aside, n, n, (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as usize, a as usize, 0) == a as isize }
    };
    if done && prot != rw as u32 {
        let _ = sys::mprotect(a as usize, n, prot);
    }
    done
}

/// Copies the pages of `[from, from+n)` that do not read as zeros to `to` (whose pages
/// are zeros).
///
/// # Safety
/// Both ranges must be mapped, `from` readable and `to` writable.
unsafe fn copy_pages(from: usize, to: usize, n: usize) {
    let words = PAGE as usize / 8;
    for off in (0..n).step_by(PAGE as usize) {
        // SAFETY: as the caller promises.
        let (src, dst) = unsafe { (core::slice::from_raw_parts((from + off) as *const u64, words), core::slice::from_raw_parts_mut((to + off) as *mut u64, words)) };
        if src.iter().any(|&w| w != 0) {
            dst.copy_from_slice(src);
        }
    }
}
