//! Where everything goes in an image, computed from the counts alone, before a byte is
//! written: the writer can then stream the file front to back.

use crate::format::*;
use core::mem::size_of;

pub const fn align_up(v: u64, to: u64) -> u64 {
    v.div_ceil(to) * to
}

#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub tables: [TableDesc; TABLES],
    pub meta_off: u64,
    pub meta_len: u64,
    pub data_off: u64,
    /// Next free page-aligned offset for a blob.
    cursor: u64,
    pub blobs: u64,
    /// Block CRCs of the blobs so far (`blocks_of` each one's length).
    pub blocks: u64,
}

impl Layout {
    /// Places the tables; `strings` is the length in bytes of the strings table.
    pub fn new(threads: u64, regions: u64, extents: u64, fds: u64, timers: u64, strings: u64) -> Self {
        let sizes = [
            (1, size_of::<ProcessRecord>() as u64),
            (threads, size_of::<ThreadRecord>() as u64),
            (regions, size_of::<RegionRecord>() as u64),
            (extents, size_of::<Extent>() as u64),
            (fds, size_of::<FdRecord>() as u64),
            (timers, size_of::<TimerRecord>() as u64),
            (strings, 1),
        ];
        let mut tables = [TableDesc::default(); TABLES];
        let mut off = HEADER_LEN as u64;
        for (t, (count, rec_size)) in tables.iter_mut().zip(sizes) {
            *t = TableDesc { off, count, rec_size };
            off = align_up(off + count * rec_size, 8);
        }
        let meta_off = HEADER_LEN as u64;
        let data_off = align_up(off, PAGE);
        Layout { tables, meta_off, meta_len: off - meta_off, data_off, cursor: data_off, blobs: 0, blocks: 0 }
    }

    /// The same tables, with a data area chosen before they were known: it starts at
    /// `data_off` and its first `placed` bytes hold blobs already written there (a
    /// pre-copied image). `None` if the tables do not fit before it.
    pub fn with_data_area(mut self, data_off: u64, placed: u64) -> Option<Self> {
        if !data_off.is_multiple_of(PAGE) || data_off < self.meta_off + self.meta_len {
            return None;
        }
        self.data_off = data_off;
        self.cursor = data_off + align_up(placed, PAGE);
        Some(self)
    }

    /// Counts a blob of `len` bytes the caller placed in the area given to
    /// [`Self::with_data_area`].
    pub fn add_placed_blob(&mut self, len: u64) -> u32 {
        self.blobs += 1;
        self.blocks += blocks_of(len);
        (self.blobs - 1) as u32
    }

    /// Reserves a page-aligned blob of `len` bytes; returns (blob index, file offset).
    pub fn add_blob(&mut self, len: u64) -> (u32, u64) {
        let at = self.cursor;
        self.cursor += align_up(len, PAGE);
        self.blobs += 1;
        self.blocks += blocks_of(len);
        ((self.blobs - 1) as u32, at)
    }

    pub fn data_len(&self) -> u64 {
        self.cursor - self.data_off
    }
    pub fn trailer_off(&self) -> u64 {
        self.cursor
    }
    pub fn trailer_len(&self) -> u64 {
        4 * (self.blobs + self.blocks + 1)
    }
    pub fn total_len(&self) -> u64 {
        self.trailer_off() + self.trailer_len()
    }

    /// The header for this layout, without CRCs (see [`seal_header`]).
    pub fn header(&self, pid: u32, created_unix_ns: u64) -> Header {
        let mut h: Header = zeroed();
        h.magic = MAGIC;
        h.version = VERSION;
        h.arch = ARCH_X86_64;
        h.page_size = PAGE as u32;
        h.created_unix_ns = created_unix_ns;
        h.pid = pid;
        h.meta_off = self.meta_off;
        h.meta_len = self.meta_len;
        h.data_off = self.data_off;
        h.data_len = self.data_len();
        h.trailer_off = self.trailer_off();
        h.trailer_len = self.trailer_len();
        h.total_len = self.total_len();
        h.blobs = self.blobs;
        h.blocks = self.blocks;
        h.tables = self.tables;
        h
    }
}

/// Fills in `header_crc` once everything else in the header is final.
pub fn seal_header(h: &mut Header, hasher: &crc32fast::Hasher) {
    h.header_crc = 0;
    let mut c = hasher.clone();
    c.update(bytes_of(h));
    h.header_crc = c.finalize();
}
