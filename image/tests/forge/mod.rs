//! Forging images for the reader's fuzz target (`tests/fuzz_reader.rs`, and
//! `fuzz/fuzz_targets/reader.rs` for cargo-fuzz): a builder of valid images on the
//! `Layout` API, a structure-aware mutator, resealing of every CRC, and an independent
//! statement (with allocation, written apart from `check.rs`) of the invariants the
//! restore relies on for every image `Image::open` accepts.
#![allow(dead_code)]

use mig_image::layout::{align_up, seal_header};
use mig_image::*;
use std::collections::{HashMap, HashSet};

// ---- A small deterministic random number generator (splitmix64) ----

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

// ---- Building valid images ----

const P: u64 = PAGE;

struct Region {
    rec: RegionRecord,
    extents: Vec<Extent>,
}

/// What `build` made, for the mutator to aim at.
pub struct Built {
    pub bytes: Vec<u8>,
}

struct Strings(Vec<u8>);

impl Strings {
    fn add(&mut self, b: &[u8]) -> StrRef {
        let off = self.0.len() as u32;
        self.0.extend_from_slice(b);
        StrRef { off, len: b.len() as u32 }
    }
}

fn file_id(path: StrRef, rng: &mut Rng) -> FileId {
    let mut f =
        FileId { path, size: rng.below(1 << 20), mtime_ns: rng.next() as i64 >> 2, dev: 0x803, ino: rng.below(1 << 30), mode: 0o100644, ..FileId::default() };
    f.build_id_len = rng.below(21) as u32;
    for (i, b) in f.build_id.iter_mut().enumerate().take(f.build_id_len as usize) {
        *b = i as u8 ^ 0x5a;
    }
    f
}

fn region(start: u64, pages: u64, prot: u32, kind: RegionKind) -> Region {
    let rec = RegionRecord {
        start,
        end: start + pages * P,
        prot,
        kind: kind as u32,
        flags: 0,
        first_extent: 0,
        extents: 0,
        blob: u32::MAX,
        file_off: 0,
        file: FileId::default(),
        data_off: 0,
        data_len: 0,
    };
    Region { rec, extents: vec![] }
}

/// Random runs of saved pages in a region of `pages` pages (`all`: one run of all).
fn extents(rng: &mut Rng, pages: u64, all: bool) -> Vec<Extent> {
    if all {
        return vec![Extent { first_page: 0, pages }];
    }
    let mut v = vec![];
    let mut at = rng.below(2);
    while at < pages && v.len() < 6 {
        let n = 1 + rng.below((pages - at).min(4));
        v.push(Extent { first_page: at, pages: n });
        at += n + 1 + rng.below(3);
    }
    v
}

fn fd(n: i32, kind: FdKind, path: StrRef, rng: &mut Rng) -> FdRecord {
    FdRecord {
        fd: n,
        kind: kind as u32,
        flags: 2,
        fd_flags: rng.below(2) as u32,
        offset: 0,
        file: FileId { build_id_len: 0, ..file_id(path, rng) },
        data_off: 0,
        data_len: 0,
        blob: u32::MAX,
        open_flags: rng.next() as u32,
        dup_of: -1,
        in_flight: 0,
        extra: StrRef::default(),
        params: [0; 8],
    }
}

