//! Issue 13, finding 5: forged images. Real images of C subjects (threads, descriptors,
//! POSIX timers, shared memory) are given out-of-range values (an index, a length, a
//! file offset, an address, a count, a path), their CRCs recomputed so that only the
//! records' checks can tell, and restored. Each must be refused (status 125, one line
//! naming the image) or run to its normal end with the right output: never a signal,
//! a hang, status 127 (failed after the point of no return) or a panic. Variants marked
//! `Damaged` are malformed images: `mig inspect` must call them damaged, and the
//! restore refuse them.
//!
//! Only the format crate's record layout is used to forge, so this test also runs
//! against older versions of mig, to count what crashed there.

mod common;
use common::*;
use mig_image::{
    EpollEntry, FdRecord, Header, Pod, ProcessRecord, RegionRecord, StrRef, Table, ThreadRecord, TimerRecord, bytes_of, layout::seal_header, read_record,
};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A restore that takes longer than this hangs.
const HANG: Duration = Duration::from_secs(10);

/// An image being forged: records edited in place, CRCs recomputed by `seal`.
struct Forge {
    bytes: Vec<u8>,
}

fn size_of<T>() -> usize {
    std::mem::size_of::<T>()
}

impl Forge {
    fn header(&self) -> Header {
        read_record(&self.bytes, 0).unwrap()
    }
    fn set_header(&mut self, h: &Header) {
        self.bytes[..size_of::<Header>()].copy_from_slice(bytes_of(h));
    }
    fn count(&self, t: Table) -> usize {
        self.header().tables[t as usize].count as usize
    }
    fn at<T: Pod>(&self, t: Table, i: usize) -> usize {
        self.header().tables[t as usize].off as usize + i * size_of::<T>()
    }
    fn get<T: Pod>(&self, t: Table, i: usize) -> T {
        read_record(&self.bytes[self.at::<T>(t, i)..], 0).unwrap()
    }
    fn edit<T: Pod>(&mut self, t: Table, i: usize, f: impl FnOnce(&mut T)) {
        let mut v: T = self.get(t, i);
        f(&mut v);
        let at = self.at::<T>(t, i);
        self.bytes[at..at + size_of::<T>()].copy_from_slice(bytes_of(&v));
    }
    fn str(&self, s: StrRef) -> Vec<u8> {
        let at = self.header().tables[Table::Strings as usize].off as usize + s.off as usize;
        self.bytes[at..at + s.len as usize].to_vec()
    }
    /// Index of the first record of table `t` that `pick` chooses.
    fn find<T: Pod>(&self, t: Table, pick: impl Fn(&Self, &T) -> bool) -> usize {
        (0..self.count(t)).find(|&i| pick(self, &self.get(t, i))).expect("no such record in the image")
    }
    fn region(&self, pick: impl Fn(&Self, &RegionRecord) -> bool) -> usize {
        self.find(Table::Regions, pick)
    }
    fn fd(&self, fd: i32) -> usize {
        self.find(Table::Fds, |_, f: &FdRecord| f.fd == fd)
    }
    /// Appends `b` to the strings table, in the zero padding before the data area.
    fn add_string(&mut self, b: &[u8]) -> StrRef {
        let mut h = self.header();
        let t = &mut h.tables[Table::Strings as usize];
        let (at, off) = ((t.off + t.count) as usize, t.count as u32);
        t.count += b.len() as u64;
        let end = (t.off + t.count).next_multiple_of(8);
        assert!(end <= h.data_off, "no room for another string before the data");
        h.meta_len = end - h.meta_off;
        self.bytes[at..at + b.len()].copy_from_slice(b);
        self.set_header(&h);
        StrRef { off, len: b.len() as u32 }
    }
    /// Recomputes every CRC: each blob's (from the record that owns it now), the
    /// trailer's, the tables' and the header's.
    fn seal(&mut self) {
        let mut h = self.header();
        let span = |i: u32| {
            let r =
                (0..self.count(Table::Regions)).map(|k| self.get::<RegionRecord>(Table::Regions, k)).find(|r| r.blob == i).map(|r| (r.data_off, r.data_len));
            r.or_else(|| (0..self.count(Table::Fds)).map(|k| self.get::<FdRecord>(Table::Fds, k)).find(|f| f.blob == i).map(|f| (f.data_off, f.data_len)))
        };
        let data = |i: u32| span(i).and_then(|(off, len)| self.bytes.get(off as usize..(off + len) as usize));
        // The trailer: each blob's CRC, then each blob's block CRCs, then its own.
        let mut crcs: Vec<u32> = (0..h.blobs as u32).map(|i| data(i).map_or(0, crc32fast::hash)).collect();
        for i in 0..h.blobs as u32 {
            let d = data(i).unwrap_or(&[]);
            crcs.extend(d.chunks(mig_image::BLOCK as usize).map(crc32fast::hash));
        }
        let trailer = h.trailer_off as usize;
        let room = (h.trailer_len as usize).saturating_sub(4) / 4;
        crcs.truncate(room);
        for (i, c) in crcs.iter().enumerate() {
            self.bytes[trailer + 4 * i..trailer + 4 * i + 4].copy_from_slice(&c.to_le_bytes());
        }
        let list_end = trailer + 4 * room;
        let own = crc32fast::hash(&self.bytes[trailer..list_end]);
        self.bytes[list_end..list_end + 4].copy_from_slice(&own.to_le_bytes());
        h.meta_crc = crc32fast::hash(&self.bytes[h.meta_off as usize..(h.meta_off + h.meta_len) as usize]);
        seal_header(&mut h, &crc32fast::Hasher::new());
        self.set_header(&h);
    }
}

