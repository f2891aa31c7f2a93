//! The final stop of a pre-copy, in the program's checkpoint handler with every thread
//! stopped: writes the pages changed since the copier's last round and everything it
//! does not track, then the tables; the copier then syncs and renames.

use super::copier::open;
use super::pages::{Mode, copy_run};
use super::{DROPPED, PAUSE_MAX, STATE, Session, WRITTEN, session};
use crate::collect::{self, Failure, Snapshot};
use crate::dirty::{self, Ask, Run};
use crate::runtime;
use crate::scratch::{Full, List, Scratch};
use crate::sys::{self, msg::msg};
use crate::writer;
use core::sync::atomic::Ordering::SeqCst;
use mig_image::*;

/// Why the final stop did not write the image.
pub enum Stopped {
    Failed(Failure),
    /// Too much to write with the process stopped: forking is cheaper.
    Fork,
}
impl From<Failure> for Stopped {
    fn from(f: Failure) -> Self {
        Stopped::Failed(f)
    }
}
impl From<Full> for Stopped {
    fn from(_: Full) -> Self {
        Stopped::Failed(Failure::Full)
    }
}

/// The final stop, in the program's handler with every thread stopped: writes the
/// pages changed since the last round and everything untracked, then the tables; the
/// copier syncs and renames once `release`d. Returns the image's length.
pub fn finish(snap: &mut Snapshot) -> Result<u64, Stopped> {
    write_final(session(), snap)
}

/// The session's scratch, where the final stop collects its snapshot.
pub fn scratch() -> &'static mut Scratch {
    &mut session().scratch
}

/// Ends the final stop: the copier syncs, renames and reports the image (`Some`: its
/// length), or removes its file (`None`: the image was written another way, or not).
pub fn release(written: Option<u64>, stopped_us: u64) {
    let s = session();
    s.stopped_us = stopped_us;
    s.written = written.unwrap_or(0);
    STATE.store(if written.is_some() { WRITTEN } else { DROPPED }, SeqCst);
    sys::futex_wake(&STATE);
}

fn write_final(s: &mut Session, snap: &mut Snapshot) -> Result<u64, Stopped> {
    collect::memory_regions(snap)?;
    let pagemap = open(b"/proc/self/pagemap", libc::O_RDONLY)?;
    let r = (|| {
        let fd = s.tmp.reopen()?;
        let r = split_and_write(s, snap, pagemap, fd);
        sys::close(fd);
        r
    })();
    sys::close(pagemap);
    r
}

fn is_tracked(r: &RegionRecord) -> bool {
    matches!(RegionKind::from_u32(r.kind), Some(RegionKind::Anon | RegionKind::Heap))
        && r.prot & PROT_READ != 0
        && r.flags & REGION_DATA_IN_FD == 0
        && r.data_len > 0
}

/// Pass 1: what changed since the last round, and whether writing it now beats a fork.
/// Pass 2: every tracked region becomes one record per contiguous piece of the file,
/// its changed and new pages written; then the rest of the image.
fn split_and_write(s: &mut Session, snap: &mut Snapshot, pagemap: i32, fd: i32) -> Result<u64, Stopped> {
    let mut changed: List<Run> = s.scratch.list(1 << 20).ok_or(Failure::Full)?;
    // Per region: its runs in `changed` (start..end), `categories` 1 if it is tracked.
    let mut changes: List<Run> = s.scratch.list(snap.regions.len()).ok_or(Failure::Full)?;
    let mut pause_bytes = 0u64;
    for r in snap.regions.as_slice() {
        let from = changed.len() as u64;
        let scanned = is_tracked(r)
            && match dirty::scan(pagemap, r.start, r.end, Ask::Written { rearm: false }, s.runs.spare(), |a, b| {
                pause_bytes += b - a;
                changed.push(Run { start: a, end: b, categories: 0 }).map(|_| ()).map_err(Failure::from)
            }) {
                Ok(()) => true,
                Err(Failure::Full) => return Err(Failure::Full.into()),
                // Not tracked (any more): written whole.
                Err(_) => false,
            };
        if !scanned {
            changed.truncate(from as usize);
            pause_bytes += r.data_len;
        }
        changes.push(Run { start: from, end: changed.len() as u64, categories: scanned as u64 })?;
    }
    if sys::msg::debug_enabled() {
        msg().s("checkpoint: the final stop writes ").num(pause_bytes >> 10).s(" KiB").emit();
    }
    if pause_bytes > PAUSE_MAX {
        return Err(Stopped::Fork);
    }

    let mut regions: List<RegionRecord> = s.scratch.list(1 << 18).ok_or(Failure::Full)?;
    let mut extents: List<Extent> = s.scratch.list(1 << 22).ok_or(Failure::Full)?;
    let mut placed: List<u64> = s.scratch.list(1 << 18).ok_or(Failure::Full)?;
    // The block CRCs of the pieces already in the file, which `placed` points into.
    let mut placed_blocks: List<u32> = s.scratch.list(blocks_of(s.slots * PAGE) as usize + (1 << 18)).ok_or(Failure::Full)?;
    let old_extents = snap.extents.as_slice();
    for (i, r) in snap.regions.as_slice().iter().enumerate() {
        let first = r.first_extent as usize;
        let own = old_extents.get(first..first + r.extents as usize).unwrap_or(&[]);
        let c = *changes.as_slice().get(i).ok_or(Failure::Other("a region without its pre-copy changes"))?;
        if c.categories == 0 {
            let mut copy = *r;
            copy.first_extent = extents.len() as u32;
            extents.extend(own)?;
            regions.push(copy)?;
            placed.push(0)?;
            continue;
        }
        let runs = changed.as_slice().get(c.start as usize..c.end as usize).ok_or(Failure::Other("a region's pre-copy changes out of range"))?;
        split_region(s, fd, r, own, runs, &mut regions, &mut extents, &mut placed, &mut placed_blocks)?;
    }
    snap.regions = regions;
    snap.extents = extents;

    let mut layout = snap.table_layout().with_data_area(s.data_off, s.slots * PAGE).ok_or(Stopped::Fork)?;
    for (r, &p) in snap.regions.as_mut_slice().iter_mut().zip(placed.as_slice()) {
        if p & writer::PLACED != 0 {
            r.blob = layout.add_placed_blob(r.data_len);
        } else if r.data_len > 0 {
            (r.blob, r.data_off) = layout.add_blob(r.data_len);
        }
    }
    snap.layout = layout;
    collect::place_fd_blobs(snap)?;
    let hasher = &runtime::get().hasher;
    let blobs = s.scratch.list(snap.layout.blobs as usize).ok_or(Failure::Full)?;
    let mut crcs = writer::Crcs { blobs, blocks: s.scratch.list(snap.layout.blocks as usize).ok_or(Failure::Full)? };
    let mut copy_buf = s.scratch.list(1 << 20).ok_or(Failure::Full)?;
    Ok(writer::write_rest(fd, snap, placed.as_slice(), placed_blocks.as_slice(), &mut crcs, &mut copy_buf, hasher, &s.block_fold)?)
}

