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
#![allow(unsafe_code)]

use super::fds::raise_fd;
use crate::sys;
use mig_image::{BLOCK, Extent, PAGE, blocks_of};

const UFFD_API: u64 = 0xaa;
const UFFDIO_API: u64 = 0xc018_aa3f;
/// `ioctl` of the restore blob: registers a range for missing-page faults.
pub const UFFDIO_REGISTER: u64 = 0xc020_aa00;
pub const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;
const UFFDIO_WAKE: u64 = 0x8010_aa02;
const UFFDIO_COPY: u64 = 0xc028_aa03;
const UFFDIO_ZEROPAGE: u64 = 0xc020_aa04;
const UFFD_FEATURE_EVENT_FORK: u64 = 1 << 1;
const UFFD_FEATURE_EVENT_REMAP: u64 = 1 << 2;
const UFFD_FEATURE_EVENT_REMOVE: u64 = 1 << 3;
const UFFD_FEATURE_EVENT_UNMAP: u64 = 1 << 6;
const UFFD_FEATURE_THREAD_ID: u64 = 1 << 8;
const FEATURES: u64 = UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_THREAD_ID;
/// `UFFDIO_REGISTER`, `UFFDIO_UNREGISTER` and `UFFDIO_API` are offered.
const API_IOCTLS: u64 = 1 << 0 | 1 << 1 | 1 << 0x3f;
const EVENT_PAGEFAULT: u8 = 0x12;
const EVENT_FORK: u8 = 0x13;
const EVENT_REMAP: u8 = 0x14;
const EVENT_REMOVE: u8 = 0x15;
const EVENT_UNMAP: u8 = 0x16;
const PAGEFAULT_FLAG_WRITE: u64 = 1;
/// `struct uffd_msg`.
const MSG: usize = 32;
/// Pages in a block.
const BLOCK_PAGES: u64 = BLOCK / PAGE;
/// How far ahead of the background loading the disk is asked to read.
const READ_AHEAD: u64 = 8 << 20;

const IOPRIO_WHO_PROCESS: i32 = 1;
const IOPRIO_CLASS_BE: i32 = 2;
const IOPRIO_CLASS_IDLE: i32 = 3;
const RWF_NOWAIT: i32 = 8;

static ZEROS: [u8; PAGE as usize] = [0; PAGE as usize];
/// For this long after the restore handed over, the loader only serves faults: the
/// restored process's first steps (the rest of the restore, the hand-off, what it does
/// first) get the CPU before the background loading.
const START_DELAY_NS: u64 = 5_000_000;

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
    pub regions: Vec<Lazy>,
    /// Pages the restore reads in itself (their blocks checked before): already there.
    pub present: Vec<u64>,
    pub debug: bool,
}

/// What the restore blob needs of the loader, made before anything is decided.
pub struct Channel {
    /// The userfaultfd, to register the lazy regions with (the blob closes it).
    pub uffd: i32,
    /// The blob writes one byte here once every lazy region is registered (and closes it).
    pub ready: i32,
    ready_r: i32,
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A userfaultfd for this process's memory with the events the loader follows, or why
/// there is none (no privilege: fork events and faults in system calls need
/// `CAP_SYS_PTRACE`, or `vm.unprivileged_userfaultfd=1` for the latter; an old kernel).
fn userfaultfd() -> Result<i32, String> {
    // SAFETY: userfaultfd takes flags only.
    let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK) } as i32;
    if fd < 0 {
        return Err(format!("no userfaultfd (errno {})", errno()));
    }
    let mut api = [UFFD_API, FEATURES, 0];
    // SAFETY: UFFDIO_API reads and writes a `struct uffdio_api` (3 × u64).
    let r = unsafe { libc::ioctl(fd, UFFDIO_API as _, api.as_mut_ptr()) };
    if r < 0 || api[1] & FEATURES != FEATURES || api[2] & API_IOCTLS != API_IOCTLS {
        let e = errno();
        close(fd);
        return Err(format!("no userfaultfd with fork, remap, remove and unmap events (errno {e})"));
    }
    Ok(fd)
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

