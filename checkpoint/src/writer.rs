//! Writes a snapshot as an image, front to back: header, tables, blobs (straight from
//! the process's memory), trailer. Async-signal-safe.
#![allow(unsafe_code)]

use super::failure::Failure;
use super::scratch::List;
use super::snapshot::Snapshot;
use crate::sys;
use mig_image::layout::{self, seal_header};
use mig_image::pagecrc::PageCrc;
use mig_image::*;

static ZEROS: [u8; PAGE as usize] = [0; PAGE as usize];

/// Where bytes go: the image file, or a CRC being computed over what would be written.
trait Sink {
    fn put(&mut self, b: &[u8]) -> Result<(), Failure>;
    fn zeros(&mut self, mut n: u64) -> Result<(), Failure> {
        while n > 0 {
            let k = n.min(PAGE) as usize;
            self.put(ZEROS.get(..k).unwrap_or(&[]))?;
            n -= k as u64;
        }
        Ok(())
    }
}

/// Bytes written at a time. Small on purpose: the page cache takes a write in folios
/// as large as the write, and on ext4 with large folios (Linux 6.16 on) writes of
/// 1 MiB and more ran 3-6× slower here than writes of 128-512 KiB.
pub const CHUNK: usize = 256 << 10;
/// The disk is asked to start on what was written every `FLUSH` bytes, so that it works
/// while the rest is written and the final sync has little left.
pub const FLUSH: u64 = 32 << 20;

struct FileSink {
    fd: i32,
    /// Where the next byte goes.
    at: u64,
    /// Written from here on, not yet handed to the disk.
    flushed: u64,
}
impl Sink for FileSink {
    fn put(&mut self, b: &[u8]) -> Result<(), Failure> {
        for c in b.chunks(CHUNK) {
            sys::write_all(self.fd, c).map_err(|e| Failure::Sys("writing the image", e))?;
            self.at += c.len() as u64;
            if self.at - self.flushed >= FLUSH {
                sys::start_writeback(self.fd, self.flushed, self.at - self.flushed);
                self.flushed = self.at;
            }
        }
        Ok(())
    }
}
impl FileSink {
    fn new(fd: i32, at: u64) -> Self {
        FileSink { fd, at, flushed: at }
    }
    /// Moves to `off` (a stream, written front to back, never has to).
    fn seek(&mut self, off: u64) -> Result<(), Failure> {
        if off != self.at {
            sys::lseek(self.fd, off as i64, libc::SEEK_SET).map_err(|e| Failure::Sys("seeking in the image", e))?;
            self.at = off;
            self.flushed = off;
        }
        Ok(())
    }
}
impl Sink for crc32fast::Hasher {
    fn put(&mut self, b: &[u8]) -> Result<(), Failure> {
        self.update(b);
        Ok(())
    }
}

/// A blob's CRC and its block CRCs (one per `BLOCK` bytes), from its bytes in order:
/// each byte is hashed once, into its block, and the blocks are folded into the blob.
struct BlobCrc<'a> {
    hasher: &'a crc32fast::Hasher,
    fold: &'a PageCrc,
    block: crc32fast::Hasher,
    /// Bytes in `block`.
    filled: u64,
    /// CRC of the whole blocks so far, and their length.
    whole: u32,
    done: u64,
}

impl<'a> BlobCrc<'a> {
    /// `fold`: `PageCrc::for_len(BLOCK)`.
    fn new(hasher: &'a crc32fast::Hasher, fold: &'a PageCrc) -> Self {
        BlobCrc { hasher, fold, block: hasher.clone(), filled: 0, whole: 0, done: 0 }
    }

    /// The next bytes of the blob; every block they complete goes to `blocks`.
    fn update(&mut self, mut b: &[u8], blocks: &mut List<u32>) -> Result<(), Failure> {
        while !b.is_empty() {
            let n = ((BLOCK - self.filled) as usize).min(b.len());
            let (now, rest) = b.split_at(n);
            self.block.update(now);
            self.filled += n as u64;
            b = rest;
            if self.filled == BLOCK {
                let c = core::mem::replace(&mut self.block, self.hasher.clone()).finalize();
                blocks.push(c)?;
                self.whole = self.fold.append(self.whole, c);
                self.done += BLOCK;
                self.filled = 0;
            }
        }
        Ok(())
    }

