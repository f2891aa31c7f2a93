//! Restore, step one (normal code, in the fresh process's constructor): check the image
//! against this executable, these libraries, this kernel and these files, and refuse
//! with a reason *before* anything is replaced. Then build the blob's program in a
//! hole and hand over to it (see `blob.rs` for the algorithm).
#![allow(unsafe_code)]

use super::blob::{self, BlobArgs, CHECK_EQ_A0, CHECK_EQ_A2, CHECK_EQ_A4, CHECK_OK, CLONE_RESUME, END, Op, STORE_U32};
use super::fds::{self, Expect, FdPlan, open_expecting, open_raw, raise_fd};
use super::loader;
use crate::checkpoint::handoff::{self, Handoff};
use crate::checkpoint::maps::{self, MapLine};
use crate::runtime::{self, FixedPath, Settings};
use crate::sys::{self, msg::msg};
use memmap2::{Advice, Mmap};
use mig_image::*;
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

type Refusal = String;

/// Restores the process saved in `image`, or exits with `EXIT_REFUSED` and one line
/// that says why not. Never returns.
pub fn restore(image: &Path, settings: Settings) -> ! {
    let started_ns = sys::clock_monotonic_ns();
    match prepare(image, settings, started_ns) {
        Ok(ready) => {
            // SAFETY: `prepare` copied the blob into the hole and laid out its program,
            // with every pointer it follows, inside the hole, which the program keeps.
            unsafe { blob::enter(ready.entry, ready.args as *const BlobArgs, ready.stack_top) }
        }
        Err(why) => {
            // One write: a line cut short by a kill would say nothing.
            let line = format!("mig: cannot restore from {}: {}\n", image.display(), why);
            let _ = sys::write_all(2, line.as_bytes());
            std::process::exit(mig_image::EXIT_REFUSED)
        }
    }
}

struct Ready {
    entry: usize,
    args: usize,
    stack_top: usize,
}

/// Bump allocator over the hole's data pages.
struct Arena {
    next: usize,
    end: usize,
    /// Something did not fit: the restore is refused (`check`) before the blob runs.
    full: bool,
}

impl Arena {
    /// Room for `len` bytes; 0 (and `full`) when there is none left.
    fn alloc(&mut self, len: usize, align: usize) -> usize {
        let at = self.next.next_multiple_of(align);
        match at.checked_add(len) {
            Some(end) if end <= self.end && !self.full => {
                self.next = end;
                at
            }
            _ => {
                self.full = true;
                0
            }
        }
    }
    fn bytes(&mut self, b: &[u8]) -> u64 {
        let at = self.alloc(b.len() + 1, 8);
        if at != 0 {
            // SAFETY: `alloc` returned `len + 1` writable bytes inside the hole mapping.
            unsafe {
                std::ptr::copy_nonoverlapping(b.as_ptr(), at as *mut u8, b.len());
                *((at + b.len()) as *mut u8) = 0;
            }
        }
        at as u64
    }
    /// Refuses the restore if anything so far did not fit.
    fn check(&self) -> Result<(), Refusal> {
        if self.full { Err("the image has more to restore than the restore area holds".into()) } else { Ok(()) }
    }
    fn put<T: Pod>(&mut self, v: &T) -> u64 {
        self.bytes(bytes_of(v))
    }
}

/// The blob's program under construction.
struct Program {
    arena: Arena,
    ops: Vec<Op>,
}

impl Program {
    fn op(&mut self, nr: i64, args: &[u64], check: u64, what: &str) -> &mut Op {
        let mut a = [0u64; 6];
        a[..args.len()].copy_from_slice(args);
        let what_ptr = self.arena.bytes(what.as_bytes());
        self.ops.push(Op { nr: nr as u64, args: a, check, store: 0, what: what_ptr, what_len: what.len() as u64 });
        self.ops.last_mut().expect("just pushed")
    }
}

fn describe(r: &RegionRecord, img: &Image) -> String {
    let kind = RegionKind::from_u32(r.kind).map_or("?", RegionKind::name);
    let path = String::from_utf8_lossy(img.str(r.file.path));
    format!("mapping {:#x}-{:#x} ({kind} {path})", r.start, r.end)
}

fn mtime_ns(st: &libc::stat) -> i64 {
    st.st_mtime * 1_000_000_000 + st.st_mtime_nsec
}

fn stat_fd(fd: i32) -> std::io::Result<libc::stat> {
    // SAFETY: `stat` is plain old data and `fstat` fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer.
    if unsafe { libc::fstat(fd, &mut st) } < 0 { Err(std::io::Error::last_os_error()) } else { Ok(st) }
}

/// Compares a file on disk with the identity recorded at checkpoint time.
fn same_file(want: &FileId, fd: i32, path: &[u8]) -> Result<(), String> {
    let st = stat_fd(fd).map_err(|e| e.to_string())?;
    if st.st_size as u64 != want.size || mtime_ns(&st) != want.mtime_ns {
        return Err("it changed since the checkpoint (size or modification time differ)".into());
    }
    if want.build_id_len > 0 {
        let (id, len) = sys::CPath::new(path).map_or(([0; 20], 0), |p| crate::checkpoint::files::build_id(&p));
        if id.get(..len as usize) != want.build_id.get(..want.build_id_len as usize) {
            return Err("it changed since the checkpoint (build-id differs)".into());
        }
    }
    Ok(())
}

