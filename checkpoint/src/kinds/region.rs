//! Memory regions: the save side, from the maps and page map, into the image's
//! `RegionRecord`s and their `Extent`s (the runs of pages saved). Mapped again by the
//! blob: the restore side is the planner's `plan/regions.rs` (with `plan/lazy.rs` for
//! the pages a lazy restore brings in later).
#![allow(unsafe_code)]

use crate::collect::slurp;
use crate::dirty;
use crate::failure::Failure;
use crate::files::{self, Strings};
use crate::maps::{self, MapLine};
use crate::runtime;
use crate::scratch::List;
use crate::snapshot::{Advice, Snapshot};
use crate::sys::{self, CPath, Errno, msg::msg};
use mig_image::*;

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
        _ if super::aio::is_ring(l) => {
            super::aio::note(l.start, l.end);
            SharedAnon
        }
        _ if l.path.is_empty() || l.pseudo() => {
            if l.shared {
                SharedAnon
            } else {
                Anon
            }
        }
        _ if l.shared && sysv_key(l.file_path()).is_some() => return sysv(l, strings).map(Some),
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

/// An attach of a System V segment, as `shmctl(IPC_STAT)` describes the segment; one
/// the process may not read the state of comes back as shared memory of its own.
fn sysv(l: &MapLine, strings: &mut Strings) -> Result<(RegionKind, FileId), Failure> {
    let dev = libc::makedev(l.dev_major, l.dev_minor);
    let file = FileId { path: strings.add(l.file_path())?, dev, ino: l.ino, ..FileId::default() };
    match sys::shm_stat(l.ino) {
        Ok(ds) => Ok((RegionKind::SysvShm, FileId { size: ds.shm_segsz as u64, mode: ds.shm_perm.mode as u32, ..file })),
        Err(e) => {
            msg()
                .s("warning: the System V shared memory segment ")
                .num(l.ino)
                .s(" cannot be read (shmctl: errno ")
                .num(e.0 as u64)
                .s("): it comes back as shared memory of the process's own, no longer that segment")
                .emit();
            Ok((RegionKind::SharedObject, file))
        }
    }
}

/// Whether the attach of a System V segment that `file_off` into it at `start`
/// belongs to comes back whole: its first page is one of the regions saved before
/// (a restore attaches the segment there, then takes away what is no longer mapped).
fn attach_saved(s: &Snapshot, start: u64, file_off: u64, ino: u64) -> bool {
    let base = start - file_off;
    file_off == 0 || s.regions.as_slice().iter().any(|r| r.kind == RegionKind::SysvShm as u32 && r.file.ino == ino && r.start - r.file_off == base)
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

/// The advice and locks the kernel keeps for each mapping, from `/proc/self/smaps`:
/// (start, `REGION_*` bits) of the mappings that have any.
pub fn advice(smaps: &[u8], out: &mut List<Advice>) -> Result<(), Failure> {
    let mut start = 0;
    for line in smaps.split(|&c| c == b'\n') {
        if let Some(flags) = line.strip_prefix(b"VmFlags:") {
            let bits = flags
                .split(|&c| c == b' ')
                .filter(|w| w.len() == 2)
                .filter_map(|w| REGION_ADVICE.iter().find(|(_, name)| w == *name).map(|(bit, _)| *bit))
                .fold(0, |a, b| a | b);
            if bits != 0 {
                out.push(Advice { start, bits: bits as u64 })?;
            }
        } else if let Some(range) = line.split(|&c| c == b' ').next().filter(|r| r.contains(&b'-') && r.first().is_some_and(u8::is_ascii_hexdigit)) {
            start = range.split(|&c| c == b'-').next().and_then(maps::hex).unwrap_or(0);
        }
    }
    Ok(())
}

/// The regions of the maps (less mig's own scratch memory) and the pages of each
/// worth saving; `cut`: the stack pointer below which nothing is live.
pub fn save(s: &mut Snapshot, text: &mut List<u8>, pm: &mut [u64], scratch: (u64, u64), cut: u64) -> Result<(), Failure> {
    slurp(b"/proc/self/maps", text)?;
    super::aio::forget();
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
            let Some((mut kind, mut file)) = classify(&l, &mut s.strings)? else { continue };
            let file_off = l.offset + (start - l.start);
            if kind == RegionKind::SysvShm && !attach_saved(s, start, file_off, file.ino) {
                msg()
                    .s("warning: the System V shared memory segment ")
                    .num(file.ino)
                    .s(" is mapped at 0x")
                    .hex(start)
                    .s(" without the start of its attach: that part comes back as shared memory of the process's own")
                    .emit();
                (kind, file) = (RegionKind::SharedObject, FileId { size: 0, mode: 0, ..file });
            }
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
                let all = whole || matches!(kind, RegionKind::SharedAnon | RegionKind::SharedObject | RegionKind::SysvShm | RegionKind::Orphan);
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
            let (by_program, noreserve) = if kind.is_kernel() { (false, false) } else { crate::intent::mapped_by_program(start, end) };
            s.regions.push(RegionRecord {
                start,
                end,
                prot: l.prot,
                kind: kind as u32,
                flags: s.advice.as_slice().iter().find(|a| a.start == l.start).map_or(0, |a| a.bits as u32)
                    | if by_program { REGION_BY_PROGRAM } else { 0 }
                    | if in_fd { REGION_DATA_IN_FD } else { 0 }
                    | if whole { REGION_WHOLE } else { 0 }
                    | if noreserve { REGION_NORESERVE } else { 0 }
                    | if kind == RegionKind::SharedObject && l.deleted() { REGION_DELETED } else { 0 },
                first_extent,
                extents: s.extents.len() as u32 - first_extent,
                blob: u32::MAX,
                file_off,
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
        let runs = unsafe { core::slice::from_raw_parts_mut(pm.as_mut_ptr().cast::<dirty::Run>(), pm.len() / 3) };
        let scanned = dirty::scan_counting_guards(
            pagemap,
            from,
            end,
            dirty::Ask::Resident,
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