/// Field 22 of `/proc/<pid>/stat`: when it started, in clock ticks since boot.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.iter().rposition(|&c| c == b')')?;
    let field = stat.get(after + 2..)?.split(|&c| c == b' ').nth(22 - 3)?;
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// The userfaultfd and the pipe the blob tells the loader on (at `base` or above), or
/// why a lazy restore cannot be had here: then everything is read in.
pub fn channel(base: i32) -> Result<Channel, String> {
    let uffd = raise_fd(userfaultfd()?, base)?;
    let [ready_r, ready] = pipe().inspect_err(|_| close(uffd))?;
    match (raise_fd(ready_r, base), raise_fd(ready, base)) {
        (Ok(ready_r), Ok(ready)) => Ok(Channel { uffd, ready, ready_r }),
        (a, b) => {
            a.into_iter().chain(b).chain([uffd]).for_each(close);
            Err("no descriptor for the loader".into())
        }
    }
}

/// A loader being started (see [`spawn`]).
pub struct Spawned {
    between: u32,
    pid_r: i32,
}

/// Starts the loader of `plan` on `ch`, twice forked so that it is no child of the
/// restored process. It waits for the blob's byte on `ch.ready` before it hands over
/// anything; [`Spawned::started`] says who it is.
pub fn spawn(plan: Plan, ch: &Channel) -> Result<Spawned, String> {
    let me = sys::getpid();
    let pidfd = sys::pidfd_open(me).map_err(|e| format!("no pidfd (errno {})", e.0))?;
    let [pid_r, pid_w] = pipe().inspect_err(|_| close(pidfd))?;
    // Both forks are quiet (no SIGCHLD for the program); the one between is reaped by
    // `started`.
    let between = sys::fork_quiet();
    if between == Ok(0) {
        match sys::fork_quiet() {
            Ok(0) => run(plan, Fds { uffd: ch.uffd, pidfd, ready: ch.ready_r }, me),
            Ok(pid) => {
                let _ = sys::write_all(pid_w, &pid.to_ne_bytes());
                sys::exit_group(0)
            }
            Err(_) => sys::exit_group(1),
        }
    }
    close(pid_w);
    close(pidfd);
    close(ch.ready_r);
    match between {
        Ok(between) => Ok(Spawned { between, pid_r }),
        Err(e) => {
            close(pid_r);
            Err(format!("cannot fork the loader (errno {})", e.0))
        }
    }
}

impl Spawned {
    /// Reaps the process between, and returns the loader's pid and start time (with the
    /// pid, who it is).
    pub fn started(self) -> Result<(u32, u64), String> {
        sys::reap_quiet(self.between);
        let mut pid = [0u8; 4];
        let got = sys::read(self.pid_r, &mut pid);
        close(self.pid_r);
        let pid = u32::from_ne_bytes(pid);
        match got {
            Ok(4) if pid != 0 => Ok((pid, start_time(pid).ok_or("the loader ended at once")?)),
            _ => Err("the loader did not start".into()),
        }
    }
}

struct Fds {
    uffd: i32,
    pidfd: i32,
    ready: i32,
}

/// Closes every descriptor but those in `keep`.
fn close_all_but(keep: &mut [i32]) {
    keep.sort_unstable();
    let mut from = 0u32;
    for &fd in keep.iter().filter(|&&fd| fd >= 0) {
        if fd as u32 > from {
            // SAFETY: close_range on descriptors of this process only.
            unsafe { libc::syscall(libc::SYS_close_range, from, fd as u32 - 1, 0) };
        }
        from = fd as u32 + 1;
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, 0) };
}

fn ioprio(class: i32) {
    // SAFETY: ioprio_set on this process with plain integers.
    unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, class << 13 | if class == IOPRIO_CLASS_BE { 4 } else { 0 }) };
}

