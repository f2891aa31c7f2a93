//! The forked writer of the last checkpoint. It is no child of the program
//! (`sys::spawn_orphan`: init or a subreaper reaps it), so the program never sees it;
//! the next checkpoint waits for it by pid and start time, and learns from its
//! temporary file whether it finished. Where the program itself adopts orphans (a
//! subreaper, or a namespace's init) the writer is a quiet child of the program
//! instead, reaped by the next checkpoint. A pre-copy's copier is `precopy`'s.
#![allow(unsafe_code)]

use crate::imagefile::TempImage;
use crate::sys::{self, CPath, msg::msg};
use core::cell::UnsafeCell;

/// How the writer is waited for.
#[derive(Clone, Copy)]
enum Kind {
    /// A quiet child of this process (`sys::fork_quiet`): reaped with `reap_quiet`.
    Child,
    /// No child: the process with this pid and start time (`None`: it had ended as it
    /// was recorded).
    Orphan(Option<u64>),
}

struct Writer {
    pid: u32,
    kind: Kind,
    /// Its temporary file and that file's (device, inode): still there once the writer
    /// has ended, and the writer did not finish (it commits or removes it).
    tmp: Option<(CPath, (u64, u64))>,
}

struct Slot(UnsafeCell<Option<Writer>>);
// SAFETY: used only inside the checkpoint handler and the restore hand-off, which run
// with every signal blocked and every other thread parked: one at a time.
unsafe impl Sync for Slot {}
static WRITER: Slot = Slot(UnsafeCell::new(None));

fn slot() -> &'static mut Option<Writer> {
    // SAFETY: see `Slot`.
    unsafe { &mut *WRITER.0.get() }
}

/// After a restore: the writer recorded in the image is none of this process's.
pub fn forget_writer() {
    *slot() = None;
}

/// Records the writer just forked (`child`: by `fork_quiet`, else by `spawn_orphan`),
/// writing into `tmp` if it has a file.
pub fn add_writer(pid: u32, child: bool, tmp: Option<&TempImage>) {
    // Never more than one (a checkpoint reaps the last writer before it makes one).
    writer_reap();
    let kind = if child { Kind::Child } else { Kind::Orphan(sys::start_time(pid)) };
    *slot() = Some(Writer { pid, kind, tmp: tmp.map(|t| (t.path.clone(), t.id)) });
}

/// The previous writer is waited for: images are written one at a time, in order. One
/// that ended before it finished (killed) is said: its image was not made (its
/// temporary file goes with the next sweep).
pub fn writer_reap() {
    let Some(w) = slot().take() else { return };
    let signal = match w.kind {
        Kind::Child => sys::reap_quiet(w.pid),
        Kind::Orphan(Some(start)) => {
            wait_orphan(w.pid, start);
            None
        }
        Kind::Orphan(None) => None,
    };
    let mut m = msg();
    m.s("warning: the writer of the previous checkpoint (pid ").num(w.pid as u64);
    if let Some(sig) = signal {
        m.s(") was killed by signal ").num(sig as u64).s(" before it finished: that image was not made").emit();
    } else if w.tmp.is_some_and(|(path, id)| sys::lstatat(libc::AT_FDCWD, &path).is_ok_and(|st| (st.st_dev, st.st_ino) == id)) {
        m.s(") ended before it finished: that image was not made").emit();
    }
}

/// Waits until process `pid`, started at `start`, has ended (at once if that pid is
/// now another process's, or none).
fn wait_orphan(pid: u32, start: u64) {
    let Ok(pidfd) = sys::pidfd_open(pid) else { return };
    // The pidfd was opened before the start time was read: if it matches, the pidfd is
    // the writer's (a pid is not reused while its process lives).
    while sys::start_time(pid) == Some(start) && !sys::wait_readable(pidfd, 1000) {}
    sys::close(pidfd);
}
