//! Gathers everything the image records, from `/proc/self` and system calls, into
//! scratch lists. Async-signal-safe: runs inside the checkpoint signal handler.
#![allow(unsafe_code)]

use super::files::{self, Strings};
use super::maps::{self, MapLine};
use super::scratch::{List, Scratch};
use crate::runtime;
use crate::sys::{self, CPath, Errno, msg::msg};
use mig_image::*;

// Re-exported: the kinds name them from here.
pub use super::failure::Failure;
pub use super::snapshot::Snapshot;

const PAGEMAP_CHUNK: usize = 1 << 16;

/// Everything but memory: what a forked copy of the process would not have (thread
/// records, timers) or would not see as it was (descriptors, queued bytes).
/// `threads`: how many thread slots the stop filled (see `threads.rs`).
/// `portable`: save every page of file mappings too (see `HEADER_PORTABLE`).
pub fn collect(scratch: &mut Scratch, ctx: &Context, threads: usize, portable: bool, created_ns: u64) -> Result<Snapshot, Failure> {
    let mut s = Snapshot {
        pid: sys::getpid(),
        created_ns,
        stopped_us: 0,
        process: zeroed(),
        threads: scratch.list(super::threads::MAX_THREADS).ok_or(Failure::Full)?,
        regions: scratch.list(1 << 18).ok_or(Failure::Full)?,
        extents: scratch.list(1 << 22).ok_or(Failure::Full)?,
        fds: scratch.list(1 << 16).ok_or(Failure::Full)?,
        timers: scratch.list(1 << 14).ok_or(Failure::Full)?,
        queued: scratch.list(256 << 20).ok_or(Failure::Full)?,
        fd_src: scratch.list(1 << 16).ok_or(Failure::Full)?,
        strings: Strings::new(scratch.list(64 << 20).ok_or(Failure::Full)?),
        layout: Layout::new(0, 0, 0, 0, 0, 0),
        portable,
        text: scratch.list(128 << 20).ok_or(Failure::Full)?,
        parent_maps: 0,
        pagemap: scratch.list(PAGEMAP_CHUNK).ok_or(Failure::Full)?,
        scratch_range: (scratch.base as u64, (scratch.base + scratch.len) as u64),
        // The resume point is a call site: nothing below its stack pointer is live.
        stack_cut: ctx.rsp & !(PAGE - 1),
    };
    let mut text = core::mem::replace(&mut s.text, List::empty());
    let mut info: List<u8> = scratch.list(16 << 20).ok_or(Failure::Full)?;
    let r = state(&mut s, &mut text, &mut info, threads);
    s.text = text;
    r.map(|()| s)
}

fn state(s: &mut Snapshot, text: &mut List<u8>, info: &mut List<u8>, threads: usize) -> Result<(), Failure> {
    process(s, text)?;
    for t in super::threads::records(threads) {
        s.threads.push(t)?;
    }
    // Descriptors before memory: a shared mapping of a file a descriptor saves is not
    // saved twice.
    super::fds::collect(s, text, info)?;
    // Only there with CONFIG_CHECKPOINT_RESTORE: without it, timers are not seen.
    if slurp(b"/proc/self/timers", text).is_ok() {
        super::kinds::ptimer::save(text.as_slice(), &mut s.timers)?;
    }
    Ok(())
}

/// Whether the process has memory shared with a file or another mapping that would be
/// saved (a forked copy of it is no snapshot). Keeps the maps it read for `memory`.
pub fn shares_memory(s: &mut Snapshot) -> Result<bool, Failure> {
    slurp(b"/proc/self/maps", &mut s.text)?;
    s.parent_maps = s.text.len();
    Ok(maps::lines(s.text.as_slice())
        .any(|l| l.shared && (l.path.is_empty() || l.pseudo() || l.deleted() || l.path.starts_with(b"/memfd:") || l.path.starts_with(b"/dev/shm/"))))
}

