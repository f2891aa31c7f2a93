//! Checking an image and reading its records. Nothing here allocates, so the rollback
//! path (a signal handler) can verify an image before it commits to it.

use crate::format::*;
use crate::pagecrc::PageCrc;
use core::fmt;
use core::mem::size_of;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    Empty,
    Truncated {
        have: u64,
        need: u64,
    },
    NotAnImage,
    Version(u32),
    Arch(u32),
    HeaderCrc,
    Layout(&'static str),
    TablesCrc,
    TrailerCrc,
    /// A blob's CRC does not match; `index` is the blob number.
    BlobCrc {
        index: u32,
    },
}

impl ImageError {
    /// A fixed description, for code that cannot format.
    pub fn reason(&self) -> &'static str {
        match self {
            ImageError::Empty => "the image is empty",
            ImageError::Truncated { .. } => "the image is truncated",
            ImageError::NotAnImage => "not a mig image (bad magic)",
            ImageError::Version(_) => "unsupported image format version",
            ImageError::Arch(_) => "image is for another architecture",
            ImageError::HeaderCrc => "header is corrupted (CRC mismatch)",
            ImageError::Layout(why) => why,
            ImageError::TablesCrc => "tables are corrupted (CRC mismatch)",
            ImageError::TrailerCrc => "trailer is corrupted (CRC mismatch)",
            ImageError::BlobCrc { .. } => "saved data is corrupted (CRC mismatch)",
        }
    }
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ImageError::Truncated { have, need } => {
                write!(f, "the image is truncated ({have} bytes, expected {need})")
            }
            ImageError::Version(v) => {
                write!(f, "image format version {v} is not supported (this mig reads version {VERSION})")
            }
            ImageError::Arch(a) => write!(f, "image is for ELF machine {a}, this is x86_64"),
            ImageError::BlobCrc { index } => {
                write!(f, "saved data is corrupted (CRC mismatch in blob {index})")
            }
            other => f.write_str(other.reason()),
        }
    }
}

/// A checked image: its header and typed access to its tables.
#[derive(Clone, Copy)]
pub struct Image<'a> {
    pub bytes: &'a [u8],
    pub header: Header,
}

/// Record size of each table, in table order (1 for the strings' bytes).
const REC_SIZES: [usize; TABLES] =
    [size_of::<ProcessRecord>(), size_of::<ThreadRecord>(), size_of::<RegionRecord>(), size_of::<Extent>(), size_of::<FdRecord>(), size_of::<TimerRecord>(), 1];

/// The trailer's length for `blobs` blobs: a CRC per blob, then its own. (The one place
/// that knows what the trailer holds.)
pub fn trailer_len(blobs: u64, blocks: u64) -> Option<u64> {
    blobs.checked_add(blocks)?.checked_add(1)?.checked_mul(4)
}

fn crc(hasher: &crc32fast::Hasher, bytes: &[u8]) -> u32 {
    let mut h = hasher.clone();
    h.update(bytes);
    h.finalize()
}

impl<'a> Image<'a> {
    /// Checks everything but the blobs' contents: header, tables, trailer, and that every
    /// record points inside the file.
    pub fn open(bytes: &'a [u8], hasher: &crc32fast::Hasher) -> Result<Self, ImageError> {
        let have = bytes.len() as u64;
        if have == 0 {
            return Err(ImageError::Empty);
        }
        if bytes.len() < 8 || bytes[..8] != MAGIC {
            return Err(ImageError::NotAnImage);
        }
        if bytes.len() < HEADER_LEN {
            return Err(ImageError::Truncated { have, need: HEADER_LEN as u64 });
        }
        let header: Header = read_record(bytes, 0).ok_or(ImageError::NotAnImage)?;
        if header.version != VERSION {
            return Err(ImageError::Version(header.version));
        }
        if header.arch != ARCH_X86_64 {
            return Err(ImageError::Arch(header.arch));
        }
        if header.page_size as u64 != PAGE {
            return Err(ImageError::Layout("image has another page size"));
        }
        let mut zeroed = header;
        zeroed.header_crc = 0;
        if crc(hasher, bytes_of(&zeroed)) != header.header_crc {
            return Err(ImageError::HeaderCrc);
        }
        if have < header.total_len {
            return Err(ImageError::Truncated { have, need: header.total_len });
        }
        if have > header.total_len {
            return Err(ImageError::Layout("the image has trailing bytes"));
        }
        let img = Image { bytes, header };
        let meta = img.range(header.meta_off, header.meta_len).filter(|_| header.meta_off >= HEADER_LEN as u64);
        let meta = meta.ok_or(ImageError::Layout("tables out of bounds"))?;
        if crc(hasher, meta) != header.meta_crc {
            return Err(ImageError::TablesCrc);
        }
        for (t, size) in header.tables.iter().zip(REC_SIZES) {
            let len = t.count.checked_mul(t.rec_size).ok_or(ImageError::Layout("table too large"))?;
            let inside = t.off >= header.meta_off && t.off.checked_add(len).is_some_and(|e| e <= header.meta_off + header.meta_len);
            if t.rec_size != size as u64 || !inside {
                return Err(ImageError::Layout("a table does not fit the format"));
            }
        }
        if header.tables[Table::Process as usize].count != 1 || header.tables[Table::Threads as usize].count == 0 {
            return Err(ImageError::Layout("the image has no process or thread record"));
        }
        if !header.data_off.is_multiple_of(PAGE) || header.data_off < header.meta_off + header.meta_len {
            return Err(ImageError::Layout("region data is misaligned"));
        }
        let trailer = img.range(header.trailer_off, header.trailer_len).ok_or(ImageError::Layout("trailer out of bounds"))?;
        let fits = trailer_len(header.blobs, header.blocks) == Some(header.trailer_len)
            && header.data_off.checked_add(header.data_len) == Some(header.trailer_off)
            && header.trailer_off.checked_add(header.trailer_len) == Some(header.total_len)
            && trailer.len() >= 4;
        if !fits {
            return Err(ImageError::Layout("trailer does not fit the format"));
        }
        let (list, own) = trailer.split_at(trailer.len() - 4);
        if crc(hasher, list).to_le_bytes() != own {
            return Err(ImageError::TrailerCrc);
        }
        crate::check::records(&img)?;
        img.check_blocks()?;
        Ok(img)
    }