/// The loader process: never returns.
fn run(plan: Plan, fds: Fds, restored: u32) -> ! {
    close_all_but(&mut [2, fds.uffd, fds.pidfd, fds.ready, plan.image_fd]);
    // Out of the terminal's process group (^C is for the program; the loader ends with
    // it), every signal blocked (it was, for the restore): only SIGKILL ends it early.
    // SAFETY: setsid and chdir with valid arguments.
    unsafe {
        libc::setsid();
        libc::chdir(c"/".as_ptr());
    }
    let _ = sys::sigprocmask(libc::SIG_SETMASK, Some(u64::MAX), None);
    // SAFETY: a signal set of SIGUSR1 only, built with libc's own functions.
    let sigfd = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC)
    };
    let done = watchdog(fds.pidfd, &plan.image, restored);
    // Named once the watchdog has a name of its own.
    // SAFETY: prctl with a NUL-terminated name.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"mig-loader".as_ptr()) };
    ioprio(IOPRIO_CLASS_IDLE);
    let mut l = Loader::new(plan, fds, restored, sigfd);
    l.serve();
    l.end(done)
}

/// Starts a watchdog: should the loader end before it is done (killed, or a bug), the
/// memory it serves would become plain anonymous memory, zeros where saved data
/// belongs; the watchdog then says so and kills the restored process. Returns what the
/// loader writes a byte to once it is done (-1: no watchdog).
fn watchdog(pidfd: i32, image: &str, restored: u32) -> i32 {
    let Ok([r, w]) = pipe() else { return -1 };
    match sys::fork_quiet() {
        Ok(0) => {
            close_all_but(&mut [2, pidfd, r]);
            // SAFETY: prctl with a NUL-terminated name.
            unsafe { libc::prctl(libc::PR_SET_NAME, c"mig-watchdog".as_ptr()) };
            let mut fds = [libc::pollfd { fd: pidfd, events: libc::POLLIN, revents: 0 }, libc::pollfd { fd: r, events: libc::POLLIN, revents: 0 }];
            loop {
                // SAFETY: poll on the array above.
                if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 || fds[0].revents != 0 {
                    sys::exit_group(0); // the restored process ended
                }
                if fds[1].revents != 0 {
                    let mut byte = [0u8];
                    if sys::read(r, &mut byte) != Ok(1) {
                        let line = format!(
                            "mig: the loader of the memory of the process restored from {image} ({restored}) ended before it was done: the process was killed\n"
                        );
                        let _ = sys::write_all(2, line.as_bytes());
                        let _ = sys::pidfd_send_signal(pidfd, libc::SIGKILL);
                    }
                    sys::exit_group(0);
                }
            }
        }
        Ok(_) => {
            close(r);
            w
        }
        Err(_) => {
            close(r);
            close(w);
            -1
        }
    }
}

/// One run of saved pages in an address space: `pages` pages at `addr`, saved pages
/// `g..g + pages` (numbered over all lazy regions, in order).
#[derive(Clone, Copy, Debug)]
struct Run {
    addr: u64,
    g: u64,
    pages: u64,
}

impl Run {
    fn end(&self) -> u64 {
        self.addr + self.pages * PAGE
    }
}

/// An address space the loader serves: the restored process's, or a forked child's.
#[derive(Clone)]
struct Mm {
    uffd: i32,
    /// Where the saved pages are in it, ordered by `g` (never overlapping).
    runs: Vec<Run>,
    /// `runs` indices ordered by address.
    by_addr: Vec<u32>,
    /// Per saved page: handed over, or no longer wanted (dropped, unmapped).
    done: Vec<u64>,
    /// Saved pages still to hand over.
    left: u64,
    /// The restored process (killed through the pidfd) or a child (a thread id seen
    /// faulting, 0 while none was).
    main: bool,
    tid: u32,
    gone: bool,
}

