//! The loader of a lazy restore (normal code, in a process of its own).
//!
//! The saved pages of the restored process's big private regions are not read before
//! it runs: the restore maps those regions as anonymous memory registered with a
//! userfaultfd (missing pages), and this process hands each page over with
//! `UFFDIO_COPY`, only after the CRC of its block (`BLOCK` bytes of the blob, see the
//! image format) was checked against the image: at once when the program faults on it,
//! the rest in the background (idle I/O priority, never blocking on the disk) until
//! everything is in. Then it closes the userfaultfd (the memory is plain anonymous
//! memory from then on) and ends.
//!
//! What the program does to that memory meanwhile comes as events: `MADV_DONTNEED` and
//! `MADV_FREE` (REMOVE: those pages read as zeros from then on, never as the image's),
//! `mremap` (REMAP: the pages moved, follow them), `munmap` (UNMAP: forget them), `fork`
//! (FORK: the child's memory gets the same service from a userfaultfd of its own; a
//! child that exits or execs is dropped). A fault where no saved data is (a page never
//! touched, the new part of a grown `mremap`) gets zeros. The kernel refuses a copy
//! while such an event is unread (`EAGAIN`), so what the loader knows is always what
//! the address space holds when it copies.
//!
//! A block whose CRC does not match is never handed over: the loader writes its one-line
//! message first, then kills the restored process (and a forked child that faults on
//! that block).
//!
//! Started by `plan` before anything is replaced, twice forked so that it is no child of
//! the restored process; it keeps only its own descriptors (the userfaultfd, the image,
//! a pidfd of the restored process, stderr for its message) and ends with the restored
//! process (and its children's memory, if any is still loading). A watchdog of its own
//! kills the restored process should the loader end before it is done.
//!
//! `start` starts it (and `watchdog` guards it); `serve` is its loop, `events` what the
//! userfaultfds report, `blocks` the reads of the image checked against their CRCs,
//! `handover` the copies into an address space (`address_space`), `report` the
//! messages and kills when something is wrong; `uffd` holds the kernel's interface.
#![allow(unsafe_code)]

mod address_space;
mod blocks;
mod events;
mod handover;
mod report;
mod serve;
mod start;
mod uffd;
mod watchdog;

pub use start::{Channel, Spawned, channel, spawn};
pub use uffd::{UFFDIO_REGISTER, UFFDIO_REGISTER_MODE_MISSING};

use crate::sys;
use address_space::{Mm, Run};
use events::Fault;
use mig_image::{BLOCK, Extent, PAGE, blocks_of};
use start::{Fds, IOPRIO_CLASS_IDLE, ioprio};

/// Pages in a block.
const BLOCK_PAGES: u64 = BLOCK / PAGE;

/// A region restored lazily, as the loader needs it.
pub struct Lazy {
    pub start: u64,
    pub data_off: u64,
    pub data_len: u64,
    pub blob: u32,
    pub extents: Vec<Extent>,
    /// Where its blob's block CRCs are in the image (the trailer's CRC was checked).
    pub crcs_off: u64,
}

/// What the loader is given, before it is started.
pub struct Plan {
    /// The image, for messages.
    pub image: String,
    /// The restore's descriptor of the image.
    pub image_fd: i32,
    /// Where the process's image starts in it (a job's image holds several).
    pub image_base: u64,
    pub regions: Vec<Lazy>,
    /// Pages the restore reads in itself (their blocks checked before): already there.
    pub present: Vec<u64>,
    pub debug: bool,
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn pipe() -> Result<[i32; 2], String> {
    let mut p = [0i32; 2];
    // SAFETY: pipe2 fills two descriptors.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(format!("no pipe (errno {})", errno()));
    }
    Ok(p)
}

fn close(fd: i32) {
    // SAFETY: closing a descriptor this module opened.
    unsafe { libc::close(fd) };
}

/// A lazily restored region's saved pages, among all of them (`g`), and in the image.
struct Area {
    g: u64,
    pages: u64,
    data_off: u64,
    data_len: u64,
    /// Its first block, among all of them.
    block: u64,
    blob: u32,
}

/// One block: its region, its saved pages `g0..g1`, and where it is in the image.
struct Block {
    region: usize,
    g0: u64,
    g1: u64,
    off: u64,
    len: u64,
}