fn check_exe(img: &Image, p: &ProcessRecord) -> Result<(), Refusal> {
    let saved = img.str(p.exe.path);
    let here = std::fs::read_link("/proc/self/exe").map_err(|e| format!("cannot read /proc/self/exe: {e}"))?;
    if saved != here.as_os_str().as_bytes() {
        return Err(format!("the image is of {}, but this process runs {}", String::from_utf8_lossy(saved), here.display()));
    }
    let mode = std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(&here).map_err(|e| format!("cannot look at the executable: {e}"))?);
    super::trust::check_exe_mode(&p.exe, mode)?;
    if img.header.flags & HEADER_PORTABLE != 0 {
        return Ok(()); // the image carries the program's code
    }
    let fd = open_raw(saved, libc::O_RDONLY, 0).map_err(|e| format!("cannot open the executable: {e}"))?;
    let r = same_file(&p.exe, fd, saved);
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
    r.map_err(|why| format!("the executable {}: {why}", here.display()))
}

/// Descriptor to map each file region from, by path.
fn region_files(img: &Image, base: i32) -> Result<HashMap<Vec<u8>, i32>, Refusal> {
    let mut region_fds: HashMap<Vec<u8>, i32> = HashMap::new();
    let mut checked: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
    for i in 0..img.count(Table::Regions) {
        let r = img.region(i);
        let Some(kind) = RegionKind::from_u32(r.kind).filter(|k| k.has_file()) else { continue };
        let path = img.str(r.file.path);
        let writable_shared = kind == RegionKind::FileShared && r.prot & PROT_WRITE != 0;
        // A private mapping needs the very file it was made from: checked once per path.
        let unchecked = kind == RegionKind::FilePrivate && checked.insert(path.to_vec());
        let name = String::from_utf8_lossy(path);
        if let Some(&fd) = region_fds.get(path) {
            if unchecked && r.flags & REGION_WHOLE == 0 {
                same_file(&r.file, fd, path).map_err(|why| format!("{name}: {why}"))?;
            }
            if !writable_shared {
                continue;
            }
            // SAFETY: replacing a descriptor this function opened.
            unsafe { libc::close(fd) };
        }
        let flags = if writable_shared { libc::O_RDWR } else { libc::O_RDONLY };
        let opened =
            open_expecting(path, flags, Expect::Regular).map_err(|e| format!("{name} (mapped at {:#x}) cannot be opened: {e}", r.start)).and_then(|fd| {
                match kind {
                    RegionKind::FilePrivate => same_file(&r.file, fd, path).map(|()| fd).map_err(|why| {
                        // SAFETY: closing the descriptor opened above.
                        unsafe { libc::close(fd) };
                        format!("{name}: {why}")
                    }),
                    _ => Ok(fd),
                }
            });
        match opened {
            Ok(fd) => drop(region_fds.insert(path.to_vec(), raise_fd(fd, base)?)),
            // A portable image has every page: the file is a nicety.
            Err(_) if r.flags & REGION_WHOLE != 0 => {}
            Err(why) => return Err(why),
        }
    }
    Ok(region_fds)
}

/// The kernel's regions of this process, and where they go (saved addresses).
fn kernel_moves(img: &Image, current: &[MapLine]) -> Result<Vec<(u64, u64, u64)>, Refusal> {
    let kind_of = |path: &[u8]| match path {
        b"[vvar]" => Some(RegionKind::Vvar),
        b"[vvar_vclock]" => Some(RegionKind::VvarVclock),
        b"[vdso]" => Some(RegionKind::Vdso),
        _ => None,
    };
    let saved: Vec<RegionRecord> =
        (0..img.count(Table::Regions)).map(|i| img.region(i)).filter(|r| RegionKind::from_u32(r.kind).is_some_and(RegionKind::is_kernel)).collect();
    let here: Vec<(RegionKind, &MapLine)> = current.iter().filter_map(|l| Some((kind_of(l.path)?, l))).collect();
    let differs = || "the kernel differs from the one the image was made on ([vdso]/[vvar] layout)".to_string();
    if saved.len() != here.len() {
        return Err(differs());
    }
    let mut moves = Vec::new();
    for (s, (kind, l)) in saved.iter().zip(&here) {
        if s.kind != *kind as u32 || s.end - s.start != l.end - l.start {
            return Err(differs());
        }
        moves.push((l.start, l.end - l.start, s.start));
    }
    Ok(moves)
}