    /// Checks the header, tables and trailer (as [`open`](Self::open)) and then every blob,
    /// block by block and as a whole.
    pub fn verify(bytes: &'a [u8], hasher: &crc32fast::Hasher) -> Result<Self, ImageError> {
        let img = Self::open(bytes, hasher)?;
        let fold = PageCrc::for_len(BLOCK);
        for i in 0..img.header.blobs as u32 {
            img.check_blob_blocks(i, hasher, &fold)?;
        }
        Ok(img)
    }

    pub(crate) fn range(&self, off: u64, len: u64) -> Option<&'a [u8]> {
        let end = off.checked_add(len)?;
        self.bytes.get(usize::try_from(off).ok()?..usize::try_from(end).ok()?)
    }

    /// The bytes of table `t` (none if its descriptor does not fit the file: an image
    /// that `open` refused, shown by `mig inspect` as far as it can be read).
    fn table(&self, t: Table) -> &'a [u8] {
        let d = self.header.tables[t as usize];
        d.count.checked_mul(REC_SIZES[t as usize] as u64).and_then(|len| self.range(d.off, len)).unwrap_or(&[])
    }

    /// The number of records of table `t` (bytes for Strings), at most as many as the
    /// file holds.
    pub fn count(&self, t: Table) -> usize {
        self.table(t).len() / REC_SIZES[t as usize]
    }

    /// The stored CRC of blob `index`.
    pub fn blob_crc(&self, index: u32) -> Option<u32> {
        let t = self.range(self.header.trailer_off, self.header.trailer_len)?;
        read_record::<u32>(t, index as usize)
    }

    /// Which blob is where: (offset, length) of blob `index`, from the records.
    pub fn blob_span(&self, index: u32) -> Option<(u64, u64)> {
        (0..self.count(Table::Regions))
            .map(|i| self.region(i))
            .filter(|r| r.blob == index)
            .map(|r| (r.data_off, r.data_len))
            .chain((0..self.count(Table::Fds)).map(|i| self.fd(i)).filter(|f| f.blob == index).map(|f| (f.data_off, f.data_len)))
            .next()
    }

    pub fn check_blob(&self, index: u32, hasher: &crc32fast::Hasher) -> Result<(), ImageError> {
        let (off, len) = self.blob_span(index).ok_or(ImageError::Layout("a blob belongs to no record"))?;
        let data = self.range(off, len).ok_or(ImageError::Layout("saved data out of bounds"))?;
        if Some(crc(hasher, data)) != self.blob_crc(index) {
            return Err(ImageError::BlobCrc { index });
        }
        Ok(())
    }

    pub fn process(&self) -> ProcessRecord {
        read_record(self.table(Table::Process), 0).unwrap_or_else(zeroed)
    }
    pub fn thread(&self, i: usize) -> ThreadRecord {
        read_record(self.table(Table::Threads), i).unwrap_or_default()
    }
    pub fn region(&self, i: usize) -> RegionRecord {
        read_record(self.table(Table::Regions), i).unwrap_or_else(zeroed)
    }
    pub fn fd(&self, i: usize) -> FdRecord {
        read_record(self.table(Table::Fds), i).unwrap_or_else(zeroed)
    }
    pub fn timer(&self, i: usize) -> TimerRecord {
        read_record(self.table(Table::Timers), i).unwrap_or_default()
    }
    /// The records of type `T` stored as bytes in the strings table (`FdRecord::extra`).
    pub fn records<T: Pod>(&self, s: StrRef) -> impl Iterator<Item = T> + 'a {
        let bytes = self.str(s);
        (0..bytes.len() / size_of::<T>()).filter_map(move |i| read_record(bytes, i))
    }
    pub fn extents(&self, r: &RegionRecord) -> impl Iterator<Item = Extent> + 'a {
        let t = self.table(Table::Extents);
        // Clamped to the table: an unchecked image may claim billions.
        let end = (r.first_extent as usize + r.extents as usize).min(t.len() / size_of::<Extent>());
        (r.first_extent as usize..end).filter_map(move |i| read_record(t, i))
    }
    pub fn str(&self, s: StrRef) -> &'a [u8] {
        let t = self.table(Table::Strings);
        t.get(s.off as usize..s.off as usize + s.len as usize).unwrap_or(&[])
    }
    /// The saved bytes of a blob (page-aligned offset, so it can be mapped).
    pub fn data(&self, off: u64, len: u64) -> &'a [u8] {
        self.range(off, len).unwrap_or(&[])
    }
}

