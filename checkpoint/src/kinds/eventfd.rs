//! eventfd: made again with its count and its semaphore mode.

use crate::fdinfo::{dec_field, hex_field};
use mig_image::{EventfdParams, FdRecord, Params};

/// An eventfd, from its `fdinfo` `text`.
pub fn save(text: &[u8], rec: &mut FdRecord) {
    let count = hex_field(text, b"eventfd-count:").unwrap_or(0);
    let semaphore = dec_field(text, b"eventfd-semaphore:").unwrap_or(0) != 0;
    rec.params = EventfdParams { count, semaphore }.encode();
}

#[cfg(feature = "restore")]
#[allow(unsafe_code)]
pub fn restore(f: &FdRecord) -> std::io::Result<i32> {
    use super::os::*;
    let p = EventfdParams::decode(&f.params);
    let sem = if p.semaphore { libc::EFD_SEMAPHORE } else { 0 };
    // SAFETY: creating a new eventfd.
    let fd = last_error(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | sem | nonblock(f.flags)) })?;
    if p.count > 0 {
        write_all(fd, &p.count.to_ne_bytes())?;
    }
    Ok(fd)
}
