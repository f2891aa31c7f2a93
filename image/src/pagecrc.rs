//! CRC32 of a run of pages from the CRCs of its pages: a pre-copied image rewrites
//! single pages, so it keeps one CRC per page and folds them into each blob's CRC (and
//! each block's, see `BLOCK`). The writer folds block CRCs into blob CRCs the same way.
//!
//! `crc(A ‖ B) = M·crc(A) ⊕ crc(B)` for a 4096-byte `B` (or one of any fixed length),
//! with `M` a fixed linear map over GF(2) (zlib's `crc32_combine`); `M` is tabulated a
//! byte at a time.

use crate::format::PAGE;

pub struct PageCrc {
    table: [[u32; 256]; 4],
}

impl PageCrc {
    /// Tabulates `M` from `crc32fast`'s own combine (once, outside any signal handler).
    pub fn new() -> Self {
        Self::for_len(PAGE)
    }

    /// The same for appending runs of `len` bytes instead of pages (no allocation: the
    /// checkpoint writer makes one for blocks).
    pub fn for_len(len: u64) -> Self {
        let shift = |v: u32| {
            let mut a = crc32fast::Hasher::new_with_initial(v);
            a.combine(&crc32fast::Hasher::new_with_initial_len(0, len));
            a.finalize()
        };
        let basis: [u32; 32] = core::array::from_fn(|bit| shift(1 << bit));
        let mut table = [[0u32; 256]; 4];
        for (k, t) in table.iter_mut().enumerate() {
            for (b, out) in t.iter_mut().enumerate() {
                *out = (0..8).filter(|i| b >> i & 1 == 1).fold(0, |acc, i| acc ^ basis[8 * k + i]);
            }
        }
        PageCrc { table }
    }

    /// The CRC of `acc`'s bytes followed by one page (or run of the length given to
    /// `for_len`) whose CRC is `page` (`acc` = 0: nothing before it).
    pub fn append(&self, acc: u32, page: u32) -> u32 {
        let t = &self.table;
        let b = acc.to_le_bytes();
        t[0][b[0] as usize] ^ t[1][b[1] as usize] ^ t[2][b[2] as usize] ^ t[3][b[3] as usize] ^ page
    }
}

impl Default for PageCrc {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_page_crcs_gives_the_crc_of_the_pages() {
        let fold = PageCrc::new();
        let mut data = [0u8; 3 * PAGE as usize];
        for (i, b) in data.iter_mut().enumerate() {
            *b = (i * 7 + i / 4096) as u8;
        }
        let crc = |b: &[u8]| {
            let mut h = crc32fast::Hasher::new();
            h.update(b);
            h.finalize()
        };
        let folded = data.chunks(PAGE as usize).fold(0, |acc, p| fold.append(acc, crc(p)));
        assert_eq!(folded, crc(&data));
        assert_eq!(fold.append(0, crc(&data[..4096])), crc(&data[..4096]));
        let pairs = PageCrc::for_len(2 * PAGE);
        assert_eq!(pairs.append(crc(&data[..4096]), crc(&data[4096..])), crc(&data));
    }
}