/// What a variant is.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// A malformed image: inspect must call it damaged and the restore refuse it.
    Damaged,
    /// Well-formed, but something around it is not what it names (a FIFO where a file
    /// was): refused or restored, never worse.
    Either,
    /// Only informative fields changed: it must restore and run to its end.
    Runs,
}

type Edit = Box<dyn Fn(&mut Forge, &Path)>;

fn v(name: &'static str, expect: Expect, edit: impl Fn(&mut Forge, &Path) + 'static) -> (&'static str, Expect, Edit) {
    (name, expect, Box::new(edit))
}

use Expect::{Damaged, Either, Runs};

fn thread(f: &mut Forge, i: usize, e: impl FnOnce(&mut ThreadRecord)) {
    f.edit(Table::Threads, i, e);
}
fn process(f: &mut Forge, e: impl FnOnce(&mut ProcessRecord)) {
    f.edit(Table::Process, 0, e);
}
fn region(f: &mut Forge, i: usize, e: impl FnOnce(&mut RegionRecord)) {
    f.edit(Table::Regions, i, e);
}
fn fd(f: &mut Forge, n: i32, e: impl FnOnce(&mut FdRecord)) {
    let i = f.fd(n);
    f.edit(Table::Fds, i, e);
}
fn has_path(f: &Forge, r: &RegionRecord, end: &str) -> bool {
    f.str(r.file.path).ends_with(end.as_bytes())
}
fn kind(k: u32) -> impl Fn(&Forge, &RegionRecord) -> bool {
    move |_, r| r.kind == k
}
/// A FIFO in `dir`, for paths that would make an `open` wait for a writer forever.
fn fifo(dir: &Path) -> Vec<u8> {
    let p = dir.join("fifo");
    if !p.exists() {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo with a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }
    p.as_os_str().as_encoded_bytes().to_vec()
}

