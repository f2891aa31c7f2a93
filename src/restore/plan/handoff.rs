//! What the blob leaves the restored process: the hand-off (its settings, where it came
//! from, the hole to unmap, the loader), and the blob's own arguments, written into the
//! hole last.
#![allow(unsafe_code)]

use super::super::blob::{BlobArgs, Op};
use super::Refusal;
use super::hole::Hole;
use super::program::Program;
use crate::checkpoint::handoff::{self, Handoff};
use crate::runtime::{FixedPath, Settings};
use mig_image::{Context, Image};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Room for the hand-off in the hole (the threads' `clone`s point to it).
pub(super) fn reserve(prog: &mut Program) -> u64 {
    prog.arena.alloc(std::mem::size_of::<Handoff>(), 8) as u64
}

/// Where the restore came from and what the restored process needs to know.
pub(super) struct Origin<'a> {
    pub(super) image: &'a Path,
    pub(super) image_stat: &'a libc::stat,
    pub(super) settings: Settings,
    pub(super) started_ns: u64,
}

/// Writes the hand-off at `handoff_at`, the operations and the blob's arguments (which
/// resume the main thread at `ctx`) into the hole; returns the arguments' address.
pub(super) fn write(prog: &mut Program, handoff_at: u64, from: Origin, img: &Image, hole: &Hole, ctx: Context) -> Result<usize, Refusal> {
    let handoff = Handoff {
        magic: handoff::MAGIC,
        settings: from.settings,
        restored_from: FixedPath::new(crate::config::absolute(from.image).as_os_str().as_bytes()).unwrap_or(FixedPath::EMPTY),
        rollback_path: rollback_target(from.image).and_then(|p| FixedPath::new(p.as_os_str().as_bytes())).unwrap_or(FixedPath::EMPTY),
        image_id: (from.image_stat.st_dev, from.image_stat.st_ino),
        image_header: (img.header.pid, img.header.created_unix_ns),
        hole_start: hole.start,
        hole_len: hole.len,
        started_ns: from.started_ns,
        loader: 0,
        loader_start: 0,
    };
    let ops_at = prog.arena.alloc(prog.ops.len() * std::mem::size_of::<Op>(), 8);
    prog.arena.check()?;
    // SAFETY: `handoff_at` was allocated (`reserve`) with room for a `Handoff` in the hole.
    unsafe { (handoff_at as *mut Handoff).write(handoff) };
    // SAFETY: `alloc` returned room for every op in the hole.
    unsafe { std::ptr::copy_nonoverlapping(prog.ops.as_ptr(), ops_at as *mut Op, prog.ops.len()) };
    let args = BlobArgs { ops: ops_at as u64, ctx, handoff: handoff_at };
    // SAFETY: `BlobArgs` is `repr(C)`, all `u64`s; viewed as its bytes.
    let args_bytes = unsafe { std::slice::from_raw_parts((&args as *const BlobArgs).cast::<u8>(), std::mem::size_of::<BlobArgs>()) };
    let args_at = prog.arena.bytes(args_bytes) as usize;
    prog.arena.check()?;
    Ok(args_at)
}

/// The image's own path, for a rollback to it: an image passed as `/proc/self/fd/<n>`
/// (a rollback, `mig restart -`) is named by what that descriptor is; a memory file or
/// a deleted one is no target.
fn rollback_target(image: &Path) -> Option<PathBuf> {
    if !image.starts_with("/proc/self/fd") {
        return Some(crate::config::absolute(image));
    }
    let real = std::fs::read_link(image).ok()?;
    let bytes = real.as_os_str().as_bytes();
    (real.is_absolute() && !bytes.starts_with(b"/memfd:") && !bytes.ends_with(b" (deleted)")).then_some(real)
}
