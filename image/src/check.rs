//! The record checks of [`Image::open`] (check 18 of `docs/image-format.md` §6): every
//! field and cross-reference that a reader uses is range-checked here, once, so that an
//! image `open` accepts can be restored without the restore failing on a forged value
//! after the point of no return, and read by `mig inspect` without a panic.
//!
//! Records are read by value from the mapped image; nothing allocates (the rollback
//! handler runs this in a signal handler). Lookups that would be quadratic use the
//! order the writer guarantees (regions by address, descriptors by number) for binary
//! searches; the two uniqueness checks on unordered records (blob ranges, POSIX timer
//! ids) are linear for ordered input and sort a fixed window at a time otherwise.

use crate::format::*;
use crate::params::{Params, SocketParams, TTY_PTY_MASTER};
use crate::verify::{Image, ImageError};
use core::mem::size_of;

type Check = Result<(), ImageError>;

fn ensure(ok: bool, why: &'static str) -> Check {
    if ok { Ok(()) } else { Err(ImageError::Layout(why)) }
}

pub(crate) fn records(img: &Image) -> Check {
    ensure(img.header.flags & !(HEADER_PORTABLE | HEADER_JOB_MEMBER) == 0, "the header has unknown flags")?;
    regions(img)?;
    threads(img)?;
    process(img)?;
    fds(img)?;
    timers(img)?;
    blobs(img)
}

// ---- Strings and files ----

fn str_in_bounds(img: &Image, s: StrRef) -> Check {
    ensure((s.off as u64).saturating_add(s.len as u64) <= img.count(Table::Strings) as u64, "a string is out of bounds")
}

/// A path the restore opens or creates: inside Strings, shorter than `PATH_MAX`, no NUL.
fn path(img: &Image, s: StrRef) -> Check {
    str_in_bounds(img, s)?;
    let p = img.str(s);
    ensure(p.len() < PATH_MAX && !p.contains(&0), "a path is too long or holds a NUL byte")
}

fn absolute(img: &Image, s: StrRef) -> bool {
    img.str(s).first() == Some(&b'/')
}

fn file_id(img: &Image, f: &FileId) -> Check {
    path(img, f.path)?;
    ensure(f.build_id_len as usize <= f.build_id.len(), "a file's build-id length is out of range")
}

/// A path under `/dev/shm/` that stays there: the restore creates and writes it.
fn in_dev_shm(p: &[u8]) -> bool {
    p.strip_prefix(b"/dev/shm/").is_some_and(|rest| !rest.split(|&c| c == b'/').any(|c| c == b".." || c == b"." || c.is_empty()))
}

// ---- Regions ----

fn regions(img: &Image) -> Check {
    let extents = img.count(Table::Extents);
    let mut prev_end = 0;
    for i in 0..img.count(Table::Regions) {
        let r = img.region(i);
        let pages = (r.end.wrapping_sub(r.start)) / PAGE;
        if !r.start.is_multiple_of(PAGE) || !r.end.is_multiple_of(PAGE) || r.end <= r.start || r.start < prev_end {
            return Err(ImageError::Layout("regions overlap or are misaligned"));
        }
        prev_end = r.end;
        ensure(r.start >= MIN_ADDR && r.end <= USER_TOP, "a region lies outside the user address space")?;
        let kind = RegionKind::from_u32(r.kind).ok_or(ImageError::Layout("unknown region kind"))?;
        ensure(r.prot & !(PROT_READ | PROT_WRITE | PROT_EXEC) == 0, "a region has unknown protection bits")?;
        region_flags(&r, kind)?;
        let first = r.first_extent as usize;
        ensure(first.checked_add(r.extents as usize).is_some_and(|e| e <= extents), "region extents out of bounds")?;
        let mut saved = 0u64;
        let mut next = 0u64;
        for e in img.extents(&r) {
            if e.first_page < next || e.pages == 0 || e.first_page.saturating_add(e.pages) > pages {
                return Err(ImageError::Layout("region extents do not fit the region"));
            }
            next = e.first_page + e.pages;
            saved += e.pages * PAGE;
        }
        ensure(saved == r.data_len && (r.extents > 0) == (r.blob != u32::MAX), "region data length does not match its extents")?;
        blob_bounds(img, r.blob, r.data_off, r.data_len)?;
        // The kernel's regions are moved, file-shared ones map the file: no saved pages.
        let no_data = kind.is_kernel() || kind == RegionKind::FileShared || r.flags & REGION_DATA_IN_FD != 0;
        ensure(!no_data || r.extents == 0, "a region of this kind carries saved data")?;
        file_id(img, &r.file)?;
        if matches!(kind, RegionKind::FilePrivate | RegionKind::FileShared | RegionKind::SharedObject | RegionKind::SysvShm) {
            let off_ok = r.file_off.is_multiple_of(PAGE) && r.file_off.checked_add(r.end - r.start).is_some_and(|e| e <= FILE_MAX);
            ensure(off_ok, "a file mapping's offset is misaligned or too large")?;
        }
        if kind.has_file() {
            ensure(absolute(img, r.file.path), "a file mapping has no absolute path")?;
        }
        let p = img.str(r.file.path);
        if kind == RegionKind::SharedObject && p.starts_with(b"/dev/shm/") {
            ensure(in_dev_shm(p), "a /dev/shm path leaves /dev/shm")?;
        }
        if kind == RegionKind::SysvShm {
            let fits = sysv_key(p).is_some()
                && r.file.ino <= i32::MAX as u64
                && r.file.size.checked_next_multiple_of(PAGE).is_some_and(|size| r.file_off + (r.end - r.start) <= size);
            ensure(fits, "a System V segment's attach does not fit the segment")?;
        }
    }
    Ok(())
}