    /// The blob's CRC; its last, shorter block goes to `blocks`.
    fn finish(self, blocks: &mut List<u32>) -> Result<u32, Failure> {
        if self.filled == 0 {
            return Ok(self.whole);
        }
        let c = self.block.finalize();
        blocks.push(c)?;
        let mut whole = crc32fast::Hasher::new_with_initial_len(self.whole, self.done);
        whole.combine(&crc32fast::Hasher::new_with_initial_len(c, self.filled));
        Ok(whole.finalize())
    }
}

/// The tables, with the zero padding that aligns each one; exactly `meta_len` bytes.
fn tables(s: &Snapshot, out: &mut impl Sink) -> Result<(), Failure> {
    let t = &s.layout.tables;
    let parts: [&[u8]; TABLES] = [
        bytes_of(&s.process),
        slice_bytes(s.threads.as_slice()),
        slice_bytes(s.regions.as_slice()),
        slice_bytes(s.extents.as_slice()),
        slice_bytes(s.fds.as_slice()),
        slice_bytes(s.timers.as_slice()),
        s.strings.bytes.as_slice(),
    ];
    let mut at = s.layout.meta_off;
    for (desc, part) in t.iter().zip(parts) {
        out.zeros(desc.off - at)?;
        out.put(part)?;
        at = desc.off + part.len() as u64;
    }
    out.zeros(s.layout.meta_off + s.layout.meta_len - at)
}

/// The header for `s`, sealed.
fn header(s: &Snapshot, hasher: &crc32fast::Hasher) -> Result<Header, Failure> {
    let mut meta_crc = hasher.clone();
    tables(s, &mut meta_crc)?;
    let mut header = s.layout.header(s.pid, s.created_ns);
    header.stopped_us = s.stopped_us;
    if s.portable {
        header.flags |= HEADER_PORTABLE;
    }
    if super::control::in_job() {
        header.flags |= mig_image::HEADER_JOB_MEMBER;
    }
    header.meta_crc = meta_crc.finalize();
    seal_header(&mut header, hasher);
    Ok(header)
}

/// Records in the header of the image written to `fd` how long the process was
/// stopped, and seals the header again.
pub fn set_stopped(fd: i32, stopped_us: u64, hasher: &crc32fast::Hasher) -> Result<(), Failure> {
    let mut bytes = [0u8; HEADER_LEN];
    let n = sys::pread(fd, &mut bytes, 0).map_err(|e| Failure::Sys("reading the image header back", e))?;
    let mut h: Header = read_record(bytes.get(..n).unwrap_or(&[]), 0).ok_or(Failure::Other("the image header is short"))?;
    h.stopped_us = stopped_us.max(1);
    seal_header(&mut h, hasher);
    let b = bytes_of(&h);
    sys::pwrite(fd, b, 0).map(drop).map_err(|e| Failure::Sys("writing the image header", e))
}

/// The CRCs an image's trailer holds, collected as its blobs are written.
pub struct Crcs {
    /// One per blob.
    pub blobs: List<u32>,
    /// One per `BLOCK` of each blob's data, blob after blob.
    pub blocks: List<u32>,
}

/// Writes the image to `fd`; returns its length. `crcs` collects the blobs' CRCs and
/// `copy_buf` stages the contents of saved files (region data is never staged).
pub fn write(fd: i32, s: &Snapshot, crcs: &mut Crcs, copy_buf: &mut List<u8>, hasher: &crc32fast::Hasher) -> Result<u64, Failure> {
    let header = header(s, hasher)?;
    let fold = PageCrc::for_len(BLOCK);
    let mut out = FileSink::new(fd, 0);
    out.put(bytes_of(&header))?;
    tables(s, &mut out)?;
    out.zeros(s.layout.data_off - out.at)?;
    for r in s.regions.as_slice().iter().filter(|r| r.data_len > 0) {
        let crc = region_data(r, s, &mut out, copy_buf, BlobCrc::new(hasher, &fold), &mut crcs.blocks)?;
        crcs.blobs.push(crc)?;
    }
    fd_blobs(s, &mut out, crcs, copy_buf, hasher, &fold)?;
    trailer(&mut out, crcs, hasher)?;
    Ok(out.at)
}