/// The CPU must have every feature the image's CPU had (the program may use any of
/// them), the same signal frame state, and the kernel the same vdso code.
fn check_machine(p: &ProcessRecord, current: &[MapLine]) -> Result<(), Refusal> {
    let here = sys::cpu_features();
    let names = ["cpuid 1 ecx", "cpuid 1 edx", "cpuid 7 ebx", "cpuid 7 ecx", "cpuid 7 edx"];
    for ((saved, now), name) in p.cpu.cpuid.iter().zip(here.cpuid).zip(names) {
        let missing = saved & !now;
        if missing != 0 {
            return Err(format!("this CPU lacks features the image's CPU had ({name} bits {missing:#x})"));
        }
    }
    if p.cpu.xcr0 != here.xcr0 {
        return Err(format!("this CPU saves other register state in signal frames (XCR0 {:#x}, the image's {:#x})", here.xcr0, p.cpu.xcr0));
    }
    if let Some(vdso) = current.iter().find(|l| l.path == b"[vdso]") {
        // SAFETY: [vdso] is mapped readable in this process, as /proc/self/maps says.
        let code = unsafe { std::slice::from_raw_parts(vdso.start as *const u8, (vdso.end - vdso.start) as usize) };
        if crc32fast::hash(code) != p.vdso_crc {
            return Err("the kernel differs from the one the image was made on ([vdso] code)".into());
        }
    }
    Ok(())
}

const TASK_TOP: u64 = 0x7fff_ffff_f000;
const MARGIN: u64 = 2 << 20;

/// The highest range of `len` bytes free in both layouts, with a margin around it.
fn find_hole(taken: &mut [(u64, u64)], len: u64) -> Result<u64, Refusal> {
    taken.sort_unstable();
    let mut top = TASK_TOP;
    for &(start, end) in taken.iter().rev() {
        if end.saturating_add(MARGIN + len + MARGIN) <= top {
            return Ok(top - MARGIN - len);
        }
        top = top.min(start);
    }
    if top >= (1 << 32) + MARGIN + len {
        return Ok(top - MARGIN - len);
    }
    Err("no free address range to restore from (the saved layout fills the address space)".into())
}