/// Memory: regions, the pages worth saving (page map), and the image's layout. May
/// run in the forked writer: its page map is the process's at the fork.
pub fn memory(s: &mut Snapshot) -> Result<(), Failure> {
    if s.parent_maps > 0 {
        // In the writer: a fork does not copy `MADV_DONTFORK` memory. Same mappings, or
        // no image (the parent's maps are in `text`, this process's go after them).
        let n = s.parent_maps;
        s.text.truncate(n);
        let spare = s.text.spare();
        let m = CPath::new(b"/proc/self/maps").and_then(|p| sys::read_file(&p, spare).ok()).ok_or(Failure::Other("cannot read /proc/self/maps"))?;
        s.text.grow(m);
        let (parent, child) = s.text.as_slice().split_at(n);
        // The stack may have grown down meanwhile: the handler runs on it, as deep as
        // the program was when the signal came.
        let ranges = |t| maps::lines(t).map(|l| (if l.path == b"[stack]" { 0 } else { l.start }, l.end));
        if !ranges(parent).eq(ranges(child)) {
            return Err(Failure::Other("the process has memory a fork does not copy (MADV_DONTFORK): start it with MIG_FORK=0"));
        }
    }
    memory_regions(s)?;
    s.layout = s.table_layout();
    for r in s.regions.as_mut_slice() {
        if r.data_len > 0 {
            (r.blob, r.data_off) = s.layout.add_blob(r.data_len);
        }
    }
    place_fd_blobs(s)
}

/// The regions and the pages of each worth saving, as the maps and page map say now.
pub fn memory_regions(s: &mut Snapshot) -> Result<(), Failure> {
    s.regions.truncate(0);
    s.extents.truncate(0);
    let mut text = core::mem::replace(&mut s.text, List::empty());
    let mut pagemap = core::mem::replace(&mut s.pagemap, List::empty());
    let (cut, range) = (s.stack_cut, s.scratch_range);
    let r = regions(s, &mut text, pagemap.spare(), range, cut);
    s.text = text;
    s.pagemap = pagemap;
    r?;
    // Every warning is said by now: the image keeps them (`mig inspect` lists them).
    s.process.warnings = s.strings.add(sys::msg::warnings())?;
    Ok(())
}

/// Blobs for the descriptors' data, after the regions'.
pub fn place_fd_blobs(s: &mut Snapshot) -> Result<(), Failure> {
    for f in s.fds.as_mut_slice() {
        if f.data_len > 0 {
            s.fd_src.push(f.data_off)?;
            (f.blob, f.data_off) = s.layout.add_blob(f.data_len);
        }
    }
    Ok(())
}

/// Reads a `/proc` file into `text` (replacing its contents).
fn slurp(path: &[u8], text: &mut List<u8>) -> Result<(), Failure> {
    text.truncate(0);
    let cpath = CPath::new(path).ok_or(Failure::Other("path too long"))?;
    let n = sys::read_file(&cpath, text.spare()).map_err(|e| Failure::Sys("reading /proc", e))?;
    if n == text.spare().len() {
        return Err(Failure::Full);
    }
    text.grow(n);
    Ok(())
}

fn process(s: &mut Snapshot, text: &mut List<u8>) -> Result<(), Failure> {
    let p = &mut s.process;
    slurp(b"/proc/self/stat", text)?;
    let stat = text.as_slice();
    let after_comm = stat.iter().rposition(|&c| c == b')').map_or(stat, |i| stat.get(i + 2..).unwrap_or(&[]));
    // Field 3 of stat(5) is the first one after the command name.
    let field = |n: usize| -> u64 {
        let f = after_comm.split(|&c| c == b' ').nth(n - 3).unwrap_or(b"0");
        f.iter().take_while(|c| c.is_ascii_digit()).fold(0u64, |a, &c| a.wrapping_mul(10).wrapping_add((c - b'0') as u64))
    };
    p.mm = MmFields {
        start_code: field(26),
        end_code: field(27),
        start_stack: field(28),
        start_data: field(45),
        end_data: field(46),
        start_brk: field(47),
        // SAFETY: brk(0) only asks where the break is.
        brk: unsafe { sys::brk(0) } as u64,
        arg_start: field(48),
        arg_end: field(49),
        env_start: field(50),
        env_end: field(51),
    };
    slurp(b"/proc/self/auxv", text)?;
    p.auxv = s.strings.add(text.as_slice())?;

    let mut cwd = [0u8; 4096];
    let n = sys::getcwd(&mut cwd).map_err(|e| Failure::Sys("getcwd", e))?;
    p.cwd = s.strings.add(cwd.get(..n.saturating_sub(1)).unwrap_or(&[]))?;
    p.umask = sys::umask(0o022);
    sys::umask(p.umask);
    p.comm = sys::get_name();
    for (res, lim) in p.rlimits.iter_mut().enumerate() {
        let _ = sys::prlimit(res as u32, None, lim);
    }
    for (which, t) in p.itimers.iter_mut().enumerate() {
        let _ = sys::getitimer(which as i32, t);
    }
    for (i, a) in p.sigactions.iter_mut().enumerate() {
        let _ = sys::sigaction(i as i32 + 1, None, Some(a));
    }
    let exe = &runtime::get().exe;
    p.cpu = sys::cpu_features();
    p.exe = files::identify(exe.as_bytes(), &mut s.strings)?.ok_or(Failure::Other("the executable is gone"))?;
    Ok(())
}