/// Variants of any image: threads, regions, process.
fn common_variants() -> Vec<(&'static str, Expect, Edit)> {
    vec![
        v("main thread resumes at 0", Damaged, |f, _| thread(f, 0, |t| t.ctx.rip = 0)),
        v("main thread resumes in unmapped memory", Damaged, |f, _| thread(f, 0, |t| t.ctx.rip = 0x1000_0000)),
        v("main thread resumes in data (not executable)", Damaged, |f, _| {
            let heap = f.region(kind(2));
            let at = f.get::<RegionRecord>(Table::Regions, heap).start;
            thread(f, 0, |t| t.ctx.rip = at)
        }),
        v("main thread's stack pointer 16", Damaged, |f, _| thread(f, 0, |t| t.ctx.rsp = 16)),
        v("main thread's stack pointer in read-only code", Damaged, |f, _| {
            let rip = f.get::<ThreadRecord>(Table::Threads, 0).ctx.rip;
            thread(f, 0, |t| t.ctx.rsp = rip)
        }),
        v("main thread's TLS base in kernel space", Damaged, |f, _| thread(f, 0, |t| t.fs_base = 0xffff_8000_0000_0000)),
        v("main thread's TLS base -1", Damaged, |f, _| thread(f, 0, |t| t.fs_base = u64::MAX)),
        v("main thread's tid address unmapped", Damaged, |f, _| thread(f, 0, |t| t.clear_tid = 0x1000)),
        v("main thread's tid address in read-only code", Damaged, |f, _| {
            let rip = f.get::<ThreadRecord>(Table::Threads, 0).ctx.rip;
            thread(f, 0, |t| t.clear_tid = rip & !7)
        }),
        v("main thread's tid address in [vvar], recorded writable", Damaged, |f, _| {
            let i = f.region(kind(8));
            let at = f.get::<RegionRecord>(Table::Regions, i).start;
            region(f, i, |r| r.prot = 3);
            thread(f, 0, |t| t.clear_tid = at + 16)
        }),
        v("main thread's rseq area unmapped", Damaged, |f, _| thread(f, 0, |t| t.rseq_addr = 0x2000)),
        v("thread table runs into the regions table", Damaged, |f, _| {
            let mut h = f.header();
            let (threads, regions) = (h.tables[Table::Threads as usize], h.tables[Table::Regions as usize]);
            h.tables[Table::Threads as usize].count = (regions.off + regions.count * regions.rec_size - threads.off) / threads.rec_size;
            f.set_header(&h);
        }),
        v("stack region above the user address space", Damaged, |f, _| {
            let s = f.region(kind(3));
            region(f, s, |r| r.end = 0x8000_0000_0000)
        }),
        v("first region at address 4096", Damaged, |f, _| region(f, 0, |r| r.start = 0x1000)),
        v("heap with an unknown protection bit", Damaged, |f, _| {
            let h = f.region(kind(2));
            region(f, h, |r| r.prot |= 0x10)
        }),
        v("file mapping at an odd offset", Damaged, |f, _| {
            let i = f.region(|f, r| r.kind == 4 && has_path(f, r, "libc.so.6"));
            region(f, i, |r| r.file_off += 1)
        }),
        v("file mapping at an offset past any file", Damaged, |f, _| {
            let i = f.region(|f, r| r.kind == 4 && has_path(f, r, "libc.so.6"));
            region(f, i, |r| r.file_off = 0xffff_ffff_ffff_f000)
        }),
        v("heap kind made file-shared, keeping its data", Damaged, |f, _| {
            let h = f.region(kind(2));
            region(f, h, |r| r.kind = 5)
        }),
        v("heap saved data moved onto another region's", Damaged, |f, _| {
            let h = f.region(kind(2));
            let other = f.region(|_, r| r.kind == 1 && r.data_len > 0);
            let o: RegionRecord = f.get(Table::Regions, other);
            region(f, h, |r| r.data_off = o.data_off)
        }),
        v("two regions swap blob numbers", Damaged, |f, _| {
            let a = f.region(|_, r| r.blob != u32::MAX);
            let b = (a + 1..f.count(Table::Regions)).find(|&i| f.get::<RegionRecord>(Table::Regions, i).blob != u32::MAX).unwrap();
            let (ba, bb) = (f.get::<RegionRecord>(Table::Regions, a).blob, f.get::<RegionRecord>(Table::Regions, b).blob);
            region(f, a, |r| r.blob = bb);
            region(f, b, |r| r.blob = ba);
        }),
        v("a library mapping is a FIFO", Either, |f, dir| {
            let p = f.add_string(&fifo(dir));
            let i = f.region(|f, r| r.kind == 4 && has_path(f, r, "libc.so.6") && r.extents == 0);
            region(f, i, |r| r.file.path = p)
        }),
        v("start_code 0", Damaged, |f, _| process(f, |p| p.mm.start_code = 0)),
        v("brk below start_brk", Damaged, |f, _| process(f, |p| p.mm.brk = p.mm.start_brk - 4096)),
        v("auxv longer than the kernel takes", Damaged, |f, _| {
            let strings = f.count(Table::Strings) as u32 / 16 * 16;
            assert!(strings > 512, "a strings table longer than any auxv");
            process(f, |p| p.auxv = StrRef { off: 0, len: strings })
        }),
        v("auxv of an odd length", Damaged, |f, _| process(f, |p| p.auxv.len -= 8)),
        v("process name without its NUL", Damaged, |f, _| process(f, |p| p.comm = *b"AAAAAAAAAAAAAAAA")),
        v("interval timer with 2000000 us", Damaged, |f, _| process(f, |p| p.itimers[0].value_usec = 2_000_000)),
        v("interval timer with -1 s", Damaged, |f, _| process(f, |p| p.itimers[1].interval_sec = -1)),
        v("resource limit above its maximum", Damaged, |f, _| process(f, |p| p.rlimits[7].cur = p.rlimits[7].max + 1)),
        v("umask of 32 bits", Damaged, |f, _| process(f, |p| p.umask = u32::MAX)),
        v("informative fields changed (pid, tid, flags seen by hooks)", Runs, |f, _| {
            let mut h = f.header();
            (h.pid, h.created_unix_ns) = (u32::MAX, 1);
            f.set_header(&h);
            thread(f, 0, |t| t.tid = u32::MAX);
            let heap = f.region(kind(2));
            region(f, heap, |r| r.flags |= 1);
        }),
        v("unknown header flag", Damaged, |f, _| {
            let mut h = f.header();
            h.flags |= 4;
            f.set_header(&h);
        }),
    ]
}

