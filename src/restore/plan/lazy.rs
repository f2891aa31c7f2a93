//! Which regions are loaded lazily, by the loader through a userfaultfd, rather than
//! read in by the blob; which of their pages are read in all the same; and the loader,
//! started early so that its forks overlap the rest of the planning.

use super::super::loader::{self, Channel, Spawned};
use super::Refusal;
use crate::sys::{self, msg::msg};
use mig_image::{Image, PAGE, REGION_LOCKED, REGION_WIPEONFORK, RegionKind, RegionRecord, Table, blocks_of};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Regions with at most this much saved data are read in even in lazy mode, up to
/// `SMALL_TOTAL` in all, smallest first: they are a program's data, its libraries' and
/// small arenas, what it touches first, and each first touch would wait for the loader.
const SMALL: u64 = 1 << 20;
const SMALL_TOTAL: u64 = 4 << 20;

/// The lazy part of a restore.
pub(super) struct LazyLoad {
    /// Per region: loaded lazily.
    pub(super) lazy: Vec<bool>,
    /// Per region: the pages read in all the same, (address, offset in the image).
    pub(super) hot_pages: Vec<Vec<(u64, u64)>>,
    /// The loader's userfaultfd and pipe; `None`: everything is read in.
    pub(super) channel: Option<Channel>,
    pub(super) spawned: Option<Spawned>,
}

/// Decides what is loaded lazily (nothing if `eager`, or if no userfaultfd can be had)
/// and starts the loader for it. It waits for the blob's word before it hands anything
/// over. `image_fd` is the restore's descriptor of the image, `base` the lowest
/// descriptor number the restore may take.
pub(super) fn start(image: &Path, image_fd: i32, image_base: u64, img: &Image, regions: &[RegionRecord], eager: bool, base: i32) -> Result<LazyLoad, Refusal> {
    // Big private regions are loaded lazily, where a userfaultfd can be had (see
    // `loader`); everything else is read in.
    let mut lazy = lazy_regions(regions, eager);
    let channel = match lazy.contains(&true).then(|| loader::channel(base)) {
        Some(Ok(ch)) => Some(ch),
        Some(Err(why)) => {
            if sys::msg::debug_enabled() {
                msg().s("restoring ").bytes(image.as_os_str().as_bytes()).s(" eagerly: ").s(&why).emit();
            }
            lazy.fill(false);
            None
        }
        None => None,
    };
    // What each thread touches first is read in even where the region is lazy (each
    // first touch would wait for the loader).
    let hot = hot_ranges(img);
    let hot_pages: Vec<Vec<(u64, u64)>> = regions.iter().zip(&lazy).map(|(r, &l)| if l { hot_pages(img, r, &hot) } else { vec![] }).collect();
    let spawned = match &channel {
        Some(ch) => {
            let plan = loader::Plan {
                image: image.display().to_string(),
                image_fd,
                image_base,
                regions: lazy_plan(img, regions, &lazy),
                present: hot_pages.iter().flatten().map(|&(page, _)| page).collect(),
                debug: sys::msg::debug_enabled(),
            };
            Some(loader::spawn(plan, ch).map_err(|why| format!("cannot start the loader of the lazily restored memory: {why}"))?)
        }
        None => None,
    };
    Ok(LazyLoad { lazy, hot_pages, channel, spawned })
}

