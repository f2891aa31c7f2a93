//! The saved pages of memory a job's processes share (a memory object, a System V
//! segment), each page once: written into the object by whoever makes it, before any
//! process of the job runs on, so that none overwrites what another already changed.

use mig_image::{Image, PAGE, RegionRecord, Table};
use std::collections::HashSet;

/// Calls `put(offset in the object, page)` once for each saved page of the regions
/// `of` picks out, from the first image that saved it (all were taken at one moment).
/// Each blob used is checked first: nothing runs on data that failed its check.
pub fn each(images: &[&Image], of: impl Fn(&RegionRecord) -> bool, mut put: impl FnMut(u64, &[u8]) -> Result<(), String>) -> Result<(), String> {
    let hasher = crc32fast::Hasher::new();
    let mut done = HashSet::new();
    for img in images {
        for r in (0..img.count(Table::Regions)).map(|i| img.region(i)).filter(|r| r.extents > 0 && of(r)) {
            img.check_blob(r.blob, &hasher).map_err(|e| e.to_string())?;
            let mut data = r.data_off;
            for e in img.extents(&r) {
                let bytes = img.data(data, e.pages * PAGE);
                for (p, page) in bytes.chunks_exact(PAGE as usize).enumerate() {
                    let off = r.file_off + (e.first_page + p as u64) * PAGE;
                    if done.insert(off) {
                        put(off, page)?;
                    }
                }
                data += e.pages * PAGE;
            }
        }
    }
    Ok(())
}
