//! The snapshot: what a checkpoint collected, in scratch lists, for the writer.

use super::files::Strings;
use super::scratch::List;
use mig_image::*;

/// Everything one checkpoint saves, filled by `collect` (and the kinds it calls).
pub struct Snapshot {
    /// The process it was taken of (a forked writer writes its parent's pid).
    pub pid: u32,
    /// When the image was asked for (its header's creation time).
    pub created_ns: u64,
    /// How long the process was stopped for it (its header's; 0 while not known).
    pub stopped_us: u64,
    pub process: ProcessRecord,
    pub threads: List<ThreadRecord>,
    pub regions: List<RegionRecord>,
    pub extents: List<Extent>,
    pub fds: List<FdRecord>,
    pub timers: List<TimerRecord>,
    /// The advice bits of mappings, from smaps, where the program gave any.
    pub advice: List<Advice>,
    /// Bytes queued in pipes and sockets, which descriptors' blobs are written from.
    pub queued: List<u8>,
    /// Where each blob-carrying descriptor's data is in `queued`, in table order
    /// (unused for files, which are read again while the image is written).
    pub fd_src: List<u64>,
    pub strings: Strings,
    pub layout: Layout,
    pub portable: bool,
    /// The process ends once the image is safe (`mig checkpoint --exit`).
    pub exiting: bool,
    /// Working buffers of `memory`, which may run in the forked writer.
    pub(crate) text: List<u8>,
    /// Length of the parent's `/proc/self/maps` at the start of `text` (0: none).
    pub(crate) parent_maps: usize,
    pub(crate) pagemap: List<u64>,
    /// The checkpoint's own scratch mapping, left out of the image.
    pub(crate) scratch_range: (u64, u64),
    /// The page holding the resume point's stack pointer: pages below it belong to the
    /// checkpoint's own frames (dead after a restore, so not saved), and this one is
    /// still changing while the image is written, so the writer copies it first.
    pub stack_cut: u64,
}

impl Snapshot {
    /// Where the tables go, for the records collected so far.
    pub fn table_layout(&self) -> Layout {
        Layout::new(
            self.threads.len() as u64,
            self.regions.len() as u64,
            self.extents.len() as u64,
            self.fds.len() as u64,
            self.timers.len() as u64,
            self.strings.bytes.len() as u64,
        )
    }
}

/// A mapping's `REGION_*` advice bits (`kinds::region::advice`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Advice {
    pub start: u64,
    pub bits: u64,
}
// SAFETY: two integers, no padding: any bit pattern is a valid value.
#[allow(unsafe_code)]
unsafe impl Pod for Advice {}