fn prepare(image: &Path, settings: Settings, started_ns: u64) -> Result<Ready, Refusal> {
    let file = File::open(image).map_err(|e| format!("cannot open it: {e}"))?;
    let image_stat = stat_fd(file.as_raw_fd()).map_err(|e| format!("cannot stat it: {e}"))?;
    super::trust::check_owner(&image_stat)?;
    // SAFETY: the mapping is read-only and private; images are only ever replaced by
    // rename, never modified in place, so the bytes do not change under us.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| format!("cannot map it: {e}"))?;
    // A fault in a file mapping reads around it as much as the disk's read-ahead (8 MiB
    // here): from an image out of the cache, that is most of the restart. Only what is
    // needed is read, asked for all at once.
    let _ = map.advise(Advice::Random);
    if let Some(h) = read_record::<Header>(&map, 0) {
        will_need(&map[..], h.meta_off, h.meta_len);
        will_need(&map[..], h.trailer_off, h.trailer_len);
    }
    let hasher = crc32fast::Hasher::new();
    let img = Image::open(&map, &hasher).map_err(|e| e.to_string())?;
    let regions: Vec<RegionRecord> = (0..img.count(Table::Regions)).map(|i| img.region(i)).collect();
    let eager = std::env::var("MIG_RESTORE_EAGER").is_ok_and(|v| v == "1") || !file.metadata().is_ok_and(|m| m.is_file());
    let max_fd = (0..img.count(Table::Fds)).map(|i| img.fd(i).fd).max().unwrap_or(2);
    let base = max_fd.max(2) + 1;
    // Big private regions are loaded lazily, where a userfaultfd can be had (see
    // `loader`); everything else is read in.
    let mut lazy = lazy_regions(&regions, eager);
    let channel = match lazy.contains(&true).then(|| loader::channel(base)) {
        Some(Ok(ch)) => Some(ch),
        Some(Err(why)) => {
            if sys::msg::debug_enabled() {
                msg().s("restoring ").bytes(image.as_os_str().as_bytes()).s(" eagerly: ").s(&why).emit();
            }
            lazy.fill(false);
            None
        }
        None => None,
    };
    // What each thread touches first is read in even where the region is lazy (each
    // first touch would wait for the loader).
    let hot = hot_ranges(&img);
    let hot_pages: Vec<Vec<(u64, u64)>> = regions.iter().zip(&lazy).map(|(r, &l)| if l { hot_pages(&img, r, &hot) } else { vec![] }).collect();
    // The loader starts now (it waits for the blob's word before it hands anything
    // over): its forks overlap the rest of the planning.
    let spawned = match &channel {
        Some(ch) => {
            let plan = loader::Plan {
                image: image.display().to_string(),
                image_fd: file.as_raw_fd(),
                regions: lazy_plan(&img, &regions, &lazy),
                present: hot_pages.iter().flatten().map(|&(page, _)| page).collect(),
                debug: sys::msg::debug_enabled(),
            };
            Some(loader::spawn(plan, ch).map_err(|why| format!("cannot start the loader of the lazily restored memory: {why}"))?)
        }
        None => None,
    };
    let hot_blocks: Vec<(u32, u64)> = {
        let mut b: Vec<(u32, u64)> =
            regions.iter().zip(&hot_pages).flat_map(|(r, pages)| pages.iter().map(|&(_, off)| (r.blob, (off - r.data_off) / BLOCK))).collect();
        b.dedup();
        b
    };
    // What is read in is checked now, asked for all at once; what is loaded lazily, by
    // the loader, a block at a time as it hands it over.
    let read_in = |i: &u32| !regions.iter().zip(&lazy).any(|(r, &l)| l && r.blob == *i);
    for &(blob, k) in &hot_blocks {
        if let Some((off, len)) = img.block_span(blob, k) {
            will_need(&map[..], off, len);
        }
    }
    for i in (0..img.header.blobs as u32).filter(read_in) {
        if let Some((off, len)) = img.blob_span(i) {
            will_need(&map[..], off, len);
        }
    }
    for &(blob, k) in &hot_blocks {
        img.check_block(blob, k, &hasher).map_err(|e| e.to_string())?;
    }
    for i in (0..img.header.blobs as u32).filter(read_in) {
        // Past its first megabytes (all `WILLNEED` starts), a blob is read ahead as
        // it is checked.
        if let Some((off, len)) = img.blob_span(i).filter(|&(_, len)| len > 4 << 20) {
            let start = off & !(PAGE - 1);
            let _ = map.advise_range(Advice::Sequential, start as usize, (off + len - start).min(map.len() as u64 - start) as usize);
        }
        img.check_blob(i, &hasher).map_err(|e| e.to_string())?;
    }
    let p = img.process();
    check_exe(&img, &p)?;
    // The first record is the main thread: it becomes this process's main thread.
    let t = img.thread(0);

    let maps_text = std::fs::read("/proc/self/maps").map_err(|e| format!("cannot read /proc/self/maps: {e}"))?;
    let current: Vec<MapLine> = maps::lines(&maps_text).collect();
    let moves = kernel_moves(&img, &current)?;
    check_machine(&p, &current)?;

    let cwd = img.str(p.cwd);
    if !Path::new(std::ffi::OsStr::from_bytes(cwd)).is_dir() {
        return Err(format!("the working directory {} is gone", String::from_utf8_lossy(cwd)));
    }
    let region_fds = region_files(&img, base)?;
    let timers = super::timers::create(&img)?;
    let image_fd = raise_fd(file.into_raw_fd(), base)?;

    // The hole: blob code, a temporary home for [vvar]/[vdso], a stack, the data.
    let code = blob::code();
    let code_len = (code.len() as u64).next_multiple_of(PAGE);
    let kernel_len: u64 = moves.iter().map(|m| m.1).sum();
    let stack_len = 256 << 10;
    let items = regions.len() + img.count(Table::Extents) + img.count(Table::Fds) + 256;
    let arena_len = ((4 << 20) + items as u64 * 512).next_multiple_of(PAGE);
    let hole_len = code_len + kernel_len + stack_len + arena_len;
    let mut taken: Vec<(u64, u64)> = current.iter().map(|l| (l.start, l.end)).chain(regions.iter().map(|r| (r.start, r.end))).collect();
    let hole = find_hole(&mut taken, hole_len)?;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE;
    // SAFETY: MAP_FIXED_NOREPLACE: a mapping already there makes this fail, not go.
    let got = unsafe { sys::mmap(hole as usize, hole_len as usize, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0) }
        .map_err(|e| format!("cannot map the restore area (errno {})", e.0))?;
    if got as u64 != hole {
        return Err("the restore area landed elsewhere".into());
    }
    // SAFETY: the hole is a fresh writable mapping of at least `code_len` bytes.
    unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), hole as *mut u8, code.len()) };
    // SAFETY: the code pages of the hole just made, which only the blob will use.
    unsafe { sys::mprotect(hole as usize, code_len as usize, (libc::PROT_READ | libc::PROT_EXEC) as u32) }
        .map_err(|e| format!("cannot make the restore code executable (errno {})", e.0))?;
    let kernel_tmp = hole + code_len;
    let stack_top = kernel_tmp + kernel_len + stack_len;
    let mut prog = Program { arena: Arena { next: stack_top as usize, end: (hole + hole_len) as usize, full: false }, ops: Vec::new() };
    // Descriptors last among the checks: remaking some changes things outside the
    // process (a /dev/shm file rewritten, a stale UNIX socket path removed).
    let prepared = fds::prepare(&img, base)?;

    // 1. Unmap everything but the hole and the kernel's regions.
    let mut keep: Vec<(u64, u64)> = moves.iter().map(|&(s, l, _)| (s, s + l)).collect();
    keep.push((hole, hole + hole_len));
    keep.sort_unstable();
    let mut from = 0u64;
    for &(s, e) in keep.iter().chain([(TASK_TOP, TASK_TOP)].iter()) {
        if s > from {
            prog.op(libc::SYS_munmap, &[from, s - from], CHECK_OK, "unmapping the fresh process");
        }
        from = from.max(e);
    }
    // 2. [vvar]/[vdso] to their old addresses, through the hole in case the two overlap.
    let mut tmp = kernel_tmp;
    for &(cur, len, _) in &moves {
        let f = (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64;
        prog.op(libc::SYS_mremap, &[cur, len, len, f, tmp], CHECK_OK | CHECK_EQ_A4, "moving [vdso] aside");
        tmp += len;
    }
    let mut tmp = kernel_tmp;
    for &(_, len, old) in &moves {
        let f = (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64;
        prog.op(libc::SYS_mremap, &[tmp, len, len, f, old], CHECK_OK | CHECK_EQ_A4, "moving [vdso] to its old address");
        tmp += len;
    }
    // 3. The saved regions; then the loader may start handing over the lazy ones.
    for ((r, &l), hot) in regions.iter().zip(&lazy).zip(&hot_pages) {
        let lazy = channel.as_ref().filter(|_| l).map(|ch| (&hot[..], ch.uffd));
        map_region(&mut prog, &img, r, &region_fds, &prepared, image_fd, lazy)?;
    }
    if let Some(ch) = &channel {
        let byte = prog.arena.bytes(b"r");
        prog.op(libc::SYS_write, &[ch.ready as u64, byte, 1], CHECK_OK | CHECK_EQ_A2, "starting the loader of the lazily restored memory");
    }
    // 4. brk and the other mm fields (also makes /proc/<pid>/cmdline the saved one).
    let auxv = img.str(p.auxv);
    let auxv_at = prog.arena.bytes(auxv);
    let mm = p.mm;
    let mm_map: [u64; 13] = [
        mm.start_code,
        mm.end_code,
        mm.start_data,
        mm.end_data,
        mm.start_brk,
        mm.brk,
        mm.start_stack,
        mm.arg_start,
        mm.arg_end,
        mm.env_start,
        mm.env_end,
        auxv_at,
        (auxv.len() as u64) | (u32::MAX as u64) << 32,
    ];
    let mm_at = prog.arena.bytes(slice_bytes(&mm_map));
    prog.op(libc::SYS_prctl, &[libc::PR_SET_MM as u64, libc::PR_SET_MM_MAP as u64, mm_at, 104], CHECK_OK, "setting brk and the mm fields");
    // 5. The main thread: TLS and tid address (and glibc's cached tid). Robust list,
    // rseq and alternate stack each thread registers itself once resumed.
    prog.op(libc::SYS_arch_prctl, &[sys::ARCH_SET_FS as u64, t.fs_base], CHECK_OK, "setting the TLS base");
    if t.clear_tid != 0 {
        prog.op(libc::SYS_set_tid_address, &[t.clear_tid], STORE_U32, "setting the tid address").store = t.clear_tid;
    }
    // 6. Signal actions (the mask comes back with the signal frame).
    for (i, a) in p.sigactions.iter().enumerate() {
        let sig = i as u64 + 1;
        if sig == libc::SIGKILL as u64 || sig == libc::SIGSTOP as u64 {
            continue;
        }
        let at = prog.arena.put(a);
        prog.op(libc::SYS_rt_sigaction, &[sig, at, 0, 8], CHECK_OK, "restoring a signal action");
    }
    // 7. Descriptors on their saved numbers; everything else of ours closed.
    for &(fd, target, cloexec) in &prepared.place {
        let flags = if cloexec { libc::O_CLOEXEC as u64 } else { 0 };
        prog.op(libc::SYS_dup3, &[fd as u64, target as u64, flags], CHECK_OK, "placing a descriptor");
    }
    let targets: Vec<i32> = prepared.place.iter().map(|f| f.1).collect();
    let open_now: Vec<i32> =
        std::fs::read_dir("/proc/self/fd").map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()).unwrap_or_default();
    for fd in open_now.into_iter().filter(|fd| *fd > 2 && !targets.contains(fd)) {
        prog.op(libc::SYS_close, &[fd as u64], 0, "closing a descriptor");
    }
    // What needs the saved numbers: epoll registrations; and terminal modes, which
    // must not change before the point of no return.
    // Each registration is tried first on a scratch epoll set: a descriptor that came
    // back as something else (a terminal as /dev/null) may not be pollable, and the
    // blob must not fail past the point of no return.
    // SAFETY: creating a scratch epoll set, closed below.
    let scratch_ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    for (epfd, e) in &prepared.epoll {
        // The standard descriptors are the restoring process's own.
        let placed = prepared.place.iter().find(|p| p.1 == e.fd).map(|p| p.0);
        let Some(fd) = placed.or((0..=2).contains(&e.fd).then_some(e.fd)) else {
            eprintln!("mig: warning: epoll descriptor {epfd} watched descriptor {}, which is not in the image; that registration is dropped", e.fd);
            continue;
        };
        let mut probe = libc::epoll_event { events: e.events, u64: e.data };
        // SAFETY: epoll_ctl on our scratch set with a valid event.
        let r = unsafe { libc::epoll_ctl(scratch_ep, libc::EPOLL_CTL_ADD, fd, &mut probe) };
        let err = std::io::Error::last_os_error();
        if r < 0 && err.raw_os_error() != Some(libc::EEXIST) {
            eprintln!("mig: warning: epoll descriptor {epfd}: descriptor {} cannot be watched any more ({err}); that registration is dropped", e.fd);
            continue;
        }
        // `struct epoll_event` is packed on x86_64: events, then data.
        let mut ev = [0u8; 12];
        ev[..4].copy_from_slice(&e.events.to_le_bytes());
        ev[4..].copy_from_slice(&e.data.to_le_bytes());
        let at = prog.arena.bytes(&ev);
        prog.op(libc::SYS_epoll_ctl, &[*epfd as u64, libc::EPOLL_CTL_ADD as u64, e.fd as u64, at], CHECK_OK, "registering a descriptor with epoll");
    }
    // SAFETY: closing the scratch set.
    unsafe { libc::close(scratch_ep) };
    for (fd, termios) in &prepared.termios {
        let at = prog.arena.bytes(termios);
        prog.op(libc::SYS_ioctl, &[*fd as u64, libc::TCSETS, at], CHECK_OK, "setting the terminal modes");
    }
    // 8. Working directory, umask, limits, timers, name.
    let cwd_at = prog.arena.bytes(cwd);
    prog.op(libc::SYS_chdir, &[cwd_at], CHECK_OK, "changing to the saved working directory");
    prog.op(libc::SYS_umask, &[p.umask as u64], 0, "setting the umask");
    for (res, saved) in p.rlimits.iter().enumerate() {
        let mut now = Rlimit::default();
        if sys::prlimit(res as u32, None, &mut now).is_err() {
            continue;
        }
        let max = saved.max.min(now.max);
        let lim = Rlimit { cur: saved.cur.min(max), max };
        let at = prog.arena.put(&lim);
        prog.op(libc::SYS_prlimit64, &[0, res as u64, at, 0], 0, "setting a resource limit");
    }
    for (which, t) in p.itimers.iter().enumerate() {
        let at = prog.arena.put(t);
        prog.op(libc::SYS_setitimer, &[which as u64, at, 0], CHECK_OK, "arming an interval timer");
    }
    for (id, spec) in &timers {
        let at = prog.arena.bytes(slice_bytes(spec));
        prog.op(libc::SYS_timer_settime, &[*id as u64, 0, at, 0], CHECK_OK, "arming a POSIX timer");
    }
    let comm_at = prog.arena.bytes(&p.comm);
    prog.op(libc::SYS_prctl, &[libc::PR_SET_NAME as u64, comm_at], 0, "setting the process name");
    // 9. Every other thread, last: each starts running restored code at once.
    let handoff_at = prog.arena.alloc(std::mem::size_of::<Handoff>(), 8) as u64;
    for i in 1..img.count(Table::Threads) {
        let th = img.thread(i);
        let ctx_at = prog.arena.put(&th.ctx);
        let flags = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM
            | libc::CLONE_SETTLS
            | libc::CLONE_PARENT_SETTID
            | libc::CLONE_CHILD_CLEARTID) as u64;
        let args = [flags, th.ctx.rsp, th.clear_tid, th.clear_tid, th.fs_base, handoff_at];
        prog.op(libc::SYS_clone, &args, CHECK_OK | CLONE_RESUME, "recreating a thread").store = ctx_at;
    }
    prog.ops.push(Op { nr: END, ..Op::default() });

    // The hand-off and the arguments, then the operations themselves.
    let handoff = Handoff {
        magic: handoff::MAGIC,
        settings,
        restored_from: FixedPath::new(crate::config::absolute(image).as_os_str().as_bytes()).unwrap_or(FixedPath::EMPTY),
        rollback_path: rollback_target(image).and_then(|p| FixedPath::new(p.as_os_str().as_bytes())).unwrap_or(FixedPath::EMPTY),
        image_id: (image_stat.st_dev, image_stat.st_ino),
        image_header: (img.header.pid, img.header.created_unix_ns),
        hole_start: hole,
        hole_len,
        started_ns,
        loader: 0,
        loader_start: 0,
    };
    let ops_at = prog.arena.alloc(prog.ops.len() * std::mem::size_of::<Op>(), 8);
    prog.arena.check()?;
    // SAFETY: `handoff_at` was allocated above with room for a `Handoff` in the hole.
    unsafe { (handoff_at as *mut Handoff).write(handoff) };
    // SAFETY: `alloc` returned room for every op in the hole.
    unsafe { std::ptr::copy_nonoverlapping(prog.ops.as_ptr(), ops_at as *mut Op, prog.ops.len()) };
    let args = BlobArgs { ops: ops_at as u64, ctx: t.ctx, handoff: handoff_at };
    // SAFETY: `BlobArgs` is `repr(C)`, all `u64`s; viewed as its bytes.
    let args_bytes = unsafe { std::slice::from_raw_parts((&args as *const BlobArgs).cast::<u8>(), std::mem::size_of::<BlobArgs>()) };
    let args_at = prog.arena.bytes(args_bytes) as usize;
    prog.arena.check()?;

    // Last step that can still refuse: glibc's rseq area is in the TLS about to go away.
    unregister_rseq()?;
    // From here on no signal may run code of this process: block them all.
    let _ = sys::sigprocmask(libc::SIG_SETMASK, Some(u64::MAX), None);
    if let Some(spawned) = spawned {
        let (pid, start) = spawned.started().map_err(|why| format!("cannot start the loader of the lazily restored memory: {why}"))?;
        // SAFETY: the hand-off written above, in the hole; nothing else refers to it yet.
        unsafe { (*(handoff_at as *mut Handoff)).loader = pid };
        // SAFETY: as above.
        unsafe { (*(handoff_at as *mut Handoff)).loader_start = start };
    }
    std::mem::forget(map);
    Ok(Ready { entry: hole as usize, args: args_at, stack_top: stack_top as usize })
}