/// A valid image (one that `Image::open` and `Image::verify` must accept), varied by
/// `rng`: counts of regions, extents, threads, descriptors and timers, sizes of saved
/// data, and blob placement in file order or shuffled as a pre-copied image has them.
pub fn build(rng: &mut Rng) -> Built {
    let mut s = Strings(vec![]);
    let exe = s.add(b"/usr/bin/prog");
    let libc = s.add(b"/usr/lib/x86_64-linux-gnu/libc.so.6");
    let memfd = s.add(b"/memfd:buf");
    let shm = s.add(b"/dev/shm/seg");
    let cwd = s.add(b"/home/u");
    let mut auxv = vec![];
    for (t, v) in [(33u64, 0x7ffd_0000_0000u64), (16, 0xbfebfbff), (6, 4096), (3, 0x5555_0000_0040), (9, 0x5555_0000_1000), (0, 0)] {
        auxv.extend_from_slice(&t.to_le_bytes());
        auxv.extend_from_slice(&v.to_le_bytes());
    }
    let auxv = s.add(&auxv);

    // Regions, ascending.
    let mut regions: Vec<Region> = vec![];
    let mut push = |r: Region| regions.push(r);
    let exe_base = 0x5555_0000_0000u64;
    let mut r = region(exe_base, 1, PROT_READ, RegionKind::FilePrivate);
    r.rec.file = file_id(exe, rng);
    push(r);
    let code = exe_base + P;
    let mut r = region(code, 2, PROT_READ | PROT_EXEC, RegionKind::FilePrivate);
    (r.rec.file, r.rec.file_off) = (file_id(exe, rng), P);
    push(r);
    let data = exe_base + 3 * P;
    let mut r = region(data, 2, PROT_READ | PROT_WRITE, RegionKind::FilePrivate);
    (r.rec.file, r.rec.file_off) = (file_id(exe, rng), 3 * P);
    r.extents = extents(rng, 2, false);
    push(r);
    let heap = 0x5556_0000_0000u64;
    let heap_pages = 1 + rng.below(4);
    let mut r = region(heap, heap_pages, PROT_READ | PROT_WRITE, RegionKind::Heap);
    r.extents = extents(rng, heap_pages, false);
    push(r);
    // Anonymous regions with TLS of the main thread first.
    let tls = 0x7f00_0000_0000u64;
    let mut r = region(tls, 2, PROT_READ | PROT_WRITE, RegionKind::Anon);
    r.extents = extents(rng, 2, true);
    push(r);
    let mut at = tls + 4 * P;
    for _ in 0..rng.below(12) {
        let pages = 1 + rng.below(3);
        let kind = *rng.pick(&[RegionKind::Anon, RegionKind::Orphan, RegionKind::SharedAnon]);
        let prot = *rng.pick(&[0, PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE | PROT_EXEC]);
        let mut r = region(at, pages, prot, kind);
        r.extents = extents(rng, pages, kind != RegionKind::Anon);
        push(r);
        at += (pages + rng.below(3)) * P;
    }
    let memfd_ino = 0x4242;
    let mut r = region(at, 4, PROT_READ | PROT_WRITE, RegionKind::SharedObject);
    (r.rec.flags, r.rec.file) = (REGION_DATA_IN_FD, FileId { path: memfd, dev: 1, ino: memfd_ino, ..FileId::default() });
    push(r);
    at += 4 * P;
    let mut r = region(at, 2, PROT_READ | PROT_WRITE, RegionKind::SharedObject);
    (r.rec.file, r.rec.file_off) = (FileId { path: shm, dev: 2, ino: 0x77, ..FileId::default() }, 2 * P);
    r.extents = extents(rng, 2, true);
    push(r);
    at += 3 * P;
    let portable = rng.chance(30);
    let mut r = region(at, 3, PROT_READ | PROT_EXEC, RegionKind::FilePrivate);
    (r.rec.file, r.rec.file_off) = (file_id(libc, rng), 0x26 * P);
    if portable {
        r.rec.flags = REGION_WHOLE;
        r.extents = extents(rng, 3, true);
    }
    push(r);
    at += 4 * P;
    // One stack region per further thread.
    let threads = 1 + rng.below(4) as usize;
    let mut thread_stacks = vec![];
    for _ in 1..threads {
        let mut r = region(at, 4, PROT_READ | PROT_WRITE, RegionKind::Anon);
        r.extents = extents(rng, 4, true);
        thread_stacks.push(at);
        push(r);
        at += 5 * P;
    }
    let stack = 0x7ffd_0000_0000u64;
    let mut r = region(stack, 8, PROT_READ | PROT_WRITE, RegionKind::Stack);
    r.extents = vec![Extent { first_page: 4, pages: 4 }];
    push(r);
    push(region(stack + 10 * P, 4, PROT_READ, RegionKind::Vvar));
    push(region(stack + 14 * P, 2, PROT_READ | PROT_EXEC, RegionKind::Vdso));

    // Threads: resume in the code, stacks, TLS in memory saved with them.
    let mut ts = vec![];
    for t in 0..threads {
        let (sp, tls_at) = if t == 0 { (stack + 6 * P + 0x100, tls + 0x800) } else { (thread_stacks[t - 1] + 2 * P, thread_stacks[t - 1] + 3 * P + 0x100) };
        let mut th = ThreadRecord::ZERO;
        th.tid = 1000 + t as u32;
        th.ctx.rip = code + 0x123 + t as u64;
        th.ctx.rsp = sp;
        th.ctx.rbx = rng.next();
        th.fs_base = tls_at;
        th.clear_tid = tls_at + 0x2d0;
        th.robust_head = tls_at + 0x2e0;
        th.robust_len = 24;
        (th.rseq_len, th.rseq_addr, th.rseq_sig) = (32, (tls_at + 0x920) & !31, 0x53053053);
        th.altstack_flags = 2;
        if rng.chance(30) {
            (th.altstack_flags, th.altstack_sp, th.altstack_size) = (0, tls, 2 * P);
        }
        ts.push(th);
    }

    // Descriptors, ascending.
    let mut fds: Vec<FdRecord> = vec![];
    let none = StrRef::default();
    if rng.chance(50) {
        let mut f = fd(0, FdKind::Tty, s.add(b"/dev/pts/0"), rng);
        f.extra = s.add(&[7u8; TERMIOS_LEN]);
        fds.push(f);
    }
    let pipe = s.add(b"pipe:[100]");
    let mut f = fd(3, FdKind::Pipe, pipe, rng);
    (f.flags, f.params[0], f.data_len) = (0, 65536, 1 + rng.below(5000));
    fds.push(f);
    let mut f = fd(4, FdKind::Pipe, pipe, rng);
    (f.flags, f.params[0]) = (1, 65536);
    fds.push(f);
    let (a, b) = (s.add(b"socket:[200]"), s.add(b"socket:[201]"));
    let ty = *rng.pick(&[1u64, 2, 5]);
    let mut f = fd(5, FdKind::SocketPair, a, rng);
    (f.params, f.data_len) = ([1, ty, 201, 212992, 0, 0, 0, 0], rng.below(3000));
    fds.push(f);
    let mut f = fd(6, FdKind::SocketPair, b, rng);
    f.params = [1, ty, 200, 212992, 0, 0, 0, 0];
    fds.push(f);
    let mut f = fd(7, FdKind::Socket, s.add(b"socket:[202]"), rng);
    let mut addr = vec![2u8, 0, 0x1f, 0x90, 127, 0, 0, 1];
    addr.resize(16, 0);
    let opts = SockOpts {
        rcvbuf: 131072,
        sndbuf: 16384,
        linger_on: 1,
        linger_secs: 7,
        keepidle: 7200,
        keepintvl: 75,
        keepcnt: 9,
        pad: 0,
        rcvtimeo_us: 2_500_000,
        sndtimeo_us: 0,
    };
    addr.extend_from_slice(bytes_of(&opts));
    f.extra = s.add(&addr);
    f.params = [2, 1, 6, 128, 16, 0, SOCKOPT_REUSEADDR, 0];
    fds.push(f);
    let mut f = fd(9, FdKind::EventFd, s.add(b"anon_inode:[eventfd]"), rng);
    f.params[0] = rng.below(1 << 40);
    fds.push(f);
    let mut f = fd(10, FdKind::TimerFd, s.add(b"anon_inode:[timerfd]"), rng);
    f.params = [1, 0, 999, 123_456_789, 777, 0, 0, 0];
    fds.push(f);
    let mut f = fd(11, FdKind::SignalFd, s.add(b"anon_inode:[signalfd]"), rng);
    f.params[0] = 1 << 0 | 1 << 27;
    fds.push(f);
    let (w1, w2) = (s.add(b"/home/u/w"), s.add(b"a.txt"));
    let mut watches = vec![];
    for (wd, p) in [(1, w1), (3, w2)] {
        watches.extend_from_slice(bytes_of(&InotifyWatch { wd, mask: 0x300, path: p }));
    }
    let mut f = fd(12, FdKind::Inotify, s.add(b"anon_inode:inotify"), rng);
    f.extra = s.add(&watches);
    fds.push(f);
    let mut f = fd(13, FdKind::Memfd, memfd, rng);
    (f.file.dev, f.file.ino, f.data_len, f.params[0]) = (1, memfd_ino, 1 + rng.below(20000), 0);
    f.file.size = f.data_len;
    fds.push(f);
    let file = s.add(b"/home/u/f.txt");
    let mut f = fd(14, FdKind::File, file, rng);
    let locks = [
        LockEntry { kind: LOCK_POSIX, write: 1, start: 10, len: 20 },
        LockEntry { kind: LOCK_OFD, write: 0, start: 100, len: 0 },
        LockEntry { kind: LOCK_FLOCK, write: 1, start: 0, len: 0 },
    ];
    let n = rng.below(4) as usize;
    f.extra = s.add(&locks[..n].iter().flat_map(|l| bytes_of(l).to_vec()).collect::<Vec<u8>>());
    fds.push(f);
    let mut f = fd(15, FdKind::File, file, rng);
    f.dup_of = 14;
    fds.push(f);
    let mut f = fd(16, FdKind::Shm, s.add(b"/dev/shm/other"), rng);
    f.data_len = rng.below(9000);
    f.file.size = f.data_len;
    fds.push(f);
    fds.push(fd(17, FdKind::Device, s.add(b"/dev/null"), rng));
    let mut f = fd(18, FdKind::Deleted, s.add(b"/tmp/gone"), rng);
    f.data_len = rng.below(6000);
    f.file.size = f.data_len;
    if rng.chance(30) && f.data_len > 100 {
        // Sparse: two runs of data in a file twice as large.
        let (a, b) = (f.data_len / 3, f.data_len - f.data_len / 3);
        let runs = [Segment { off: 0, len: a }, Segment { off: f.data_len + a, len: b }];
        f.file.size = 2 * f.data_len;
        f.params[SEGMENTS_PARAM] = 2;
        f.extra = s.add(&runs.iter().flat_map(|r| bytes_of(r).to_vec()).collect::<Vec<u8>>());
    }
    fds.push(f);
    fds.push(fd(19, FdKind::Reset, s.add(b"socket:[300]"), rng));
    fds.push(fd(20, FdKind::Unsupported, s.add(b"anon_inode:[pidfd]"), rng));
    let mut n = 21;
    for _ in 0..rng.below(10) {
        n += 1 + rng.below(100) as i32;
        let mut f = fd(n, FdKind::EventFd, none, rng);
        f.params[1] = rng.below(2);
        fds.push(f);
    }
    // An epoll set over some of them (registration order as fdinfo has it: any).
    let mut targets = vec![3, 4, 5, 9, 10, 11];
    for i in (1..targets.len()).rev() {
        targets.swap(i, rng.below(i as u64 + 1) as usize);
    }
    targets.truncate(1 + rng.below(targets.len() as u64) as usize);
    let mut entries = vec![];
    for t in targets {
        entries.extend_from_slice(bytes_of(&EpollEntry { fd: t, events: 0x19, data: rng.next() }));
    }
    n += 1;
    let mut f = fd(n, FdKind::Epoll, s.add(b"anon_inode:[eventpoll]"), rng);
    f.extra = s.add(&entries);
    fds.push(f);

    // POSIX timers, newest first as /proc lists them, or any order.
    let mut timers = vec![];
    for i in 0..rng.below(4) as i32 {
        let notify = *rng.pick(&[0, 1, 4]);
        let signo = if notify == 1 { 0 } else { 14 };
        timers.push(TimerRecord { id: 3 - i, clock: *rng.pick(&[0, 1, 2, 7]), notify, signo, sigval: rng.next(), spec: [0, 20_000_000, 5, 999_999_999] });
    }
    if rng.chance(30) {
        timers.reverse();
    }

    // The process.
    let mut p: ProcessRecord = zeroed();
    p.exe = file_id(exe, rng);
    p.mm = MmFields {
        start_code: code,
        end_code: code + 2 * P - 13,
        start_data: data,
        end_data: data + 0x100,
        start_brk: heap,
        brk: heap + heap_pages * P,
        start_stack: stack + 7 * P,
        arg_start: stack + 7 * P + 0x10,
        arg_end: stack + 7 * P + 0x20,
        env_start: stack + 7 * P + 0x20,
        env_end: stack + 7 * P + 0x80,
    };
    (p.auxv, p.cwd, p.umask) = (auxv, cwd, 0o22);
    // Two filters, one inherited, one saved: "allow everything", logged.
    let mut filter = vec![];
    filter.extend_from_slice(&2u32.to_ne_bytes());
    filter.extend_from_slice(&8u32.to_ne_bytes());
    filter.extend_from_slice(&[0x06, 0, 0, 0, 0, 0, 0xff, 0x7f]);
    (p.attrs.seccomp, p.attrs.seccomp_filters, p.attrs.seccomp_saved) = (2, 2, 1);
    p.attrs.seccomp_programs = s.add(&filter);
    p.comm[..5].copy_from_slice(b"prog\0");
    for (i, l) in p.rlimits.iter_mut().enumerate() {
        *l = if i % 3 == 0 { Rlimit { cur: u64::MAX, max: u64::MAX } } else { Rlimit { cur: 1024, max: 4096 } };
    }
    p.itimers[0] = Itimer { interval_sec: 0, interval_usec: 500_000, value_sec: 3, value_usec: 999_999 };
    for a in p.sigactions.iter_mut() {
        *a = KSigaction { handler: *rng.pick(&[0, 1, code + 0x40]), flags: 0x0400_0000, restorer: code + 0x80, mask: rng.next() };
    }
    (p.cpu.cpuid, p.cpu.xcr0, p.vdso_crc) = ([rng.next() as u32, 0, 0, 0, 0], 7, rng.next() as u32);

    // Extents in table order; blobs for regions, then descriptors.
    let mut ext = vec![];
    for r in regions.iter_mut() {
        r.rec.first_extent = ext.len() as u32;
        r.rec.extents = r.extents.len() as u32;
        r.rec.data_len = r.extents.iter().map(|e| e.pages * P).sum();
        ext.extend_from_slice(&r.extents);
    }
    if rng.chance(20) {
        ext.push(Extent { first_page: 9, pages: 9 }); // an extent no region uses
    }
    let mut layout = Layout::new(ts.len() as u64, regions.len() as u64, ext.len() as u64, fds.len() as u64, timers.len() as u64, s.0.len() as u64);
    let precopied = rng.chance(40);
    if precopied {
        // Region blobs in a reserved area, in shuffled order, with gaps: as a pre-copy.
        let lens: Vec<u64> = regions.iter().filter(|r| r.rec.data_len > 0).map(|r| r.rec.data_len).collect();
        let mut order: Vec<usize> = (0..lens.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let area = align_up(layout.meta_off + layout.meta_len, P) + rng.below(3) * P;
        let mut offs = vec![0; lens.len()];
        let mut cursor = area;
        for &i in &order {
            offs[i] = cursor;
            cursor += lens[i] + rng.below(2) * P;
        }
        layout = layout.with_data_area(area, cursor - area).expect("room for the tables");
        for (r, &off) in regions.iter_mut().filter(|r| r.rec.data_len > 0).zip(&offs) {
            r.rec.blob = layout.add_placed_blob(r.rec.data_len);
            r.rec.data_off = off;
        }
    } else {
        for r in regions.iter_mut().filter(|r| r.rec.data_len > 0) {
            (r.rec.blob, r.rec.data_off) = layout.add_blob(r.rec.data_len);
        }
    }
    for f in fds.iter_mut().filter(|f| f.data_len > 0) {
        (f.blob, f.data_off) = layout.add_blob(f.data_len);
    }

    // The file.
    let mut h = layout.header(4242, 1_700_000_000_000_000_000);
    h.flags = if portable { HEADER_PORTABLE } else { 0 };
    let mut bytes = vec![0u8; layout.total_len() as usize];
    let mut put = |t: Table, b: &[u8]| {
        let at = h.tables[t as usize].off as usize;
        bytes[at..at + b.len()].copy_from_slice(b);
    };
    put(Table::Process, bytes_of(&p));
    put(Table::Threads, slice_bytes(&ts));
    let recs: Vec<RegionRecord> = regions.iter().map(|r| r.rec).collect();
    put(Table::Regions, slice_bytes(&recs));
    put(Table::Extents, slice_bytes(&ext));
    put(Table::Fds, slice_bytes(&fds));
    put(Table::Timers, slice_bytes(&timers));
    put(Table::Strings, &s.0);
    for (off, len) in recs.iter().map(|r| (r.data_off, r.data_len)).chain(fds.iter().map(|f| (f.data_off, f.data_len))).filter(|b| b.1 > 0) {
        let salt = rng.next();
        for (i, b) in bytes[off as usize..(off + len) as usize].iter_mut().enumerate() {
            *b = (salt >> (i % 8 * 8)) as u8 ^ i as u8;
        }
    }
    let mut built = Built { bytes };
    built.bytes[..size_of::<Header>()].copy_from_slice(bytes_of(&h));
    reseal(&mut built.bytes);
    built
}

fn size_of<T>() -> usize {
    std::mem::size_of::<T>()
}

// ---- Resealing ----

fn get<T: Pod>(bytes: &[u8], off: u64) -> Option<T> {
    read_record(bytes.get(usize::try_from(off).ok()?..)?, 0)
}

fn range(bytes: &[u8], off: u64, len: u64) -> Option<std::ops::Range<usize>> {
    let end = off.checked_add(len)?;
    let r = usize::try_from(off).ok()?..usize::try_from(end).ok()?;
    bytes.get(r.clone()).map(|_| r)
}

/// Recomputes every CRC the header makes findable: each blob's (from the first record
/// that names it, regions first, as the reader does), the trailer's, the tables' and
/// the header's; whatever is out of the file is left alone.
pub fn reseal(bytes: &mut [u8]) {
    let Some(mut h) = get::<Header>(bytes, 0) else { return };
    let table = |t: Table| h.tables[t as usize];
    let count = |t: Table, size: u64| table(t).count.min(bytes.len() as u64 / size.max(1));
    let mut owners: HashMap<u32, (u64, u64)> = HashMap::new();
    let (regions, fds) = (count(Table::Regions, 136), count(Table::Fds, 200));
    for i in 0..regions {
        if let Some(r) = get::<RegionRecord>(bytes, table(Table::Regions).off.wrapping_add(i * 136)) {
            owners.entry(r.blob).or_insert((r.data_off, r.data_len));
        }
    }
    for i in 0..fds {
        if let Some(f) = get::<FdRecord>(bytes, table(Table::Fds).off.wrapping_add(i * 200)) {
            owners.entry(f.blob).or_insert((f.data_off, f.data_len));
        }
    }
    // The trailer: each blob's CRC, then each blob's block CRCs, blob by blob, then its own.
    if let Some(t) = range(bytes, h.trailer_off, h.trailer_len).filter(|t| t.len() >= 4) {
        let slots = (t.len() - 4) / 4;
        let data = |i: u64| owners.get(&(i as u32)).and_then(|&(off, len)| range(bytes, off, len));
        let mut crcs: Vec<u32> = (0..h.blobs.min(slots as u64)).map(|i| data(i).map_or(0, |r| crc32fast::hash(&bytes[r]))).collect();
        for i in 0..h.blobs.min(slots as u64) {
            // A forged length makes no more block CRCs than the trailer has room for.
            let len = owners.get(&(i as u32)).map_or(0, |&(_, len)| len);
            let room = (slots - crcs.len().min(slots)) as u64;
            for k in 0..mig_image::blocks_of(len).min(room) {
                let c = data(i).map_or(0, |r| {
                    let d = &bytes[r];
                    let start = (k * mig_image::BLOCK) as usize;
                    crc32fast::hash(&d[start.min(d.len())..(start + mig_image::BLOCK as usize).min(d.len())])
                });
                crcs.push(c);
            }
        }
        for (i, c) in crcs.iter().take(slots).enumerate() {
            bytes[t.start + 4 * i..t.start + 4 * i + 4].copy_from_slice(&c.to_le_bytes());
        }
        let own = crc32fast::hash(&bytes[t.start..t.end - 4]);
        bytes[t.end - 4..t.end].copy_from_slice(&own.to_le_bytes());
    }
    if let Some(m) = range(bytes, h.meta_off, h.meta_len) {
        h.meta_crc = crc32fast::hash(&bytes[m]);
    }
    seal_header(&mut h, &crc32fast::Hasher::new());
    bytes[..size_of::<Header>()].copy_from_slice(bytes_of(&h));
}

// ---- Mutating ----

/// Fields of each record, as (offset, size), from `docs/image-format.md` §3–4.
#[rustfmt::skip]
fn fields(t: Option<Table>) -> &'static [(usize, usize)] {
    const FILE: [(usize, usize); 8] = [(0, 4), (4, 4), (8, 8), (16, 8), (24, 8), (32, 8), (40, 4), (44, 4)];
    const HEADER: &[(usize, usize)] = &[
        (8, 4), (12, 4), (16, 4), (24, 8), (40, 4), (48, 8), (56, 8), (64, 8), (72, 8), (80, 8), (88, 8), (96, 8), (104, 8),
        (112, 8), (120, 8), (128, 8), (136, 8), (144, 8), (152, 8), (160, 8), (168, 8), (176, 8), (184, 8), (192, 8), (200, 8),
        (208, 8), (216, 8), (224, 8), (232, 8), (240, 8), (248, 8), (256, 8), (264, 8), (272, 8),
    ];
    const PROCESS: &[(usize, usize)] = &[
        FILE[0], FILE[1], FILE[6], FILE[7], (72, 8), (80, 8), (88, 8), (96, 8), (104, 8), (112, 8), (120, 8), (128, 8), (136, 8), (144, 8), (152, 8),
        (160, 4), (164, 4), (168, 4), (172, 4), (176, 4), (184, 8), (184, 16), (200, 8), (208, 8), (312, 8), (320, 8), (456, 8), (464, 8), (472, 8),
        (480, 8), (488, 8), (520, 8), (552, 8), (560, 8), (2600, 4), (2624, 8), (2632, 4), (2648, 4), (2652, 4), (2656, 4), (2660, 4), (2664, 4),
        (2668, 4), (2672, 4), (2676, 4), (2680, 4), (2684, 4), (2688, 4), (2692, 4),
    ];
    const THREAD: &[(usize, usize)] =
        &[(0, 4), (4, 4), (8, 8), (56, 8), (64, 8), (72, 8), (80, 8), (88, 8), (96, 8), (104, 8), (112, 4), (116, 4), (120, 8), (128, 8), (136, 4), (140, 4), (144, 4), (148, 4), (152, 8), (160, 8)];
    const REGION: &[(usize, usize)] = &[
        (0, 8), (8, 8), (16, 4), (20, 4), (24, 4), (28, 4), (32, 4), (36, 4), (40, 8), (48, 4), (52, 4), (56, 8), (64, 8), (72, 8), (80, 8), (88, 4),
        (92, 4), (120, 8), (128, 8),
    ];
    const EXTENT: &[(usize, usize)] = &[(0, 8), (8, 8)];
    const FD: &[(usize, usize)] = &[
        (0, 4), (4, 4), (8, 4), (12, 4), (16, 8), (24, 4), (28, 4), (48, 8), (56, 8), (64, 4), (68, 4), (96, 8), (104, 8), (112, 4), (116, 4), (120, 4),
        (128, 4), (132, 4), (136, 8), (144, 8), (152, 8), (160, 8), (168, 8), (176, 8), (184, 8), (192, 8),
    ];
    const TIMER: &[(usize, usize)] = &[(0, 4), (4, 4), (8, 4), (12, 4), (16, 8), (24, 8), (32, 8), (40, 8), (48, 8)];
    const STRINGS: &[(usize, usize)] = &[(0, 1), (0, 4), (0, 8)];
    match t {
        None => HEADER,
        Some(Table::Process) => PROCESS,
        Some(Table::Threads) => THREAD,
        Some(Table::Regions) => REGION,
        Some(Table::Extents) => EXTENT,
        Some(Table::Fds) => FD,
        Some(Table::Timers) => TIMER,
        Some(Table::Strings) => STRINGS,
    }
}

