//! The files the saved regions map, opened again (and checked to be the same files)
//! before anything is replaced.
#![allow(unsafe_code)]

use super::super::fds::{Expect, open_expecting, raise_fd};
use super::Refusal;
use super::machine::same_file;
use mig_image::{Image, PROT_WRITE, REGION_WHOLE, RegionKind, Table};
use std::collections::{HashMap, HashSet};

/// Descriptor to map each file region from, by path (at `base` or above).
pub(super) fn open(img: &Image, base: i32) -> Result<HashMap<Vec<u8>, i32>, Refusal> {
    let mut region_fds: HashMap<Vec<u8>, i32> = HashMap::new();
    let mut checked: HashSet<Vec<u8>> = HashSet::new();
    for i in 0..img.count(Table::Regions) {
        let r = img.region(i);
        let Some(kind) = RegionKind::from_u32(r.kind).filter(|k| k.has_file()) else { continue };
        let path = img.str(r.file.path);
        let writable_shared = kind == RegionKind::FileShared && r.prot & PROT_WRITE != 0;
        // A private mapping needs the very file it was made from: checked once per path.
        let unchecked = kind == RegionKind::FilePrivate && checked.insert(path.to_vec());
        let name = String::from_utf8_lossy(path);
        if let Some(&fd) = region_fds.get(path) {
            if unchecked && r.flags & REGION_WHOLE == 0 {
                same_file(&r.file, fd, path).map_err(|why| format!("{name}: {why}"))?;
            }
            if !writable_shared {
                continue;
            }
            // SAFETY: replacing a descriptor this function opened.
            unsafe { libc::close(fd) };
        }
        let flags = if writable_shared { libc::O_RDWR } else { libc::O_RDONLY };
        let opened =
            open_expecting(path, flags, Expect::Regular).map_err(|e| format!("{name} (mapped at {:#x}) cannot be opened: {e}", r.start)).and_then(|fd| {
                match kind {
                    RegionKind::FilePrivate => same_file(&r.file, fd, path).map(|()| fd).map_err(|why| {
                        // SAFETY: closing the descriptor opened above.
                        unsafe { libc::close(fd) };
                        format!("{name}: {why}")
                    }),
                    _ => Ok(fd),
                }
            });
        match opened {
            Ok(fd) => drop(region_fds.insert(path.to_vec(), raise_fd(fd, base)?)),
            // A portable image has every page: the file is a nicety.
            Err(_) if r.flags & REGION_WHOLE != 0 => {}
            Err(why) => return Err(why),
        }
    }
    Ok(region_fds)
}
