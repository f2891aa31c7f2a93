//! Where the copier puts the program's pages in the image file: each run of pages
//! keeps the slot it was first copied to (`Place`), pages never copied go after
//! everything else, and each page's CRC is taken from what the file holds.

use super::{Session, given_up};
use crate::failure::Failure;
use crate::runtime;
use crate::sys::{self, Errno};
use crate::writer;
use mig_image::*;

/// A run of pages of the program and where the image holds them (in pages from
/// `data_off`).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(super) struct Place {
    pub(super) addr: u64,
    pub(super) pages: u64,
    pub(super) slot: u64,
}
// SAFETY: plain integers.
unsafe impl Pod for Place {}

/// How `copy_run` copies.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// While the program runs: a page unmapped meanwhile is skipped.
    Running,
    /// In the final stop: every page is written.
    Stopped,
    /// In the final stop, only pages never copied.
    New,
}

/// Writes the pages of `[a, b)` to their places, placing those never copied after
/// everything else.
pub(super) fn copy_run(s: &mut Session, fd: i32, a: u64, b: u64, how: Mode) -> Result<(), Failure> {
    let mut i = s.places.as_slice().partition_point(|p| p.addr + p.pages * PAGE <= a);
    let mut at = a;
    while at < b {
        let (end, slot) = match s.places.as_slice().get(i) {
            Some(p) if p.addr <= at => {
                i += 1;
                let end = b.min(p.addr + p.pages * PAGE);
                if how == Mode::New {
                    at = end;
                    continue;
                }
                (end, p.slot + (at - p.addr) / PAGE)
            }
            next => {
                let end = next.map_or(b, |p| b.min(p.addr));
                let pages = (end - at) / PAGE;
                let slot = new_place(s, i, at, pages)?;
                if s.places.as_slice().get(i).is_some_and(|p| p.addr == at) {
                    i += 1;
                }
                (end, slot)
            }
        };
        write_pages(s, fd, at, (end - at) / PAGE, slot, how == Mode::Running)?;
        at = end;
    }
    Ok(())
}

/// Gives `pages` pages at `addr` new slots at the end; `i` is where they go in `places`.
fn new_place(s: &mut Session, i: usize, addr: u64, pages: u64) -> Result<u64, Failure> {
    let slot = s.slots;
    s.slots += pages;
    if s.page_crc.len() < s.slots as usize {
        let grow = s.slots as usize - s.page_crc.len();
        for _ in 0..grow {
            s.page_crc.push(0)?;
        }
    }
    let places = s.places.as_mut_slice();
    match i.checked_sub(1).and_then(|j| places.get_mut(j)) {
        Some(p) if p.addr + p.pages * PAGE == addr && p.slot + p.pages == slot => p.pages += pages,
        _ => s.places.insert(i, Place { addr, pages, slot })?,
    }
    Ok(slot)
}

/// Writes `pages` pages from `addr` to slot `slot` on, a piece at a time, and takes
/// each page's CRC from what the file then holds (so a page that changed meanwhile is
/// consistent with its CRC: it was written since, and is copied again later).
fn write_pages(s: &mut Session, fd: i32, addr: u64, pages: u64, slot: u64, running: bool) -> Result<(), Failure> {
    let (off, len) = (s.data_off + slot * PAGE, pages * PAGE);
    let mut done = 0;
    while done < len {
        if running {
            given_up()?;
        }
        let n = (len - done).min(writer::CHUNK as u64);
        write_piece(s, fd, addr + done, n, off + done, running)?;
        crc_piece(s, fd, n, off + done, slot + done / PAGE)?;
        done += n;
    }
    s.copied += len;
    Ok(())
}

/// Writes `len` bytes from `addr` at `off`. The kernel reads the program's memory: a
/// page unmapped meanwhile fails the write (`EFAULT`) instead of faulting here.
fn write_piece(s: &mut Session, fd: i32, addr: u64, len: u64, off: u64, running: bool) -> Result<(), Failure> {
    let mut done = 0;
    while done < len {
        // SAFETY: the program's memory, read by the kernel: a page unmapped meanwhile
        // gives EFAULT; one written meanwhile is caught by the dirty-page tracking.
        match unsafe { sys::pwrite_raw(fd, (addr + done) as *const u8, (len - done) as usize, off + done) } {
            Ok(0) => return Err(Failure::Sys("writing the image", Errno(libc::EIO))),
            Ok(k) => {
                done += k as u64;
                s.unflushed += k as u64;
                if s.unflushed >= writer::FLUSH {
                    // The whole file: the pieces are scattered over it.
                    sys::start_writeback(fd, 0, 0);
                    s.unflushed = 0;
                }
            }
            Err(Errno(libc::EINTR)) => {}
            Err(Errno(libc::EFAULT)) if running => {
                // This page was unmapped meanwhile (it is copied again if it comes back);
                // the pages after it may still be there, and their marks are re-armed
                // already: go on past it. The file holds zeros for it, CRC'd as such.
                done = (done / PAGE + 1) * PAGE;
                let size = sys::fstat(fd).map(|st| st.st_size as u64).unwrap_or(0);
                if size < off + len {
                    sys::ftruncate(fd, off + len).map_err(|e| Failure::Sys("extending the image", e))?;
                }
            }
            Err(e) => return Err(Failure::Sys("writing the image", e)),
        }
    }
    Ok(())
}

/// Reads back the `len` bytes just written at `off` (still in the cache) and records
/// the CRC of each page, from slot `slot` on.
fn crc_piece(s: &mut Session, fd: i32, len: u64, off: u64, slot: u64) -> Result<(), Failure> {
    let buf = s.readback.spare().get_mut(..len as usize).ok_or(Failure::Full)?;
    let mut done = 0;
    while let Some(rest) = buf.get_mut(done..).filter(|r| !r.is_empty()) {
        match sys::pread(fd, rest, off + done as u64) {
            Ok(0) => return Err(Failure::Sys("reading the image back", Errno(libc::EIO))),
            Ok(k) => done += k,
            Err(Errno(libc::EINTR)) => {}
            Err(e) => return Err(Failure::Sys("reading the image back", e)),
        }
    }
    let hasher = &runtime::get().hasher;
    let crcs = s.page_crc.as_mut_slice().get_mut(slot as usize..).ok_or(Failure::Full)?;
    for (page, crc) in buf.chunks(PAGE as usize).zip(crcs) {
        let mut h = hasher.clone();
        h.update(page);
        *crc = h.finalize();
    }
    Ok(())
}