impl Mm {
    fn is_done(&self, g: u64) -> bool {
        self.done[(g / 64) as usize] & 1 << (g % 64) != 0
    }
    fn set_done(&mut self, g: u64) {
        let w = &mut self.done[(g / 64) as usize];
        if *w & 1 << (g % 64) == 0 {
            *w |= 1 << (g % 64);
            self.left -= 1;
        }
    }
    fn reindex(&mut self) {
        self.by_addr = (0..self.runs.len() as u32).collect();
        let runs = &self.runs;
        self.by_addr.sort_unstable_by_key(|&i| runs[i as usize].addr);
    }
    /// The saved page at `addr`.
    fn find(&self, addr: u64) -> Option<u64> {
        let i = self.by_addr.partition_point(|&i| self.runs[i as usize].end() <= addr);
        let r = self.runs[*self.by_addr.get(i)? as usize];
        (r.addr <= addr).then(|| r.g + (addr - r.addr) / PAGE)
    }
    /// Splits runs so that none crosses `at`.
    fn cut(&mut self, at: u64) {
        if let Some(i) = self.runs.iter().position(|r| r.addr < at && at < r.end()) {
            let r = self.runs[i];
            let n = (at - r.addr) / PAGE;
            self.runs[i].pages = n;
            self.runs.insert(i + 1, Run { addr: at, g: r.g + n, pages: r.pages - n });
        }
    }
    /// Each run inside `[a, b)` (after cutting there).
    fn inside(&mut self, a: u64, b: u64) -> impl Iterator<Item = usize> + '_ {
        self.cut(a);
        self.cut(b);
        self.runs.iter().enumerate().filter(move |(_, r)| a <= r.addr && r.end() <= b).map(|(i, _)| i)
    }
    /// `MADV_DONTNEED`/`MADV_FREE` on `[a, b)`: those pages read as zeros now.
    fn remove(&mut self, a: u64, b: u64) {
        let inside: Vec<usize> = self.inside(a, b).collect();
        let gs: Vec<(u64, u64)> = inside.into_iter().map(|i| (self.runs[i].g, self.runs[i].pages)).collect();
        for (g, n) in gs {
            (g..g + n).for_each(|g| self.set_done(g));
        }
        self.reindex();
    }
    /// `munmap` of `[a, b)`.
    fn unmap(&mut self, a: u64, b: u64) {
        self.remove(a, b);
        self.runs.retain(|r| !(a <= r.addr && r.end() <= b));
        self.reindex();
    }
    /// `mremap` moved `[from, from + len)` to `to`.
    fn remap(&mut self, from: u64, to: u64, len: u64) {
        let moved: Vec<usize> = self.inside(from, from + len).collect();
        for i in moved {
            self.runs[i].addr = self.runs[i].addr - from + to;
        }
        self.reindex();
    }
    /// The pieces of saved pages `g0..g1` it holds: (address, first page, pages).
    fn pieces(&self, g0: u64, g1: u64) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        let i = self.runs.partition_point(|r| r.g + r.pages <= g0);
        self.runs[i..].iter().take_while(move |r| r.g < g1).map(move |r| {
            let (a, b) = (r.g.max(g0), (r.g + r.pages).min(g1));
            (r.addr + (a - r.g) * PAGE, a, b - a)
        })
    }
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

/// What a copy into an address space came to.
enum Copied {
    /// Everything asked is there.
    All,
    /// The address space is changing (an event not read yet): try again after reading.
    Later,
    /// The address space is gone (the process ended or executed another program).
    Gone,
}