fn region_flags(r: &RegionRecord, kind: RegionKind) -> Check {
    let known = REGION_BY_PROGRAM | REGION_DATA_IN_FD | REGION_WHOLE | REGION_NORESERVE | REGION_DELETED | REGION_ADVICE.iter().fold(0, |a, (bit, _)| a | bit);
    let fits = r.flags & !known == 0
        && (r.flags & (REGION_DATA_IN_FD | REGION_DELETED) == 0 || kind == RegionKind::SharedObject)
        && (r.flags & REGION_WHOLE == 0 || kind == RegionKind::FilePrivate);
    ensure(fits, "a region's flags do not fit its kind")
}

/// The index of the region that holds `addr` (regions are ascending and disjoint:
/// binary search).
fn region_at(img: &Image, addr: u64) -> Option<usize> {
    let (mut lo, mut hi) = (0, img.count(Table::Regions));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let r = img.region(mid);
        if addr < r.start {
            hi = mid;
        } else if addr >= r.end {
            lo = mid + 1;
        } else {
            return Some(mid);
        }
    }
    None
}

/// The protection a region has once restored: the kernel's regions are moved as they
/// are (`[vdso]` executable, the others read-only), whatever their record says.
fn real_prot(r: &RegionRecord) -> u32 {
    match RegionKind::from_u32(r.kind) {
        Some(RegionKind::Vdso) => PROT_READ | PROT_EXEC,
        Some(k) if k.is_kernel() => PROT_READ,
        _ => r.prot,
    }
}

/// Whether `[addr, addr + len)` (`len` ≥ 1) lies in saved regions, adjacent ones
/// included, each with every bit of `prot`.
fn covered(img: &Image, addr: u64, len: u64, prot: u32) -> bool {
    let (Some(end), Some(mut i)) = (addr.checked_add(len.max(1)), region_at(img, addr)) else { return false };
    let mut at = img.region(i).start;
    loop {
        let r = img.region(i);
        if r.start != at || real_prot(&r) & prot != prot {
            return false;
        }
        if r.end >= end {
            return true;
        }
        (at, i) = (r.end, i + 1);
        if i == img.count(Table::Regions) {
            return false;
        }
    }
}

// ---- Blobs ----

/// A record's blob: inside the data area, page aligned, with its padding.
fn blob_bounds(img: &Image, blob: u32, off: u64, len: u64) -> Check {
    if blob == u32::MAX {
        return ensure(len == 0, "data without a blob");
    }
    let h = &img.header;
    let end = len.checked_next_multiple_of(PAGE).and_then(|l| off.checked_add(l));
    let ok = len > 0 && off.is_multiple_of(PAGE) && off >= h.data_off && end.is_some_and(|e| e <= h.trailer_off);
    ensure(ok, "saved data out of bounds")
}

