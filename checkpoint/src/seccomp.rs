//! Seccomp filters the program put itself under, as the interposed `prctl` and
//! `syscall` saw them (the kernel shows a filter to no one but a privileged tracer):
//! recorded here, saved into the image where they are all the process runs under
//! beyond what it started with, and installed again, in order, at the end of a restore.
//!
//! A filter made by a raw system call, with a user-notification listener (whose
//! descriptor cannot come back), or by one thread for itself alone, leaves the record
//! short of what the kernel counts: the checkpoint says so, and none is saved (a restore
//! then needs a process already under as many, as before).
#![allow(unsafe_code)]

use crate::collect::slurp;
use crate::failure::Failure;
use crate::maps::dec;
use crate::scratch::List;
use crate::snapshot::Snapshot;
use crate::sys::{self, msg::msg};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};

/// `SECCOMP_FILTER_FLAG_TSYNC`: a restore installs every filter for all threads.
const TSYNC: u32 = 1;
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`: not recorded.
const NEW_LISTENER: u32 = 8;
const BYTES: usize = 64 << 10;

struct Record {
    /// Taken by a hook while it appends.
    lock: AtomicBool,
    /// (filters << 32) | bytes used, published once an entry is whole.
    published: AtomicU64,
    /// Entries of `[flags u32][length u32][sock_filter; length / 8]`, in install order.
    buf: UnsafeCell<[u8; BYTES]>,
}

// SAFETY: `buf` is written only under `lock`, beyond the published length, and read
// only up to it.
unsafe impl Sync for Record {}

static RECORD: Record = Record { lock: AtomicBool::new(false), published: AtomicU64::new(0), buf: UnsafeCell::new([0; BYTES]) };
/// Filters the process was started (or restored) under: not the program's doing.
static INHERITED: AtomicU32 = AtomicU32::new(0);
/// How many filters the process ran under at the checkpoint whose image saved the
/// recorded ones (0: none saved). In the image's memory, for `restored`.
static SAVED_UNDER: AtomicU32 = AtomicU32::new(0);

/// At start: the filters already in force are inherited.
pub fn init() {
    INHERITED.store(own_count(), SeqCst);
}

/// The program installed a filter (`flags`, `insns` its `sock_filter`s): recorded,
/// unless it has a listener or the record is full (the count then falls short).
pub fn installed(flags: u32, insns: &[u8]) {
    if flags & NEW_LISTENER != 0 {
        return;
    }
    while RECORD.lock.swap(true, SeqCst) {
        core::hint::spin_loop();
    }
    let p = RECORD.published.load(SeqCst);
    let (n, used) = (p >> 32, (p & 0xffff_ffff) as usize);
    let end = used + 8 + insns.len();
    if end <= BYTES && !insns.is_empty() && insns.len() <= 8 * mig_image::SECCOMP_MAX_INSNS {
        // SAFETY: under the lock, past what readers see.
        let buf = unsafe { &mut *RECORD.buf.get() };
        let head = ((flags & mig_image::SECCOMP_SAVED_FLAGS) as u64) | ((insns.len() as u64) << 32);
        if let Some(at) = buf.get_mut(used..end) {
            let (h, body) = at.split_at_mut(8);
            h.copy_from_slice(&head.to_le_bytes());
            body.copy_from_slice(insns);
            RECORD.published.store(((n + 1) << 32) | end as u64, SeqCst);
        }
    }
    RECORD.lock.store(false, SeqCst);
}

/// The recorded filters: (how many, their entries).
fn recorded() -> (u32, &'static [u8]) {
    let p = RECORD.published.load(SeqCst);
    // SAFETY: published bytes are never written again.
    let buf = unsafe { &*RECORD.buf.get() };
    ((p >> 32) as u32, buf.get(..(p & 0xffff_ffff) as usize).unwrap_or(&[]))
}

/// `Seccomp_filters:` of the calling thread (its status is read only under a filter).
fn own_count() -> u32 {
    if sys::prctl_get(libc::PR_GET_SECCOMP) != Ok(2) {
        return 0;
    }
    let mut buf = [0u8; 4096];
    let path = sys::CPath::new(b"/proc/thread-self/status");
    let n = path.and_then(|p| sys::read_file(&p, &mut buf).ok()).unwrap_or(0);
    count(buf.get(..n).unwrap_or(&[]))
}

fn count(status: &[u8]) -> u32 {
    crate::fdinfo::field(status, b"Seccomp_filters:").and_then(dec).unwrap_or(0) as u32
}

/// Saves the recorded filters, where they and the inherited ones are every filter of
/// every thread; says what cannot come back otherwise. `s.threads` is filled.
pub fn save(s: &mut Snapshot, text: &mut List<u8>) -> Result<(), Failure> {
    SAVED_UNDER.store(0, SeqCst);
    let a = &mut s.process.attrs;
    let (n, bytes) = recorded();
    let unseen = a.seccomp_filters.saturating_sub(INHERITED.load(SeqCst));
    if a.seccomp != 2 || unseen == 0 {
        return Ok(());
    }
    let mut whole = unseen == n;
    for t in s.threads.as_slice() {
        let mut path = sys::msg::Msg::<48>::new();
        path.s("/proc/self/task/").num(t.tid as u64).s("/status");
        if slurp(path.as_bytes(), text).is_ok() {
            whole &= count(text.as_slice()) == a.seccomp_filters;
        }
    }
    if whole {
        SAVED_UNDER.store(a.seccomp_filters, SeqCst);
        a.seccomp_saved = n;
        s.process.attrs.seccomp_programs = s.strings.add(bytes)?;
    } else {
        msg()
            .s("warning: the process runs under ")
            .num(unseen as u64)
            .s(" seccomp filter(s) of its own that mig cannot save (made by a raw system call, with a listener, or for one thread only): a restore needs a process already under them")
            .emit();
    }
    Ok(())
}

/// In the restored process, before its threads go on: the saved filters it does not
/// run under yet, for every thread (the blob's last system calls are behind it; what
/// the program does next was allowed before the checkpoint too). A process restored
/// under as many filters as the image's (a rollback: filters outlive `execve`) gets
/// none; one under fewer gets the last of the saved ones (`missing`).
pub fn restored() {
    let (n, bytes) = recorded();
    let now = own_count();
    let skip = n.saturating_sub(missing(SAVED_UNDER.load(SeqCst), now));
    for (flags, insns) in mig_image::seccomp_entries(bytes).map_while(|e| e).skip(skip as usize) {
        if let Err(e) = sys::seccomp_filter(flags | TSYNC, insns) {
            msg().s("warning: a seccomp filter could not be installed again: errno ").num(e.0 as u64).emit();
        }
    }
    INHERITED.store(own_count().saturating_sub(n), SeqCst);
}

/// How many saved filters a process under `now` filters lacks, of an image saved
/// under `under` (0 where none were saved).
pub fn missing(under: u32, now: u32) -> u32 {
    under.saturating_sub(now)
}