/// One tracked region: its saved pages go where they were copied (new ones at the end,
/// changed ones rewritten); a record per run of pages contiguous in the file.
#[allow(clippy::too_many_arguments)]
fn split_region(
    s: &mut Session,
    fd: i32,
    r: &RegionRecord,
    own: &[Extent],
    changed: &[Run],
    regions: &mut List<RegionRecord>,
    extents: &mut List<Extent>,
    placed: &mut List<u64>,
    placed_blocks: &mut List<u32>,
) -> Result<(), Failure> {
    // Pages changed since the last round, and pages never copied, are written now.
    for c in changed {
        copy_run(s, fd, c.start, c.end, Mode::Stopped)?;
    }
    for e in own {
        copy_run(s, fd, r.start + e.first_page * PAGE, r.start + (e.first_page + e.pages) * PAGE, Mode::New)?;
    }
    // Every saved page has a place now: cut the region where the file is not contiguous.
    let mut piece: Option<(RegionRecord, u64, u64)> = None; // record, first slot, next slot
    for e in own {
        let (a, b) = (r.start + e.first_page * PAGE, r.start + (e.first_page + e.pages) * PAGE);
        let mut i = s.places.as_slice().partition_point(|p| p.addr + p.pages * PAGE <= a);
        let mut at = a;
        while at < b {
            let p = *s.places.as_slice().get(i).ok_or(Failure::Other("a saved page has no place"))?;
            let end = b.min(p.addr + p.pages * PAGE);
            let (slot, pages) = (p.slot + (at - p.addr) / PAGE, (end - at) / PAGE);
            match &mut piece {
                Some((rec, _, next)) if *next == slot => {
                    let last = extents.as_mut_slice().last_mut().ok_or(Failure::Full)?;
                    if rec.start + (last.first_page + last.pages) * PAGE == at {
                        last.pages += pages;
                    } else {
                        extents.push(Extent { first_page: (at - rec.start) / PAGE, pages })?;
                        rec.extents += 1;
                    }
                    rec.data_len += pages * PAGE;
                    *next += pages;
                }
                _ => {
                    let start = match piece.take() {
                        Some((mut rec, first, _)) => {
                            rec.end = at;
                            close_piece(s, rec, first, regions, placed, placed_blocks)?;
                            at
                        }
                        None => r.start,
                    };
                    let rec = RegionRecord {
                        start,
                        file_off: r.file_off + (start - r.start),
                        first_extent: extents.len() as u32,
                        extents: 1,
                        data_off: s.data_off + slot * PAGE,
                        data_len: pages * PAGE,
                        blob: u32::MAX,
                        ..*r
                    };
                    extents.push(Extent { first_page: (at - start) / PAGE, pages })?;
                    piece = Some((rec, slot, slot + pages));
                }
            }
            at = end;
            i += 1;
        }
    }
    match piece {
        Some((mut rec, first, _)) => {
            rec.end = r.end;
            close_piece(s, rec, first, regions, placed, placed_blocks)
        }
        None => {
            // Nothing saved any more: the region without data.
            regions.push(RegionRecord { first_extent: extents.len() as u32, extents: 0, data_len: 0, data_off: 0, blob: u32::MAX, ..*r })?;
            placed.push(0).map(|_| ()).map_err(Failure::from)
        }
    }
}

/// Records a piece of a tracked region with the CRCs of its pages folded into its
/// blob's and its blocks' (`BLOCK` is a whole number of pages).
fn close_piece(
    s: &Session,
    rec: RegionRecord,
    first_slot: u64,
    regions: &mut List<RegionRecord>,
    placed: &mut List<u64>,
    placed_blocks: &mut List<u32>,
) -> Result<(), Failure> {
    let pages = (rec.data_len / PAGE) as usize;
    let crcs = s.page_crc.as_slice().get(first_slot as usize..first_slot as usize + pages).ok_or(Failure::Other("page CRCs out of bounds"))?;
    let crc = crcs.iter().fold(0, |acc, &c| s.fold.append(acc, c));
    let first = placed_blocks.len() as u64;
    for block in crcs.chunks((BLOCK / PAGE) as usize) {
        placed_blocks.push(block.iter().fold(0, |acc, &c| s.fold.append(acc, c)))?;
    }
    regions.push(rec)?;
    placed.push(writer::PLACED | first << 33 | crc as u64)?;
    Ok(())
}