const TABLE_LIST: [Table; TABLES] = [Table::Process, Table::Threads, Table::Regions, Table::Extents, Table::Fds, Table::Timers, Table::Strings];
const REC: [u64; TABLES] = [std::mem::size_of::<ProcessRecord>() as u64, std::mem::size_of::<ThreadRecord>() as u64, 136, 16, 200, 56, 1];

fn read_n(b: &[u8], at: usize, n: usize) -> u64 {
    let mut v = [0u8; 8];
    v[..n].copy_from_slice(&b[at..at + n]);
    u64::from_le_bytes(v)
}

fn write_n(b: &mut [u8], at: usize, n: usize, v: u64) {
    b[at..at + n].copy_from_slice(&v.to_le_bytes()[..n]);
}

/// A new value for a field of `n` bytes that holds `old`: a boundary, a neighbour, a bit
/// flipped, an address at the edge of the user address space, or another field's value.
fn value(rng: &mut Rng, n: usize, old: u64, other: u64) -> u64 {
    let max = if n == 8 { u64::MAX } else { (1u64 << (8 * n)) - 1 };
    let v = match rng.below(16) {
        0 => 0,
        1 => 1,
        2 => max,
        3 => max >> 1,
        4 => (max >> 1) + 1,
        5 => old.wrapping_add(1),
        6 => old.wrapping_sub(1),
        7 => old.wrapping_add(P),
        8 => old.wrapping_sub(P),
        9 => old ^ (1 << rng.below(8 * n as u64)),
        10 => *rng.pick(&[USER_TOP, USER_TOP - P, USER_TOP + P, MIN_ADDR - P, MIN_ADDR, 0x8000_0000_0000, 1 << 63, 4096, 1_000_000_000, 1_000_000]),
        11 => other,
        12 => old.wrapping_mul(2),
        13 => rng.next() & !(P - 1),
        14 => rng.below(64),
        _ => rng.next(),
    };
    v & max
}

