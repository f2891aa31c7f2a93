//! SIGUSR2: roll the running process back to its last image, in place. The handler
//! checks the image, then re-executes the program (same pid) with `MIG_RESTORE` set,
//! so the restore itself runs in a fresh address space, exactly as at a restart.
//!
//! The target can only be an image this process wrote or was restored from: each is
//! known by its path and its (device, inode), and a file at that path that is not the
//! same file (another program's image, or one planted there) is refused.
//!
//! A job's root rolls the whole job back: its image is the job's (which `mig`
//! assembles: known by its path and the root's image in it), every process under the
//! root is ended and reaped, and the restore brings the job's processes back as they
//! were at that checkpoint.
#![allow(unsafe_code)]

use super::scratch::{List, Scratch};
use crate::runtime::{self, FixedPath};
use crate::sys::{self, CPath, msg::msg};
use core::cell::UnsafeCell;
use core::ffi::{c_int, c_void};
use core::sync::atomic::AtomicU32;
use mig_image::Image;

/// A rollback signal came while the coordinator's stack was taken (set by `stacks`'s
/// trampoline): the checkpoint that had it sends it again as it ends.
pub static DEFERRED: AtomicU32 = AtomicU32::new(0);

/// An image by path, file identity and content identity.
#[derive(Clone, Copy)]
struct Known {
    path: FixedPath,
    /// (device, inode) of its file; none for a job's image, which `mig` writes.
    id: Option<(u64, u64)>,
    /// (pid, creation time) of its header: another image copied over it in place keeps
    /// the inode, not these.
    header: (u32, u64),
}

struct Images {
    /// The last image known to be complete: written with the process stopped, or
    /// restored from.
    done: Option<Known>,
    /// The image a forked writer or a copier is writing (complete once its file is
    /// at its path).
    pending: Option<Known>,
}

struct Cell(UnsafeCell<Images>);
// SAFETY: written only inside the checkpoint handler and the restore hand-off, with
// every signal blocked and every other thread parked; read by the rollback handler,
// which runs with every signal blocked too.
unsafe impl Sync for Cell {}
static IMAGES: Cell = Cell(UnsafeCell::new(Images { done: None, pending: None }));

fn images() -> &'static mut Images {
    // SAFETY: see `Cell`: one handler at a time.
    unsafe { &mut *IMAGES.0.get() }
}

/// The image at `path` (file `id`, header's pid and creation time `header`) is
/// complete.
pub fn wrote(path: FixedPath, id: (u64, u64), header: (u32, u64)) {
    images().done = Some(Known { path, id: Some(id), header });
}

/// The image at `path` (as in `wrote`) is being written by another process.
pub fn writing(path: FixedPath, id: (u64, u64), header: (u32, u64)) {
    images().pending = Some(Known { path, id: Some(id), header });
}

/// A checkpoint wrote (`done`) or is writing this process's image to `path` (as in
/// `wrote`); for a process of a job, it goes into the job's image instead, which `mig`
/// puts at its path once every process's is written.
pub fn saving(path: FixedPath, id: (u64, u64), header: (u32, u64), done: bool) {
    if !crate::control::in_job() {
        return if done { wrote(path, id, header) } else { writing(path, id, header) };
    }
    let Some(job) = crate::control::job_image() else { return };
    let imgs = images();
    // The job's last image is whole by now (its command ended before this one began);
    // `check` tells at rollback time.
    if let Some(last) = imgs.pending.take() {
        imgs.done = Some(last);
    }
    imgs.pending = Some(Known { path: job, id: None, header });
}

pub extern "C" fn on_rollback(_sig: c_int, _info: *mut libc::siginfo_t, uc: *mut c_void) {
    // The process goes on if the rollback does not happen: so does its call.
    let call = super::interrupted::restart(uc, false);
    rollback();
    if let Some(call) = call {
        call.settle();
    }
}