/// What of a pre-copied image is written while the process is stopped: every blob but
/// those of regions already in the file (`placed[i]` = `PLACED | first << 33 | crc` for
/// region `i`, its block CRCs at `placed_blocks[first..]`), then the trailer, tables and
/// header. Returns the image's length. `fold`: `PageCrc::for_len(BLOCK)`, made before the
/// process stopped.
#[allow(clippy::too_many_arguments)]
pub fn write_rest(
    fd: i32,
    s: &Snapshot,
    placed: &[u64],
    placed_blocks: &[u32],
    crcs: &mut Crcs,
    copy_buf: &mut List<u8>,
    hasher: &crc32fast::Hasher,
    fold: &PageCrc,
) -> Result<u64, Failure> {
    let mut out = FileSink::new(fd, u64::MAX);
    for (r, &p) in s.regions.as_slice().iter().zip(placed).filter(|(r, _)| r.data_len > 0) {
        if p & PLACED != 0 {
            crcs.blobs.push(p as u32)?;
            let first = (p >> 33) as usize;
            let blocks = placed_blocks.get(first..first + blocks_of(r.data_len) as usize).ok_or(Failure::Other("block CRCs out of bounds"))?;
            crcs.blocks.extend(blocks)?;
        } else {
            out.seek(r.data_off)?;
            let crc = region_data(r, s, &mut out, copy_buf, BlobCrc::new(hasher, fold), &mut crcs.blocks)?;
            crcs.blobs.push(crc)?;
        }
    }
    fd_blobs(s, &mut out, crcs, copy_buf, hasher, fold)?;
    out.seek(s.layout.trailer_off())?;
    trailer(&mut out, crcs, hasher)?;
    let header = header(s, hasher)?;
    out.seek(0)?;
    out.put(bytes_of(&header))?;
    tables(s, &mut out)?;
    Ok(s.layout.total_len())
}

/// Marks a region's entry in `write_rest`'s `placed`.
pub const PLACED: u64 = 1 << 32;

fn fd_blobs(s: &Snapshot, out: &mut FileSink, crcs: &mut Crcs, copy_buf: &mut List<u8>, hasher: &crc32fast::Hasher, fold: &PageCrc) -> Result<(), Failure> {
    let with_data = s.fds.as_slice().iter().filter(|f| f.data_len > 0);
    for (f, &src) in with_data.zip(s.fd_src.as_slice()) {
        out.seek(f.data_off)?;
        let mut crc = BlobCrc::new(hasher, fold);
        if let Some(kind) = FdKind::from_u32(f.kind).filter(|k| k.saves_file()) {
            let runs = kind.split_extra(f).1;
            let runs = s.strings.bytes.as_slice().get(runs.off as usize..(runs.off + runs.len) as usize).unwrap_or_default();
            file_data(f, runs, copy_buf, out, &mut crc, &mut crcs.blocks)?;
        } else {
            let bytes = s.queued.as_slice().get(src as usize..(src + f.data_len) as usize).ok_or(Failure::Other("queued data out of bounds"))?;
            out.put(bytes)?;
            out.zeros(layout::align_up(f.data_len, PAGE) - f.data_len)?;
            crc.update(bytes, &mut crcs.blocks)?;
        }
        crcs.blobs.push(crc.finish(&mut crcs.blocks)?)?;
    }
    Ok(())
}

/// The blob CRCs, the block CRCs, and the CRC of both.
fn trailer(out: &mut FileSink, crcs: &Crcs, hasher: &crc32fast::Hasher) -> Result<(), Failure> {
    let (list, blocks) = (slice_bytes(crcs.blobs.as_slice()), slice_bytes(crcs.blocks.as_slice()));
    let mut own = hasher.clone();
    own.update(list);
    own.update(blocks);
    out.put(list)?;
    out.put(blocks)?;
    out.put(&own.finalize().to_le_bytes())
}