/// Changes a field of an `EpollEntry` or `InotifyWatch` in a descriptor's `extra`, to a
/// boundary value or to the same field of another entry.
fn mutate_extra(bytes: &mut [u8], rng: &mut Rng) -> Option<String> {
    let h = get::<Header>(bytes, 0)?;
    let (fds, strings) = (h.tables[Table::Fds as usize], h.tables[Table::Strings as usize]);
    let with_extra: Vec<FdRecord> = (0..fds.count.min(4096))
        .filter_map(|i| get::<FdRecord>(bytes, fds.off.checked_add(i * 200)?))
        .filter(|f| matches!(f.kind, 9 | 13) && f.extra.len >= 16)
        .collect();
    if with_extra.is_empty() {
        return None;
    }
    let f = rng.pick(&with_extra);
    let entries = f.extra.len as u64 / 16;
    let base = strings.off.checked_add(f.extra.off as u64)?;
    let &(off, n) = rng.pick(&[(0usize, 4usize), (4, 4), (8, 4), (12, 4), (8, 8)]);
    let (i, j) = (rng.below(entries), rng.below(entries));
    let at = usize::try_from(base.checked_add(16 * i + off as u64)?).ok()?;
    let from = usize::try_from(base.checked_add(16 * j + off as u64)?).ok()?;
    if at.max(from).checked_add(n)? > bytes.len() {
        return None;
    }
    let (old, other) = (read_n(bytes, at, n), read_n(bytes, from, n));
    // Another entry's value, the set's own number (an epoll set watching itself), or any.
    let new = match rng.below(4) {
        0 | 1 => other,
        2 if off == 0 => f.fd as u32 as u64,
        _ => value(rng, n, old, other),
    };
    write_n(bytes, at, n, new);
    Some(format!("descriptor {} extra[{i}] +{off}: {old:#x} -> {new:#x}", f.fd))
}

