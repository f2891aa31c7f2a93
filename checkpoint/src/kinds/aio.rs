//! Kernel AIO contexts (`io_setup`). A context is a ring the kernel maps into the
//! process (`/[aio]` in the maps), whose address is the context's id. The ring is saved
//! as shared memory of the process's own (every page: its head, its tail and the
//! completions not reaped yet), and noted here, in this library's memory, which the
//! image holds. After a restore (`restore`), before the program runs, each is a context
//! again: made with `io_setup` for a ring of the same size, moved to its old address
//! (its id: the kernel follows an `mremap` of the ring), its tail brought to the saved
//! one by reads of a byte from `/dev/zero` reaped at once, and the completions the
//! program had not reaped written back below the saved head. Requests still in flight
//! at the checkpoint cannot be seen from the process and never complete after a
//! restore: a warning says so.
#![allow(unsafe_code)]

use crate::maps::MapLine;
use crate::sys::{self, CPath, msg::msg};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};

/// At most this many contexts come back; more come back as plain memory, said.
const MAX: usize = 16;
const AIO_RING_MAGIC: u32 = 0xa10a_10a1;
/// `struct aio_ring`'s header, then 32-byte `struct io_event`s.
const HEADER: usize = 32;
const EVENT: usize = 32;
const IOCB_CMD_PREAD: u64 = 0;
const PAGE: usize = 4096;

static COUNT: AtomicU32 = AtomicU32::new(0);
static RINGS: [[AtomicU64; 2]; MAX] = [const { [AtomicU64::new(0), AtomicU64::new(0)] }; MAX];

/// Whether a line of the maps is an AIO ring.
pub fn is_ring(l: &MapLine) -> bool {
    l.shared && l.path.starts_with(b"/[aio]")
}

/// Before the regions are saved: no ring noted yet.
pub fn forget() {
    COUNT.store(0, SeqCst);
}

/// A ring the regions hold, from `start` to `end`: noted for the restore, and said.
pub fn note(start: u64, end: u64) {
    let i = COUNT.fetch_add(1, SeqCst) as usize;
    let Some([s, e]) = RINGS.get(i) else {
        COUNT.fetch_sub(1, SeqCst);
        msg().s("warning: the AIO context 0x").hex(start).s(" is one too many (at most 16 come back): after a restore it is plain memory").emit();
        return;
    };
    s.store(start, SeqCst);
    e.store(end, SeqCst);
    msg()
        .s("warning: the AIO context 0x")
        .hex(start)
        .s(" comes back with its completions, but requests still in flight at the checkpoint (if any) never complete after a restore")
        .emit();
}

/// In a restored process, before the program runs: each noted ring, mapped back as
/// shared memory with its saved contents, is a context again.
pub fn restore() {
    for [s, e] in RINGS.iter().take(COUNT.load(SeqCst) as usize) {
        let (start, end) = (s.load(SeqCst), e.load(SeqCst));
        if let Err(why) = restore_ring(start as usize, (end - start) as usize) {
            msg().s("warning: the AIO context 0x").hex(start).s(" cannot be made again (").s(why).s("): calls on it fail with EINVAL").emit();
        }
    }
}

fn restore_ring(start: usize, len: usize) -> Result<(), &'static str> {
    // The saved ring, mapped back by the restore at `start`, moved aside (onto a place
    // the kernel chose: `mremap` to the same size without one does not move), so the
    // new ring can take its place.
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    // SAFETY: a new mapping where the kernel chooses.
    let aside = unsafe { sys::mmap(0, len, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0) }.map_err(|_| "no room to move its saved ring aside")?;
    // SAFETY: moves the saved ring over the mapping just made, which nothing else uses.
    let Ok(saved) = (unsafe { sys::mremap(start, len, len, libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED, aside) }) else {
        // SAFETY: the mapping made above, unused.
        let _ = unsafe { sys::munmap(aside, len) };
        return Err("its saved ring cannot be moved aside");
    };
    let r = remake(start, len, saved);
    // SAFETY: the saved ring moved aside above; nothing points into it.
    let _ = unsafe { sys::munmap(saved, len) };
    r
}

/// Word `i` of the ring header at `at`.
fn header(at: usize, i: usize) -> u32 {
    // SAFETY: `at` is a mapped ring (saved or new) at least a page long.
    unsafe { core::ptr::read_volatile((at + 4 * i) as *const u32) }
}

fn remake(start: usize, len: usize, saved: usize) -> Result<(), &'static str> {
    let (nr, head, tail) = (header(saved, 1), header(saved, 2), header(saved, 3));
    if header(saved, 4) != AIO_RING_MAGIC || nr == 0 || head >= nr || tail >= nr || len < PAGE {
        return Err("its saved ring is not one");
    }
    // The kernel doubles the events asked for and adds 2; a ring of as many pages
    // holds as many.
    let ask = (64 * (len / PAGE) as u32).saturating_sub(2);
    let ctx = sys::io_setup(ask).map_err(|_| "io_setup refused (fs.aio-max-nr?)")? as usize;
    if header(ctx, 1) != nr {
        sys::io_destroy(ctx as u64);
        return Err("this machine makes a ring of another size");
    }
    // SAFETY: the new ring, moved over the place the saved one left.
    if unsafe { sys::mremap(ctx, len, len, libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED, start) }.is_err() {
        sys::io_destroy(ctx as u64);
        return Err("its ring cannot be moved to its address");
    }
    advance(start as u64, tail)?;
    let unreaped = if tail >= head { tail - head } else { tail + nr - head };
    for k in 0..unreaped {
        let at = HEADER + ((head + k) % nr) as usize * EVENT;
        // SAFETY: both rings hold `nr` events after their header, in `len` bytes.
        unsafe { core::ptr::copy_nonoverlapping((saved + at) as *const u8, (start + at) as *mut u8, EVENT) };
    }
    // SAFETY: the ring's head word, which the program (and so mig) may write.
    unsafe { core::ptr::write_volatile((start + 8) as *mut u32, head) };
    Ok(())
}

/// Completes `tail` reads of a byte from `/dev/zero` on context `ctx` and reaps them:
/// its tail, which only the kernel moves, is then the saved one.
fn advance(ctx: u64, tail: u32) -> Result<(), &'static str> {
    if tail == 0 {
        return Ok(());
    }
    let zero = CPath::new(b"/dev/zero").and_then(|p| sys::open(&p, libc::O_RDONLY | libc::O_CLOEXEC, 0).ok()).ok_or("/dev/zero cannot be opened")?;
    let mut byte = [0u8; 8];
    let mut done = 0;
    let r = loop {
        if done >= tail {
            break Ok(());
        }
        let n = (tail - done).min(8) as usize;
        // `struct iocb`; the kernel writes its key into it.
        let mut cb = [0, 0, IOCB_CMD_PREAD | (zero as u64) << 32, byte.as_mut_ptr() as u64, 1, 0, 0, 0];
        let cbs = [core::ptr::addr_of_mut!(cb) as *const [u64; 8]; 8];
        let mut events = [[0u64; 4]; 8];
        let Ok(taken) = sys::io_submit(ctx, cbs.get(..n).unwrap_or(&[])) else { break Err("io_submit refused") };
        if taken == 0 || sys::io_getevents(ctx, taken, events.get_mut(..taken).unwrap_or(&mut [])) != Ok(taken) {
            break Err("its completions cannot be brought back");
        }
        done += taken as u32;
    };
    sys::close(zero);
    r
}