/// A region's saved pages, written from where they are; returns the blob's CRC, its
/// block CRCs go to `blocks`.
fn region_data(r: &RegionRecord, s: &Snapshot, out: &mut FileSink, stage: &mut List<u8>, mut crc: BlobCrc, blocks: &mut List<u32>) -> Result<u32, Failure> {
    let unreadable = r.prot & PROT_READ == 0;
    if unreadable {
        // SAFETY: adds read access only; the process is stopped in this handler.
        unsafe { sys::mprotect(r.start as usize, (r.end - r.start) as usize, r.prot | PROT_READ) }.map_err(|e| Failure::Sys("making a region readable", e))?;
    }
    let extents = s.extents.as_slice();
    let first = r.first_extent as usize;
    let result = (|| {
        for e in extents.get(first..first + r.extents as usize).unwrap_or(&[]) {
            let mut addr = r.start + e.first_page * PAGE;
            let mut len = (e.pages * PAGE) as usize;
            if addr == s.stack_cut {
                // The page our own frames are writing to: saved from a copy.
                stage.truncate(0);
                let page = stage.spare().get_mut(..PAGE as usize).ok_or(Failure::Full)?;
                // SAFETY: `addr` is the first page of a saved extent, mapped and readable.
                page.copy_from_slice(unsafe { core::slice::from_raw_parts(addr as *const u8, PAGE as usize) });
                crc.update(page, blocks)?;
                out.put(page)?;
                addr += PAGE;
                len -= PAGE as usize;
            }
            // SAFETY: the extent lies in a mapped region that /proc/self/maps listed and
            // that is readable now (made so above if need be); the process is stopped in
            // this handler, so nothing unmaps it meanwhile; above `stack_cut` nothing
            // writes to it while it is saved.
            let mem = unsafe { core::slice::from_raw_parts(addr as *const u8, len) };
            // Each piece is read twice while it is still in the cache.
            for piece in mem.chunks(CHUNK) {
                crc.update(piece, blocks)?;
                out.put(piece)?;
            }
        }
        Ok(())
    })();
    if unreadable {
        // SAFETY: gives the region back the protection it had; `mem` is gone.
        let _ = unsafe { sys::mprotect(r.start as usize, (r.end - r.start) as usize, r.prot) };
    }
    result.and_then(|()| crc.finish(blocks))
}

/// The contents of a saved file (deleted, memfd, /dev/shm), read through its descriptor.
/// A saved file's contents: the whole file, or its runs of data (`runs`: `Segment`s as
/// bytes) one after the other.
fn file_data(f: &FdRecord, runs: &[u8], buf: &mut List<u8>, out: &mut FileSink, crc: &mut BlobCrc, blocks: &mut List<u32>) -> Result<(), Failure> {
    // Through the descriptor itself where it can be read: closing another descriptor of
    // the file would drop the POSIX locks the process holds on it (when the process
    // itself writes its image).
    if f.flags & libc::O_ACCMODE as u32 != libc::O_WRONLY as u32 {
        return copy_file(f.fd, f, runs, buf, out, crc, blocks);
    }
    // A write-only descriptor cannot be read: read the file through a fresh descriptor.
    let mut num = sys::msg::Msg::<16>::new();
    num.num(f.fd as u64);
    let path = sys::CPath::join(&[b"/proc/self/fd/", num.as_bytes()]).ok_or(Failure::Full)?;
    let fd = sys::open(&path, libc::O_RDONLY, 0).map_err(|e| Failure::Sys("opening a saved file", e))?;
    let r = copy_file(fd, f, runs, buf, out, crc, blocks);
    sys::close(fd);
    r
}

fn copy_file(fd: i32, f: &FdRecord, runs: &[u8], buf: &mut List<u8>, out: &mut FileSink, crc: &mut BlobCrc, blocks: &mut List<u32>) -> Result<(), Failure> {
    buf.truncate(0);
    let chunk = buf.spare();
    let n = runs.len() / size_of::<Segment>();
    // Without runs, the whole file is one.
    let whole = (n == 0).then_some(Segment { off: 0, len: f.data_len });
    for run in (0..n).filter_map(|i| read_record::<Segment>(runs, i)).chain(whole) {
        let mut off = 0u64;
        while off < run.len {
            let want = ((run.len - off) as usize).min(chunk.len());
            let room = chunk.get_mut(..want).ok_or(Failure::Full)?;
            let n = match sys::pread(fd, room, run.off + off) {
                Ok(0) => return Err(Failure::Other("a saved file shrank while it was saved")),
                Ok(n) => n,
                Err(sys::Errno(libc::EINTR)) => continue,
                Err(e) => return Err(Failure::Sys("reading a saved file", e)),
            };
            let got = chunk.get(..n).unwrap_or(&[]);
            crc.update(got, blocks)?;
            out.put(got)?;
            off += n as u64;
        }
    }
    out.zeros(layout::align_up(f.data_len, PAGE) - f.data_len)
}