/// The blob of record `i` of the regions, then the descriptors: (index, file range).
fn blob_of(img: &Image, i: usize) -> Option<(u32, (u64, u64))> {
    let regions = img.count(Table::Regions);
    let (blob, off, len) = if i < regions {
        let r = img.region(i);
        (r.blob, r.data_off, r.data_len)
    } else {
        let f = img.fd(i - regions);
        (f.blob, f.data_off, f.data_len)
    };
    (blob != u32::MAX).then(|| (blob, (off, off.saturating_add(len.div_ceil(PAGE).saturating_mul(PAGE)))))
}

/// Every blob belongs to exactly one record: they are numbered in record order (regions,
/// then descriptors), as the writer numbers them, all of 0..B. And no two overlap.
fn blobs(img: &Image) -> Check {
    let n = img.count(Table::Regions) + img.count(Table::Fds);
    let mut next = 0u64;
    for i in 0..n {
        if let Some((blob, _)) = blob_of(img, i) {
            ensure(blob as u64 == next, "blob numbers do not follow the records")?;
            next += 1;
        }
    }
    ensure(next == img.header.blobs, "a blob belongs to no record")?;
    ensure(disjoint(n, |i| blob_of(img, i).map(|b| b.1)), "saved data overlaps other saved data")
}

/// Whether the ranges `span(0..n)` (`None`: no range; each `[start, end)` non-empty)
/// are pairwise disjoint. Without allocating: ranges in ascending or descending order
/// take one pass; others are sorted `WINDOW` at a time (⌈n / WINDOW⌉ passes).
pub(crate) fn disjoint(n: usize, span: impl Fn(usize) -> Option<(u64, u64)>) -> bool {
    const WINDOW: usize = 128;
    let (mut up, mut down) = (true, true);
    let mut prev: Option<(u64, u64)> = None;
    for (s, e) in (0..n).filter_map(&span) {
        if let Some((ps, pe)) = prev {
            up &= s >= pe;
            down &= e <= ps;
        }
        prev = Some((s, e));
    }
    if up || down {
        return true;
    }
    // Each pass takes the WINDOW lowest starts above the last one taken, sorted.
    let mut win = [(0u64, 0u64); WINDOW];
    let mut last: Option<(u64, u64)> = None;
    loop {
        let mut len = 0;
        for (s, e) in (0..n).filter_map(&span) {
            if last.is_some_and(|(ls, _)| s <= ls) {
                continue; // taken by an earlier pass (an equal start would have met it there)
            }
            let at = match win[..len].binary_search_by_key(&s, |w| w.0) {
                Ok(_) => return false, // two ranges start at the same place
                Err(at) => at,
            };
            if at == WINDOW {
                continue;
            }
            len = (len + 1).min(WINDOW);
            win.copy_within(at..len - 1, at + 1);
            win[at] = (s, e);
        }
        if len == 0 {
            return true;
        }
        let mut end = last.map_or(0, |l| l.1);
        for &(s, e) in &win[..len] {
            if s < end {
                return false;
            }
            end = e;
        }
        last = Some(win[len - 1]);
    }
}

// ---- Threads ----

fn threads(img: &Image) -> Check {
    let n = img.count(Table::Threads);
    ensure(n <= MAX_THREADS, "the image has more threads than mig can restore (4096)")?;
    for i in 0..n {
        let t = img.thread(i);
        // Where each thread resumes, and what the restore writes for it (its tid).
        ensure(covered(img, t.ctx.rip, 1, PROT_EXEC), "a thread's resume address is outside the saved code")?;
        ensure(covered(img, t.ctx.rsp, 1, PROT_WRITE), "a thread's stack pointer is outside the saved writable memory")?;
        ensure(t.fs_base == 0 || covered(img, t.fs_base, 1, 0), "a thread's TLS base is outside the saved memory")?;
        ensure(t.clear_tid == 0 || covered(img, t.clear_tid, 4, PROT_WRITE), "a thread's tid address is outside the saved writable memory")?;
        // What each thread registers again once resumed.
        ensure(t.robust_head == 0 || covered(img, t.robust_head, t.robust_len, 0), "a thread's robust futex list is outside the saved memory")?;
        ensure(t.rseq_len == 0 || covered(img, t.rseq_addr, t.rseq_len as u64, 0), "a thread's rseq area is outside the saved memory")?;
        let altstack = t.altstack_flags & SS_DISABLE != 0 || covered(img, t.altstack_sp, t.altstack_size, 0);
        ensure(altstack, "a thread's alternate signal stack is outside the saved memory")?;
        sched(&t.sched)?;
    }
    Ok(())
}