fn thread_variants() -> Vec<(&'static str, Expect, Edit)> {
    vec![
        v("second thread's stack pointer 0", Damaged, |f, _| thread(f, 1, |t| t.ctx.rsp = 0)),
        v("second thread resumes at -1", Damaged, |f, _| thread(f, 1, |t| t.ctx.rip = u64::MAX)),
        v("second thread's TLS base in kernel space", Damaged, |f, _| thread(f, 1, |t| t.fs_base = 0xffff_f000_0000_0000)),
        v("second thread's alternate stack unmapped", Damaged, |f, _| {
            thread(f, 1, |t| {
                t.altstack_flags = 0;
                t.altstack_sp = 0x3000;
                t.altstack_size = 8192;
            })
        }),
    ]
}

/// The number of the first descriptor that `pick` chooses.
fn fd_where(f: &Forge, pick: impl Fn(&FdRecord) -> bool) -> i32 {
    f.get::<FdRecord>(Table::Fds, f.find(Table::Fds, |_, r: &FdRecord| pick(r))).fd
}
fn pipe_with_data(f: &Forge) -> i32 {
    fd_where(f, |r| r.kind == 5 && r.data_len > 0)
}
fn file_copy(f: &Forge) -> i32 {
    fd_where(f, |r| r.kind == 1 && r.dup_of >= 0)
}

fn fd_variants() -> Vec<(&'static str, Expect, Edit)> {
    vec![
        v("open flags the hooks saw changed", Runs, |f, _| {
            for i in 0..f.count(Table::Fds) {
                f.edit(Table::Fds, i, |r: &mut FdRecord| r.open_flags = u32::MAX);
            }
        }),
        v("descriptor number -5", Damaged, |f, _| fd(f, pipe_with_data(f), |r| r.fd = -5)),
        v("descriptor number 2147483647", Damaged, |f, _| fd(f, file_copy(f), |r| r.fd = i32::MAX)),
        v("descriptor numbers repeated", Damaged, |f, _| {
            let first = f.get::<FdRecord>(Table::Fds, 0).fd;
            f.edit(Table::Fds, 1, |r: &mut FdRecord| r.fd = first)
        }),
        v("a pipe on descriptor 2", Damaged, |f, _| fd(f, pipe_with_data(f), |r| r.fd = 2)),
        v("copy of a descriptor not in the image", Damaged, |f, _| fd(f, file_copy(f), |r| r.dup_of = 999)),
        v("copy of a later descriptor", Damaged, |f, _| {
            let (copy, original) = (file_copy(f), f.get::<FdRecord>(Table::Fds, f.fd(file_copy(f))).dup_of);
            fd(f, original, |r| r.dup_of = copy);
            fd(f, copy, |r| r.dup_of = -1);
        }),
        v("copy that carries data", Damaged, |f, _| {
            let r: FdRecord = f.get(Table::Fds, f.fd(pipe_with_data(f)));
            fd(f, file_copy(f), |c| {
                (c.data_off, c.data_len) = (r.data_off, r.data_len);
            })
        }),
        v("pipe capacity 2^40", Damaged, |f, _| fd(f, pipe_with_data(f), |r| r.params[0] = 1 << 40)),
        v("socket pair of domain 99", Damaged, |f, _| fd(f, fd_where(f, |r| r.kind == 6), |r| r.params[0] = 99)),
        v("socket pair of type 99", Damaged, |f, _| fd(f, fd_where(f, |r| r.kind == 6), |r| r.params[1] = 99)),
        v("pipe bytes moved onto a socket's queue", Damaged, |f, _| {
            let s: FdRecord = f.get(Table::Fds, f.fd(fd_where(f, |r| r.kind == 6 && r.data_len > 0)));
            fd(f, pipe_with_data(f), |p| (p.data_off, p.data_len) = (s.data_off, s.data_len))
        }),
        v("a pipe read end with data made a device", Damaged, |f, _| fd(f, pipe_with_data(f), |r| r.kind = 3)),
        v("unknown descriptor kind", Damaged, |f, _| f.edit(Table::Fds, 0, |r: &mut FdRecord| r.kind = 99)),
        v("the file is a FIFO now", Either, |f, dir| {
            let p = f.add_string(&fifo(dir));
            fd(f, fd_where(f, |r| r.kind == 1 && r.dup_of < 0), |r| r.file.path = p)
        }),
    ]
}

