//! A plain checkpoint signal (`kill -USR1`, `MIG_INTERVAL`) to a process with children:
//! the whole job is saved, by `mig checkpoint` started from here (async-signal-safe).
//!
//! Saving a job takes every one of its processes stopped at once, which only a process
//! outside it can arrange (each is held by a request of its own, `control::hold`): the
//! `mig` beside `libmig.so` does it, started as no child of this process (it must not
//! be taken for a member of the job), its output to /dev/null and its messages on this
//! process's stderr. This process then takes that command's request like any other.
#![allow(unsafe_code)]

use crate::runtime::{self, FixedPath};
use crate::sys::{self, CPath, msg::Msg, msg::msg};
use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// The command last started (0: none): while it runs, a new signal starts no other.
static RUNNING: AtomicU32 = AtomicU32::new(0);

/// Whether this process has a child that is not one of mig's helpers: from each
/// thread's `children` (a few reads, not one per process of the machine: this runs
/// with the process stopped), else from every process's parent.
pub fn has_children() -> bool {
    let mut found = false;
    let listed = each_thread(|tid| {
        let mut num = Msg::<16>::new();
        num.num(tid as u64);
        let Some(path) = CPath::join(&[b"/proc/self/task/", num.as_bytes(), b"/children"]) else { return Err(()) };
        let mut list = [0u8; 4096];
        let n = sys::read_file(&path, &mut list).map_err(drop)?;
        found |= list.get(..n).unwrap_or_default().split(|&c| c == b' ').any(|pid| !pid.is_empty() && parent_of(pid).is_some());
        Ok(!found)
    });
    if listed.is_err() {
        let me = sys::getpid();
        each_process(|_, ppid| {
            found = ppid == me;
            !found
        });
    }
    found
}

/// Calls `f(tid)` for every thread of this process until it says false; an error
/// where `f` gives one (`/proc` without what it reads).
fn each_thread(mut f: impl FnMut(u32) -> Result<bool, ()>) -> Result<(), ()> {
    each_entry(b"/proc/self/task", |name| crate::maps::dec(name).map_or(Ok(true), |tid| f(tid as u32)))
}

/// Calls `f(name)` for every entry of directory `path` until it says false; an error
/// where `f` gives one or the directory cannot be read.
fn each_entry(path: &[u8], mut f: impl FnMut(&[u8]) -> Result<bool, ()>) -> Result<(), ()> {
    let path = CPath::new(path).ok_or(())?;
    let dir = sys::open(&path, libc::O_RDONLY | libc::O_DIRECTORY, 0).map_err(drop)?;
    let mut buf = [0u8; 4096];
    let mut r = Ok(());
    'outer: while let Ok(n) = sys::getdents(dir, &mut buf) {
        if n == 0 {
            break;
        }
        for name in sys::dirent_names(buf.get(..n).unwrap_or_default()) {
            match f(name) {
                Ok(true) => {}
                Ok(false) => break 'outer,
                Err(()) => {
                    r = Err(());
                    break 'outer;
                }
            }
        }
    }
    sys::close(dir);
    r
}

/// Calls `f(pid, ppid)` for every process but mig's helpers, until it says false.
fn each_process(mut f: impl FnMut(u32, u32) -> bool) {
    let _ = each_entry(b"/proc", |name| match (crate::maps::dec(name), parent_of(name)) {
        (Some(pid), Some(ppid)) => Ok(f(pid as u32, ppid)),
        _ => Ok(true),
    });
}

/// The parent of process `pid` (its decimal name), unless it is mig's helper.
fn parent_of(pid: &[u8]) -> Option<u32> {
    let path = CPath::join(&[b"/proc/", pid, b"/stat"])?;
    let mut stat = [0u8; 512];
    let n = sys::read_file(&path, &mut stat).ok()?;
    let stat = stat.get(..n)?;
    // pid (comm) state ppid ...: the command ends at the last ')'.
    let close = stat.iter().rposition(|&c| c == b')')?;
    let comm = stat.get(stat.iter().position(|&c| c == b'(').map_or(0, |i| i + 1)..close)?;
    if comm.starts_with(b"mig-") || comm == b"mig" {
        return None;
    }
    let mut fields = stat.get(close + 1..)?.split(|&c| c == b' ').filter(|f| !f.is_empty());
    fields.nth(1).and_then(crate::maps::dec).map(|p| p as u32)
}

/// Most processes under one that `end_descendants` ends.
const MAX_DESCENDANTS: usize = 1024;