/// A policy `sched_setattr` knows, with a priority it takes (real-time ones 1..=99, the
/// others 0), a nice value and only the reset-on-fork flag.
fn sched(s: &ThreadSched) -> Check {
    const OTHER: u32 = 0;
    const FIFO: u32 = 1;
    const RR: u32 = 2;
    const BATCH: u32 = 3;
    const IDLE: u32 = 5;
    const RESET_ON_FORK: u32 = 1;
    let priority = match s.policy {
        FIFO | RR => (1..=99).contains(&s.priority),
        OTHER | BATCH | IDLE => s.priority == 0,
        _ => false,
    };
    ensure(priority && (-20..=19).contains(&s.nice) && s.flags & !RESET_ON_FORK == 0, "a thread's scheduling policy is out of range")
}

/// `sigaltstack`'s flag for no alternate stack.
const SS_DISABLE: u32 = 2;

// ---- The process ----

fn process(img: &Image) -> Check {
    let p = img.process();
    file_id(img, &p.exe)?;
    ensure(absolute(img, p.exe.path), "the image names no executable")?;
    path(img, p.cwd)?;
    ensure(p.cwd.len == 0 || absolute(img, p.cwd), "the working directory is not an absolute path")?;
    mm(&p.mm)?;
    str_in_bounds(img, p.auxv)?;
    str_in_bounds(img, p.warnings)?;
    let auxv = img.str(p.auxv);
    // Pairs of (type, value), the last AT_NULL, as /proc/self/auxv has them.
    let ends = auxv.len() >= 16 && auxv[auxv.len() - 16..auxv.len() - 8] == [0; 8];
    ensure(auxv.len().is_multiple_of(16) && auxv.len() <= AUXV_MAX && (auxv.is_empty() || ends), "the auxiliary vector is malformed")?;
    ensure(p.comm.contains(&0), "the process name is not terminated")?;
    ensure(p.umask & !0o777 == 0, "the umask is out of range")?;
    ensure(p.rlimits.iter().all(|l| l.cur <= l.max), "a resource limit's soft value exceeds its hard value")?;
    let timeval = |s: i64, us: i64| s >= 0 && (0..1_000_000).contains(&us);
    let itimers = p.itimers.iter().all(|t| timeval(t.interval_sec, t.interval_usec) && timeval(t.value_sec, t.value_usec));
    ensure(itimers, "an interval timer's time is out of range")?;
    let a = p.attrs;
    let flags = a.child_subreaper <= 1
        && a.thp_disable <= 1
        && a.no_new_privs <= 1
        && a.dumpable <= 2
        && a.pdeathsig < 65
        && a.flags & !(ATTR_CWD_DELETED | ATTR_MLOCK_FUTURE | ATTR_MLOCK_ONFAULT) == 0;
    let membarrier = a.membarrier & !MEMBARRIER_REGISTRATIONS == 0;
    ensure((-1000..=1000).contains(&a.oom_score_adj) && flags && a.seccomp <= 2 && membarrier, "a process attribute is out of range")?;
    seccomp(img, &a)
}

/// The saved seccomp filters: as many as said, no more than the process ran under,
/// each of 1 to `SECCOMP_MAX_INSNS` whole instructions with only the flags that come back.
fn seccomp(img: &Image, a: &Attributes) -> Check {
    str_in_bounds(img, a.seccomp_programs)?;
    let mut n = 0u32;
    for e in seccomp_entries(img.str(a.seccomp_programs)) {
        let ok = e.is_some_and(|(flags, insns)| {
            flags & !SECCOMP_SAVED_FLAGS == 0 && !insns.is_empty() && insns.len().is_multiple_of(8) && insns.len() <= 8 * SECCOMP_MAX_INSNS
        });
        ensure(ok, "a saved seccomp filter is malformed")?;
        n += 1;
    }
    ensure(n == a.seccomp_saved && a.seccomp_saved <= a.seccomp_filters && (n == 0 || a.seccomp == 2), "a saved seccomp filter is malformed")
}

