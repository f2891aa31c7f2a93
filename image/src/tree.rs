//! A job's image: the images of its processes in one file.
//!
//! ```text
//! 0           4096 (page aligned)       (page aligned)
//! | TreeHeader | image of member 0 | pad | image of member 1 | ... |
//! ```
//!
//! Each member's image is a whole image of one process (`Image::open` reads it as it
//! is, with its own CRCs), starting on a page boundary so that its pages are read and
//! mapped from the job's file as from its own. Member 0 is the job's root; a parent
//! comes before its children. After the last member, the descriptors of two processes
//! or more that are one open file description (`Share`s, where the header says).

use crate::format::{PAGE, Pod, bytes_of, read_record};
use core::mem::size_of;

pub const TREE_MAGIC: [u8; 8] = *b"MIGTREE\0";
pub const TREE_VERSION: u32 = 1;
pub const MEMBER_RUNNING: u32 = 0;
pub const MEMBER_EXITED: u32 = 1;
/// `TreeHeader::flags`: `output_len` holds the length of the job's output file when
/// the image was taken (what a resume cuts it back to).
pub const TREE_OUTPUT_LEN: u32 = 1;
/// Processes a job's image holds at most (what fits the header's page).
pub const MAX_MEMBERS: usize = (PAGE as usize - 32) / size_of::<Member>();

/// One process of the job, as it was.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Member {
    pub pid: u32,
    pub ppid: u32,
    pub pgid: u32,
    pub sid: u32,
    /// Where its image is in the file (page aligned) and how long it is (both 0 for a
    /// process that had exited).
    pub off: u64,
    pub len: u64,
    /// `MEMBER_RUNNING`, or `MEMBER_EXITED`: it had ended and its parent had not reaped it.
    pub state: u32,
    /// For `MEMBER_EXITED`: the status its parent's `wait` gets.
    pub status: u32,
}
// SAFETY: repr(C), four u32, two u64, two u32: no padding, any bits valid.
unsafe impl Pod for Member {}

/// A descriptor of a process of the job that is one open file description with
/// descriptors of other processes of it (those with the same `group`): a file inherited
/// across `fork`, one offset for all.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Share {
    pub group: u32,
    /// The process (index in the job's table) and its descriptor.
    pub member: u32,
    pub fd: i32,
    pub pad: u32,
}
// SAFETY: repr(C), four 32-bit fields: no padding, any bits valid.
unsafe impl Pod for Share {}

/// The first page of a job's image.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TreeHeader {
    pub magic: [u8; 8],
    pub version: u32,
    pub count: u32,
    /// CRC of this page with this field zero.
    pub crc: u32,
    pub flags: u32,
    pub output_len: u64,
    pub members: [Member; MAX_MEMBERS],
    /// Where the `Share`s are (0: none), how many, and their CRC.
    pub shares_off: u64,
    pub shares_count: u32,
    pub shares_crc: u32,
    pub tail: [u8; PAGE as usize - 48 - MAX_MEMBERS * size_of::<Member>()],
}
// SAFETY: repr(C), byte arrays, u32s and u64s laid out without padding (asserted below).
unsafe impl Pod for TreeHeader {}
const _: () = assert!(size_of::<TreeHeader>() == PAGE as usize);

/// Why a job's image cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeError {
    Short,
    Version(u32),
    Crc,
    /// A member's place is outside the file, not on a page, or overlaps another.
    Member(usize),
    /// The table of shared descriptors is outside the file or damaged.
    Shares,
}

impl core::fmt::Display for TreeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TreeError::Short => write!(f, "the job's image is truncated"),
            TreeError::Version(v) => write!(f, "job image version {v} is not supported (this mig reads {TREE_VERSION})"),
            TreeError::Crc => write!(f, "the job's process table is damaged (CRC mismatch)"),
            TreeError::Member(i) => write!(f, "the job's process table is damaged (process {i} is placed outside the file)"),
            TreeError::Shares => write!(f, "the job's table of shared descriptors is damaged"),
        }
    }
}

/// Whether `bytes` (at least its first 8) begin a job's image.
pub fn is_tree(bytes: &[u8]) -> bool {
    bytes.get(..8) == Some(&TREE_MAGIC[..])
}

impl TreeHeader {
    /// A header for `members` (and the job's output length, if it has an output file,
    /// and `shares`, written at `shares_off`), its CRC computed.
    pub fn new(members: &[Member], output_len: Option<u64>, shares: &[Share], shares_off: u64, hasher: &crc32fast::Hasher) -> Option<TreeHeader> {
        if members.is_empty() || members.len() > MAX_MEMBERS {
            return None;
        }
        let mut h = TreeHeader {
            magic: TREE_MAGIC,
            version: TREE_VERSION,
            count: members.len() as u32,
            crc: 0,
            flags: if output_len.is_some() { TREE_OUTPUT_LEN } else { 0 },
            output_len: output_len.unwrap_or(0),
            members: [Member::default(); MAX_MEMBERS],
            shares_off: if shares.is_empty() { 0 } else { shares_off },
            shares_count: shares.len() as u32,
            shares_crc: {
                let mut c = hasher.clone();
                shares.iter().for_each(|sh| c.update(bytes_of(sh)));
                c.finalize()
            },
            tail: [0; PAGE as usize - 48 - MAX_MEMBERS * size_of::<Member>()],
        };
        h.members.get_mut(..members.len())?.copy_from_slice(members);
        let mut c = hasher.clone();
        c.update(bytes_of(&h));
        h.crc = c.finalize();
        Some(h)
    }