/// Which regions to load lazily (anonymous memory the loader fills in) instead of
/// reading them in: private anonymous memory with saved pages, unless `eager`; but not
/// small regions (`SMALL`), not the stack (it must stay one growable mapping), not
/// shared memory (a userfaultfd of this process would not serve the others), not
/// mappings of files (a userfaultfd serves anonymous memory only).
fn lazy_regions(regions: &[RegionRecord], eager: bool) -> Vec<bool> {
    let loadable = |r: &RegionRecord| {
        let private = matches!(RegionKind::from_u32(r.kind), Some(RegionKind::Anon | RegionKind::Heap | RegionKind::Orphan));
        // Locked memory is resident by definition; a child must see wiped memory as
        // zeros, not as what the loader hands it.
        let eager_kind = r.flags & (REGION_LOCKED | REGION_WIPEONFORK) != 0;
        !eager && private && !eager_kind && r.data_len > 0
    };
    let mut small: Vec<(u64, usize)> = regions.iter().enumerate().filter(|(_, r)| loadable(r) && r.data_len <= SMALL).map(|(i, r)| (r.data_len, i)).collect();
    small.sort_unstable();
    let mut read_in = vec![false; regions.len()];
    let mut total = 0;
    for (len, i) in small {
        total += len;
        if total > SMALL_TOTAL {
            break;
        }
        read_in[i] = true;
    }
    regions.iter().zip(read_in).map(|(r, read_in)| loadable(r) && !read_in).collect()
}

/// The lazily loaded regions, as the loader needs them: where their pages go, and where
/// the CRCs of their blocks are.
fn lazy_plan(img: &Image, regions: &[RegionRecord], lazy: &[bool]) -> Vec<loader::Lazy> {
    // Where each blob's block CRCs start, all at once (blob lengths in blob order).
    let mut lens = vec![0u64; img.header.blobs as usize];
    let records = regions.iter().map(|r| (r.blob, r.data_len)).chain((0..img.count(Table::Fds)).map(|i| img.fd(i)).map(|f| (f.blob, f.data_len)));
    for (blob, len) in records {
        if let Some(l) = lens.get_mut(blob as usize) {
            *l = len;
        }
    }
    let mut first = Vec::with_capacity(lens.len());
    let mut at = 0;
    for len in lens {
        first.push(at);
        at += blocks_of(len);
    }
    regions
        .iter()
        .zip(lazy)
        .filter(|(_, l)| **l)
        .map(|(r, _)| {
            let from = first.get(r.blob as usize).copied().unwrap_or(0);
            loader::Lazy {
                start: r.start,
                data_off: r.data_off,
                data_len: r.data_len,
                blob: r.blob,
                extents: img.extents(r).collect(),
                crcs_off: img.header.trailer_off + 4 * (img.header.blobs + from),
            }
        })
        .collect()
}

/// What each thread touches first when it runs again: the pages around its thread
/// pointer (its TLS, `struct pthread`) and above its stack pointer (the handler's frames
/// and the signal frame). Read in even where the region is loaded lazily (their blocks
/// checked first): each first touch there would wait for the loader.
fn hot_ranges(img: &Image) -> Vec<(u64, u64)> {
    let page = |a: u64| a & !(PAGE - 1);
    (0..img.count(Table::Threads))
        .map(|i| img.thread(i))
        .flat_map(|t| {
            [(page(t.fs_base).saturating_sub(2 * PAGE), page(t.fs_base) + 2 * PAGE), (page(t.ctx.rsp).saturating_sub(PAGE), page(t.ctx.rsp) + 8 * PAGE)]
        })
        .collect()
}

/// The saved pages of `r` within `hot` (see `hot_ranges`): (address, offset in the image).
fn hot_pages(img: &Image, r: &RegionRecord, hot: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut pages: Vec<u64> = hot.iter().flat_map(|&(a, b)| (a.max(r.start)..b.min(r.end)).step_by(PAGE as usize)).collect();
    pages.sort_unstable();
    pages.dedup();
    pages.into_iter().filter_map(|page| Some((page, file_offset(img, r, page)?))).collect()
}

/// Where in the image the saved byte at `addr` of `r` is (`None`: not saved).
fn file_offset(img: &Image, r: &RegionRecord, addr: u64) -> Option<u64> {
    let page = (addr - r.start) / PAGE;
    let mut off = r.data_off;
    for e in img.extents(r) {
        if (e.first_page..e.first_page + e.pages).contains(&page) {
            return Some(off + (page - e.first_page) * PAGE + addr % PAGE);
        }
        off += e.pages * PAGE;
    }
    None
}
