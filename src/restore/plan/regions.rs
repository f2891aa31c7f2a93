//! Memory regions, the restore side (the save side is `mig_checkpoint::kinds::region`),
//! step 3: the saved regions mapped again at their addresses, their pages read in from
//! the image, or, for regions loaded lazily, registered with the loader's userfaultfd.

use super::super::blob::{CHECK_EQ_A0, CHECK_EQ_A2, CHECK_EQ_A4, CHECK_OK};
use super::super::fds::FdPlan;
use super::super::loader;
use super::super::sysv::{self, Saved};
use super::Refusal;
use super::lazy::LazyLoad;
use super::program::Program;
use mig_image::{
    ATTR_MLOCK_FUTURE, ATTR_MLOCK_ONFAULT, Image, PAGE, PROT_EXEC, PROT_WRITE, REGION_DONTDUMP, REGION_DONTFORK, REGION_HUGEPAGE, REGION_LOCKED,
    REGION_LOCKONFAULT, REGION_MERGEABLE, REGION_NOHUGEPAGE, REGION_NORESERVE, REGION_WHOLE, REGION_WIPEONFORK, RegionKind, RegionRecord, slice_bytes,
};
use std::collections::HashMap;

/// Maps every saved region; then tells the loader (if any) it may start handing over.
pub(super) fn map_all(
    prog: &mut Program,
    img: &Image,
    regions: &[RegionRecord],
    lazy: &LazyLoad,
    files: &HashMap<Vec<u8>, i32>,
    fds: &FdPlan,
    image: (i32, u64),
) -> Result<(), Refusal> {
    for ((r, &l), hot) in regions.iter().zip(&lazy.lazy).zip(&lazy.hot_pages) {
        if r.kind == RegionKind::SysvShm as u32 {
            continue;
        }
        let lazy = lazy.channel.as_ref().filter(|_| l).map(|ch| (&hot[..], ch.uffd));
        map_region(prog, img, r, files, fds, image, lazy)?;
    }
    if let Some(ch) = &lazy.channel {
        let byte = prog.arena.bytes(b"r");
        prog.op(libc::SYS_write, &[ch.ready as u64, byte, 1], CHECK_OK | CHECK_EQ_A2, "starting the loader of the lazily restored memory");
    }
    Ok(())
}

fn describe(r: &RegionRecord, img: &Image) -> String {
    let kind = RegionKind::from_u32(r.kind).map_or("?", RegionKind::name);
    let path = String::from_utf8_lossy(img.str(r.file.path));
    format!("mapping {:#x}-{:#x} ({kind} {path})", r.start, r.end)
}

/// Step 3a, before the other regions (which may lie where the program unmapped part of
/// an attach): the System V segments attached again, each marked for removal again
/// once attached if it was (it stays found by its id).
pub(super) fn attach_all(
    prog: &mut Program,
    img: &Image,
    regions: &[RegionRecord],
    segments: &HashMap<u64, Saved>,
    ids: &HashMap<u64, i32>,
) -> Result<(), Refusal> {
    for r in regions.iter().filter(|r| r.kind == RegionKind::SysvShm as u32) {
        attach(prog, img, regions, r, ids)?;
    }
    for s in segments.values().filter(|s| s.dest()) {
        let id = ids.get(&s.id).copied().unwrap_or(-1);
        prog.op(libc::SYS_shmctl, &[id as u64, libc::IPC_RMID as u64, 0], CHECK_OK, "marking a System V segment for removal");
    }
    Ok(())
}