fn rollback() {
    if let Some(root) = crate::runtime::get().settings.job_root() {
        return msg()
            .s("rollback refused: process ")
            .num(sys::getpid() as u64)
            .s(" belongs to the job of process ")
            .num(root as u64)
            .s(", whose image it would become; roll back process ")
            .num(root as u64)
            .s(" instead")
            .emit();
    }
    let imgs = images();
    if imgs.done.is_none() && imgs.pending.is_none() {
        msg().s("rollback ignored: no image yet (checkpoint first, or start with MIG_RESTORE)").emit();
        return;
    }
    // The newest first: the pending image if its writer finished, else the last one.
    let mut refusal = None;
    for known in [imgs.pending, imgs.done].into_iter().flatten() {
        match check(&known) {
            Ok(fd) => {
                if imgs.pending.is_some_and(|p| (p.id, p.header) == (known.id, known.header)) {
                    imgs.done = imgs.pending.take();
                }
                // A pre-copy of the process image that is going away ends with it.
                super::precopy::cancel();
                // The processes under this one were not there then, or come back with
                // the job's image as they were.
                if !super::whole_job::end_descendants() {
                    msg().s("rollback: some processes under this one would not end; the restore goes on without them").emit();
                }
                let why = exec_restore(fd);
                msg().s("rollback to ").bytes(known.path.as_bytes()).s(" failed: ").s(why).emit();
                sys::close(fd);
                return;
            }
            Err(why) => refusal = Some((known, why)),
        }
    }
    if let Some((known, why)) = refusal {
        msg().s("rollback to ").bytes(known.path.as_bytes()).s(" refused: ").s(why).emit();
    }
}

/// Opens the image, checks that it is the one known, of this user, intact (every CRC)
/// and of this executable; returns its descriptor.
fn check(known: &Known) -> Result<i32, &'static str> {
    let p = CPath::new(known.path.as_bytes()).ok_or("image path too long")?;
    let fd = sys::open(&p, libc::O_RDONLY | libc::O_NONBLOCK, 0).map_err(|_| "cannot open the image")?;
    let r = check_fd(fd, known);
    if r.is_err() {
        sys::close(fd);
    }
    r.map(|()| fd)
}

fn check_fd(fd: i32, known: &Known) -> Result<(), &'static str> {
    let st = sys::fstat(fd).map_err(|_| "cannot stat the image")?;
    if known.id.is_some_and(|id| (st.st_dev, st.st_ino) != id) {
        return Err("the file at that path is not the image this process wrote or was restored from");
    }
    let len = st.st_size as usize;
    // SAFETY: a new mapping of the file where the kernel chooses (no MAP_FIXED).
    let map = if len > 0 { unsafe { sys::mmap(0, len, libc::PROT_READ, libc::MAP_PRIVATE, fd, 0) }.ok() } else { None };
    let map = map.ok_or("cannot map the image")?;
    // SAFETY: `map` is a fresh read-only mapping of `len` bytes, unmapped below.
    let bytes = unsafe { core::slice::from_raw_parts(map as *const u8, len) };
    let result = if mig_image::tree::is_tree(bytes) { check_job(bytes, known) } else { check_own(bytes, known) };
    // SAFETY: `bytes`, the only view of the mapping, is not used after this.
    let _ = unsafe { sys::munmap(map, len) };
    result
}

/// A job's image: this process's is its first (the root's), and every process's is
/// intact.
fn check_job(bytes: &[u8], known: &Known) -> Result<(), &'static str> {
    let rt = runtime::get();
    let header = mig_image::tree::TreeHeader::read(bytes, &rt.hasher).map_err(|_| "the job's process table is damaged")?;
    let mut first = true;
    for m in header.members().iter().filter(|m| !m.exited()) {
        let part = bytes.get(m.off as usize..(m.off + m.len) as usize).ok_or("the job's image is truncated")?;
        if first {
            check_own(part, known)?;
            first = false;
        } else {
            Image::verify(part, &rt.hasher).map_err(|e| e.reason())?;
        }
    }
    Ok(())
}