fn event_variants() -> Vec<(&'static str, Expect, Edit)> {
    vec![
        v("timerfd with 2e9 ns", Damaged, |f, _| fd(f, fd_where(f, |r| r.kind == 12), |r| r.params[3] = 2_000_000_000)),
        v("timerfd on clock 5", Damaged, |f, _| fd(f, fd_where(f, |r| r.kind == 12), |r| r.params[0] = 5)),
        v("eventfd count 2^64-1", Damaged, |f, _| fd(f, fd_where(f, |r| r.kind == 10), |r| r.params[0] = u64::MAX)),
        v("epoll registration of descriptor 999", Damaged, |f, _| epoll_entry(f, 0, |e| e.fd = 999)),
        v("epoll registration repeated", Damaged, |f, _| {
            let first = epoll_entries(f)[0];
            epoll_entry(f, 1, |e| e.fd = first.fd)
        }),
        v("epoll set that watches itself", Damaged, |f, _| {
            let ep = epoll(f);
            epoll_entry(f, 0, |e| e.fd = ep)
        }),
        v("epoll registrations of a ragged length", Damaged, |f, _| fd(f, epoll(f), |r| r.extra.len -= 3)),
    ]
}

fn epoll(f: &Forge) -> i32 {
    fd_where(f, |r| r.kind == 9)
}

fn epoll_entries(f: &Forge) -> Vec<EpollEntry> {
    let r: FdRecord = f.get(Table::Fds, f.fd(epoll(f)));
    f.str(r.extra).chunks_exact(16).map(|c| read_record(c, 0).unwrap()).collect()
}

fn epoll_entry(f: &mut Forge, i: usize, e: impl FnOnce(&mut EpollEntry)) {
    let r: FdRecord = f.get(Table::Fds, f.fd(epoll(f)));
    let at = f.header().tables[Table::Strings as usize].off as usize + r.extra.off as usize + 16 * i;
    let mut entry: EpollEntry = read_record(&f.bytes[at..], 0).unwrap();
    e(&mut entry);
    f.bytes[at..at + 16].copy_from_slice(bytes_of(&entry));
}

fn timer_variants() -> Vec<(&'static str, Expect, Edit)> {
    let timer = |f: &mut Forge, i: usize, e: &dyn Fn(&mut TimerRecord)| f.edit(Table::Timers, i, e);
    vec![
        v("POSIX timer with 2e9 ns left", Damaged, move |f, _| timer(f, 0, &|t| t.spec[3] = 2_000_000_000)),
        v("POSIX timer with -1 s interval", Damaged, move |f, _| timer(f, 1, &|t| t.spec[0] = -1)),
        v("POSIX timer id -1", Damaged, move |f, _| timer(f, 0, &|t| t.id = -1)),
        v("two POSIX timers with one id", Damaged, move |f, _| {
            let id = f.get::<TimerRecord>(Table::Timers, 0).id;
            timer(f, 1, &|t| t.id = id)
        }),
        v("POSIX timer on clock 4", Damaged, move |f, _| timer(f, 0, &|t| t.clock = 4)),
        v("POSIX timer with signal 99", Damaged, move |f, _| timer(f, 1, &|t| t.signo = 99)),
    ]
}