/// A region of a System V segment's attach. The first (at offset 0) attaches the whole
/// segment there, as the program had (writable if any part of the attach was), and
/// takes away what the program had unmapped of it; each part then gets its protection.
/// The contents are the segment's (`sysv::make` put them back).
fn attach(prog: &mut Program, img: &Image, regions: &[RegionRecord], r: &RegionRecord, ids: &HashMap<u64, i32>) -> Result<(), Refusal> {
    let what = describe(r, img);
    let id = *ids.get(&r.file.ino).ok_or_else(|| format!("{what}: its segment was not made again"))?;
    if r.file_off == 0 {
        let size = r.file.size.next_multiple_of(PAGE);
        let parts: Vec<&RegionRecord> = regions.iter().filter(|p| p.kind == r.kind && p.file.ino == r.file.ino && p.start - p.file_off == r.start).collect();
        let prot = parts.iter().fold(0, |a, p| a | p.prot);
        let flags = sysv::attach_flags(&RegionRecord { prot, ..*r });
        prog.op(libc::SYS_shmat, &[id as u64, r.start, flags, 0, r.start], CHECK_OK | CHECK_EQ_A4, &format!("attaching {what}"));
        let mut from = r.start;
        for p in parts.iter().map(|p| (p.start, p.end)).chain([(r.start + size, r.start + size)]) {
            if p.0 > from {
                prog.op(libc::SYS_munmap, &[from, p.0 - from], CHECK_OK, &format!("unmapping what was unmapped of {what}"));
            }
            from = from.max(p.1);
        }
    }
    prog.op(libc::SYS_mprotect, &[r.start, r.end - r.start, r.prot as u64], CHECK_OK, &format!("protecting {what}"));
    Ok(())
}