/// The image's own path, for a rollback to it: an image passed as `/proc/self/fd/<n>`
/// (a rollback, `mig restart -`) is named by what that descriptor is; a memory file or
/// a deleted one is no target.
fn rollback_target(image: &Path) -> Option<std::path::PathBuf> {
    if !image.starts_with("/proc/self/fd") {
        return Some(crate::config::absolute(image));
    }
    let real = std::fs::read_link(image).ok()?;
    let bytes = real.as_os_str().as_bytes();
    (real.is_absolute() && !bytes.starts_with(b"/memfd:") && !bytes.ends_with(b" (deleted)")).then_some(real)
}

/// Starts reading `len` bytes at `off` of the mapped image `map` into the page cache.
fn will_need(map: &[u8], off: u64, len: u64) {
    let (start, end) = (off & !(PAGE - 1), off.saturating_add(len).min(map.len() as u64));
    if start < end {
        // SAFETY: advice on pages of a live mapping (`map` starts on a page boundary).
        unsafe { libc::madvise(map.as_ptr().add(start as usize) as *mut libc::c_void, (end - start) as usize, libc::MADV_WILLNEED) };
    }
}

/// Regions with at most this much saved data are read in even in lazy mode, up to
/// `SMALL_TOTAL` in all, smallest first: they are a program's data, its libraries' and
/// small arenas, what it touches first, and each first touch would wait for the loader.
const SMALL: u64 = 1 << 20;
const SMALL_TOTAL: u64 = 4 << 20;

