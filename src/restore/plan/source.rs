//! The image file: opened, its owner trusted, mapped, the disk asked for what the
//! restore reads; and the CRCs of everything read in (rather than loaded lazily) checked.
#![allow(unsafe_code)]

use super::Refusal;
use super::lazy::LazyLoad;
use super::machine::stat_fd;
use memmap2::{Advice, Mmap};
use mig_image::{BLOCK, Header, Image, PAGE, RegionRecord, read_record};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// The image, open and mapped.
pub(super) struct Source {
    pub(super) file: File,
    pub(super) stat: libc::stat,
    pub(super) map: Mmap,
}

/// Opens and maps `image` (of it, `part`'s offset and length: one process of a job),
/// refusing one its owner may not restore.
pub(super) fn open(image: &Path, part: Option<(u64, u64)>) -> Result<Source, Refusal> {
    let file = File::open(image).map_err(|e| format!("cannot open it: {e}"))?;
    let stat = stat_fd(file.as_raw_fd()).map_err(|e| format!("cannot stat it: {e}"))?;
    super::super::trust::check_owner(&stat)?;
    // SAFETY: the mapping is read-only and private; images are only ever replaced by
    // rename, never modified in place, so the bytes do not change under us.
    let map = unsafe {
        match part {
            Some((off, len)) => memmap2::MmapOptions::new().offset(off).len(len as usize).map(&file),
            None => Mmap::map(&file),
        }
    }
    .map_err(|e| format!("cannot map it: {e}"))?;
    // A fault in a file mapping reads around it as much as the disk's read-ahead (8 MiB
    // here): from an image out of the cache, that is most of the restart. Only what is
    // needed is read, asked for all at once.
    let _ = map.advise(Advice::Random);
    if let Some(h) = read_record::<Header>(&map, 0) {
        will_need(&map[..], h.meta_off, h.meta_len);
        will_need(&map[..], h.trailer_off, h.trailer_len);
    }
    Ok(Source { file, stat, map })
}

/// Checks the CRCs of what is read in now, asked for all at once: the blobs of regions
/// not loaded lazily, and the blocks of the pages read in anyway (`lazy.hot_pages`).
/// What is loaded lazily the loader checks, a block at a time as it hands it over.
pub(super) fn check_read_in(map: &Mmap, img: &Image, hasher: &crc32fast::Hasher, regions: &[RegionRecord], lazy: &LazyLoad) -> Result<(), Refusal> {
    let hot_blocks: Vec<(u32, u64)> = {
        let mut b: Vec<(u32, u64)> =
            regions.iter().zip(&lazy.hot_pages).flat_map(|(r, pages)| pages.iter().map(|&(_, off)| (r.blob, (off - r.data_off) / BLOCK))).collect();
        b.dedup();
        b
    };
    let read_in = |i: &u32| !regions.iter().zip(&lazy.lazy).any(|(r, &l)| l && r.blob == *i);
    for &(blob, k) in &hot_blocks {
        if let Some((off, len)) = img.block_span(blob, k) {
            will_need(&map[..], off, len);
        }
    }
    for i in (0..img.header.blobs as u32).filter(read_in) {
        if let Some((off, len)) = img.blob_span(i) {
            will_need(&map[..], off, len);
        }
    }
    for &(blob, k) in &hot_blocks {
        img.check_block(blob, k, hasher).map_err(|e| e.to_string())?;
    }
    for i in (0..img.header.blobs as u32).filter(read_in) {
        // Past its first megabytes (all `WILLNEED` starts), a blob is read ahead as
        // it is checked.
        if let Some((off, len)) = img.blob_span(i).filter(|&(_, len)| len > 4 << 20) {
            let start = off & !(PAGE - 1);
            let _ = map.advise_range(Advice::Sequential, start as usize, (off + len - start).min(map.len() as u64 - start) as usize);
        }
        img.check_blob(i, hasher).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Starts reading `len` bytes at `off` of the mapped image `map` into the page cache.
fn will_need(map: &[u8], off: u64, len: u64) {
    let (start, end) = (off & !(PAGE - 1), off.saturating_add(len).min(map.len() as u64));
    if start < end {
        // SAFETY: advice on pages of a live mapping (`map` starts on a page boundary).
        unsafe { libc::madvise(map.as_ptr().add(start as usize) as *mut libc::c_void, (end - start) as usize, libc::MADV_WILLNEED) };
    }
}