/// Maps one saved region back: same address, kind and protection, contents read in;
/// or, `lazy`, as anonymous memory registered with the loader's userfaultfd (`uffd`),
/// but for the pages given, read in first.
fn map_region(
    prog: &mut Program,
    img: &Image,
    r: &RegionRecord,
    files: &HashMap<Vec<u8>, i32>,
    fds: &FdPlan,
    (image_fd, base): (i32, u64),
    lazy: Option<(&[(u64, u64)], i32)>,
) -> Result<(), Refusal> {
    let Some(kind) = RegionKind::from_u32(r.kind) else { return Ok(()) };
    if kind.is_kernel() {
        return Ok(());
    }
    let what = describe(r, img);
    let len = r.end - r.start;
    let rw = (libc::PROT_READ | libc::PROT_WRITE) as u64;
    let fixed = libc::MAP_FIXED as u64;
    let file = files.get(img.str(r.file.path)).map(|&fd| fd as u64);
    // A portable image's code comes from the file when it is the same; everything
    // else from the image (read-only data may have been relocated: RELRO).
    let code = r.prot & PROT_EXEC != 0 && r.prot & PROT_WRITE == 0;
    let from_file = kind == RegionKind::FilePrivate && r.flags & REGION_WHOLE != 0 && file.is_some() && code;
    let filled = kind == RegionKind::SharedObject && fds.filled.contains(&(r.file.dev, r.file.ino));
    let has_data = r.data_len > 0 && !from_file && !filled;
    let read_in = has_data && lazy.is_none_or(|(hot, _)| !hot.is_empty());
    let prot = if read_in { rw } else { r.prot as u64 };
    let (flags, fd, off) = match (kind, file) {
        (RegionKind::FilePrivate, Some(fd)) => (fixed | libc::MAP_PRIVATE as u64, fd, r.file_off),
        (RegionKind::FileShared, _) => {
            (fixed | libc::MAP_SHARED as u64, *files.get(img.str(r.file.path)).ok_or_else(|| format!("{what}: its file is not open"))? as u64, r.file_off)
        }
        (RegionKind::SharedAnon, _) => (fixed | (libc::MAP_SHARED | libc::MAP_ANONYMOUS) as u64, u64::MAX, 0),
        (RegionKind::SharedObject, _) => {
            let object = fds.objects.get(&(r.file.dev, r.file.ino)).ok_or_else(|| format!("{what}: its shared object was not made again"))?;
            (fixed | libc::MAP_SHARED as u64, *object as u64, r.file_off)
        }
        (RegionKind::Stack, _) => (fixed | (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_GROWSDOWN) as u64, u64::MAX, 0),
        _ => (fixed | (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64, u64::MAX, 0),
    };
    let flags = if r.flags & REGION_NORESERVE != 0 { flags | libc::MAP_NORESERVE as u64 } else { flags };
    prog.op(libc::SYS_mmap, &[r.start, len, prot, flags, fd, off], CHECK_OK | CHECK_EQ_A0, &what);
    if let (Some((hot, uffd)), true) = (lazy, has_data) {
        // Read in before the range is registered: afterwards a write to a missing page
        // would wait for the loader.
        for &(page, off) in hot {
            prog.op(libc::SYS_pread64, &[image_fd as u64, page, PAGE, base + off], CHECK_OK | CHECK_EQ_A2, &format!("reading the pages of {what}"));
        }
        let reg = prog.arena.bytes(slice_bytes(&[r.start, len, loader::UFFDIO_REGISTER_MODE_MISSING, 0u64]));
        prog.op(libc::SYS_ioctl, &[uffd as u64, loader::UFFDIO_REGISTER, reg], CHECK_OK, &format!("registering {what} with the loader"));
    } else {
        let mut data_off = base + r.data_off;
        for e in img.extents(r).filter(|_| has_data) {
            let mut addr = r.start + e.first_page * PAGE;
            let mut left = e.pages * PAGE;
            while left > 0 {
                let n = left.min(1 << 30);
                prog.op(libc::SYS_pread64, &[image_fd as u64, addr, n, data_off], CHECK_OK | CHECK_EQ_A2, &format!("reading the pages of {what}"));
                addr += n;
                data_off += n;
                left -= n;
            }
        }
    }
    if read_in && r.prot as u64 != rw {
        prog.op(libc::SYS_mprotect, &[r.start, len, r.prot as u64], CHECK_OK, &format!("protecting {what}"));
    }
    // The advice the kernel kept for it. Not checked: a kernel without THP or KSM refuses
    // some, and the blob must not fail past the point of no return for that.
    for (bit, advice) in [
        (REGION_DONTFORK, libc::MADV_DONTFORK),
        (REGION_DONTDUMP, libc::MADV_DONTDUMP),
        (REGION_HUGEPAGE, libc::MADV_HUGEPAGE),
        (REGION_NOHUGEPAGE, libc::MADV_NOHUGEPAGE),
        (REGION_WIPEONFORK, libc::MADV_WIPEONFORK),
        (REGION_MERGEABLE, libc::MADV_MERGEABLE),
    ] {
        if r.flags & bit != 0 {
            prog.op(libc::SYS_madvise, &[r.start, len, advice as u64], 0, &format!("advising {what}"));
        }
    }
    Ok(())
}

/// The locked regions locked again (once the limits are back: `RLIMIT_MEMLOCK`), and
/// `mlockall(MCL_FUTURE)`. Not checked in the blob: what the limit would refuse is
/// said now.
pub(super) fn lock_all(prog: &mut Program, img: &Image, regions: &[RegionRecord]) {
    let locked: Vec<&RegionRecord> = regions.iter().filter(|r| r.flags & REGION_LOCKED != 0).collect();
    let total: u64 = locked.iter().map(|r| r.end - r.start).sum();
    let limit = img.process().rlimits.get(libc::RLIMIT_MEMLOCK as usize).map_or(u64::MAX, |l| l.cur);
    // SAFETY: geteuid has no preconditions.
    if total > limit && unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "mig: warning: {} KiB were locked in memory (mlock), more than RLIMIT_MEMLOCK allows ({} KiB): some may come back unlocked",
            total >> 10,
            limit >> 10
        );
    }
    for r in locked {
        let flags = if r.flags & REGION_LOCKONFAULT != 0 { libc::MLOCK_ONFAULT as u64 } else { 0 };
        prog.op(libc::SYS_mlock2, &[r.start, r.end - r.start, flags], 0, "locking a mapping in memory");
    }
    let a = img.process().attrs;
    if a.flags & ATTR_MLOCK_FUTURE != 0 {
        let onfault = if a.flags & ATTR_MLOCK_ONFAULT != 0 { libc::MCL_ONFAULT } else { 0 };
        prog.op(libc::SYS_mlockall, &[(libc::MCL_FUTURE | onfault) as u64], 0, "mlockall(MCL_FUTURE)");
    }
}
