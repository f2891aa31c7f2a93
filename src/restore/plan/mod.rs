//! Restore, step one (normal code, in the fresh process's constructor): check the image
//! against this executable, these libraries, this kernel and these files, and refuse
//! with a reason *before* anything is replaced. Then build the blob's program in a
//! hole and hand over to it (see `blob.rs` for the algorithm).
//!
//! `prepare` reads in order: the image (`source`), what is loaded lazily (`lazy`), the
//! checks against this machine (`machine`, `vdso`), the files and descriptors made
//! again (`mapped_files`, `fds`), the `hole`; then the blob's program, step by step
//! (`hole`, `vdso`, `regions`, `process`, `descriptors`, `threads`), the `handoff`,
//! and the point of no return (`no_return`).
#![allow(unsafe_code)]

mod descriptors;
mod handoff;
mod hole;
mod layout;
mod lazy;
mod machine;
mod mapped_files;
mod no_return;
mod process;
mod program;
mod regions;
mod source;
mod threads;
mod vdso;

use super::blob::{self, BlobArgs};
use super::fds::{self, raise_fd};
use super::sysv;
use crate::runtime::Settings;
use crate::sys;
use mig_image::{Image, RegionRecord, Table};
use program::Program;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::path::Path;

/// Why the restore is refused, in one line.
type Refusal = String;

/// Restores the process saved in `image`, or exits with `EXIT_REFUSED` and one line
/// that says why not. Never returns.
pub fn restore(image: &Path, settings: Settings) -> ! {
    let started_ns = sys::clock_monotonic_ns();
    match prepare(image, settings, started_ns) {
        Ok(ready) => {
            // SAFETY: `prepare` copied the blob into the hole and laid out its program,
            // with every pointer it follows, inside the hole, which the program keeps.
            unsafe { blob::enter(ready.entry, ready.args as *const BlobArgs, ready.stack_top) }
        }
        Err(why) => {
            // One write: a line cut short by a kill would say nothing.
            let line = format!("mig: cannot restore from {}: {}\n", image.display(), why);
            let _ = sys::write_all(2, line.as_bytes());
            std::process::exit(mig_image::EXIT_REFUSED)
        }
    }
}

/// The blob, ready to run: its copy, its arguments, its stack.
struct Ready {
    entry: usize,
    args: usize,
    stack_top: usize,
}

fn prepare(image: &Path, settings: Settings, started_ns: u64) -> Result<Ready, Refusal> {
    let part = super::job::start(image)?;
    let source = source::open(image, part.as_ref().map(|p| (p.off, p.len)))?;
    let image_base = part.as_ref().map_or(0, |p| p.off);
    let hasher = crc32fast::Hasher::new();
    let img = Image::open(&source.map, &hasher).map_err(|e| e.to_string())?;
    let regions: Vec<RegionRecord> = (0..img.count(Table::Regions)).map(|i| img.region(i)).collect();
    let eager = std::env::var("MIG_RESTORE_EAGER").is_ok_and(|v| v == "1") || !source.file.metadata().is_ok_and(|m| m.is_file());
    let base = descriptors::base(&img);
    let lazy = lazy::start(image, source.file.as_raw_fd(), image_base, &img, &regions, eager, base)?;
    source::check_read_in(&source.map, &img, &hasher, &regions, &lazy)?;

    let p = img.process();
    machine::check_exe(&img, &p)?;
    // The first record is the main thread: it becomes this process's main thread.
    let t = img.thread(0);
    let current = layout::current()?;
    let moves = vdso::moves(&img, &current)?;
    machine::check_machine(&p, &current)?;
    machine::check_cwd(&img, &p)?;
    machine::check_seccomp(&img, &p)?;
    let region_fds = mapped_files::open(&img, base)?;
    let timers = super::timers::create(&img)?;
    let image_fd = raise_fd(source.file.into_raw_fd(), base)?;

    let kernel_len: u64 = moves.iter().map(|m| m.len).sum();
    let items = regions.len() + img.count(Table::Extents) + img.count(Table::Fds) + 256;
    // System V segments: made (with their contents) by the job's root for the job, here
    // for a process alone; removed again if the restore is refused before it runs.
    let segments = sysv::saved(&img);
    let made = if part.is_none() { sysv::make(&[&img])? } else { sysv::Made::default() };
    let ids = part.as_ref().map_or_else(|| made.ids.clone(), |p| p.shared.sysv.clone());
    let hole = hole::make(&current, &regions, &sysv::attach_ranges(&img), kernel_len, items, sysv::hold_len(&segments))?;
    sysv::hold(&segments, &ids, hole.hold)?;
    let mut prog = Program::new(hole.stack_top, hole.hold);
    // Descriptors last among the checks: remaking some changes things outside the
    // process (a /dev/shm file rewritten, a stale UNIX socket path removed).
    let prepared = fds::prepare(&img, base, part.as_ref().map(|p| &p.shared))?;

    hole::unmap_the_rest(&mut prog, &hole, &moves); // 1
    vdso::move_back(&mut prog, &moves, hole.kernel_tmp); // 2
    regions::attach_all(&mut prog, &img, &regions, &segments, &ids)?; // 3a
    regions::map_all(&mut prog, &img, &regions, &lazy, &region_fds, &prepared, (image_fd, image_base))?; // 3
    process::mm_fields(&mut prog, &img, &p); // 4
    threads::main_thread(&mut prog, &t); // 5
    process::signal_actions(&mut prog, &p); // 6
    descriptors::place(&mut prog, &prepared); // 7
    process::attributes(&mut prog, &img, &p, &timers); // 8
    regions::lock_all(&mut prog, &img, &regions);
    let handoff_at = handoff::reserve(&mut prog);
    threads::recreate(&mut prog, &img, handoff_at); // 9
    prog.end();

    let origin = handoff::Origin { image, image_stat: &source.stat, settings, started_ns };
    let args_at = handoff::write(&mut prog, handoff_at, origin, &img, &hole, t.ctx)?;
    process::settings(&img, &p.attrs);
    // Files of the user's change only once nothing can refuse the restore any more.
    no_return::cross(lazy.spawned, handoff_at, || prepared.commit())?;
    made.keep();
    std::mem::forget(source.map);
    Ok(Ready { entry: hole.start as usize, args: args_at, stack_top: hole.stack_top as usize })
}