/// What `PR_SET_MM_MAP` accepts: every address in the user address space, each range
/// in order.
fn mm(m: &MmFields) -> Check {
    let all = [m.start_code, m.end_code, m.start_data, m.end_data, m.start_brk, m.brk, m.start_stack, m.arg_start, m.arg_end, m.env_start, m.env_end];
    let ok = all.iter().all(|a| (MIN_ADDR..USER_TOP).contains(a))
        && m.start_code < m.end_code
        && m.start_data <= m.end_data
        && m.start_brk <= m.brk
        && m.arg_start <= m.arg_end
        && m.env_start <= m.env_end;
    ensure(ok, "the process's memory layout (mm fields) is out of range")
}

// ---- Descriptors ----

/// The record of descriptor `fd` (the table is in ascending order: binary search).
fn fd_record(img: &Image, fd: i32) -> Option<FdRecord> {
    let (mut lo, mut hi) = (0, img.count(Table::Fds));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let f = img.fd(mid);
        match f.fd.cmp(&fd) {
            core::cmp::Ordering::Less => lo = mid + 1,
            core::cmp::Ordering::Greater => hi = mid,
            core::cmp::Ordering::Equal => return Some(f),
        }
    }
    None
}

fn fds(img: &Image) -> Check {
    let mut prev = -1;
    for i in 0..img.count(Table::Fds) {
        let f = img.fd(i);
        ensure(f.fd > prev, "descriptor numbers are not unique and ascending")?;
        prev = f.fd;
        ensure(f.fd < MAX_FD, "a descriptor number is out of range")?;
        ensure(f.in_flight <= 1, "a descriptor's in-flight mark is out of range")?;
        let kind = FdKind::from_u32(f.kind).ok_or(ImageError::Layout("unknown descriptor kind"))?;
        // A process of a job: a standard descriptor may be a pipe to another one.
        let job_pipe = kind == FdKind::Pipe && img.header.flags & HEADER_JOB_MEMBER != 0;
        ensure(f.fd > 2 || kind == FdKind::Tty || job_pipe, "a standard descriptor (0-2) is recorded that is not a terminal (or, in a job, a pipe)")?;
        blob_bounds(img, f.blob, f.data_off, f.data_len)?;
        file_id(img, &f.file)?;
        str_in_bounds(img, f.extra)?;
        if f.dup_of != -1 {
            let original = fd_record(img, f.dup_of).filter(|o| o.fd < f.fd && o.dup_of == -1);
            ensure(original.is_some(), "a descriptor is a copy of one that is not before it in the table")?;
            ensure(f.data_len == 0, "a copy of a descriptor carries saved data")?;
        }
        // Datagrams queued, or a TCP connection's state and queues.
        let socket_blob = kind == FdKind::Socket && (f.params[1] == SOCK_DGRAM || f.params[5] > 0);
        let carries = socket_blob
            || matches!(kind, FdKind::Deleted | FdKind::Pipe | FdKind::Fifo | FdKind::SocketPair | FdKind::Memfd | FdKind::Shm | FdKind::PosixMq)
            || (kind == FdKind::File && f.params[0] == 1 && f.file.mode & 0o170000 == 0o100000)
            || (kind == FdKind::Tty && f.params[0] == TTY_PTY_MASTER as u64);
        ensure(carries || f.data_len == 0, "a descriptor of this kind carries saved data")?;
        fd_kind(img, &f, kind)?;
    }
    shared_objects(img)
}