fn classify(l: &MapLine, strings: &mut Strings) -> Result<Option<(RegionKind, FileId)>, Failure> {
    use RegionKind::*;
    let none = FileId::default();
    let kind = match l.path {
        b"[vsyscall]" | b"[uprobes]" => return Ok(None),
        b"[vvar]" => Vvar,
        b"[vvar_vclock]" => VvarVclock,
        b"[vdso]" => Vdso,
        b"[heap]" => Heap,
        b"[stack]" => Stack,
        _ if l.path.is_empty() || l.pseudo() => {
            if l.shared {
                SharedAnon
            } else {
                Anon
            }
        }
        // Memory shared through a file that a restore has to make again.
        _ if l.shared && (l.deleted() || l.path.starts_with(b"/memfd:") || l.path.starts_with(b"/dev/shm/")) => {
            let dev = libc::makedev(l.dev_major, l.dev_minor);
            return Ok(Some((SharedObject, FileId { path: strings.add(l.file_path())?, dev, ino: l.ino, ..none })));
        }
        _ if l.deleted() => Orphan,
        _ => {
            let Some(id) = files::identify(l.file_path(), strings)? else {
                return Ok(Some((if l.shared { SharedAnon } else { Orphan }, none)));
            };
            let same_file = id.ino == l.ino && libc::major(id.dev) == l.dev_major && libc::minor(id.dev) == l.dev_minor;
            let regular = id.mode & libc::S_IFMT == libc::S_IFREG;
            return Ok(Some(match (same_file && regular, l.shared) {
                (true, false) => (FilePrivate, id),
                (true, true) => (FileShared, id),
                // A private mapping of /dev/zero is anonymous memory.
                (false, false) if !regular => (Anon, none),
                (false, _) => (if l.shared { SharedAnon } else { Orphan }, none),
            }));
        }
    };
    Ok(Some((kind, none)))
}

const PM_PRESENT: u64 = 1 << 63;
const PM_SWAPPED: u64 = 1 << 62;
const PM_FILE: u64 = 1 << 61;
/// A guard page (`MADV_GUARD_INSTALL`; reported from Linux 6.15): never read.
const PM_GUARD: u64 = 1 << 58;

/// Which pages of a region have contents the file or zero-fill would not give back.
fn wanted(kind: RegionKind, all: bool, entry: u64) -> bool {
    if entry & PM_GUARD != 0 {
        return false;
    }
    if all {
        return true;
    }
    match kind {
        RegionKind::FilePrivate => entry & PM_SWAPPED != 0 || (entry & PM_PRESENT != 0 && entry & PM_FILE == 0),
        _ => entry & (PM_PRESENT | PM_SWAPPED) != 0,
    }
}

fn regions(s: &mut Snapshot, text: &mut List<u8>, pm: &mut [u64], scratch: (u64, u64), cut: u64) -> Result<(), Failure> {
    slurp(b"/proc/self/maps", text)?;
    let pagemap =
        sys::open(&CPath::new(b"/proc/self/pagemap").ok_or(Failure::Full)?, libc::O_RDONLY, 0).map_err(|e| Failure::Sys("opening /proc/self/pagemap", e))?;
    let r = (|| {
        for l in maps::lines(text.as_slice()) {
            // Our own working memory is not part of the process.
            let (start, end) = if l.end <= scratch.0 || l.start >= scratch.1 {
                (l.start, l.end)
            } else if l.start < scratch.0 {
                (l.start, scratch.0)
            } else if l.end > scratch.1 {
                (scratch.1, l.end)
            } else {
                continue;
            };
            let Some((kind, file)) = classify(&l, &mut s.strings)? else { continue };
            let first_extent = s.extents.len() as u32;
            let mut saved = 0u64;
            let in_fd = kind == RegionKind::SharedObject
                && s.fds
                    .as_slice()
                    .iter()
                    .any(|f| f.dup_of < 0 && f.file.dev == file.dev && f.file.ino == file.ino && FdKind::from_u32(f.kind).is_some_and(FdKind::saves_file));
            let whole = s.portable && kind == RegionKind::FilePrivate;
            if kind == RegionKind::Vdso {
                // SAFETY: [vdso] is mapped readable for as long as the process lives.
                let code = unsafe { core::slice::from_raw_parts(start as *const u8, (end - start) as usize) };
                let mut crc = runtime::get().hasher.clone();
                crc.update(code);
                s.process.vdso_crc = crc.finalize();
            }
            if !kind.is_kernel() && kind != RegionKind::FileShared && !in_fd {
                let from = if (start..end).contains(&cut) { cut } else { start };
                let all = whole || matches!(kind, RegionKind::SharedAnon | RegionKind::SharedObject | RegionKind::Orphan);
                let mut guards = 0;
                saved = extents(kind, all, start, from, end, pagemap, pm, &mut s.extents, &mut guards)?;
                if guards > 0 {
                    msg()
                        .s("warning: ")
                        .num(guards)
                        .s(" guard pages (MADV_GUARD_INSTALL) in the mapping at 0x")
                        .hex(start)
                        .s(" are not saved: after a restore they are ordinary zero-filled pages")
                        .emit();
                }
            }
            let by_program = !kind.is_kernel() && crate::intent::mapped_by_program(start, end);
            s.regions.push(RegionRecord {
                start,
                end,
                prot: l.prot,
                kind: kind as u32,
                flags: if by_program { REGION_BY_PROGRAM } else { 0 } | if in_fd { REGION_DATA_IN_FD } else { 0 } | if whole { REGION_WHOLE } else { 0 },
                first_extent,
                extents: s.extents.len() as u32 - first_extent,
                blob: u32::MAX,
                file_off: l.offset + (start - l.start),
                file,
                data_off: 0,
                data_len: saved,
            })?;
        }
        Ok(())
    })();
    sys::close(pagemap);
    r
}

