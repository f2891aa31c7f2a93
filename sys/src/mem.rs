//! Memory: mappings, the program break, userfaultfd write tracking and the page map's
//! `PAGEMAP_SCAN`.

use crate::SysResult;
use libc::c_int;

/// `mmap(addr, len, prot, flags, fd, off)` — create a mapping; returns its address.
///
/// # Safety
/// With `MAP_FIXED`, `[addr, addr + len)` must hold nothing anyone still uses: what was
/// mapped there is replaced. Without it (`MAP_FIXED_NOREPLACE` fails rather than
/// replace), any `addr` is sound.
pub unsafe fn mmap(addr: usize, len: usize, prot: c_int, flags: c_int, fd: c_int, off: u64) -> SysResult {
    sc!(libc::SYS_mmap, addr, len, prot, flags, fd, off)
}
/// `munmap(addr, len)` — remove mappings.
///
/// # Safety
/// Nothing may use `[addr, addr + len)` afterwards: no reference into it may live on.
pub unsafe fn munmap(addr: usize, len: usize) -> SysResult<()> {
    sc!(libc::SYS_munmap, addr, len).map(drop)
}
/// `mprotect(addr, len, prot)` — change a range's protection.
///
/// # Safety
/// Removing access from `[addr, addr + len)` must not break a reference or code that
/// uses it while it is so protected.
pub unsafe fn mprotect(addr: usize, len: usize, prot: u32) -> SysResult<()> {
    sc!(libc::SYS_mprotect, addr, len, prot).map(drop)
}
/// `brk(addr)` — move the program break; returns the break, moved or not (0 if the
/// call failed). `brk(0)` only asks where it is.
///
/// # Safety
/// Where `addr` is below the current break, nothing may use the memory given back.
pub unsafe fn brk(addr: usize) -> usize {
    sc!(libc::SYS_brk, addr).unwrap_or(0)
}
/// `madvise(addr, len, advice)`.
///
/// # Safety
/// As `madvise(2)` for `advice`: advice that discards contents (`MADV_DONTNEED`,
/// `MADV_FREE`, `MADV_REMOVE`…) needs a range whose contents nobody relies on.
pub unsafe fn madvise(addr: usize, len: usize, advice: c_int) -> SysResult<()> {
    sc!(libc::SYS_madvise, addr, len, advice).map(drop)
}
/// `mremap(old, old_len, new_len, flags, new_addr)`; returns the new address.
///
/// # Safety
/// Nothing may use the old range afterwards if the mapping moves or shrinks; with
/// `MREMAP_FIXED`, `[new_addr, new_addr + new_len)` is replaced as by `mmap`.
pub unsafe fn mremap(old: usize, old_len: usize, new_len: usize, flags: c_int, new_addr: usize) -> SysResult {
    sc!(libc::SYS_mremap, old, old_len, new_len, flags, new_addr)
}

const UFFD_API: u64 = 0xaa;
const UFFDIO_API: u64 = 0xc018_aa3f;
const UFFDIO_REGISTER: u64 = 0xc020_aa00;
const UFFDIO_UNREGISTER: u64 = 0x8010_aa01;
const UFFDIO_REGISTER_MODE_WP: u64 = 2;

/// `userfaultfd(flags)` followed by the `UFFDIO_API` handshake asking for `features`.
pub fn userfaultfd(flags: c_int, features: u64) -> SysResult<c_int> {
    let fd = sc!(libc::SYS_userfaultfd, flags)? as c_int;
    let mut api = [UFFD_API, features, 0];
    match sc!(libc::SYS_ioctl, fd, UFFDIO_API, api.as_mut_ptr()) {
        Ok(_) => Ok(fd),
        Err(e) => {
            crate::close(fd);
            Err(e)
        }
    }
}
/// `UFFDIO_REGISTER` of `[start, start + len)` in write-protect mode.
pub fn uffd_register_wp(uffd: c_int, start: u64, len: u64) -> SysResult<()> {
    let mut reg = [start, len, UFFDIO_REGISTER_MODE_WP, 0];
    sc!(libc::SYS_ioctl, uffd, UFFDIO_REGISTER, reg.as_mut_ptr()).map(drop)
}
/// `UFFDIO_UNREGISTER` of `[start, start + len)`.
pub fn uffd_unregister(uffd: c_int, start: u64, len: u64) -> SysResult<()> {
    let range = [start, len];
    sc!(libc::SYS_ioctl, uffd, UFFDIO_UNREGISTER, range.as_ptr()).map(drop)
}