/// Ends every process under this one (not mig's helpers) and reaps them: all are
/// stopped first (none sees another end), then killed; their orphans come to this
/// process meanwhile (a subreaper for that long), so that none is left and their pids
/// are free. False if some would not go within a few seconds.
pub fn end_descendants() -> bool {
    let me = sys::getpid();
    let mut under = [0u32; MAX_DESCENDANTS];
    let mut n = 0;
    // Stopped one generation at a time, until a pass finds no new one (a process
    // stopped forks no more).
    loop {
        let before = n;
        each_process(|pid, ppid| {
            let known = |p: u32| p == me || under.get(..n).is_some_and(|u| u.contains(&p));
            if known(ppid)
                && !known(pid)
                && let Some(slot) = under.get_mut(n)
            {
                *slot = pid;
                n += 1;
                let _ = sys::kill(pid, libc::SIGSTOP);
            }
            true
        });
        if n == before {
            break;
        }
    }
    let was = sys::prctl_get_int(libc::PR_GET_CHILD_SUBREAPER).unwrap_or(0);
    // SAFETY: prctl with integer arguments only.
    let _ = unsafe { sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    for &pid in under.get(..n).unwrap_or_default() {
        let _ = sys::kill(pid, libc::SIGKILL);
    }
    let t0 = sys::clock_monotonic_ns();
    let gone = loop {
        let mut left = false;
        each_process(|pid, ppid| {
            if ppid == me {
                left = true;
                let _ = sys::kill(pid, libc::SIGKILL);
                let _ = sys::reap_if_ended(pid);
            }
            true
        });
        if !left {
            break true;
        }
        if sys::clock_monotonic_ns().saturating_sub(t0) > 5_000_000_000 {
            break false;
        }
        sys::sleep_ms(1);
    };
    // SAFETY: as above.
    let _ = unsafe { sys::prctl(libc::PR_SET_CHILD_SUBREAPER, was as usize, 0, 0, 0) };
    gone
}

/// Starts `mig checkpoint <this pid>`; false if it could not be (no `mig` beside the
/// library), or the one started before still runs.
pub fn delegate() -> bool {
    let rt = runtime::get();
    let mig = rt.mig;
    if mig.as_bytes().is_empty() {
        return false;
    }
    let last = RUNNING.load(Relaxed);
    if last != 0 && runs(last) {
        if sys::msg::debug_enabled() {
            msg().s("checkpoint: the job's last checkpoint is still being taken; this signal asks for none").emit();
        }
        return true;
    }
    let mut pid = Msg::<16>::new();
    pid.num(sys::getpid() as u64);
    let (Some(exe), Some(pid_arg)) = (CPath::new(mig.as_bytes()), CPath::new(pid.as_bytes())) else { return false };
    let argv: [*const u8; 4] = [c"mig".as_ptr().cast(), c"checkpoint".as_ptr().cast(), pid_arg.ptr(), core::ptr::null()];
    let envp: [*const u8; 1] = [core::ptr::null()];
    // SAFETY: in the checkpoint handler, every catchable signal is blocked.
    match unsafe { sys::spawn_orphan() } {
        Ok(0) => {
            if let Some(null) = CPath::new(b"/dev/null")
                && let Ok(fd) = sys::open(&null, libc::O_RDWR, 0)
            {
                let _ = sys::dup2(fd, 0);
                let _ = sys::dup2(fd, 1);
            }
            sys::set_name(b"mig-job\0");
            // SAFETY: both arrays are NULL-terminated arrays of NUL-terminated strings.
            let _ = unsafe { sys::execve(&exe, argv.as_ptr(), envp.as_ptr()) };
            msg().s("checkpoint: cannot run ").bytes(mig.as_bytes()).s(" to save the job").emit();
            sys::exit_group(1);
        }
        Ok(child) => {
            RUNNING.store(child, Relaxed);
            true
        }
        Err(_) => false,
    }
}

/// Whether process `pid` still runs (not gone, not a zombie nobody reaps).
fn runs(pid: u32) -> bool {
    let mut num = Msg::<16>::new();
    num.num(pid as u64);
    let Some(path) = CPath::join(&[b"/proc/", num.as_bytes(), b"/stat"]) else { return false };
    let mut stat = [0u8; 512];
    let Ok(n) = sys::read_file(&path, &mut stat) else { return false };
    let stat = stat.get(..n).unwrap_or_default();
    let state = stat.iter().rposition(|&c| c == b')').and_then(|i| stat.get(i + 2));
    !matches!(state, Some(b'Z' | b'X') | None)
}

/// The `mig` beside the library at `lib` (its path), if there is one.
pub fn mig_beside(lib: &[u8]) -> FixedPath {
    let dir = lib.iter().rposition(|&c| c == b'/').and_then(|i| lib.get(..=i)).unwrap_or_default();
    let Some(path) = CPath::join(&[dir, b"mig"]) else { return FixedPath::EMPTY };
    if dir.is_empty() || sys::access_x(&path).is_err() {
        return FixedPath::EMPTY;
    }
    FixedPath::new(path.as_bytes()).unwrap_or(FixedPath::EMPTY)
}