/// Which regions to load lazily (anonymous memory the loader fills in) instead of
/// reading them in: private anonymous memory with saved pages, unless `eager`; but not
/// small regions (`SMALL`), not the stack (it must stay one growable mapping), not
/// shared memory (a userfaultfd of this process would not serve the others), not
/// mappings of files (a userfaultfd serves anonymous memory only).
fn lazy_regions(regions: &[RegionRecord], eager: bool) -> Vec<bool> {
    let loadable = |r: &RegionRecord| {
        let private = matches!(RegionKind::from_u32(r.kind), Some(RegionKind::Anon | RegionKind::Heap | RegionKind::Orphan));
        !eager && private && r.data_len > 0
    };
    let mut small: Vec<(u64, usize)> = regions.iter().enumerate().filter(|(_, r)| loadable(r) && r.data_len <= SMALL).map(|(i, r)| (r.data_len, i)).collect();
    small.sort_unstable();
    let mut read_in = vec![false; regions.len()];
    let mut total = 0;
    for (len, i) in small {
        total += len;
        if total > SMALL_TOTAL {
            break;
        }
        read_in[i] = true;
    }
    regions.iter().zip(read_in).map(|(r, read_in)| loadable(r) && !read_in).collect()
}

/// The lazily loaded regions, as the loader needs them: where their pages go, and where
/// the CRCs of their blocks are.
fn lazy_plan(img: &Image, regions: &[RegionRecord], lazy: &[bool]) -> Vec<loader::Lazy> {
    // Where each blob's block CRCs start, all at once (blob lengths in blob order).
    let mut lens = vec![0u64; img.header.blobs as usize];
    let records = regions.iter().map(|r| (r.blob, r.data_len)).chain((0..img.count(Table::Fds)).map(|i| img.fd(i)).map(|f| (f.blob, f.data_len)));
    for (blob, len) in records {
        if let Some(l) = lens.get_mut(blob as usize) {
            *l = len;
        }
    }
    let mut first = Vec::with_capacity(lens.len());
    let mut at = 0;
    for len in lens {
        first.push(at);
        at += blocks_of(len);
    }
    regions
        .iter()
        .zip(lazy)
        .filter(|(_, l)| **l)
        .map(|(r, _)| {
            let from = first.get(r.blob as usize).copied().unwrap_or(0);
            loader::Lazy {
                start: r.start,
                data_off: r.data_off,
                data_len: r.data_len,
                blob: r.blob,
                extents: img.extents(r).collect(),
                crcs_off: img.header.trailer_off + 4 * (img.header.blobs + from),
            }
        })
        .collect()
}

