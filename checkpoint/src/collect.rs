//! Gathers everything the image records, from `/proc/self` and system calls, into
//! scratch lists. Async-signal-safe: runs inside the checkpoint signal handler.
#![allow(unsafe_code)]

use super::files::Strings;
use super::maps;
use super::scratch::{List, Scratch};
use crate::sys::{self, CPath};
use mig_image::*;

// Re-exported: the kinds name them from here.
pub use super::failure::Failure;
pub use super::snapshot::Snapshot;

const PAGEMAP_CHUNK: usize = 1 << 16;

/// Everything but memory: what a forked copy of the process would not have (thread
/// records, timers) or would not see as it was (descriptors, queued bytes).
/// `threads`: how many thread slots the stop filled (see `threads.rs`).
/// `portable`: save every page of file mappings too (see `HEADER_PORTABLE`).
/// `exiting`: the process ends once the image is safe.
pub fn collect(scratch: &mut Scratch, ctx: &Context, threads: usize, portable: bool, exiting: bool, created_ns: u64) -> Result<Snapshot, Failure> {
    let mut s = Snapshot {
        pid: sys::getpid(),
        created_ns,
        stopped_us: 0,
        process: zeroed(),
        threads: scratch.list(super::threads::MAX_THREADS).ok_or(Failure::Full)?,
        regions: scratch.list(1 << 18).ok_or(Failure::Full)?,
        extents: scratch.list(1 << 22).ok_or(Failure::Full)?,
        fds: scratch.list(1 << 16).ok_or(Failure::Full)?,
        timers: scratch.list(1 << 14).ok_or(Failure::Full)?,
        advice: scratch.list(1 << 16).ok_or(Failure::Full)?,
        queued: scratch.list(256 << 20).ok_or(Failure::Full)?,
        fd_src: scratch.list(1 << 16).ok_or(Failure::Full)?,
        strings: Strings::new(scratch.list(64 << 20).ok_or(Failure::Full)?),
        layout: Layout::new(0, 0, 0, 0, 0, 0),
        portable,
        exiting,
        text: scratch.list(128 << 20).ok_or(Failure::Full)?,
        parent_maps: 0,
        pagemap: scratch.list(PAGEMAP_CHUNK).ok_or(Failure::Full)?,
        scratch_range: (scratch.base as u64, (scratch.base + scratch.len) as u64),
        // The resume point is a call site: nothing below its stack pointer is live.
        stack_cut: ctx.rsp & !(PAGE - 1),
    };
    let mut text = core::mem::replace(&mut s.text, List::empty());
    let mut info: List<u8> = scratch.list(16 << 20).ok_or(Failure::Full)?;
    let r = state(&mut s, &mut text, &mut info, threads);
    s.text = text;
    r.map(|()| s)
}

fn state(s: &mut Snapshot, text: &mut List<u8>, info: &mut List<u8>, threads: usize) -> Result<(), Failure> {
    super::kinds::process::save(s, text)?;
    for t in super::threads::records(threads) {
        s.threads.push(t)?;
    }
    super::seccomp::save(s, text)?;
    // Descriptors before memory: a shared mapping of a file a descriptor saves is not
    // saved twice.
    super::fds::collect(s, text, info)?;
    // smaps is slow to read (it counts every page): only where the program gave advice.
    if crate::intent::ever_advised() {
        slurp(b"/proc/self/smaps", text)?;
        super::kinds::region::advice(text.as_slice(), &mut s.advice)?;
    }
    // Only there with CONFIG_CHECKPOINT_RESTORE: without it, timers are not seen.
    if slurp(b"/proc/self/timers", text).is_ok() {
        super::kinds::ptimer::save(text.as_slice(), &mut s.timers)?;
    }
    Ok(())
}

/// Whether the process has memory shared with a file or another mapping that would be
/// saved (a forked copy of it is no snapshot). Keeps the maps it read for `memory`.
pub fn shares_memory(s: &mut Snapshot) -> Result<bool, Failure> {
    slurp(b"/proc/self/maps", &mut s.text)?;
    s.parent_maps = s.text.len();
    Ok(maps::lines(s.text.as_slice())
        .any(|l| l.shared && (l.path.is_empty() || l.pseudo() || l.deleted() || l.path.starts_with(b"/memfd:") || l.path.starts_with(b"/dev/shm/"))))
}

/// Memory: regions, the pages worth saving (page map), and the image's layout. May
/// run in the forked writer: its page map is the process's at the fork.
pub fn memory(s: &mut Snapshot) -> Result<(), Failure> {
    if s.parent_maps > 0 {
        // In the writer: a fork does not copy `MADV_DONTFORK` memory. Same mappings, or
        // no image (the parent's maps are in `text`, this process's go after them).
        let n = s.parent_maps;
        s.text.truncate(n);
        let spare = s.text.spare();
        let m = CPath::new(b"/proc/self/maps").and_then(|p| sys::read_file(&p, spare).ok()).ok_or(Failure::Other("cannot read /proc/self/maps"))?;
        s.text.grow(m);
        let (parent, child) = s.text.as_slice().split_at(n);
        // The stack may have grown down meanwhile: the handler runs on it, as deep as
        // the program was when the signal came.
        let ranges = |t| maps::lines(t).map(|l| (if l.path == b"[stack]" { 0 } else { l.start }, l.end));
        if !ranges(parent).eq(ranges(child)) {
            return Err(Failure::Other("the process has memory a fork does not copy (MADV_DONTFORK): start it with MIG_FORK=0"));
        }
    }
    memory_regions(s)?;
    s.layout = s.table_layout();
    for r in s.regions.as_mut_slice() {
        if r.data_len > 0 {
            (r.blob, r.data_off) = s.layout.add_blob(r.data_len);
        }
    }
    place_fd_blobs(s)
}

/// The regions and the pages of each worth saving, as the maps and page map say now.
pub fn memory_regions(s: &mut Snapshot) -> Result<(), Failure> {
    s.regions.truncate(0);
    s.extents.truncate(0);
    let mut text = core::mem::replace(&mut s.text, List::empty());
    let mut pagemap = core::mem::replace(&mut s.pagemap, List::empty());
    let (cut, range) = (s.stack_cut, s.scratch_range);
    let r = super::kinds::region::save(s, &mut text, pagemap.spare(), range, cut);
    s.text = text;
    s.pagemap = pagemap;
    r?;
    // Every warning is said by now: the image keeps them (`mig inspect` lists them).
    s.process.warnings = s.strings.add(sys::msg::warnings())?;
    Ok(())
}

/// Blobs for the descriptors' data, after the regions'.
pub fn place_fd_blobs(s: &mut Snapshot) -> Result<(), Failure> {
    for f in s.fds.as_mut_slice() {
        if f.data_len > 0 {
            s.fd_src.push(f.data_off)?;
            (f.blob, f.data_off) = s.layout.add_blob(f.data_len);
        }
    }
    Ok(())
}

/// Reads a `/proc` file into `text` (replacing its contents).
pub(crate) fn slurp(path: &[u8], text: &mut List<u8>) -> Result<(), Failure> {
    text.truncate(0);
    let cpath = CPath::new(path).ok_or(Failure::Other("path too long"))?;
    let n = sys::read_file(&cpath, text.spare()).map_err(|e| Failure::Sys("reading /proc", e))?;
    if n == text.spare().len() {
        return Err(Failure::Full);
    }
    text.grow(n);
    Ok(())
}