    /// The header of the job's image `file` (all of it: members are checked to lie in
    /// it, on pages, one after another).
    pub fn read(file: &[u8], hasher: &crc32fast::Hasher) -> Result<TreeHeader, TreeError> {
        let h: TreeHeader = read_record(file, 0).ok_or(TreeError::Short)?;
        if h.version != TREE_VERSION {
            return Err(TreeError::Version(h.version));
        }
        let mut zeroed = h;
        zeroed.crc = 0;
        let mut c = hasher.clone();
        c.update(bytes_of(&zeroed));
        if c.finalize() != h.crc || h.count == 0 || h.count as usize > MAX_MEMBERS {
            return Err(TreeError::Crc);
        }
        let mut end = PAGE;
        for (i, m) in h.members().iter().enumerate() {
            if m.exited() {
                if (m.off, m.len) != (0, 0) {
                    return Err(TreeError::Member(i));
                }
                continue;
            }
            let fits = m.off >= end && m.off % PAGE == 0 && m.off.checked_add(m.len).is_some_and(|e| e <= file.len() as u64);
            if !fits {
                return Err(TreeError::Member(i));
            }
            end = m.off + m.len;
        }
        if h.shares_count > 0 {
            let len = h.shares_count as u64 * size_of::<Share>() as u64;
            if h.shares_off < end || h.shares_off.checked_add(len).is_none_or(|e| e > file.len() as u64) {
                return Err(TreeError::Shares);
            }
            let mut c = hasher.clone();
            c.update(&file[h.shares_off as usize..(h.shares_off + len) as usize]);
            if c.finalize() != h.shares_crc {
                return Err(TreeError::Shares);
            }
        }
        Ok(h)
    }

    /// The shared descriptors of the job's image `file` (checked by `read`).
    pub fn shares<'a>(&self, file: &'a [u8]) -> impl Iterator<Item = Share> + 'a {
        let table = file.get(self.shares_off as usize..).unwrap_or_default();
        (0..self.shares_count as usize).filter_map(move |i| read_record(table, i))
    }

    pub fn members(&self) -> &[Member] {
        self.members.get(..self.count as usize).unwrap_or(&[])
    }

    /// The length of the job's output file when the image was taken, if recorded.
    pub fn output_len(&self) -> Option<u64> {
        (self.flags & TREE_OUTPUT_LEN != 0).then_some(self.output_len)
    }
}

impl Member {
    /// It had ended, unreaped: no image, only its status.
    pub fn exited(&self) -> bool {
        self.state == MEMBER_EXITED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let members = [
            Member { pid: 10, ppid: 1, pgid: 10, sid: 10, off: 4096, len: 9000, ..Default::default() },
            Member { pid: 11, ppid: 10, pgid: 10, sid: 10, off: 16384, len: 5000, ..Default::default() },
            Member { pid: 12, ppid: 10, pgid: 10, sid: 10, state: MEMBER_EXITED, status: 5 << 8, ..Default::default() },
        ];
        let hasher = crc32fast::Hasher::new();
        let shares = [Share { group: 0, member: 0, fd: 3, pad: 0 }, Share { group: 0, member: 1, fd: 5, pad: 0 }];
        let h = TreeHeader::new(&members, Some(0), &shares, 16384 + 5000, &hasher).unwrap();
        let mut file = [0u8; 16384 + 5000 + 32];
        file[..4096].copy_from_slice(bytes_of(&h));
        file[16384 + 5000..16384 + 5016].copy_from_slice(bytes_of(&shares[0]));
        file[16384 + 5016..].copy_from_slice(bytes_of(&shares[1]));
        assert!(is_tree(&file));
        let read = TreeHeader::read(&file, &hasher).unwrap();
        assert_eq!((read.members(), read.output_len()), (&members[..], Some(0)));
        assert!(read.shares(&file).eq(shares));
        let mut bad = file;
        bad[16384 + 5000 + 8] ^= 1;
        assert_eq!(TreeHeader::read(&bad, &hasher).err().unwrap(), TreeError::Shares);
        let file = &file[..16384 + 5000];
        assert_eq!(TreeHeader::read(&file[..20000], &hasher).err().unwrap(), TreeError::Member(1));
        let mut file = file.to_vec();
        file[40] ^= 1;
        assert_eq!(TreeHeader::read(&file, &hasher).err().unwrap(), TreeError::Crc);
    }
}
