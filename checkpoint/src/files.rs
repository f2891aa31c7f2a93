//! Identity of files: what a restore compares to refuse a changed executable or library.

use super::scratch::{Full, List};
use crate::sys::{self, CPath};
use mig_image::{FileId, StrRef};

/// The strings table under construction.
pub struct Strings {
    pub bytes: List<u8>,
    last: (usize, StrRef),
}

impl Strings {
    pub fn new(bytes: List<u8>) -> Self {
        Strings { bytes, last: (0, StrRef::default()) }
    }
    pub fn add(&mut self, s: &[u8]) -> Result<StrRef, Full> {
        // Consecutive regions of one file name it once.
        let (at, prev) = self.last;
        if prev.len as usize == s.len() && self.bytes.as_slice().get(at..at + s.len()) == Some(s) {
            return Ok(prev);
        }
        let off = self.bytes.extend(s)?;
        let r = StrRef { off: off as u32, len: s.len() as u32 };
        self.last = (off, r);
        Ok(r)
    }
}

/// `FileId` from what `stat` said, without build-id.
pub fn from_stat(st: &libc::stat, path: StrRef) -> FileId {
    FileId {
        path,
        size: st.st_size as u64,
        mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec,
        dev: st.st_dev,
        ino: st.st_ino,
        mode: st.st_mode,
        ..FileId::default()
    }
}

/// `FileId` of the file at `path` now (size, mtime, inode, build-id).
pub fn identify(path: &[u8], strings: &mut Strings) -> Result<Option<FileId>, Full> {
    let Some(cpath) = CPath::new(path) else { return Ok(None) };
    let Ok(st) = sys::stat(&cpath) else { return Ok(None) };
    let mut id = from_stat(&st, strings.add(path)?);
    if st.st_mode & libc::S_IFMT == libc::S_IFREG {
        (id.build_id, id.build_id_len) = build_id(&cpath);
    }
    Ok(Some(id))
}

/// The GNU build-id note of an ELF file, if it has one in its first pages.
pub fn build_id(path: &CPath) -> ([u8; 20], u32) {
    let mut id = FileId::default();
    let Ok(fd) = sys::open(path, libc::O_RDONLY, 0) else { return ([0; 20], 0) };
    let mut buf = [0u8; 4096];
    if let Ok(n) = sys::pread(fd, &mut buf, 0)
        && let Some((off, len)) = note_segment(buf.get(..n).unwrap_or(&[]))
    {
        let mut note = [0u8; 1024];
        let want = (len as usize).min(note.len());
        if let Some(room) = note.get_mut(..want)
            && let Ok(m) = sys::pread(fd, room, off)
            && let Some(bid) = find_build_id(note.get(..m).unwrap_or(&[]))
        {
            let n = bid.len().min(id.build_id.len());
            for (d, s) in id.build_id.iter_mut().zip(bid) {
                *d = *s;
            }
            id.build_id_len = n as u32;
        }
    }
    sys::close(fd);
    (id.build_id, id.build_id_len)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// (file offset, size) of the first `PT_NOTE` segment of an ELF64 file.
fn note_segment(elf: &[u8]) -> Option<(u64, u64)> {
    if elf.get(..5)? != b"\x7fELF\x02" {
        return None;
    }
    let phoff = u64_at(elf, 0x20)? as usize;
    let phentsize = u16_at(elf, 0x36)? as usize;
    let phnum = u16_at(elf, 0x38)? as usize;
    (0..phnum).find_map(|i| {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        (u32_at(elf, ph)? == 4).then_some(())?;
        Some((u64_at(elf, ph + 8)?, u64_at(elf, ph + 32)?))
    })
}

/// The descriptor of the `NT_GNU_BUILD_ID` note in a notes segment.
fn find_build_id(mut notes: &[u8]) -> Option<&[u8]> {
    while notes.len() >= 12 {
        let namesz = u32_at(notes, 0)? as usize;
        let descsz = u32_at(notes, 4)? as usize;
        let kind = u32_at(notes, 8)?;
        let name_end = 12 + namesz.next_multiple_of(4);
        let desc_end = name_end.checked_add(descsz.next_multiple_of(4))?;
        if kind == 3 && notes.get(12..12 + namesz)? == b"GNU\0" {
            return notes.get(name_end..name_end + descsz);
        }
        notes = notes.get(desc_end..)?;
    }
    None
}
