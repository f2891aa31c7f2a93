//! SIGUSR2: roll the running process back to its last image, in place. The handler
//! checks the image, then re-executes the program (same pid) with `MIG_RESTORE` set,
//! so the restore itself runs in a fresh address space, exactly as at a restart.
#![allow(unsafe_code)]

use super::scratch::{List, Scratch};
use crate::runtime;
use crate::sys::{self, msg::msg, CPath};
use core::ffi::{c_int, c_void};
use mig_image::Image;

pub extern "C" fn on_rollback(_sig: c_int, _info: *mut libc::siginfo_t, _uc: *mut c_void) {
    let rt = runtime::get();
    let target = rt.settings.last_image;
    if target.is_empty() {
        msg().s("rollback ignored: no image yet (checkpoint first, or start with MIG_RESTORE)").emit();
        return;
    }
    if let Err(why) = check(target.as_bytes()) {
        msg().s("rollback to ").bytes(target.as_bytes()).s(" refused: ").s(why).emit();
        return;
    }
    // A pre-copy of the process image that is going away ends with it.
    super::precopy::cancel();
    let why = exec_restore(target.as_bytes());
    msg().s("rollback to ").bytes(target.as_bytes()).s(" failed: ").s(why).emit();
}

/// Verifies the whole image (every CRC) and that it belongs to this executable.
fn check(path: &[u8]) -> Result<(), &'static str> {
    let p = CPath::new(path).ok_or("image path too long")?;
    let fd = sys::open(&p, libc::O_RDONLY, 0).map_err(|_| "cannot open the image")?;
    let len = sys::fstat(fd).map(|st| st.st_size as usize).unwrap_or(0);
    let map = if len > 0 { sys::mmap(0, len, libc::PROT_READ, libc::MAP_PRIVATE, fd, 0).ok() } else { None };
    sys::close(fd);
    let map = map.ok_or("cannot map the image")?;
    // SAFETY: `map` is a fresh read-only mapping of `len` bytes, unmapped below.
    let bytes = unsafe { core::slice::from_raw_parts(map as *const u8, len) };
    let rt = runtime::get();
    let result = Image::verify(bytes, &rt.hasher).map_err(|e| e.reason()).and_then(|img| {
        let exe = img.process().exe;
        let now = CPath::new(rt.exe.as_bytes()).and_then(|p| sys::stat(&p).ok()).ok_or("the executable is gone")?;
        let same = img.str(exe.path) == rt.exe.as_bytes()
            && exe.size == now.st_size as u64
            && exe.mtime_ns == now.st_mtime * 1_000_000_000 + now.st_mtime_nsec;
        if same { Ok(()) } else { Err("the image is of another executable") }
    });
    let _ = sys::munmap(map, len);
    result
}

/// Splits NUL-terminated strings into a NULL-terminated pointer list.
fn pointers(text: &List<u8>, out: &mut List<u64>, skip: &[u8]) -> Option<()> {
    let bytes = text.as_slice();
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        if c == 0 {
            if !bytes[start..i].starts_with(skip) || skip.is_empty() {
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

/// Re-executes this program with `MIG_RESTORE=<image>`; returns only on failure.
fn exec_restore(image: &[u8]) -> &'static str {
    let Some(mut scratch) = Scratch::new() else { return "no memory" };
    let lists = (|| {
        let mut args: List<u8> = scratch.list(8 << 20)?;
        let mut env: List<u8> = scratch.list(8 << 20)?;
        let mut argv: List<u64> = scratch.list(1 << 18)?;
        let mut envp: List<u64> = scratch.list(1 << 18)?;
        slurp(b"/proc/self/cmdline", &mut args)?;
        slurp(b"/proc/self/environ", &mut env)?;
        pointers(&args, &mut argv, b"")?;
        argv.push(0).ok()?;
        let mine = env.len();
        pointers(&env, &mut envp, b"MIG_RESTORE=")?;
        env.extend(b"MIG_RESTORE=").ok()?;
        env.extend(image).ok()?;
        env.push(0).ok()?;
        envp.push(env.as_slice().as_ptr() as u64 + mine as u64).ok()?;
        envp.push(0).ok()?;
        Some((args, env, argv, envp))
    })();
    let Some((_args, _env, argv, envp)) = lists else { return "cannot read the command line" };
    let Some(exe) = CPath::new(b"/proc/self/exe") else { return "path" };
    // The image brings its own descriptors; the old ones (a listening socket on the
    // port the restore binds again) must not outlive the exec.
    sys::cloexec_from(3);
    // SAFETY: both lists are NULL-terminated arrays of pointers to NUL-terminated
    // strings in scratch memory, alive until execve replaces the process.
    let _err = unsafe { sys::execve(&exe, argv.as_slice().as_ptr().cast(), envp.as_slice().as_ptr().cast()) };
    "execve failed"
}
