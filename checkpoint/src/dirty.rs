//! Which pages the program wrote since the last look: userfaultfd write-protection in
//! asynchronous mode (the kernel resolves each write fault itself and only clears the
//! page's mark) read and re-armed with the page map's `PAGEMAP_SCAN` (Linux 6.7). Works
//! without privileges (`UFFD_USER_MODE_ONLY`) and without soft-dirty bits.
//! Async-signal-safe.
#![allow(unsafe_code)]

use crate::sys::{self, Errno, SysResult};

const UFFD_USER_MODE_ONLY: usize = 1;
const UFFD_API: u64 = 0xaa;
const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
const UFFDIO_API: u64 = 0xc018_aa3f;
const UFFDIO_REGISTER: u64 = 0xc020_aa00;
const UFFDIO_UNREGISTER: u64 = 0x8010_aa01;
const UFFDIO_REGISTER_MODE_WP: u64 = 2;

const PAGEMAP_SCAN: u64 = 0xc060_6610;
const PM_SCAN_WP_MATCHING: u64 = 1;
const PM_SCAN_CHECK_WPASYNC: u64 = 2;
pub const PAGE_IS_WRITTEN: u64 = 1 << 1;
pub const PAGE_IS_PRESENT: u64 = 1 << 3;
pub const PAGE_IS_SWAPPED: u64 = 1 << 4;
/// A guard page (`MADV_GUARD_INSTALL`, Linux 6.13; reported from Linux 6.15): any
/// access to it faults, so it is never read.
pub const PAGE_IS_GUARD: u64 = 1 << 8;

/// One run of pages the scan reported (`struct page_region`).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Run {
    pub start: u64,
    pub end: u64,
    pub categories: u64,
}
// SAFETY: plain integers.
unsafe impl mig_image::Pod for Run {}

#[repr(C)]
struct ScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

/// A userfaultfd that tracks writes (in the process that opened it: it is not in the
/// program's descriptor table).
pub struct Tracker {
    fd: i32,
}

impl Tracker {
    pub fn open() -> SysResult<Self> {
        let flags = libc::O_CLOEXEC as usize | UFFD_USER_MODE_ONLY;
        // SAFETY: userfaultfd takes flags only.
        let fd = unsafe { sys::syscall6(libc::SYS_userfaultfd as usize, flags, 0, 0, 0, 0, 0) };
        if fd < 0 {
            return Err(Errno(-fd as i32));
        }
        let t = Tracker { fd: fd as i32 };
        let mut api = [UFFD_API, UFFD_FEATURE_WP_ASYNC, 0];
        sys::ioctl(t.fd, UFFDIO_API, api.as_mut_ptr() as usize)?;
        Ok(t)
    }

    /// Starts tracking writes to `[start, end)` (whole mappings). Registering again is
    /// harmless; memory another userfaultfd watches gives `EBUSY`.
    pub fn register(&self, start: u64, end: u64) -> SysResult<()> {
        let mut reg = [start, end - start, UFFDIO_REGISTER_MODE_WP, 0];
        sys::ioctl(self.fd, UFFDIO_REGISTER, reg.as_mut_ptr() as usize).map(|_| ())
    }

    /// Stops tracking `[start, end)`, a piece at a time: the kernel clears every page's
    /// mark under the address-space lock, which the program's page faults wait for.
    pub fn unregister(&self, start: u64, end: u64) {
        let mut at = start;
        while at < end {
            let next = end.min(at + (16 << 20));
            let range = [at, next - at];
            let _ = sys::ioctl(self.fd, UFFDIO_UNREGISTER, range.as_ptr() as usize);
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
    /// Pages in memory or swap, in any mapping; never guard pages.
    Resident,
}

/// Calls `each(start, end)` for every run of pages in `[start, end)` that `ask` selects.
/// `pagemap`: an open `/proc/self/pagemap`; `vec`: room for the kernel's answer.
pub fn scan(
    pagemap: i32,
    start: u64,
    end: u64,
    ask: Ask,
    vec: &mut [Run],
    each: impl FnMut(u64, u64) -> Result<(), super::collect::Failure>,
) -> Result<(), super::collect::Failure> {
    scan_counting_guards(pagemap, start, end, ask, vec, each, &mut 0)
}

/// `scan`, adding to `guards` the guard pages it left out (where the kernel says).
pub fn scan_counting_guards(
    pagemap: i32,
    start: u64,
    end: u64,
    ask: Ask,
    vec: &mut [Run],
    mut each: impl FnMut(u64, u64) -> Result<(), super::collect::Failure>,
    guards: &mut u64,
) -> Result<(), super::collect::Failure> {
    let (flags, mask, anyof) = match ask {
        Ask::Written { rearm } => (PM_SCAN_CHECK_WPASYNC | if rearm { PM_SCAN_WP_MATCHING } else { 0 }, PAGE_IS_WRITTEN, 0),
        Ask::Resident => (0, 0, PAGE_IS_PRESENT | PAGE_IS_SWAPPED),
    };
    // Guard pages look swapped out (and written): they come back marked, and are left
    // out, where the kernel knows them.
    let mut guard_bit = PAGE_IS_GUARD;
    let mut at = start;
    // The end of what was reported: Linux 6.18 was seen to say it stopped (`walk_end`)
    // before the last run it returned, with room left, and a scan from there returned
    // those runs again.
    let mut reported = start;
    while at < end {
        let mut arg = ScanArg {
            size: size_of::<ScanArg>() as u64,
            flags,
            start: at,
            end,
            walk_end: 0,
            vec: vec.as_mut_ptr() as u64,
            vec_len: vec.len() as u64,
            max_pages: 0,
            category_inverted: 0,
            category_mask: mask,
            category_anyof_mask: anyof,
            return_mask: mask | anyof | guard_bit,
        };
        let n = match sys::ioctl(pagemap, PAGEMAP_SCAN, &mut arg as *mut ScanArg as usize) {
            // Before Linux 6.15 there is no guard bit (nor a way to see guard pages).
            Err(Errno(libc::EINVAL)) if guard_bit != 0 => {
                guard_bit = 0;
                continue;
            }
            r => r.map_err(|e| super::collect::Failure::Sys("scanning the page map", e))?,
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
        if n < vec.len() || arg.walk_end <= at {
            break;
        }
        at = arg.walk_end;
    }
    Ok(())
}

#[cfg(test)]
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