fn fd_kind(img: &Image, f: &FdRecord, kind: FdKind) -> Check {
    let p = f.params;
    let int = |v: u64| v <= i32::MAX as u64;
    match kind {
        FdKind::File | FdKind::Deleted | FdKind::Device => {
            ensure(absolute(img, f.file.path), "a descriptor's path is not absolute")?;
            ensure(kind != FdKind::File || p[0] <= 1, "a file's saved contents are marked wrong")?;
            locks(img, f)
        }
        FdKind::Shm => ensure(in_dev_shm(img.str(f.file.path)), "a /dev/shm path leaves /dev/shm").and_then(|()| locks(img, f)),
        FdKind::Memfd => ensure(int(p[0]), "a memfd's seals are out of range").and_then(|()| locks(img, f)),
        FdKind::Pipe => ensure(int(p[0]) && (p[0] == 0 || f.data_len <= p[0]), "a pipe's capacity is out of range"),
        FdKind::Fifo => {
            ensure(absolute(img, f.file.path), "a descriptor's path is not absolute")?;
            ensure(int(p[0]) && (p[0] == 0 || f.data_len <= p[0]) && p[1] <= 1, "a FIFO's capacity is out of range")
        }
        FdKind::SocketPair => {
            let ok = p[0] == AF_UNIX && matches!(p[1], SOCK_STREAM | SOCK_DGRAM | SOCK_SEQPACKET) && int(p[3]) && p[4] <= 3 && p[7] <= 3;
            ensure(ok, "a socket pair's domain or type is out of range")
        }
        FdKind::Socket => socket(f),
        FdKind::Epoll => epoll(img, f),
        FdKind::EventFd => ensure(p[0] < u64::MAX && p[1] <= 1, "an eventfd's count is out of range"),
        FdKind::TimerFd => {
            let clock = matches!(p[0], 0 | 1 | 7 | 8 | 9); // REALTIME, MONOTONIC, BOOTTIME, the _ALARMs
            let ok = clock && p[2] <= i64::MAX as u64 && p[3] < NSEC && p[4] <= i64::MAX as u64 && p[5] < NSEC;
            ensure(ok, "a timerfd's clock or time is out of range")
        }
        FdKind::Inotify => inotify(img, f),
        FdKind::Tty => {
            ensure(f.extra.len as usize == TERMIOS_LEN, "a terminal's saved modes are malformed")?;
            ensure(p[0] <= 2 && p[1] <= u32::MAX as u64, "a terminal's role is out of range")?;
            ensure(p[3] <= f.data_len, "a pseudo-terminal's waiting bytes are split out of range")
        }
        FdKind::Pidfd => ensure(matches!(p[0], 1..=3) && p[1] <= i32::MAX as u64 && (p[0] == 3) == (p[1] != 0), "a pidfd's process is out of range"),
        FdKind::PosixMq => {
            let name = img.str(f.file.path);
            let named = name.len() >= 2 && name.len() <= 256 && name.first() == Some(&b'/') && !name[1..].contains(&b'/') && !name.contains(&0);
            ensure(named, "a message queue's name is not /name")?;
            ensure((1..=1 << 16).contains(&p[0]) && (1..=1 << 24).contains(&p[1]) && p[2] <= 1, "a message queue's attributes are out of range")
        }
        FdKind::Unsupported | FdKind::Reset | FdKind::SignalFd => Ok(()),
    }
}

/// The locks of a file kind's descriptor: whole entries of a known kind, ranges a
/// `struct flock` can hold, none on a copy.
fn locks(img: &Image, f: &FdRecord) -> Check {
    let kind = FdKind::from_u32(f.kind).ok_or(ImageError::Layout("unknown descriptor kind"))?;
    let (locks, segments) = kind.split_extra(f);
    if kind.saves_file() {
        data_segments(img, f, segments)?;
    }
    ensure((locks.len as usize).is_multiple_of(size_of::<LockEntry>()), "a descriptor's locks are malformed")?;
    ensure(f.dup_of == -1 || f.extra.len == 0, "a copy of a descriptor records locks")?;
    for l in img.records::<LockEntry>(locks) {
        let kind = matches!(l.kind, LOCK_POSIX | LOCK_OFD) || (matches!(l.kind, LOCK_FLOCK | LOCK_LEASE) && l.start == 0 && l.len == 0);
        let range = l.start <= i64::MAX as u64 && l.len <= i64::MAX as u64 && l.start.checked_add(l.len).is_some_and(|e| e <= i64::MAX as u64);
        ensure(kind && l.write <= 1 && range, "a descriptor's lock is of an unknown kind or out of range")?;
    }
    Ok(())
}