/// Appends the runs of pages worth saving from `from` on; returns their size in bytes.
/// `all`: every page, whatever the page map says, but guard pages, which are never
/// read: they are counted in `guards`.
#[allow(clippy::too_many_arguments)]
fn extents(
    kind: RegionKind,
    all: bool,
    start: u64,
    from: u64,
    end: u64,
    pagemap: i32,
    pm: &mut [u64],
    out: &mut List<Extent>,
    guards: &mut u64,
) -> Result<u64, Failure> {
    if !all && kind != RegionKind::FilePrivate {
        // Resident or swapped, as runs: far cheaper than a page map entry per page.
        let first = out.len();
        let mut total = 0;
        // SAFETY: `Run` is three `u64`s; `pm` is a valid, writable slice of `u64`.
        let runs = unsafe { core::slice::from_raw_parts_mut(pm.as_mut_ptr().cast::<super::dirty::Run>(), pm.len() / 3) };
        let scanned = super::dirty::scan_counting_guards(
            pagemap,
            from,
            end,
            super::dirty::Ask::Resident,
            runs,
            |a, b| {
                let mine = out.len() > first;
                match out.as_mut_slice().last_mut() {
                    Some(e) if mine && start + (e.first_page + e.pages) * PAGE == a => e.pages += (b - a) / PAGE,
                    _ => {
                        out.push(Extent { first_page: (a - start) / PAGE, pages: (b - a) / PAGE })?;
                    }
                }
                total += b - a;
                Ok(())
            },
            guards,
        );
        match scanned {
            Ok(()) => return Ok(total),
            // Before Linux 6.7 there is no PAGEMAP_SCAN: read the page map.
            Err(Failure::Sys(_, Errno(libc::ENOTTY | libc::EINVAL))) => out.truncate(first),
            Err(f) => return Err(f),
        }
    }
    let pages = (end - start) / PAGE;
    let mut run: Option<Extent> = None;
    let mut total = 0;
    let mut page = (from - start) / PAGE;
    while page < pages {
        let n = ((pages - page) as usize).min(pm.len());
        // Read for every region, also those saved whole: a guard page is never read.
        // SAFETY: `pm[..n]` is a valid, writable slice of `u64`, viewed as bytes.
        let bytes = unsafe { core::slice::from_raw_parts_mut(pm.as_mut_ptr().cast::<u8>(), n * 8) };
        let off = (start / PAGE + page) * 8;
        let got = sys::pread(pagemap, bytes, off).map_err(|e| Failure::Sys("reading /proc/self/pagemap", e))? / 8;
        if got == 0 {
            break;
        }
        for (i, &entry) in pm.get(..got).unwrap_or(&[]).iter().enumerate() {
            *guards += (entry & PM_GUARD != 0) as u64;
            let keep = wanted(kind, all, entry);
            let p = page + i as u64;
            match (&mut run, keep) {
                (Some(e), true) => e.pages += 1,
                (None, true) => run = Some(Extent { first_page: p, pages: 1 }),
                (Some(e), false) => {
                    total += e.pages;
                    out.push(*e)?;
                    run = None;
                }
                (None, false) => {}
            }
        }
        page += got as u64;
    }
    if let Some(e) = run {
        total += e.pages;
        out.push(e)?;
    }
    Ok(total * PAGE)
}