/// Changes 1 to 4 fields of the header, the records or the strings; returns what it did.
pub fn mutate(bytes: &mut [u8], rng: &mut Rng) -> Vec<String> {
    let mut done = vec![];
    for _ in 0..1 + rng.below(4) {
        let Some(h) = get::<Header>(bytes, 0) else { break };
        if rng.chance(10) {
            done.extend(mutate_extra(bytes, rng));
            continue;
        }
        let (name, base, fields) = if rng.chance(12) {
            ("header".to_string(), 0usize, fields(None))
        } else {
            let t = *rng.pick(&TABLE_LIST);
            let d = h.tables[t as usize];
            let count = d.count.min(bytes.len() as u64);
            if count == 0 {
                continue;
            }
            let i = rng.below(count);
            let Some(at) = d.off.checked_add(i * REC[t as usize]).and_then(|a| usize::try_from(a).ok()) else { continue };
            (format!("{t:?}[{i}]"), at, fields(Some(t)))
        };
        let &(off, n) = rng.pick(fields);
        let Some(at) = base.checked_add(off).filter(|at| at.checked_add(n).is_some_and(|e| e <= bytes.len())) else { continue };
        if n > 8 {
            // A byte array (the process name): filled with one byte.
            let fill = rng.below(256) as u8;
            bytes[at..at + n].fill(fill);
            done.push(format!("{name} +{off}: filled with {fill:#x}"));
            continue;
        }
        // Another field's value of the same size, anywhere in the tables (swapped indices).
        let m = h.meta_off.min(bytes.len() as u64) as usize;
        let span = (h.meta_off.saturating_add(h.meta_len)).min(bytes.len() as u64) as usize;
        let other = if span > m + n { read_n(bytes, m + rng.below((span - m - n) as u64) as usize / n * n, n) } else { 0 };
        let old = read_n(bytes, at, n);
        let new = value(rng, n, old, other);
        write_n(bytes, at, n, new);
        done.push(format!("{name} +{off}: {old:#x} -> {new:#x}"));
    }
    done
}