/// Block CRCs (format version 3): one per `BLOCK` bytes of each blob's data, in the
/// trailer after the blob CRCs, blob by blob in blob order.
impl<'a> Image<'a> {
    /// The header's count of block CRCs is what the records' blobs need (part of `open`).
    fn check_blocks(&self) -> Result<(), ImageError> {
        let regions = (0..self.count(Table::Regions)).map(|i| self.region(i)).map(|r| (r.blob, r.data_len));
        let fds = (0..self.count(Table::Fds)).map(|i| self.fd(i)).map(|f| (f.blob, f.data_len));
        let total = regions.chain(fds).filter(|&(blob, _)| blob != u32::MAX).try_fold(0u64, |acc, (_, len)| acc.checked_add(blocks_of(len)));
        if total != Some(self.header.blocks) {
            return Err(ImageError::Layout("block CRCs do not fit the blobs"));
        }
        Ok(())
    }

    /// Index, among all block CRCs, of blob `index`'s first one.
    pub fn first_block(&self, index: u32) -> u64 {
        let regions = (0..self.count(Table::Regions)).map(|i| self.region(i)).map(|r| (r.blob, r.data_len));
        let fds = (0..self.count(Table::Fds)).map(|i| self.fd(i)).map(|f| (f.blob, f.data_len));
        regions.chain(fds).filter(|&(blob, _)| blob < index).map(|(_, len)| blocks_of(len)).sum()
    }

    /// Block CRC number `n` (counting over all blobs, see [`first_block`](Self::first_block)).
    pub fn nth_block_crc(&self, n: u64) -> Option<u32> {
        if n >= self.header.blocks {
            return None;
        }
        let t = self.range(self.header.trailer_off, self.header.trailer_len)?;
        read_record::<u32>(t, usize::try_from(self.header.blobs.checked_add(n)?).ok()?)
    }

    /// Where block `k` of blob `index` is: (file offset, length).
    pub fn block_span(&self, index: u32, k: u64) -> Option<(u64, u64)> {
        let (off, len) = self.blob_span(index)?;
        let start = k.checked_mul(BLOCK).filter(|&s| s < len)?;
        Some((off + start, (len - start).min(BLOCK)))
    }

    /// The stored CRC of block `k` of blob `index`.
    pub fn block_crc(&self, index: u32, k: u64) -> Option<u32> {
        let (_, len) = self.blob_span(index)?;
        if k >= blocks_of(len) {
            return None;
        }
        self.nth_block_crc(self.first_block(index) + k)
    }

    /// Checks block `k` of blob `index` against its CRC (a mismatch is reported as the
    /// blob's).
    pub fn check_block(&self, index: u32, k: u64, hasher: &crc32fast::Hasher) -> Result<(), ImageError> {
        let (off, len) = self.block_span(index, k).ok_or(ImageError::Layout("a block belongs to no blob"))?;
        let data = self.range(off, len).ok_or(ImageError::Layout("saved data out of bounds"))?;
        if Some(crc(hasher, data)) != self.block_crc(index, k) {
            return Err(ImageError::BlobCrc { index });
        }
        Ok(())
    }

    /// Checks blob `index` block by block and as a whole, in one pass over its data
    /// (`fold`: `PageCrc::for_len(BLOCK)`).
    pub fn check_blob_blocks(&self, index: u32, hasher: &crc32fast::Hasher, fold: &PageCrc) -> Result<(), ImageError> {
        let (off, len) = self.blob_span(index).ok_or(ImageError::Layout("a blob belongs to no record"))?;
        let data = self.range(off, len).ok_or(ImageError::Layout("saved data out of bounds"))?;
        let first = self.first_block(index);
        let mut whole = 0u32;
        for (k, block) in data.chunks(BLOCK as usize).enumerate() {
            let c = crc(hasher, block);
            if Some(c) != self.nth_block_crc(first + k as u64) {
                return Err(ImageError::BlobCrc { index });
            }
            whole = if block.len() as u64 == BLOCK {
                fold.append(whole, c)
            } else {
                let mut h = crc32fast::Hasher::new_with_initial_len(whole, k as u64 * BLOCK);
                h.combine(&crc32fast::Hasher::new_with_initial_len(c, block.len() as u64));
                h.finalize()
            };
        }
        if Some(whole) != self.blob_crc(index) {
            return Err(ImageError::BlobCrc { index });
        }
        Ok(())
    }
}