fn shm_variants() -> Vec<(&'static str, Expect, Edit)> {
    let escape = |f: &mut Forge, dir: &Path| f.add_string(format!("/dev/shm/../..{}/escaped", dir.display()).as_bytes());
    vec![
        v("shared mapping's file outside /dev/shm", Damaged, move |f, dir| {
            let p = escape(f, dir);
            let i = f.region(|f, r| r.kind == 11 && r.flags & 2 == 0 && f.str(r.file.path).starts_with(b"/dev/shm/"));
            region(f, i, |r| r.file.path = p)
        }),
        v("shm descriptor's file outside /dev/shm", Damaged, move |f, dir| {
            let p = escape(f, dir);
            let i = f.find(Table::Fds, |_, r: &FdRecord| r.kind == 16);
            f.edit(Table::Fds, i, |r: &mut FdRecord| r.file.path = p)
        }),
        v("shared mapping whose data is in a descriptor that is gone", Damaged, |f, _| {
            let i = f.region(|_, r| r.flags & 2 != 0);
            region(f, i, |r| r.file.ino ^= 0x5555)
        }),
        v("shared mapping at an odd offset", Damaged, |f, _| {
            let i = f.region(kind(11));
            region(f, i, |r| r.file_off += 1)
        }),
    ]
}

enum Outcome {
    Refused,
    Ran,
    Bad(String),
}

struct Subject {
    name: &'static str,
    args: Vec<String>,
    at: u32,
    variants: Vec<(&'static str, Expect, Edit)>,
}

/// Runs the subject once bare, once checkpointed at step `at` and killed; returns (the
/// uninterrupted output, what the checkpointed run printed, the image).
fn prepare(s: &Subject, dir: &Path) -> (Vec<String>, Vec<String>, PathBuf) {
    let mut l = Launch::new(&compile(s.name), dir);
    for a in &s.args {
        l = l.arg(a);
    }
    let reference = reference(&l.clone_bare());
    let image = dir.join("subject.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, s.at, &image);
    p.line().expect("the subject keeps running after a checkpoint");
    (reference, p.kill(), image)
}

/// Restores `image` as subject `s` would be; at most `HANG`.
fn restore(s: &Subject, dir: &Path, image: &Path) -> (Option<std::process::ExitStatus>, Vec<String>, String) {
    let mut c = Command::new(compile(s.name));
    c.args(&s.args).current_dir(dir).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for k in ["MIG_IMAGE", "MIG_LOG", "MIG_RESTORE_EAGER", "MIG_INTERVAL"] {
        c.env_remove(k);
    }
    c.env("LD_PRELOAD", lib()).env("MIG_RESTORE", image);
    // SAFETY: close_range is async-signal-safe, as pre_exec requires.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, || {
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            Ok(())
        });
    }
    let mut child = c.spawn().unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if t0.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let lines = out.join().unwrap().lines().map(String::from).collect();
    (status, lines, err.join().unwrap())
}

/// Whether `restored` continues `before` exactly as the uninterrupted run goes on.
fn continues(reference: &[String], before: &[String], restored: &[String]) -> bool {
    let Some(first) = restored.first().and_then(|l| step_of(l)) else { return false };
    let last_before = before.iter().rev().find_map(|l| step_of(l)).unwrap_or(0);
    let Some(at) = reference.iter().position(|l| step_of(l) == Some(first)) else { return false };
    first <= last_before + 1 && reference[at..] == *restored
}

