//! Which pages the program wrote since the last look: userfaultfd write-protection in
//! asynchronous mode (the kernel resolves each write fault itself and only clears the
//! page's mark) read and re-armed with the page map's `PAGEMAP_SCAN` (Linux 6.7). Works
//! without privileges (`UFFD_USER_MODE_ONLY`) and without soft-dirty bits.
//! Async-signal-safe.

use super::failure::Failure;
use crate::sys::{self, Errno, ScanQuery, SysResult};

const UFFD_USER_MODE_ONLY: i32 = 1;
const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;

const PM_SCAN_WP_MATCHING: u64 = 1;
const PM_SCAN_CHECK_WPASYNC: u64 = 2;
pub const PAGE_IS_WRITTEN: u64 = 1 << 1;
pub const PAGE_IS_PRESENT: u64 = 1 << 3;
pub const PAGE_IS_SWAPPED: u64 = 1 << 4;
/// A guard page (`MADV_GUARD_INSTALL`, Linux 6.13; reported from Linux 6.15): any
/// access to it faults, so it is never read.
pub const PAGE_IS_GUARD: u64 = 1 << 8;

/// One run of pages the scan reported (`struct page_region`).
pub use sys::PageRegion as Run;

/// A userfaultfd that tracks writes (in the process that opened it: it is not in the
/// program's descriptor table).
pub struct Tracker {
    fd: i32,
}

impl Tracker {
    pub fn open() -> SysResult<Self> {
        let fd = sys::userfaultfd(libc::O_CLOEXEC | UFFD_USER_MODE_ONLY, UFFD_FEATURE_WP_ASYNC)?;
        Ok(Tracker { fd })
    }

    /// Starts tracking writes to `[start, end)` (whole mappings). Registering again is
    /// harmless; memory another userfaultfd watches gives `EBUSY`.
    pub fn register(&self, start: u64, end: u64) -> SysResult<()> {
        sys::uffd_register_wp(self.fd, start, end - start)
    }

    /// Stops tracking `[start, end)`, a piece at a time: the kernel clears every page's
    /// mark under the address-space lock, which the program's page faults wait for.
    pub fn unregister(&self, start: u64, end: u64) {
        let mut at = start;
        while at < end {
            let next = end.min(at + (16 << 20));
            let _ = sys::uffd_unregister(self.fd, at, next - at);
            at = next;
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        sys::close(self.fd);
    }
}

/// What to ask the page map for.
#[derive(Clone, Copy)]
pub enum Ask {
    /// Pages written since the last `Written { rearm: true }` (or ever), in tracked
    /// mappings only: a mapping that is not tracked fails with `EPERM`. Never guard pages.
    Written { rearm: bool },
    /// Pages in memory or swap, in any mapping; never guard pages. Without swap space,
    /// pages in memory only: the write-protect marks a pre-copy sets on pages never
    /// touched look swapped out to the kernel's page map.
    Resident,
}

/// Calls `each(start, end)` for every run of pages in `[start, end)` that `ask` selects.
/// `pagemap`: an open `/proc/self/pagemap`; `vec`: room for the kernel's answer.
pub fn scan(pagemap: i32, start: u64, end: u64, ask: Ask, vec: &mut [Run], each: impl FnMut(u64, u64) -> Result<(), Failure>) -> Result<(), Failure> {
    scan_counting_guards(pagemap, start, end, ask, vec, each, &mut 0)
}

/// `scan`, adding to `guards` the guard pages it left out (where the kernel says).
pub fn scan_counting_guards(
    pagemap: i32,
    start: u64,
    end: u64,
    ask: Ask,
    vec: &mut [Run],
    mut each: impl FnMut(u64, u64) -> Result<(), Failure>,
    guards: &mut u64,
) -> Result<(), Failure> {
    // Guard pages look swapped out (and written): they come back marked, and are left
    // out, where the kernel knows them. Without swap, only pages in memory and guard
    // pages are asked for (see `Ask::Resident`).
    let mut guard_bit = PAGE_IS_GUARD;
    let no_swap = matches!(ask, Ask::Resident) && sys::swap_total() == 0;
    let mut at = start;
    // The end of what was reported: Linux 6.18 was seen to say it stopped (`walk_end`)
    // before the last run it returned, with room left, and a scan from there returned
    // those runs again.
    let mut reported = start;
    while at < end {
        let (flags, mask, anyof) = match ask {
            Ask::Written { rearm } => (PM_SCAN_CHECK_WPASYNC | if rearm { PM_SCAN_WP_MATCHING } else { 0 }, PAGE_IS_WRITTEN, 0),
            Ask::Resident if no_swap => (0, 0, PAGE_IS_PRESENT | guard_bit),
            Ask::Resident => (0, 0, PAGE_IS_PRESENT | PAGE_IS_SWAPPED),
        };
        let q = ScanQuery { flags, category_mask: mask, category_anyof_mask: anyof, return_mask: mask | anyof | guard_bit };
        let (n, walk_end) = match sys::pagemap_scan(pagemap, at, end, &q, vec) {
            // Before Linux 6.15 there is no guard bit (nor a way to see guard pages).
            Err(Errno(libc::EINVAL)) if guard_bit != 0 => {
                guard_bit = 0;
                continue;
            }
            r => r.map_err(|e| Failure::Sys("scanning the page map", e))?,
        };
        for r in vec.get(..n).unwrap_or(&[]) {
            let a = r.start.max(reported);
            if r.categories & PAGE_IS_GUARD != 0 {
                *guards += r.end.saturating_sub(a) / mig_image::PAGE;
                reported = reported.max(r.end);
            } else if a < r.end {
                each(a, r.end)?;
                reported = r.end;
            }
        }
        // With room left, the kernel walked the whole range, whatever `walk_end` says.
        if n < vec.len() || walk_end <= at {
            break;
        }
        at = walk_end;
    }
    Ok(())
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;
    use mig_image::PAGE;

    /// Alternate written pages over many 2 MiB blocks (the pattern that made Linux 6.18
    /// report `walk_end` short of its last run): each resident page exactly once, in
    /// order, with room for every run and with room for a few at a time.
    #[test]
    fn resident_runs_come_once_and_in_order() {
        const PAGES: u64 = 1923;
        let len = (PAGES * PAGE) as usize;
        // SAFETY: a fresh private anonymous mapping, unmapped below.
        let base = unsafe { libc::mmap(core::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) } as u64;
        assert_ne!(base, libc::MAP_FAILED as u64);
        let written: Vec<u64> = (0..321).chain((322..1920).step_by(2)).chain([1920, 1921]).collect();
        for &p in &written {
            // SAFETY: inside the mapping, writable.
            unsafe { *((base + p * PAGE) as *mut u8) = 1 };
        }
        let path = crate::sys::CPath::new(b"/proc/self/pagemap").unwrap();
        let pagemap = crate::sys::open(&path, libc::O_RDONLY, 0).unwrap();
        for room in [1 << 14, 7] {
            let mut vec = vec![Run::default(); room];
            let mut seen = vec![];
            scan(pagemap, base, base + PAGES * PAGE, Ask::Resident, &mut vec, |a, b| {
                seen.extend((a - base) / PAGE..(b - base) / PAGE);
                Ok(())
            })
            .unwrap();
            assert_eq!(seen, written, "room for {room} runs");
        }
        crate::sys::close(pagemap);
        // SAFETY: the mapping made above, no longer used.
        unsafe { libc::munmap(base as *mut libc::c_void, len) };
    }
}