/// What each thread touches first when it runs again: the pages around its thread
/// pointer (its TLS, `struct pthread`) and above its stack pointer (the handler's frames
/// and the signal frame). Read in even where the region is loaded lazily (their blocks
/// checked first): each first touch there would wait for the loader.
fn hot_ranges(img: &Image) -> Vec<(u64, u64)> {
    let page = |a: u64| a & !(PAGE - 1);
    (0..img.count(Table::Threads))
        .map(|i| img.thread(i))
        .flat_map(|t| {
            [(page(t.fs_base).saturating_sub(2 * PAGE), page(t.fs_base) + 2 * PAGE), (page(t.ctx.rsp).saturating_sub(PAGE), page(t.ctx.rsp) + 8 * PAGE)]
        })
        .collect()
}

/// The saved pages of `r` within `hot` (see `hot_ranges`): (address, offset in the image).
fn hot_pages(img: &Image, r: &RegionRecord, hot: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut pages: Vec<u64> = hot.iter().flat_map(|&(a, b)| (a.max(r.start)..b.min(r.end)).step_by(PAGE as usize)).collect();
    pages.sort_unstable();
    pages.dedup();
    pages.into_iter().filter_map(|page| Some((page, file_offset(img, r, page)?))).collect()
}

/// Maps one saved region back: same address, kind and protection, contents read in;
/// or, `lazy`, as anonymous memory registered with the loader's userfaultfd (`uffd`),
/// but for the pages given, read in first.
#[allow(clippy::too_many_arguments)]
fn map_region(
    prog: &mut Program,
    img: &Image,
    r: &RegionRecord,
    files: &HashMap<Vec<u8>, i32>,
    fds: &FdPlan,
    image_fd: i32,
    lazy: Option<(&[(u64, u64)], i32)>,
) -> Result<(), Refusal> {
    let Some(kind) = RegionKind::from_u32(r.kind) else { return Ok(()) };
    if kind.is_kernel() {
        return Ok(());
    }
    let what = describe(r, img);
    let len = r.end - r.start;
    let rw = (libc::PROT_READ | libc::PROT_WRITE) as u64;
    let fixed = libc::MAP_FIXED as u64;
    let file = files.get(img.str(r.file.path)).map(|&fd| fd as u64);
    // A portable image's code comes from the file when it is the same; everything
    // else from the image (read-only data may have been relocated: RELRO).
    let code = r.prot & PROT_EXEC != 0 && r.prot & PROT_WRITE == 0;
    let from_file = kind == RegionKind::FilePrivate && r.flags & REGION_WHOLE != 0 && file.is_some() && code;
    let has_data = r.data_len > 0 && !from_file;
    let read_in = has_data && lazy.is_none_or(|(hot, _)| !hot.is_empty());
    let prot = if read_in { rw } else { r.prot as u64 };
    let (flags, fd, off) = match (kind, file) {
        (RegionKind::FilePrivate, Some(fd)) => (fixed | libc::MAP_PRIVATE as u64, fd, r.file_off),
        (RegionKind::FileShared, _) => {
            (fixed | libc::MAP_SHARED as u64, *files.get(img.str(r.file.path)).ok_or_else(|| format!("{what}: its file is not open"))? as u64, r.file_off)
        }
        (RegionKind::SharedAnon, _) => (fixed | (libc::MAP_SHARED | libc::MAP_ANONYMOUS) as u64, u64::MAX, 0),
        (RegionKind::SharedObject, _) => {
            let object = fds.objects.get(&(r.file.dev, r.file.ino)).ok_or_else(|| format!("{what}: its shared object was not made again"))?;
            (fixed | libc::MAP_SHARED as u64, *object as u64, r.file_off)
        }
        (RegionKind::Stack, _) => (fixed | (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_GROWSDOWN) as u64, u64::MAX, 0),
        _ => (fixed | (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64, u64::MAX, 0),
    };
    prog.op(libc::SYS_mmap, &[r.start, len, prot, flags, fd, off], CHECK_OK | CHECK_EQ_A0, &what);
    if let (Some((hot, uffd)), true) = (lazy, has_data) {
        // Read in before the range is registered: afterwards a write to a missing page
        // would wait for the loader.
        for &(page, off) in hot {
            prog.op(libc::SYS_pread64, &[image_fd as u64, page, PAGE, off], CHECK_OK | CHECK_EQ_A2, &format!("reading the pages of {what}"));
        }
        let reg = prog.arena.bytes(slice_bytes(&[r.start, len, loader::UFFDIO_REGISTER_MODE_MISSING, 0u64]));
        prog.op(libc::SYS_ioctl, &[uffd as u64, loader::UFFDIO_REGISTER, reg], CHECK_OK, &format!("registering {what} with the loader"));
    } else {
        let mut data_off = r.data_off;
        for e in img.extents(r).filter(|_| has_data) {
            let mut addr = r.start + e.first_page * PAGE;
            let mut left = e.pages * PAGE;
            while left > 0 {
                let n = left.min(1 << 30);
                prog.op(libc::SYS_pread64, &[image_fd as u64, addr, n, data_off], CHECK_OK | CHECK_EQ_A2, &format!("reading the pages of {what}"));
                addr += n;
                data_off += n;
                left -= n;
            }
        }
    }
    if read_in && r.prot as u64 != rw {
        prog.op(libc::SYS_mprotect, &[r.start, len, r.prot as u64], CHECK_OK, &format!("protecting {what}"));
    }
    Ok(())
}

/// Where in the image the saved byte at `addr` of `r` is (`None`: not saved).
fn file_offset(img: &Image, r: &RegionRecord, addr: u64) -> Option<u64> {
    let page = (addr - r.start) / PAGE;
    let mut off = r.data_off;
    for e in img.extents(r) {
        if (e.first_page..e.first_page + e.pages).contains(&page) {
            return Some(off + (page - e.first_page) * PAGE + addr % PAGE);
        }
        off += e.pages * PAGE;
    }
    None
}

/// Unregisters the fresh process's rseq area (glibc registers one per thread in TLS).
fn unregister_rseq() -> Result<(), Refusal> {
    runtime::rseq_set(false).map_err(|e| format!("cannot unregister rseq (errno {})", e.0))
}
