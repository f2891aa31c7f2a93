//! What the library knows about its process, set up in normal code (the constructor,
//! or the hand-off after a restore) and only read by the signal handlers.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;

/// glibc's rseq signature on x86_64.
pub const RSEQ_SIG: u32 = 0x5305_3053;

/// A path in a fixed buffer.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct FixedPath {
    len: u32,
    bytes: [u8; 4096],
}

impl FixedPath {
    pub const EMPTY: FixedPath = FixedPath { len: 0, bytes: [0; 4096] };
    pub fn new(b: &[u8]) -> Option<Self> {
        let mut p = Self::EMPTY;
        p.bytes.get_mut(..b.len())?.copy_from_slice(b);
        p.len = b.len() as u32;
        Some(p)
    }
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len as usize).unwrap_or(&[])
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Settings taken from `MIG_*` at launch, and again from the restarting process's
/// environment after a restore.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Settings {
    /// Where checkpoints go (absolute).
    pub image: FixedPath,
    pub debug: bool,
    /// `MIG_INTERVAL`: checkpoint every this many milliseconds (0: never by itself).
    pub interval_ms: u64,
    /// `MIG_SIGNAL`: the signal that asks for a checkpoint (default SIGUSR1).
    pub checkpoint_signal: u32,
    /// `MIG_THREAD_SIGNAL`: the signal that stops threads (default: a free real-time one).
    pub thread_signal: Option<u32>,
    /// `MIG_PORTABLE=1`: images carry the program's and libraries' code too.
    pub portable: bool,
    /// `MIG_FORK=0` turns off forked checkpoints (the process stays stopped while its
    /// image is written).
    pub fork: bool,
    /// `MIG_PRECOPY`: write the image while the process runs, stopping it only at the
    /// end for what changed meanwhile.
    pub precopy: Precopy,
    /// `MIG_SAVE_FILES`: a regular file open for writing at most this large has its
    /// contents saved, and put back at restore (0: none; `u64::MAX`: all).
    pub save_files: u64,
    /// The process these settings were made for; a forked child is another.
    pub owner_pid: u32,
    /// The process whose job this one is a member of, writing the same image (a
    /// program it started, with the library and `MIG_IMAGE` inherited); 0: none.
    pub job_root: u32,
    /// `MIG_CHECKPOINT_ON`: signals the job's supervisor (`mig run --checkpoint-on`)
    /// answers, bit `sig - 1`: the checkpoint signal among them asks this process for
    /// nothing (the supervisor saves the whole job).
    pub supervised: u64,
    /// `MIG_PARENT_GUARD=1`: a parent-death SIGKILL is `mig restart`'s, which waits for
    /// this process, not the program's (an image records none).
    pub parent_guard: bool,
}

impl Settings {
    /// Whether the job's supervisor answers signal `sig` (`supervised`).
    pub fn supervised(&self, sig: u32) -> bool {
        (1..=64).contains(&sig) && self.supervised & (1 << (sig - 1)) != 0
    }

    /// The root of the job this process belongs to, if it is not the root itself: its
    /// image is the root's (forked, or started with the root's `MIG_IMAGE`): a request
    /// to it saves the whole job, and it never rolls back by itself.
    pub fn job_root(&self) -> Option<u32> {
        if self.job_root != 0 {
            return Some(self.job_root);
        }
        (crate::sys::getpid() != self.owner_pid).then_some(self.owner_pid)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Precopy {
    /// `MIG_PRECOPY=0`.
    Off,
    /// `MIG_PRECOPY=1`: whatever the size.
    On,
    /// The default: for processes with 64 MiB or more of private memory.
    Auto,
}

pub struct Runtime {
    pub settings: Settings,
    /// The executable, as `/proc/self/exe` named it at launch.
    pub exe: FixedPath,
    /// glibc's `__rseq_offset` and registered length (0: rseq not in use).
    pub rseq_offset: isize,
    pub rseq_len: u32,
    /// Created once here: creating one detects CPU features, cloning one does not.
    pub hasher: crc32fast::Hasher,
    /// glibc's `sa_restorer`, for handlers installed with raw system calls.
    pub restorer: u64,
    /// The checkpoint and stop handlers as installed (`stacks`'s trampolines, which
    /// call `handler` and `threads`): what those two install without depending on the
    /// module that calls them.
    pub checkpoint_entry: u64,
    pub stop_entry: u64,
    /// The `mig` command beside the library (empty: none), which saves a whole job.
    pub mig: FixedPath,
}

/// Whether `handler` (a signal action's) is one of mig's: checkpoint, stop, rollback.
pub fn migs_handler(handler: u64) -> bool {
    let rt = get();
    [rt.checkpoint_entry, rt.stop_entry, crate::stacks::rollback_entry as *const () as u64].contains(&handler)
}

/// `sig`'s action, if it is one of mig's handlers.
pub fn migs_action(sig: i32) -> Option<mig_image::KSigaction> {
    let mut act = mig_image::KSigaction::default();
    (crate::sys::sigaction(sig, None, Some(&mut act)).is_ok() && migs_handler(act.handler)).then_some(act)
}

struct Cell(UnsafeCell<Option<Runtime>>);
// SAFETY: written only by `init` (the constructor, before any handler is installed) and
// `settings_mut` (the restore hand-off, inside a handler with every signal blocked);
// everything else reads.
unsafe impl Sync for Cell {}
static RUNTIME: Cell = Cell(UnsafeCell::new(None));

/// Installs the runtime. Called once, from the constructor, before the handlers exist.
pub fn init(rt: Runtime) {
    // SAFETY: see `Cell`: no handler can run yet, so nothing reads concurrently.
    unsafe { *RUNTIME.0.get() = Some(rt) };
}

/// The runtime; `None` before `init` (for example when the constructor gave up).
pub fn try_get() -> Option<&'static Runtime> {
    // SAFETY: see `Cell`.
    unsafe { (*RUNTIME.0.get()).as_ref() }
}

pub fn get() -> &'static Runtime {
    match try_get() {
        Some(rt) => rt,
        None => crate::sys::exit_group(121),
    }
}

/// Mutable settings, for the handler that owns the process at that moment.
///
/// # Safety
/// Only from a signal handler that runs with every other signal blocked, and with no
/// other thread running library code.
pub unsafe fn settings_mut() -> Option<&'static mut Settings> {
    // SAFETY: the caller guarantees exclusive access.
    unsafe { (*RUNTIME.0.get()).as_mut().map(|r| &mut r.settings) }
}

/// Registers (`on`) or unregisters the calling thread's glibc rseq area. Unregistered,
/// the kernel stops writing the CPU number into it, so the memory holding it stays
/// still while an image of it is written. Async-signal-safe.
pub fn rseq_set(on: bool) -> Result<(), crate::sys::Errno> {
    let rt = get();
    if rt.rseq_len == 0 {
        return Ok(());
    }
    let area = crate::sys::fs_base().wrapping_add(rt.rseq_offset as u64);
    let flags = if on { 0 } else { 1 }; // RSEQ_FLAG_UNREGISTER
    // SAFETY: rseq(2) on this thread's own registered area, which lives as long as the
    // thread; the kernel writes nothing beyond it.
    unsafe { crate::sys::rseq(area, rt.rseq_len, flags, RSEQ_SIG) }
}