/// An image of this process: intact, the one known, of this executable.
fn check_own(bytes: &[u8], known: &Known) -> Result<(), &'static str> {
    let rt = runtime::get();
    let img = Image::verify(bytes, &rt.hasher).map_err(|e| e.reason())?;
    if (img.header.pid, img.header.created_unix_ns) != known.header {
        return Err("the file at that path is not the image this process wrote or was restored from");
    }
    let exe = img.process().exe;
    let now = CPath::new(rt.exe.as_bytes()).and_then(|p| sys::stat(&p).ok()).ok_or("the executable is gone")?;
    let same = img.str(exe.path) == rt.exe.as_bytes() && exe.size == now.st_size as u64 && exe.mtime_ns == now.st_mtime * 1_000_000_000 + now.st_mtime_nsec;
    if same { Ok(()) } else { Err("the image is of another executable") }
}

/// Splits NUL-terminated strings into a NULL-terminated pointer list, leaving out
/// those that start with one of `skip`.
fn pointers(text: &List<u8>, out: &mut List<u64>, skip: &[&[u8]]) -> Option<()> {
    let bytes = text.as_slice();
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        if c == 0 {
            let s = bytes.get(start..i).unwrap_or(&[]);
            if !skip.iter().any(|k| s.starts_with(k)) {
                out.push(bytes.as_ptr() as u64 + start as u64).ok()?;
            }
            start = i + 1;
        }
    }
    Some(())
}

fn slurp(path: &[u8], into: &mut List<u8>) -> Option<()> {
    let n = sys::read_file(&CPath::new(path)?, into.spare()).ok()?;
    into.grow(n);
    Some(())
}

/// Re-executes this program with `MIG_RESTORE=/proc/self/fd/<fd>`: the restore reads
/// the very file checked here, whatever happens at its path meanwhile. Returns only on
/// failure.
fn exec_restore(fd: i32) -> &'static str {
    let Some(mut scratch) = Scratch::new() else { return "no memory" };
    let mut image = sys::msg::Msg::<32>::new();
    image.s("/proc/self/fd/").num(fd as u64);
    let lists = (|| {
        let mut args: List<u8> = scratch.list(8 << 20)?;
        let mut env: List<u8> = scratch.list(8 << 20)?;
        let mut argv: List<u64> = scratch.list(1 << 18)?;
        let mut envp: List<u64> = scratch.list(1 << 18)?;
        slurp(b"/proc/self/cmdline", &mut args)?;
        slurp(b"/proc/self/environ", &mut env)?;
        pointers(&args, &mut argv, &[])?;
        argv.push(0).ok()?;
        let mine = env.len();
        // A job's root restores as its root, not as one of its processes.
        pointers(&env, &mut envp, &[b"MIG_RESTORE=", b"MIG_RESTORE_MEMBER=", b"MIG_RESTORE_SHARED="])?;
        env.extend(b"MIG_RESTORE=").ok()?;
        env.extend(image.as_bytes()).ok()?;
        env.push(0).ok()?;
        envp.push(env.as_slice().as_ptr() as u64 + mine as u64).ok()?;
        envp.push(0).ok()?;
        Some((args, env, argv, envp))
    })();
    let Some((_args, _env, argv, envp)) = lists else { return "cannot read the command line" };
    let Some(exe) = CPath::new(b"/proc/self/exe") else { return "path" };
    // The image brings its own descriptors; the old ones (a listening socket on the
    // port the restore binds again) must not outlive the exec. The image's own
    // descriptor must.
    sys::cloexec_from(3);
    if sys::fcntl(fd, libc::F_SETFD, 0).is_err() {
        return "cannot pass the image on";
    }
    // SAFETY: both lists are NULL-terminated arrays of pointers to NUL-terminated
    // strings in scratch memory, alive until execve replaces the process.
    let _err = unsafe { sys::execve(&exe, argv.as_slice().as_ptr().cast(), envp.as_slice().as_ptr().cast()) };
    "execve failed"
}