/// A saved file's owner (within the ids' range), and its data runs if it was sparse:
/// as many as `params` says, in order, apart, inside the file, their lengths adding up
/// to the blob's; without runs, the blob is the file.
fn data_segments(img: &Image, f: &FdRecord, segments: StrRef) -> Check {
    ensure(OWNER_PARAMS.iter().all(|&i| f.params[i] <= u32::MAX as u64 + 1), "a saved file's owner is out of range")?;
    let n = f.params[SEGMENTS_PARAM];
    if n == 0 {
        return ensure(f.dup_of != -1 || f.data_len == f.file.size, "a saved file's contents do not match its size");
    }
    ensure(segments.len as u64 == n * size_of::<Segment>() as u64, "a saved file's data runs do not fit its record")?;
    let (mut end, mut total) = (0u64, 0u64);
    for s in img.records::<Segment>(segments) {
        let last = s.off.checked_add(s.len).filter(|&e| s.len > 0 && s.off >= end && e <= f.file.size);
        ensure(last.is_some(), "a saved file's data runs overlap or leave the file")?;
        end = last.unwrap_or(end);
        total += s.len;
    }
    ensure(total == f.data_len, "a saved file's data runs do not add up to its saved data")
}

const NSEC: u64 = 1_000_000_000;
const AF_UNIX: u64 = 1;
const AF_INET: u64 = 2;
const AF_INET6: u64 = 10;
const SOCK_STREAM: u64 = 1;
const SOCK_DGRAM: u64 = 2;
const SOCK_RAW: u64 = 3;
const SOCK_SEQPACKET: u64 = 5;
/// `sizeof(struct sockaddr_storage)`.
const SOCKADDR_MAX: u64 = 128;

fn socket(f: &FdRecord) -> Check {
    let p = f.params;
    let kind = matches!(p[0], AF_UNIX | AF_INET | AF_INET6) && matches!(p[1], SOCK_STREAM | SOCK_DGRAM | SOCK_RAW | SOCK_SEQPACKET);
    let numbers = p[2] <= i32::MAX as u64 && p[3] <= i32::MAX as u64 && p[6] & !SOCKOPTS == 0;
    ensure(kind && numbers, "a socket's domain, type or settings are out of range")?;
    // A classic BPF program has at most BPF_MAXINSNS (4096) instructions.
    let lens = p[4] <= SOCKADDR_MAX && p[5] <= SOCKADDR_MAX && p[7] <= 4096 && SocketParams::decode(&p).extra_len() == f.extra.len as u64;
    ensure(lens, "a socket's addresses do not fit its record")?;
    // A connected stream socket is a TCP connection, put back in repair mode (`connect`
    // there never waits); other connected streams come back reset (kind 7).
    let inet_stream = matches!(p[0], AF_INET | AF_INET6) && p[1] == SOCK_STREAM;
    let tcp = inet_stream && f.data_len >= size_of::<TcpConn>() as u64;
    let connecting = p[6] & SOCKOPT_CONNECTING != 0;
    ensure(!connecting || (inet_stream && p[5] > 0 && f.data_len == 0), "a connection being made is not a TCP socket with a peer")?;
    ensure(p[5] == 0 || p[1] == SOCK_DGRAM || tcp || connecting, "a connected socket that is neither a datagram socket nor a TCP connection")
}

fn epoll(img: &Image, f: &FdRecord) -> Check {
    ensure((f.extra.len as usize).is_multiple_of(size_of::<EpollEntry>()), "an epoll set's registrations are malformed")?;
    for e in img.records::<EpollEntry>(f.extra) {
        // The standard descriptors are the restoring process's own; others are in the table.
        let target = fd_record(img, e.fd);
        ensure((0..=2).contains(&e.fd) || target.is_some(), "an epoll registration names a descriptor that is not in the image")?;
        let itself = e.fd == f.fd || target.is_some_and(|t| t.dup_of == f.fd);
        ensure(!itself, "an epoll set watches itself")?;
    }
    // A descriptor is registered once per set (the kernel refuses a second time);
    // registrations through a copy of one are each their own.
    let entries = img.str(f.extra);
    let n = entries.len() / size_of::<EpollEntry>();
    let copies = img.records::<EpollEntry>(f.extra).filter(|e| e.events & EPOLL_THROUGH_COPY != 0).count();
    let fd = |i| {
        read_record::<EpollEntry>(entries, i)
            .map(|e| if e.events & EPOLL_THROUGH_COPY != 0 { ((1 << 40) + i as u64, (1 << 40) + i as u64 + 1) } else { (e.fd as u64, e.fd as u64 + 1) })
    };
    ensure(copies <= 4096 && n <= img.count(Table::Fds) + 3 + copies && disjoint(n, fd), "an epoll set registers a descriptor twice")
}