/// The loader's state: the image's blocks and their CRCs, the address spaces it
/// serves, and how far the background loading got.
struct Loader {
    image: String,
    fd: i32,
    restored: u32,
    pidfd: i32,
    ready_fd: i32,
    sigfd: i32,
    ready: bool,
    /// The restored process ended.
    ended: bool,
    regions: Vec<Area>,
    /// Per block, over all regions.
    crcs: Vec<u32>,
    bad: Vec<bool>,
    /// Blocks in the order they are loaded in the background, and how far it got.
    order: Vec<u32>,
    cursor: usize,
    mms: Vec<Mm>,
    pending: Vec<Fault>,
    buf: Vec<u8>,
    hurry: bool,
    class: i32,
    /// What the disk was asked to read ahead.
    read_ahead: (u64, u64),
    killed: bool,
    debug: bool,
    loaded: u64,
    t0: u64,
    /// For the debug log: faults served (with saved data, with zeros), events.
    faults: u64,
    zeros: u64,
    events: u64,
}

impl Loader {
    fn new(plan: Plan, fds: Fds, restored: u32, sigfd: i32) -> Self {
        let mut regions = vec![];
        let mut runs = vec![];
        let mut blocks = 0u64;
        let mut g = 0u64;
        let mut crcs = vec![];
        for r in &plan.regions {
            let pages = r.data_len / PAGE;
            regions.push(Area { g, pages, data_off: plan.image_base + r.data_off, data_len: r.data_len, block: blocks, blob: r.blob });
            // Read here, not by the restore: as many as the image has blocks.
            let n = blocks_of(r.data_len);
            let mut raw = vec![0u8; 4 * n as usize];
            if sys::pread(plan.image_fd, &mut raw, plan.image_base + r.crcs_off) != Ok(raw.len()) {
                raw.fill(0); // then every block of it is damaged
            }
            crcs.extend(raw.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])));
            blocks += n;
            let mut at = g;
            for e in &r.extents {
                runs.push(Run { addr: r.start + e.first_page * PAGE, g: at, pages: e.pages });
                at += e.pages;
            }
            g += pages;
        }
        let mut main = Mm { uffd: fds.uffd, runs, by_addr: vec![], done: vec![0; g.div_ceil(64) as usize], left: g, main: true, tid: restored, gone: false };
        main.reindex();
        let mut first = vec![];
        for &addr in &plan.present {
            if let Some(g) = main.find(addr) {
                main.set_done(g);
                first.push(Self::block_in(&regions, g));
            }
        }
        first.sort_unstable();
        first.dedup();
        let rest = (0..blocks as u32).filter(|b| first.binary_search(b).is_err());
        let order = first.iter().copied().chain(rest).collect();
        Loader {
            image: plan.image,
            fd: plan.image_fd,
            restored,
            pidfd: fds.pidfd,
            ready_fd: fds.ready,
            sigfd,
            ready: false,
            ended: false,
            regions,
            bad: vec![false; crcs.len()],
            crcs,
            order,
            cursor: 0,
            mms: vec![main],
            pending: vec![],
            buf: vec![0; BLOCK as usize],
            hurry: false,
            class: IOPRIO_CLASS_IDLE,
            read_ahead: (0, 0),
            killed: false,
            debug: plan.debug,
            loaded: 0,
            t0: sys::clock_monotonic_ns(),
            faults: 0,
            zeros: 0,
            events: 0,
        }
    }

    /// The block that holds saved page `g`.
    fn block_in(regions: &[Area], g: u64) -> u32 {
        let r = &regions[regions.partition_point(|r| r.g + r.pages <= g).min(regions.len() - 1)];
        (r.block + (g - r.g) / BLOCK_PAGES) as u32
    }

    fn block(&self, b: u32) -> Block {
        let region = self.regions.partition_point(|r| r.block <= b as u64) - 1;
        let r = &self.regions[region];
        let k = b as u64 - r.block;
        let g0 = r.g + k * BLOCK_PAGES;
        Block { region, g0, g1: (g0 + BLOCK_PAGES).min(r.g + r.pages), off: r.data_off + k * BLOCK, len: (r.data_len - k * BLOCK).min(BLOCK) }
    }

    fn needed(&self, b: u32) -> bool {
        let Block { g0, g1, .. } = self.block(b);
        self.mms.iter().any(|m| !m.gone && (g0..g1).any(|g| !m.is_done(g)))
    }

    fn set_class(&mut self, class: i32) {
        if self.class != class {
            ioprio(class);
            self.class = class;
        }
    }
}