/// A pending fault the loader could not serve yet (`EAGAIN`).
#[derive(Clone, Copy)]
struct Fault {
    uffd: i32,
    addr: u64,
    write: bool,
    tid: u32,
}

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
            regions.push(Area { g, pages, data_off: r.data_off, data_len: r.data_len, block: blocks, blob: r.blob });
            // Read here, not by the restore: as many as the image has blocks.
            let n = blocks_of(r.data_len);
            let mut raw = vec![0u8; 4 * n as usize];
            if sys::pread(plan.image_fd, &mut raw, r.crcs_off) != Ok(raw.len()) {
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

    /// Reads block `b` into `buf`: at once (`wait`), or only if the page cache has it
    /// (`Ok(false)` if not). `Err(())`: its CRC does not match.
    fn read(&mut self, b: u32, wait: bool) -> Result<bool, ()> {
        let Block { off, len, .. } = self.block(b);
        let buf = &mut self.buf[..len as usize];
        let mut done = 0usize;
        while done < buf.len() {
            let rest = &mut buf[done..];
            let iov = libc::iovec { iov_base: rest.as_mut_ptr().cast(), iov_len: rest.len() };
            let flags = if wait { 0 } else { RWF_NOWAIT };
            // SAFETY: preadv2 into `rest`, which the iovec describes.
            let n = unsafe { libc::syscall(libc::SYS_preadv2, self.fd, &iov as *const libc::iovec, 1, (off + done as u64) as i64, 0, flags) };
            match n {
                n if n > 0 => done += n as usize,
                0 => return Err(()), // the image is shorter than its header says: damaged
                _ => match errno() {
                    libc::EINTR => {}
                    libc::EAGAIN if !wait => return Ok(false),
                    libc::EOPNOTSUPP | libc::EINVAL if !wait => return self.read(b, true),
                    _ => return Err(()),
                },
            }
        }
        let mut h = crc32fast::Hasher::new();
        h.update(buf);
        if h.finalize() != self.crcs[b as usize] {
            return Err(());
        }
        Ok(true)
    }

    /// Hands block `b` (in `buf`) to every address space that still needs a page of it.
    /// Returns false if some could not take it yet.
    fn deliver(&mut self, b: u32) -> bool {
        let Block { g0, g1, .. } = self.block(b);
        let mut complete = true;
        for m in 0..self.mms.len() {
            let pieces: Vec<(u64, u64, u64)> = self.mms[m].pieces(g0, g1).collect();
            'pieces: for (addr, g, n) in pieces {
                // Runs of pages it does not have yet.
                let mut i = 0;
                while i < n {
                    if self.mms[m].gone {
                        break 'pieces;
                    }
                    if self.mms[m].is_done(g + i) {
                        i += 1;
                        continue;
                    }
                    let mut j = i + 1;
                    while j < n && !self.mms[m].is_done(g + j) {
                        j += 1;
                    }
                    let src = self.buf[((g + i - g0) * PAGE) as usize..].as_ptr();
                    match self.copy(m, addr + i * PAGE, src, g + i, j - i) {
                        Copied::All => {}
                        Copied::Later => complete = false,
                        Copied::Gone => break 'pieces,
                    }
                    i = j;
                }
            }
        }
        complete
    }

    /// `UFFDIO_COPY` of `pages` pages from `src` to `dst` in address space `m`, saved
    /// pages `g..`; every page that is there afterwards is marked done.
    fn copy(&mut self, m: usize, dst: u64, src: *const u8, g: u64, pages: u64) -> Copied {
        let mut at = 0;
        // A page at a time once a run was found to cross mappings (an `mprotect` since
        // the restore split them; a copy stays within one).
        let mut single = false;
        while at < pages {
            let n = if single { 1 } else { pages - at };
            let mut arg = [dst + at * PAGE, src as u64 + at * PAGE, n * PAGE, 0, 0];
            // SAFETY: UFFDIO_COPY reads `struct uffdio_copy` (5 × u64) and the source
            // bytes, which lie in `buf`.
            let r = unsafe { libc::ioctl(self.mms[m].uffd, UFFDIO_COPY as _, arg.as_mut_ptr()) };
            let e = if r < 0 { errno() } else { 0 };
            let copied = (arg[4] as i64).max(0) as u64 / PAGE;
            for k in at..at + copied {
                self.mms[m].set_done(g + k);
            }
            self.loaded += copied * PAGE;
            at += copied;
            match e {
                0 if at == pages => return Copied::All,
                0 => {}
                libc::EAGAIN if copied > 0 => {}
                libc::EAGAIN => return Copied::Later,
                // The page is there already (a fault beat us to it, or it was never taken
                // away): it stays as it is.
                libc::EEXIST => {
                    self.mms[m].set_done(g + at);
                    at += 1;
                }
                libc::ESRCH => {
                    self.mms[m].gone = true;
                    return Copied::Gone;
                }
                libc::ENOENT | libc::EINVAL if !single => single = true,
                // Not registered there (any more): nothing to deliver to.
                libc::ENOENT | libc::EINVAL => {
                    self.mms[m].set_done(g + at);
                    at += 1;
                }
                e => {
                    self.fatal(m, &format!("cannot hand over its memory (errno {e})"));
                    return Copied::Gone;
                }
            }
        }
        Copied::All
    }

    /// A page with nothing saved: zeros (a fresh page for a write, the zero page for a
    /// read, as the kernel does without a userfaultfd). Returns false to try again later.
    fn zero(&mut self, m: usize, page: u64, write: bool) -> bool {
        let uffd = self.mms[m].uffd;
        let (r, e) = if write {
            let mut arg = [page, ZEROS.as_ptr() as u64, PAGE, 0, 0];
            // SAFETY: UFFDIO_COPY of one page from `ZEROS`.
            let r = unsafe { libc::ioctl(uffd, UFFDIO_COPY as _, arg.as_mut_ptr()) };
            (r, errno())
        } else {
            let mut arg = [page, PAGE, 0, 0];
            // SAFETY: UFFDIO_ZEROPAGE reads `struct uffdio_zeropage` (4 × u64).
            let r = unsafe { libc::ioctl(uffd, UFFDIO_ZEROPAGE as _, arg.as_mut_ptr()) };
            (r, errno())
        };
        if r >= 0 {
            return true;
        }
        match e {
            libc::EAGAIN => false,
            libc::ESRCH => {
                self.mms[m].gone = true;
                true
            }
            _ => {
                // There already (EEXIST), or not registered: the thread only has to retry.
                let range = [page, PAGE];
                // SAFETY: UFFDIO_WAKE reads a `struct uffdio_range`.
                unsafe { libc::ioctl(uffd, UFFDIO_WAKE as _, range.as_ptr()) };
                true
            }
        }
    }

    /// Serves a page fault in address space `m`; false to try again later.
    fn fault(&mut self, m: usize, f: Fault) -> bool {
        let page = f.addr & !(PAGE - 1);
        if f.tid != 0 && !self.mms[m].main {
            self.mms[m].tid = f.tid;
        }
        let g = match self.mms[m].find(page) {
            Some(g) if !self.mms[m].is_done(g) => g,
            _ => {
                self.zeros += 1;
                return self.zero(m, page, f.write);
            }
        };
        self.faults += 1;
        let b = Self::block_in(&self.regions, g);
        // The program waits for it: the disk's ordinary priority.
        self.set_class(IOPRIO_CLASS_BE);
        if self.bad[b as usize] || self.read(b, true).is_err() {
            self.damaged(b, Some(m));
            return true;
        }
        self.deliver(b);
        self.mms[m].gone || self.mms[m].is_done(g)
    }

    /// Block `b` does not match its CRC: say so (the whole line first), then kill the
    /// restored process, and `victim` (an address space that faulted on it) if another.
    fn damaged(&mut self, b: u32, victim: Option<usize>) {
        self.bad[b as usize] = true;
        let what = format!("saved data is corrupted (CRC mismatch in blob {})", self.regions[self.block(b).region].blob);
        if !self.killed {
            self.killed = true;
            self.say(&format!("mig: {} is damaged ({what}): the process restored from it ({}) was killed\n", self.image, self.restored));
            self.kill_main();
        }
        if let Some(m) = victim.filter(|&m| !self.mms[m].main) {
            let tid = self.mms[m].tid;
            if tid != 0 {
                self.say(&format!("mig: {} is damaged ({what}): process {tid}, forked from the one restored from it, was killed\n", self.image));
                let _ = sys::kill(tid, libc::SIGKILL);
            }
        }
    }

    /// Something went wrong that leaves the memory of address space `m` incomplete.
    fn fatal(&mut self, m: usize, why: &str) {
        self.say(&format!("mig: the process restored from {} ({}) was killed: the lazy restore {why}\n", self.image, self.restored));
        if self.mms[m].main {
            self.kill_main();
        } else if self.mms[m].tid != 0 {
            let _ = sys::kill(self.mms[m].tid, libc::SIGKILL);
        }
        self.mms[m].gone = true;
    }

    fn kill_main(&self) {
        let _ = sys::pidfd_send_signal(self.pidfd, libc::SIGKILL);
    }

    /// Writes a whole line with one `write`.
    fn say(&self, line: &str) {
        let _ = sys::write_all(2, line.as_bytes());
    }

    /// Reads and handles what every address space reports.
    fn events(&mut self) {
        let mut m = 0;
        let mut buf = [0u8; MSG * 64];
        while m < self.mms.len() {
            if self.mms[m].gone {
                m += 1;
                continue;
            }
            let n = match sys::read(self.mms[m].uffd, &mut buf) {
                Ok(n) => n,
                Err(sys::Errno(libc::EINTR)) => continue,
                Err(_) => {
                    m += 1;
                    continue;
                }
            };
            for msg in buf[..n].chunks_exact(MSG) {
                let u64_at = |o: usize| u64::from_ne_bytes(msg[o..o + 8].try_into().unwrap_or_default());
                self.events += matches!(msg[0], EVENT_FORK | EVENT_REMAP | EVENT_REMOVE | EVENT_UNMAP) as u64;
                match msg[0] {
                    EVENT_PAGEFAULT => {
                        let f = Fault { uffd: self.mms[m].uffd, addr: u64_at(16), write: u64_at(8) & PAGEFAULT_FLAG_WRITE != 0, tid: u64_at(24) as u32 };
                        if !self.fault(m, f) {
                            self.pending.push(f);
                        }
                    }
                    EVENT_FORK => {
                        let child = Mm { uffd: u64_at(8) as u32 as i32, main: false, tid: 0, ..self.mms[m].clone() };
                        self.mms.push(child);
                    }
                    EVENT_REMAP => self.mms[m].remap(u64_at(8), u64_at(16), u64_at(24)),
                    EVENT_REMOVE => self.mms[m].remove(u64_at(8), u64_at(16)),
                    EVENT_UNMAP => self.mms[m].unmap(u64_at(8), u64_at(16)),
                    _ => {}
                }
            }
            if n < buf.len() {
                m += 1;
            }
        }
        // Faults that met a changing address space, now that its events are read.
        let pending = std::mem::take(&mut self.pending);
        for f in pending {
            if let Some(m) = self.mms.iter().position(|mm| mm.uffd == f.uffd && !mm.gone)
                && !self.fault(m, f)
            {
                self.pending.push(f);
            }
        }
    }

    /// Closes the userfaultfd of every address space that is gone or complete (its
    /// memory is plain anonymous memory from then on).
    fn retire(&mut self) {
        let mut i = 0;
        while i < self.mms.len() {
            let m = &self.mms[i];
            if m.gone || (self.ready && m.left == 0) {
                if m.main && !m.gone && self.debug {
                    let ms = (sys::clock_monotonic_ns() - self.t0) / 1_000_000;
                    let (kib, faults, zeros, events) = (self.loaded >> 10, self.faults, self.zeros, self.events);
                    self.say(&format!("mig: lazy restore: the memory of {} is complete in {ms} ms: {kib} KiB loaded, {faults} faults on saved pages, {zeros} on others, {events} events\n", self.restored));
                }
                close(m.uffd);
                self.pending.retain(|f| f.uffd != m.uffd);
                self.mms.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Loads the next block in the background, if it can without waiting for the disk.
    /// Returns whether to poll again at once (true) or wait a moment for the disk or an
    /// event (false); `None` when there is nothing left to load.
    fn background(&mut self) -> Option<bool> {
        // Past the end with pages still missing (a copy that had to wait): once more.
        if self.cursor == self.order.len() && self.order.iter().any(|&b| !self.bad[b as usize] && self.needed(b)) {
            self.cursor = 0;
        }
        while let Some(&b) = self.order.get(self.cursor) {
            if self.bad[b as usize] || !self.needed(b) {
                self.cursor += 1;
                continue;
            }
            let off = self.block(b).off;
            self.set_class(if self.hurry { IOPRIO_CLASS_BE } else { IOPRIO_CLASS_IDLE });
            // The disk reads ahead of what is loaded, half a window at a time.
            let (start, end) = self.read_ahead;
            if !(start..end.saturating_sub(READ_AHEAD / 2)).contains(&off) {
                let from = if (start..end).contains(&off) { end } else { off };
                // SAFETY: readahead on the image's descriptor, plain integers.
                unsafe { libc::readahead(self.fd, from as i64, (off + READ_AHEAD - from) as usize) };
                self.read_ahead = (if (start..end).contains(&off) { start } else { off }, off + READ_AHEAD);
            }
            return match self.read(b, self.hurry) {
                Ok(false) => Some(false),
                // Not all of it taken: an event to read first (or a fork still copying the
                // address space, whose event comes when it is done).
                Ok(true) if !self.deliver(b) => Some(false),
                Ok(true) => {
                    self.cursor += 1;
                    Some(true)
                }
                Err(()) => {
                    self.damaged(b, None);
                    self.cursor += 1;
                    Some(true)
                }
            };
        }
        None
    }

    fn serve(&mut self) {
        let mut next = None;
        loop {
            let mut fds = vec![
                libc::pollfd { fd: if self.ended { -1 } else { self.pidfd }, events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: self.sigfd, events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: if self.ready { -1 } else { self.ready_fd }, events: libc::POLLIN, revents: 0 },
            ];
            fds.extend(self.mms.iter().map(|m| libc::pollfd { fd: m.uffd, events: libc::POLLIN, revents: 0 }));
            let timeout = match next {
                Some(true) => 0,
                Some(false) => 1,
                None if !self.pending.is_empty() => 1,
                None => -1,
            };
            // SAFETY: poll on the array built above.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if fds[0].revents != 0 {
                // The restored process ended: its memory needs nothing more (a child's
                // may, still).
                self.ended = true;
                if let Some(m) = self.mms.iter_mut().find(|m| m.main) {
                    m.gone = true;
                }
            }
            if fds[1].revents != 0 {
                let mut info = [0u8; 128];
                let _ = sys::read(self.sigfd, &mut info);
                // A checkpoint waits for the whole memory: no more idling.
                self.hurry = true;
                self.set_class(IOPRIO_CLASS_BE);
            }
            if fds[2].revents != 0 {
                let mut byte = [0u8];
                match sys::read(self.ready_fd, &mut byte) {
                    Ok(1) => {
                        self.ready = true;
                        self.t0 = sys::clock_monotonic_ns();
                        close(self.ready_fd);
                    }
                    // The restore failed before it registered everything.
                    Ok(_) => return,
                    Err(_) => {}
                }
            }
            self.events();
            self.retire();
            if self.mms.is_empty() {
                return;
            }
            next = if !self.ready {
                None
            } else if sys::clock_monotonic_ns() < self.t0 + START_DELAY_NS {
                Some(false)
            } else {
                self.background()
            };
        }
    }

    /// Done: the watchdog (`done`) is told so, and the loader ends.
    fn end(&mut self, done: i32) -> ! {
        for m in &self.mms {
            close(m.uffd);
        }
        if done >= 0 {
            let _ = sys::write_all(done, b"d");
        }
        sys::exit_group(0)
    }
}