// ---- The invariants the restore relies on ----

fn region_of(img: &Image, addr: u64) -> Option<RegionRecord> {
    (0..img.count(Table::Regions)).map(|i| img.region(i)).find(|r| (r.start..r.end).contains(&addr))
}

/// `[addr, addr+len)` lies in saved regions that all have `prot`.
fn inside(img: &Image, addr: u64, len: u64, prot: u32) -> bool {
    let Some(end) = addr.checked_add(len.max(1)) else { return false };
    let mut at = addr;
    while at < end {
        // The kernel's regions keep the kernel's protection, whatever the record says.
        let real = |r: &RegionRecord| match r.kind {
            10 => PROT_READ | PROT_EXEC,
            8 | 9 => PROT_READ,
            _ => r.prot,
        };
        match region_of(img, at) {
            Some(r) if real(&r) & prot == prot => at = r.end,
            _ => return false,
        }
    }
    true
}

macro_rules! require {
    ($cond:expr, $($why:tt)*) => {
        if !$cond {
            return Err(format!($($why)*));
        }
    };
}

/// Everything the restore (plan, fds, timers, the blob) and `mig inspect` assume of an
/// image `Image::open` accepted; stated apart from `check.rs`.
pub fn invariants(img: &Image) -> Result<(), String> {
    let h = img.header;
    let nstr = img.count(Table::Strings) as u64;
    let str_ok = |s: StrRef| s.off as u64 + s.len as u64 <= nstr;
    let path_ok = |s: StrRef| str_ok(s) && img.str(s).len() < PATH_MAX && !img.str(s).contains(&0);
    let tables: Vec<(u64, u64)> = h.tables.iter().zip(REC).map(|(t, r)| (t.off, t.count * r)).collect();
    for (off, len) in &tables {
        require!(*off >= h.meta_off && off + len <= h.meta_off + h.meta_len, "a table outside the tables");
    }
    require!(h.meta_off >= 4096 && h.meta_off + h.meta_len <= h.data_off && h.data_off.is_multiple_of(P), "meta range");
    require!(
        h.trailer_off == h.data_off + h.data_len && h.trailer_len == 4 * (h.blobs + h.blocks + 1) && h.trailer_off + h.trailer_len == img.bytes.len() as u64,
        "trailer"
    );

    // Regions.
    let regions: Vec<RegionRecord> = (0..img.count(Table::Regions)).map(|i| img.region(i)).collect();
    let mut prev = 0;
    let mut blobs: Vec<(u32, u64, u64)> = vec![];
    for r in &regions {
        require!(r.start % P == 0 && r.end % P == 0 && r.start < r.end && r.start >= prev, "region order {:#x}", r.start);
        require!(r.start >= MIN_ADDR && r.end <= USER_TOP, "region {:#x}-{:#x} outside user space", r.start, r.end);
        prev = r.end;
        let kind = RegionKind::from_u32(r.kind).ok_or("region kind")?;
        require!(r.prot & !7 == 0, "region prot {:#x}", r.prot);
        require!(r.flags & !0x1fff == 0, "region flags");
        require!(r.flags & REGION_DELETED == 0 || kind == RegionKind::SharedObject, "DELETED on kind {:?}", kind);
        require!(r.flags & REGION_WHOLE == 0 || kind == RegionKind::FilePrivate, "WHOLE on kind {:?}", kind);
        require!(r.flags & REGION_DATA_IN_FD == 0 || (kind == RegionKind::SharedObject && r.extents == 0), "DATA_IN_FD on kind {:?}", kind);
        require!(!(kind.is_kernel() || kind == RegionKind::FileShared) || r.extents == 0, "data on kind {:?}", kind);
        if matches!(kind, RegionKind::FilePrivate | RegionKind::FileShared | RegionKind::SharedObject) {
            require!(r.file_off % P == 0 && (r.file_off as u128 + (r.end - r.start) as u128) <= i64::MAX as u128, "file offset {:#x}", r.file_off);
        }
        if kind.has_file() {
            require!(img.str(r.file.path).starts_with(b"/"), "file region without a path");
        }
        require!(path_ok(r.file.path) && r.file.build_id_len <= 20, "region file id");
        let pages = (r.end - r.start) / P;
        require!(r.first_extent as u64 + r.extents as u64 <= img.count(Table::Extents) as u64, "extents out of the table");
        let mut next = 0;
        let mut saved = 0;
        for e in img.extents(r) {
            require!(e.pages > 0 && e.first_page >= next && e.first_page + e.pages <= pages, "extent");
            next = e.first_page + e.pages;
            saved += e.pages * P;
        }
        require!(saved == r.data_len, "data length");
        require!((r.blob != u32::MAX) == (r.extents > 0), "blob without extents");
        if r.blob != u32::MAX {
            blobs.push((r.blob, r.data_off, r.data_len));
        }
        if kind == RegionKind::SharedObject && img.str(r.file.path).starts_with(b"/dev/shm/") {
            require!(!img.str(r.file.path).windows(2).any(|w| w == b".."), "shm path escapes");
        }
    }

    // Threads.
    let n = img.count(Table::Threads);
    require!((1..=MAX_THREADS).contains(&n), "{n} threads");
    for i in 0..n {
        let t = img.thread(i);
        require!(inside(img, t.ctx.rip, 1, PROT_EXEC), "thread {i} rip {:#x}", t.ctx.rip);
        require!(inside(img, t.ctx.rsp, 1, PROT_WRITE), "thread {i} rsp {:#x}", t.ctx.rsp);
        require!(t.fs_base == 0 || inside(img, t.fs_base, 1, 0), "thread {i} fs_base");
        require!(t.clear_tid == 0 || inside(img, t.clear_tid, 4, PROT_WRITE), "thread {i} clear_tid");
        require!(t.robust_head == 0 || inside(img, t.robust_head, t.robust_len, 0), "thread {i} robust list");
        require!(t.rseq_len == 0 || inside(img, t.rseq_addr, t.rseq_len as u64, 0), "thread {i} rseq");
        require!(t.altstack_flags & 2 != 0 || inside(img, t.altstack_sp, t.altstack_size, 0), "thread {i} altstack");
        let c = t.sched;
        let priority = match c.policy {
            1 | 2 => (1..=99).contains(&c.priority),
            0 | 3 | 5 => c.priority == 0,
            _ => false,
        };
        require!(priority && (-20..=19).contains(&c.nice) && c.flags <= 1, "thread {i} scheduling");
    }

    // The process.
    let p = img.process();
    require!(path_ok(p.exe.path) && img.str(p.exe.path).starts_with(b"/") && p.exe.build_id_len <= 20, "exe");
    require!(path_ok(p.cwd) && (p.cwd.len == 0 || img.str(p.cwd).starts_with(b"/")), "cwd");
    let m = p.mm;
    for a in [m.start_code, m.end_code, m.start_data, m.end_data, m.start_brk, m.brk, m.start_stack, m.arg_start, m.arg_end, m.env_start, m.env_end] {
        require!((MIN_ADDR..USER_TOP).contains(&a), "mm field {a:#x}");
    }
    require!(
        m.start_code < m.end_code && m.start_data <= m.end_data && m.start_brk <= m.brk && m.arg_start <= m.arg_end && m.env_start <= m.env_end,
        "mm order"
    );
    let auxv = img.str(p.auxv);
    require!(str_ok(p.auxv) && auxv.len().is_multiple_of(16) && auxv.len() <= AUXV_MAX, "auxv length {}", auxv.len());
    require!(auxv.is_empty() || auxv[auxv.len() - 16..auxv.len() - 8].iter().all(|&b| b == 0), "auxv end");
    require!(p.comm.contains(&0) && p.umask <= 0o777, "comm or umask");
    require!(p.rlimits.iter().all(|l| l.cur <= l.max), "rlimit");
    let a = p.attrs;
    require!(
        (-1000..=1000).contains(&a.oom_score_adj)
            && a.child_subreaper <= 1
            && a.thp_disable <= 1
            && a.no_new_privs <= 1
            && a.dumpable <= 2
            && a.pdeathsig <= 64
            && a.flags <= 7
            && a.seccomp <= 2
            && a.membarrier & !(4 | 16 | 64 | 256) == 0,
        "process attributes"
    );
    require!(str_ok(a.seccomp_programs) && a.seccomp_saved <= a.seccomp_filters, "seccomp filters");
    let entries: Vec<_> = seccomp_entries(img.str(a.seccomp_programs)).collect();
    require!(entries.len() == a.seccomp_saved as usize && (entries.is_empty() || a.seccomp == 2), "seccomp filter count");
    for e in entries {
        require!(
            e.is_some_and(|(flags, insns)| flags & !SECCOMP_SAVED_FLAGS == 0
                && !insns.is_empty()
                && insns.len() % 8 == 0
                && insns.len() <= 8 * SECCOMP_MAX_INSNS),
            "seccomp filter"
        );
    }
    for t in p.itimers {
        require!(t.interval_sec >= 0 && t.value_sec >= 0 && (0..1_000_000).contains(&t.interval_usec) && (0..1_000_000).contains(&t.value_usec), "itimer");
    }

    // Descriptors.
    let fds: Vec<FdRecord> = (0..img.count(Table::Fds)).map(|i| img.fd(i)).collect();
    let by_fd: HashMap<i32, &FdRecord> = fds.iter().map(|f| (f.fd, f)).collect();
    require!(by_fd.len() == fds.len(), "repeated descriptor numbers");
    for (i, f) in fds.iter().enumerate() {
        require!(f.fd >= 0 && f.fd < MAX_FD && (i == 0 || f.fd > fds[i - 1].fd), "descriptor {} order", f.fd);
        let kind = FdKind::from_u32(f.kind).ok_or("descriptor kind")?;
        require!(f.fd > 2 || kind == FdKind::Tty, "standard descriptor {}", f.fd);
        require!(f.in_flight <= 1, "in-flight mark");
        require!(path_ok(f.file.path) && str_ok(f.extra) && f.file.build_id_len <= 20, "descriptor strings");
        require!((f.blob != u32::MAX) == (f.data_len > 0), "descriptor blob");
        if f.blob != u32::MAX {
            blobs.push((f.blob, f.data_off, f.data_len));
            let saved_file = kind == FdKind::File && f.params[0] == 1 && f.file.mode & 0o170000 == 0o100000;
            let datagrams = kind == FdKind::Socket && f.params[1] == 2;
            let connection = kind == FdKind::Socket && f.params[5] > 0;
            require!(
                matches!(kind, FdKind::Deleted | FdKind::Pipe | FdKind::Fifo | FdKind::SocketPair | FdKind::Memfd | FdKind::Shm | FdKind::PosixMq)
                    || saved_file
                    || datagrams
                    || connection,
                "data on {kind:?}"
            );
        }
        if f.dup_of != -1 {
            let o = by_fd.get(&f.dup_of).ok_or("copy of nothing")?;
            require!(o.fd < f.fd && o.dup_of == -1 && f.data_len == 0, "copy of {}", f.dup_of);
        }
        let q = f.params;
        let path = img.str(f.file.path);
        if kind.holds_locks() {
            let (locks, segments) = kind.split_extra(f);
            require!(locks.len % 24 == 0 && (f.dup_of == -1 || f.extra.len == 0), "locks length");
            if kind.saves_file() {
                require!(OWNER_PARAMS.iter().all(|&i| f.params[i] <= u32::MAX as u64 + 1), "owner");
            }
            if kind.saves_file() && f.params[SEGMENTS_PARAM] > 0 {
                require!(segments.len as u64 == 16 * f.params[SEGMENTS_PARAM], "segments length");
                let mut end = 0;
                let mut total = 0;
                for g in img.records::<Segment>(segments) {
                    require!(g.len > 0 && g.off >= end && g.off + g.len <= f.file.size, "segment {g:?}");
                    end = g.off + g.len;
                    total += g.len;
                }
                require!(total == f.data_len, "segments total");
            } else if kind.saves_file() && f.dup_of == -1 {
                require!(f.data_len == f.file.size, "dense data length");
            }
            for l in img.records::<LockEntry>(locks) {
                let range = l.start <= i64::MAX as u64 && l.len <= i64::MAX as u64 && l.start + l.len <= i64::MAX as u64;
                let kind = matches!(l.kind, 1 | 2) || (l.kind == 3 && l.start == 0 && l.len == 0);
                require!(kind && l.write <= 1 && range, "lock {l:?}");
            }
        }
        match kind {
            FdKind::File | FdKind::Deleted | FdKind::Device => require!(path.starts_with(b"/") && (kind != FdKind::File || q[0] <= 1), "file path or mark"),
            FdKind::Shm => require!(path.starts_with(b"/dev/shm/") && !path.windows(2).any(|w| w == b".."), "shm path"),
            FdKind::Pipe => require!(q[0] <= i32::MAX as u64 && (q[0] == 0 || f.data_len <= q[0]), "pipe"),
            FdKind::Fifo => require!(q[0] <= i32::MAX as u64 && (q[0] == 0 || f.data_len <= q[0]) && q[1] <= 1 && path_ok(f.file.path), "fifo"),
            FdKind::SocketPair => require!(q[0] == 1 && [1, 2, 5].contains(&q[1]) && q[3] <= i32::MAX as u64 && q[4] <= 3 && q[7] <= 3, "socketpair"),
            FdKind::Socket => {
                require!([1, 2, 10].contains(&q[0]) && [1, 2, 3, 5].contains(&q[1]), "socket kind");
                require!(q[7] <= 4096 && q[4] <= 128 && q[5] <= 128 && q[4] + q[5] + 48 + 8 * q[7] == f.extra.len as u64, "socket addresses");
                // Connected: a datagram socket, a TCP connection with its state, or
                // one being made (SOCKOPT_CONNECTING, no blob).
                let inet_stream = [2, 10].contains(&q[0]) && q[1] == 1;
                let tcp = inet_stream && f.data_len >= 68;
                let connecting = q[6] & 256 != 0;
                require!(!connecting || (inet_stream && q[5] > 0 && f.data_len == 0), "connecting socket");
                require!(q[5] == 0 || q[1] == 2 || tcp || connecting, "connected socket");
                require!(q[2] <= i32::MAX as u64 && q[3] <= i32::MAX as u64 && q[6] < 512, "socket numbers");
            }
            FdKind::Epoll => {
                require!(f.extra.len % 16 == 0, "epoll length");
                require!(img.records::<EpollEntry>(f.extra).filter(|e| e.events & EPOLL_THROUGH_COPY != 0).count() <= 4096, "epoll copies");
                let mut seen = HashSet::new();
                for e in img.records::<EpollEntry>(f.extra) {
                    require!(e.events & EPOLL_THROUGH_COPY != 0 || seen.insert(e.fd), "epoll registers {} twice", e.fd);
                    let target = by_fd.get(&e.fd);
                    require!((0..=2).contains(&e.fd) || target.is_some(), "epoll registers unknown {}", e.fd);
                    require!(e.fd != f.fd && target.is_none_or(|t| t.dup_of != f.fd), "epoll registers itself");
                }
            }
            FdKind::EventFd => require!(q[0] < u64::MAX && q[1] <= 1, "eventfd"),
            FdKind::PosixMq => {
                let named = path.len() >= 2 && path.len() <= 256 && path[0] == b'/' && !path[1..].iter().any(|&c| c == b'/' || c == 0);
                require!(named && (1..=65536).contains(&q[0]) && (1..=1 << 24).contains(&q[1]) && q[2] <= 1, "posix mq");
            }
            FdKind::TimerFd => require!(
                [0, 1, 7, 8, 9].contains(&q[0]) && q[3] < 1_000_000_000 && q[5] < 1_000_000_000 && q[2] <= i64::MAX as u64 && q[4] <= i64::MAX as u64,
                "timerfd"
            ),
            FdKind::Inotify => {
                require!(f.extra.len % 16 == 0, "inotify length");
                for w in img.records::<InotifyWatch>(f.extra) {
                    require!(w.wd >= 1 && path_ok(w.path), "inotify watch");
                }
            }
            FdKind::Tty => require!(f.extra.len as usize == TERMIOS_LEN && q[0] <= 2 && q[1] <= u32::MAX as u64 && q[3] <= f.data_len, "termios"),
            FdKind::Memfd => require!(q[0] <= i32::MAX as u64, "seals"),
            FdKind::Pidfd => require!([1, 2, 3].contains(&q[0]) && q[1] <= i32::MAX as u64 && (q[0] == 3) == (q[1] != 0), "pidfd"),
            _ => {}
        }
    }
    for r in regions.iter().filter(|r| r.flags & REGION_DATA_IN_FD != 0) {
        let found = fds
            .iter()
            .any(|f| f.dup_of == -1 && FdKind::from_u32(f.kind).is_some_and(FdKind::saves_file) && (f.file.dev, f.file.ino) == (r.file.dev, r.file.ino));
        require!(found, "shared object without its descriptor");
    }

    // Blobs: numbered in record order, all owned once, inside the data area, disjoint.
    for (i, b) in blobs.iter().enumerate() {
        require!(b.0 as usize == i, "blob {} numbered {}", i, b.0);
    }
    require!(blobs.len() as u64 == h.blobs, "blob count");
    let mut spans: Vec<(u64, u64)> = blobs.iter().map(|&(_, off, len)| (off, off + align_up(len, P))).collect();
    spans.sort_unstable();
    for w in spans.windows(2) {
        require!(w[0].1 <= w[1].0, "blobs overlap");
    }
    for &(off, end) in &spans {
        require!(off % P == 0 && off >= h.data_off && end <= h.trailer_off, "blob outside the data area");
    }

    // POSIX timers.
    let mut ids = HashSet::new();
    for i in 0..img.count(Table::Timers) {
        let t = img.timer(i);
        require!(t.id >= 0 && ids.insert(t.id), "timer id {}", t.id);
        require!([0, 1, 2, 3, 7, 8, 9, 11].contains(&t.clock) || (t.clock < 0 && t.clock & 3 != 3), "timer clock");
        require!(
            match t.notify {
                1 => (0..=64).contains(&t.signo),
                0 | 4 => (1..=64).contains(&t.signo),
                _ => false,
            },
            "timer signal"
        );
        require!(t.spec[0] >= 0 && t.spec[2] >= 0 && (0..1_000_000_000).contains(&t.spec[1]) && (0..1_000_000_000).contains(&t.spec[3]), "timer spec");
    }
    Ok(())
}