fn classify(image: &Path, (status, out, err): (Option<std::process::ExitStatus>, Vec<String>, String), reference: &[String], before: &[String]) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    let err1 = err.trim_end().replace('\n', " | ");
    let Some(st) = status else { return Outcome::Bad(format!("hung (killed after {HANG:?}): {err1}")) };
    if err.contains("panicked") {
        return Outcome::Bad(format!("panicked: {err1}"));
    }
    if let Some(sig) = st.signal() {
        return Outcome::Bad(format!("killed by signal {sig}: {err1}"));
    }
    match st.code() {
        Some(125) if out.is_empty() && err.lines().count() == 1 && err.contains(&image.display().to_string()) => Outcome::Refused,
        Some(125) => Outcome::Bad(format!("refused, but not in one line naming the image: {err1}")),
        Some(127) => Outcome::Bad(format!("failed after the point of no return: {err1}")),
        Some(0) if continues(reference, before, &out) => Outcome::Ran,
        Some(code) => Outcome::Bad(format!("status {code}, output {:?}: {err1}", out.last())),
        None => Outcome::Bad("no status".into()),
    }
}

/// Whether `mig inspect` calls `image` intact.
fn inspect_intact(image: &Path) -> bool {
    mig_cmd(&["inspect"]).arg(image).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap().success()
}

fn subjects() -> Vec<Subject> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let shm_name = format!("/mig-forged-{}-{nanos}", std::process::id());
    vec![
        Subject { name: "chain", args: vec!["12".into()], at: 3, variants: common_variants() },
        Subject { name: "threads_sleepers", args: vec!["10".into()], at: 3, variants: thread_variants() },
        Subject { name: "fd_pipes", args: vec!["10".into()], at: 3, variants: fd_variants() },
        Subject { name: "fd_events", args: vec!["12".into()], at: 3, variants: event_variants() },
        Subject { name: "posix_timers", args: vec!["12".into()], at: 3, variants: timer_variants() },
        Subject { name: "memfd_shm", args: vec!["10".into(), shm_name], at: 3, variants: shm_variants() },
    ]
}

#[test]
fn forged_images_are_refused_or_restored_never_crash() {
    let t0 = Instant::now();
    let mut report = Vec::new();
    let mut bad = 0;
    for s in subjects() {
        let dir = tempdir(&format!("forged_{}", s.name));
        let (reference, before, image) = prepare(&s, &dir);
        let clean = std::fs::read(&image).unwrap();
        for (name, expect, edit) in &s.variants {
            let mut f = Forge { bytes: clean.clone() };
            edit(&mut f, &dir);
            f.seal();
            let forged = dir.join(format!("{}.mig", name.replace([' ', '/', '\''], "_")));
            std::fs::write(&forged, &f.bytes).unwrap();
            let outcome = classify(&forged, restore(&s, &dir, &forged), &reference, &before);
            let intact = inspect_intact(&forged);
            let escaped = dir.join("escaped");
            let mut verdict = match &outcome {
                Outcome::Refused => "refused".to_string(),
                Outcome::Ran => "ran to its end".to_string(),
                Outcome::Bad(why) => format!("BAD: {why}"),
            };
            if escaped.exists() {
                verdict = format!("BAD: wrote {} ({verdict})", escaped.display());
                let _ = std::fs::remove_file(&escaped);
            }
            if *expect == Damaged && (intact || !matches!(outcome, Outcome::Refused)) && !verdict.starts_with("BAD") {
                verdict = format!("BAD: a malformed image was {} ({verdict})", if intact { "called intact by mig inspect" } else { "not refused" });
            }
            if *expect == Runs && !(intact && matches!(outcome, Outcome::Ran)) && !verdict.starts_with("BAD") {
                verdict = format!("BAD: a well-formed image was {} ({verdict})", if intact { "not restored" } else { "called damaged by mig inspect" });
            }
            bad += verdict.starts_with("BAD") as usize;
            report.push(format!("{:<16} {:<58} inspect: {:<7} {verdict}", s.name, name, if intact { "intact" } else { "damaged" }));
        }
        // Whatever a variant did, the subject's shared memory objects go.
        for suffix in ["a", "b"] {
            if let Some(name) = s.args.get(1) {
                let _ = std::fs::remove_file(Path::new("/dev/shm").join(format!("{}-{suffix}", &name[1..])));
            }
        }
    }
    eprintln!("forged variants ({:.1} s):\n{}", t0.elapsed().as_secs_f64(), report.join("\n"));
    assert_eq!(
        bad,
        0,
        "{bad} forged images were not refused cleanly:\n{}",
        report.iter().filter(|l| l.contains("BAD")).cloned().collect::<Vec<_>>().join("\n")
    );
}