/// One run of pages a page map scan reported (`struct page_region`).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct PageRegion {
    pub start: u64,
    pub end: u64,
    pub categories: u64,
}
// SAFETY: plain integers.
unsafe impl mig_image::Pod for PageRegion {}

/// What a page map scan selects and reports (the masks of `struct pm_scan_arg`).
#[derive(Clone, Copy)]
pub struct ScanQuery {
    pub flags: u64,
    pub category_mask: u64,
    pub category_anyof_mask: u64,
    pub return_mask: u64,
}

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

const PAGEMAP_SCAN: u64 = 0xc060_6610;

/// `ioctl(pagemap, PAGEMAP_SCAN)` over `[start, end)` (Linux 6.7): fills `out` with the
/// runs `q` selects; returns how many, and where the kernel stopped walking.
pub fn pagemap_scan(pagemap: c_int, start: u64, end: u64, q: &ScanQuery, out: &mut [PageRegion]) -> SysResult<(usize, u64)> {
    let mut arg = ScanArg {
        size: size_of::<ScanArg>() as u64,
        flags: q.flags,
        start,
        end,
        walk_end: 0,
        vec: out.as_mut_ptr() as u64,
        vec_len: out.len() as u64,
        max_pages: 0,
        category_inverted: 0,
        category_mask: q.category_mask,
        category_anyof_mask: q.category_anyof_mask,
        return_mask: q.return_mask,
    };
    let n = sc!(libc::SYS_ioctl, pagemap, PAGEMAP_SCAN, &mut arg as *mut ScanArg)?;
    Ok((n, arg.walk_end))
}
/// `mlock2(addr, len, flags)`.
///
/// # Safety
/// `[addr, addr + len)` must be memory the caller may lock (the kernel faults it in).
pub unsafe fn mlock2(addr: usize, len: usize, flags: u32) -> SysResult<()> {
    sc!(libc::SYS_mlock2, addr, len, flags).map(drop)
}
/// `mlockall(flags)`.
pub fn mlockall(flags: c_int) -> SysResult<()> {
    sc!(libc::SYS_mlockall, flags).map(drop)
}
/// `munlockall()`.
pub fn munlockall() -> SysResult<()> {
    sc!(libc::SYS_munlockall).map(drop)
}
/// Copies `out.len()` bytes of this process's memory at `addr` into `out`
/// (`process_vm_readv` on itself): an address that is not mapped readable gives
/// false instead of a fault.
pub fn read_own(addr: u64, out: &mut [u8]) -> bool {
    let local = libc::iovec { iov_base: out.as_mut_ptr().cast(), iov_len: out.len() };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: out.len() };
    let pid = crate::getpid();
    matches!(sc!(libc::SYS_process_vm_readv, pid, &local as *const libc::iovec, 1, &remote as *const libc::iovec, 1, 0), Ok(n) if n == out.len())
}
/// `shmctl(id, IPC_STAT)` — what the kernel keeps of a System V shared memory segment.
pub fn shm_stat(id: u64) -> SysResult<libc::shmid_ds> {
    // SAFETY: all-integer C struct.
    let mut ds: libc::shmid_ds = unsafe { core::mem::zeroed() };
    sc!(libc::SYS_shmctl, id, libc::IPC_STAT, &mut ds as *mut libc::shmid_ds).map(|_| ds)
}