fn inotify(img: &Image, f: &FdRecord) -> Check {
    ensure((f.extra.len as usize).is_multiple_of(size_of::<InotifyWatch>()), "an inotify instance's watches are malformed")?;
    for w in img.records::<InotifyWatch>(f.extra) {
        path(img, w.path)?;
        ensure(w.wd >= 1, "an inotify watch number is out of range")?;
    }
    Ok(())
}

/// A shared mapping whose contents a descriptor saves (`REGION_DATA_IN_FD`) needs that
/// descriptor: an original of the same file, of a kind that saves its contents.
fn shared_objects(img: &Image) -> Check {
    let fds = img.count(Table::Fds);
    let mut found = None; // the last file found: a file's mappings are usually adjacent
    for i in 0..img.count(Table::Regions) {
        let r = img.region(i);
        let key = (r.file.dev, r.file.ino);
        if r.flags & REGION_DATA_IN_FD == 0 || found == Some(key) {
            continue;
        }
        let saves = |f: &FdRecord| f.dup_of == -1 && FdKind::from_u32(f.kind).is_some_and(FdKind::saves_file) && (f.file.dev, f.file.ino) == key;
        ensure((0..fds).any(|j| saves(&img.fd(j))), "a shared mapping's contents are in a descriptor that is not in the image")?;
        found = Some(key);
    }
    Ok(())
}

// ---- POSIX timers ----

fn timers(img: &Image) -> Check {
    let n = img.count(Table::Timers);
    for i in 0..n {
        let t = img.timer(i);
        ensure(t.id >= 0, "a POSIX timer id is out of range")?;
        // Clocks timer_create takes: REALTIME, MONOTONIC, the CPU-time ones, BOOTTIME,
        // the _ALARMs, TAI; negative: another process's or thread's CPU clock.
        let clock = matches!(t.clock, 0 | 1 | 2 | 3 | 7 | 8 | 9 | 11) || (t.clock < 0 && t.clock & 3 != 3);
        let signal = match t.notify {
            SIGEV_NONE => (0..=NSIG as i32).contains(&t.signo),
            SIGEV_SIGNAL | SIGEV_THREAD_ID => (1..=NSIG as i32).contains(&t.signo),
            _ => false,
        };
        ensure(clock && signal, "a POSIX timer's clock, notification or signal is out of range")?;
        let spec = |s: i64, ns: i64| s >= 0 && (0..NSEC as i64).contains(&ns);
        ensure(spec(t.spec[0], t.spec[1]) && spec(t.spec[2], t.spec[3]), "a POSIX timer's time is out of range")?;
    }
    let id = |i: usize| {
        let id = img.timer(i).id as u64;
        Some((id, id + 1))
    };
    ensure(disjoint(n, id), "two POSIX timers have the same id")
}

const SIGEV_SIGNAL: i32 = 0;
const SIGEV_NONE: i32 = 1;
const SIGEV_THREAD_ID: i32 = 4;

#[cfg(test)]
mod tests {
    extern crate std;
    use super::disjoint;
    use std::vec::Vec;

    /// `disjoint` against sorting, on ranges in every order and more than a window of them.
    #[test]
    fn disjoint_agrees_with_sorting() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut seen = [0; 2];
        for case in 0..3000 {
            let n = [0, 1, 2, 5, 127, 128, 129, 300, 1000][case % 9];
            let spread = [2, 10, 1000][case / 9 % 3];
            let mut v: Vec<(u64, u64)> = (0..n)
                .map(|_| {
                    let s = next(n as u64 * spread + 1);
                    (s, s + 1 + next(4))
                })
                .collect();
            if case % 4 == 0 {
                v.sort_unstable();
            } else if case % 4 == 1 {
                v.sort_unstable_by(|a, b| b.cmp(a));
            }
            // Records without a range in between.
            let mut holes: Vec<Option<(u64, u64)>> = Vec::new();
            for &r in &v {
                if next(3) == 0 {
                    holes.push(None);
                }
                holes.push(Some(r));
            }
            let mut sorted = v.clone();
            sorted.sort_unstable();
            let want = sorted.windows(2).all(|w| w[0].1 <= w[1].0);
            assert_eq!(disjoint(holes.len(), |i| holes[i]), want, "case {case}: {v:?}");
            seen[want as usize] += 1;
        }
        assert!(seen[0] > 100 && seen[1] > 100, "both answers tested: {seen:?}");
    }
}
