//! The image checked against this machine: the executable, the CPU, the kernel's vdso
//! and the working directory. Each mismatch refuses the restore with a reason, before
//! anything is replaced.
#![allow(unsafe_code)]

use super::Refusal;
use super::layout::Mapping;
// The checkpoint side's ELF note reader; it belongs with the raw system calls
// (`mig-sys`), beside the `/proc/self/maps` parser (see `layout`).
use crate::checkpoint::files::build_id;
use crate::sys;
use mig_image::{ATTR_CWD_DELETED, FileId, HEADER_PORTABLE, Image, ProcessRecord};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn mtime_ns(st: &libc::stat) -> i64 {
    st.st_mtime * 1_000_000_000 + st.st_mtime_nsec
}

pub(super) fn stat_fd(fd: i32) -> std::io::Result<libc::stat> {
    // SAFETY: `stat` is plain old data and `fstat` fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer.
    if unsafe { libc::fstat(fd, &mut st) } < 0 { Err(std::io::Error::last_os_error()) } else { Ok(st) }
}

/// Compares a file on disk with the identity recorded at checkpoint time.
pub(super) fn same_file(want: &FileId, fd: i32, path: &[u8]) -> Result<(), String> {
    let st = stat_fd(fd).map_err(|e| e.to_string())?;
    if st.st_size as u64 != want.size || mtime_ns(&st) != want.mtime_ns {
        return Err("it changed since the checkpoint (size or modification time differ)".into());
    }
    if want.build_id_len > 0 {
        let (id, len) = sys::CPath::new(path).map_or(([0; 20], 0), |p| build_id(&p));
        if id.get(..len as usize) != want.build_id.get(..want.build_id_len as usize) {
            return Err("it changed since the checkpoint (build-id differs)".into());
        }
    }
    Ok(())
}

/// This process must run the saved executable, one its owner may restore, and (unless
/// the image carries the program's code) the very same file.
pub(super) fn check_exe(img: &Image, p: &ProcessRecord) -> Result<(), Refusal> {
    let saved = img.str(p.exe.path);
    let here = std::fs::read_link("/proc/self/exe").map_err(|e| format!("cannot read /proc/self/exe: {e}"))?;
    if saved != here.as_os_str().as_bytes() {
        return Err(format!("the image is of {}, but this process runs {}", String::from_utf8_lossy(saved), here.display()));
    }
    let mode = std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(&here).map_err(|e| format!("cannot look at the executable: {e}"))?);
    super::super::trust::check_exe_mode(&p.exe, mode)?;
    if img.header.flags & HEADER_PORTABLE != 0 {
        return Ok(()); // the image carries the program's code
    }
    let fd = super::super::fds::open_raw(saved, libc::O_RDONLY, 0).map_err(|e| format!("cannot open the executable: {e}"))?;
    let r = same_file(&p.exe, fd, saved);
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
    r.map_err(|why| format!("the executable {}: {why}", here.display()))
}

/// The CPU must have every feature the image's CPU had (the program may use any of
/// them), the same signal frame state, and the kernel the same vdso code.
pub(super) fn check_machine(p: &ProcessRecord, current: &[Mapping]) -> Result<(), Refusal> {
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

/// The saved working directory must still be there (unless it was removed already).
pub(super) fn check_cwd(img: &Image, p: &ProcessRecord) -> Result<(), Refusal> {
    let cwd = img.str(p.cwd);
    if p.attrs.flags & ATTR_CWD_DELETED == 0 && !Path::new(std::ffi::OsStr::from_bytes(cwd)).is_dir() {
        return Err(format!("the working directory {} is gone", String::from_utf8_lossy(cwd)));
    }
    Ok(())
}

/// Seccomp filters: those the image saved (the program installed them through libc)
/// are installed again as the restore ends, all but those this process already runs
/// under (a rollback runs under them all: filters outlive `execve`); the kernel is asked
/// in a throwaway child whether it takes them, so that a refusal comes before anything
/// is replaced. The others cannot be read back: this process must run under them
/// already (as every process of a container does).
pub(super) fn check_seccomp(img: &Image, p: &ProcessRecord) -> Result<(), Refusal> {
    let a = p.attrs;
    if a.seccomp == 0 {
        return Ok(());
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().parse::<u32>().ok()).unwrap_or(0);
    let (mode, filters) = (field("Seccomp:"), field("Seccomp_filters:"));
    if a.seccomp == 1 {
        return Err("the process ran in seccomp strict mode, which mig cannot restore".into());
    }
    let unsaved = a.seccomp_filters - a.seccomp_saved;
    if unsaved > 0 && (mode != 2 || filters < unsaved) {
        return Err(format!(
            "the process ran under {unsaved} seccomp filter(s) mig could not save (it warned at the checkpoint); this process runs under {filters} (restore it where the same filters apply, as in the same container)"
        ));
    }
    let install = crate::checkpoint::seccomp::missing(a.seccomp_filters, filters).min(a.seccomp_saved);
    let filters = mig_image::seccomp_entries(img.str(a.seccomp_programs)).map_while(|e| e).skip((a.seccomp_saved - install) as usize);
    match try_filters(a.no_new_privs != 0, filters) {
        0 => Ok(()),
        libc::EACCES => {
            Err("the kernel refuses to install its seccomp filters again: the process had no_new_privs off and this one lacks CAP_SYS_ADMIN".into())
        }
        e => Err(format!("the kernel refuses to install its seccomp filters again: {}", std::io::Error::from_raw_os_error(e))),
    }
}

/// Installs `filters` in a child (with `no_new_privs` first, as the restore sets it):
/// 0, or the error number of the first the kernel refuses.
fn try_filters<'a>(no_new_privs: bool, filters: impl Iterator<Item = (u32, &'a [u8])>) -> i32 {
    let filters: Vec<(u32, &[u8])> = filters.collect();
    if filters.is_empty() {
        return 0;
    }
    // SAFETY: the restoring process has one thread here (the library's constructor);
    // the child makes system calls only and ends with `_exit`.
    unsafe {
        match libc::fork() {
            -1 => *libc::__errno_location(),
            0 => {
                if no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    libc::_exit(*libc::__errno_location());
                }
                for (flags, insns) in &filters {
                    if let Err(e) = sys::seccomp_filter(*flags, insns) {
                        libc::_exit(e.0);
                    }
                }
                libc::_exit(0)
            }
            child => {
                let mut st = 0;
                while libc::waitpid(child, &mut st, 0) < 0 && *libc::__errno_location() == libc::EINTR {}
                if libc::WIFEXITED(st) { libc::WEXITSTATUS(st) } else { libc::EINVAL }
            }
        }
    }
}
