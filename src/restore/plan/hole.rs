//! The hole: an address range free both in this fresh process and in the saved layout,
//! holding everything the blob uses while the rest is replaced: its code, a temporary
//! home for `[vvar]`/`[vdso]`, a stack, and the data its operations point to.
#![allow(unsafe_code)]

use super::super::blob::{self, CHECK_OK};
use super::Refusal;
use super::layout::Mapping;
use super::program::Program;
use super::vdso::Move;
use crate::sys;
use mig_image::{PAGE, RegionRecord};

/// The end of user space on x86_64 (4-level page tables).
const TASK_TOP: u64 = 0x7fff_ffff_f000;
/// Free space kept on each side of the hole.
const MARGIN: u64 = 2 << 20;
const STACK_LEN: u64 = 256 << 10;

/// The hole, mapped, with the blob's code in it.
pub(super) struct Hole {
    pub(super) start: u64,
    pub(super) len: u64,
    /// Where `[vvar]`/`[vdso]` stay while they move.
    pub(super) kernel_tmp: u64,
    /// The top of the blob's stack; the data starts there.
    pub(super) stack_top: u64,
    /// Where the data ends and the System V segments are held (`sysv::hold`).
    pub(super) hold: u64,
}

/// Maps the hole, with room for `kernel_len` bytes of kernel regions, the data of
/// about `items` records and `hold_len` bytes of segments held, and copies the blob's
/// code into it; away from `also` (ranges the blob maps besides the regions).
pub(super) fn make(current: &[Mapping], regions: &[RegionRecord], also: &[(u64, u64)], kernel_len: u64, items: usize, hold_len: u64) -> Result<Hole, Refusal> {
    let code = blob::code();
    let code_len = (code.len() as u64).next_multiple_of(PAGE);
    let arena_len = ((4 << 20) + items as u64 * 512).next_multiple_of(PAGE);
    let data_end = code_len + kernel_len + STACK_LEN + arena_len;
    let len = data_end + hold_len;
    let mut taken: Vec<(u64, u64)> =
        current.iter().map(|l| (l.start, l.end)).chain(regions.iter().map(|r| (r.start, r.end))).chain(also.iter().copied()).collect();
    let start = find_hole(&mut taken, len)?;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE;
    // SAFETY: MAP_FIXED_NOREPLACE: a mapping already there makes this fail, not go.
    let got = unsafe { sys::mmap(start as usize, len as usize, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0) }
        .map_err(|e| format!("cannot map the restore area (errno {})", e.0))?;
    if got as u64 != start {
        return Err("the restore area landed elsewhere".into());
    }
    // SAFETY: the hole is a fresh writable mapping of at least `code_len` bytes.
    unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), start as *mut u8, code.len()) };
    // SAFETY: the code pages of the hole just made, which only the blob will use.
    unsafe { sys::mprotect(start as usize, code_len as usize, (libc::PROT_READ | libc::PROT_EXEC) as u32) }
        .map_err(|e| format!("cannot make the restore code executable (errno {})", e.0))?;
    let kernel_tmp = start + code_len;
    Ok(Hole { start, len, kernel_tmp, stack_top: kernel_tmp + kernel_len + STACK_LEN, hold: start + data_end })
}

/// The highest range of `len` bytes free in both layouts, with a margin around it.
fn find_hole(taken: &mut [(u64, u64)], len: u64) -> Result<u64, Refusal> {
    taken.sort_unstable();
    let mut top = TASK_TOP;
    for &(start, end) in taken.iter().rev() {
        if end.saturating_add(MARGIN + len + MARGIN) <= top {
            return Ok(top - MARGIN - len);
        }
        top = top.min(start);
    }
    if top >= (1 << 32) + MARGIN + len {
        return Ok(top - MARGIN - len);
    }
    Err("no free address range to restore from (the saved layout fills the address space)".into())
}

/// Step 1: unmap everything but the hole and the kernel's regions.
pub(super) fn unmap_the_rest(prog: &mut Program, hole: &Hole, moves: &[Move]) {
    let mut keep: Vec<(u64, u64)> = moves.iter().map(|m| (m.now, m.now + m.len)).collect();
    keep.push((hole.start, hole.start + hole.len));
    keep.sort_unstable();
    let mut from = 0u64;
    for &(s, e) in keep.iter().chain([(TASK_TOP, TASK_TOP)].iter()) {
        if s > from {
            prog.op(libc::SYS_munmap, &[from, s - from], CHECK_OK, "unmapping the fresh process");
        }
        from = from.max(e);
    }
}