/// Every reading accessor, on any image (`open` accepted it or not), as `mig inspect`
/// and the restore call them: none may panic.
pub fn read_all(img: &Image) -> u64 {
    let mut sum = 0u64;
    let p = img.process();
    sum = sum.wrapping_add(img.str(p.exe.path).len() as u64 + img.str(p.auxv).len() as u64 + img.str(p.cwd).len() as u64);
    for i in 0..img.count(Table::Threads) {
        sum = sum.wrapping_add(img.thread(i).ctx.rip);
    }
    for i in 0..img.count(Table::Regions) {
        let r = img.region(i);
        sum = sum.wrapping_add(img.extents(&r).map(|e| e.pages).fold(0, u64::wrapping_add));
        sum = sum.wrapping_add(img.data(r.data_off, r.data_len).len() as u64 + img.str(r.file.path).len() as u64);
        sum = sum.wrapping_add(r.end.wrapping_sub(r.start));
    }
    for i in 0..img.count(Table::Fds) {
        let f = img.fd(i);
        sum = sum.wrapping_add(
            img.records::<EpollEntry>(f.extra).count() as u64 + img.records::<InotifyWatch>(f.extra).map(|w| img.str(w.path).len() as u64).sum::<u64>(),
        );
        sum = sum.wrapping_add(img.data(f.data_off, f.data_len).len() as u64);
    }
    for i in 0..img.count(Table::Timers) {
        sum = sum.wrapping_add(img.timer(i).id as u64);
    }
    for i in 0..img.header.blobs.min(64) as u32 {
        sum = sum.wrapping_add(img.blob_span(i).map_or(0, |s| s.1) + img.blob_crc(i).unwrap_or(0) as u64);
        let _ = img.check_blob(i, &crc32fast::Hasher::new());
    }
    sum
}
