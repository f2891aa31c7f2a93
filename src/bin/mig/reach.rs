//! How `mig checkpoint` reaches a process whatever the program does with signals: the
//! request signal the library publishes (`mig_proto::published`), read from the
//! process's memory; and, when no signal can carry the request (the program took them
//! all, or blocks the request signal in every thread), a signal frame written into one
//! thread through `ptrace`, pointed at the checkpoint handler.

use std::fs;
use std::io;

/// What `pid`'s `libmig.so` publishes (`mig_proto::published`).
pub struct Published {
    /// 0: none free.
    pub request_signal: i32,
    pub entry: u64,
    pub restorer: u64,
    pub sw_features: u64,
    pub sw_size: u32,
    pub checkpoint_signal: i32,
    /// A checkpoint handler runs.
    pub busy: bool,
    /// Where a request's frame goes.
    pub frame_top: u64,
}

/// Where the published record is in the library at `path` (read once per library: a
/// job's checkpoint asks every process of it).
fn symbol_of(path: &str) -> Option<u64> {
    static KNOWN: std::sync::Mutex<Vec<(String, u64)>> = std::sync::Mutex::new(Vec::new());
    let mut known = KNOWN.lock().ok()?;
    if let Some((_, at)) = known.iter().find(|(p, _)| p == path) {
        return Some(*at);
    }
    let at = symbol(&fs::read(path).ok()?, mig_proto::published::SYMBOL)?;
    known.push((path.to_string(), at));
    Some(at)
}

/// What `pid`'s library publishes; `None` if it cannot be read (no right to trace the
/// process, a library without it).
pub fn published(pid: i32) -> Option<Published> {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    // The library's first mapping (file offset 0) is where its addresses start.
    let (base, path) = maps.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let range = f.next()?;
        let offset = f.nth(1)?;
        let path = f.nth(2)?;
        (path.ends_with("/libmig.so") && u64::from_str_radix(offset, 16).ok()? == 0)
            .then(|| Some((u64::from_str_radix(range.split('-').next()?, 16).ok()?, path.to_string())))
            .flatten()
    })?;
    let at = base + symbol_of(&path)?;
    let mut rec = [0u8; mig_proto::published::LEN];
    let local = libc::iovec { iov_base: rec.as_mut_ptr().cast(), iov_len: rec.len() };
    let remote = libc::iovec { iov_base: at as *mut libc::c_void, iov_len: rec.len() };
    // SAFETY: process_vm_readv into `rec`, of the length given.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if n != rec.len() as isize || rec[..8] != mig_proto::published::MAGIC {
        return None;
    }
    let u32_at = |at: usize| u32::from_ne_bytes(rec[at..at + 4].try_into().unwrap_or_default());
    let u64_at = |at: usize| u64::from_ne_bytes(rec[at..at + 8].try_into().unwrap_or_default());
    Some(Published {
        request_signal: u32_at(8) as i32,
        entry: u64_at(16),
        restorer: u64_at(24),
        sw_features: u64_at(32),
        sw_size: u32_at(40),
        checkpoint_signal: u32_at(44) as i32,
        busy: u32_at(48) != 0,
        frame_top: u64_at(56),
    })
}

/// The value of dynamic symbol `name` in ELF64 file `elf` (its offset from the load
/// address, for a shared library).
fn symbol(elf: &[u8], name: &[u8]) -> Option<u64> {
    let u16_at = |at: usize| elf.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at = |at: usize| elf.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
    let u64_at = |at: usize| elf.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    if elf.get(..5)? != b"\x7fELF\x02" {
        return None;
    }
    let (shoff, shentsize, shnum) = (u64_at(0x28)? as usize, u16_at(0x3a)?, u16_at(0x3c)?);
    let section = |i: usize| {
        let h = shoff + i * shentsize;
        Some((u32_at(h + 4)?, u64_at(h + 0x18)? as usize, u64_at(h + 0x20)? as usize, u32_at(h + 0x28)? as usize))
    };
    const SHT_DYNSYM: u32 = 11;
    let (_, symoff, symsize, strndx) = (0..shnum).filter_map(section).find(|s| s.0 == SHT_DYNSYM)?;
    let (_, stroff, strsize, _) = section(strndx)?;
    let strtab = elf.get(stroff..stroff + strsize)?;
    (0..symsize / 24).find_map(|i| {
        let s = symoff + i * 24;
        let at = u32_at(s)? as usize;
        let sym = strtab.get(at..)?;
        let sym = &sym[..sym.iter().position(|&c| c == 0)?];
        (sym == name).then(|| u64_at(s + 8)).flatten()
    })
}

/// Whether `sig` waits for `pid` (sent to the process, `ShdPnd`) and every thread of it
/// blocks it.
pub fn waits_blocked(pid: i32, sig: i32) -> bool {
    let bit = 1u64 << (sig - 1);
    let set = |text: &str, name: &str| text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| u64::from_str_radix(v.trim(), 16).ok()).unwrap_or(0);
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else { return false };
    if set(&status, "ShdPnd:") & bit == 0 {
        return false;
    }
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return false };
    let mut any = false;
    for t in tasks.flatten() {
        let Ok(status) = fs::read_to_string(t.path().join("status")) else { continue };
        if set(&status, "SigBlk:") & bit == 0 {
            return false;
        }
        any = true;
    }
    any
}

fn ptrace(req: libc::c_uint, tid: i32, addr: usize, data: usize) -> io::Result<libc::c_long> {
    // SAFETY: requests that pass values, or addresses of live locals as their callers do.
    let r = unsafe { libc::ptrace(req, tid, addr, data) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

fn wait(tid: i32) -> io::Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid into a local.
        if unsafe { libc::waitpid(tid, &mut status, libc::__WALL) } >= 0 {
            return Ok(status);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

const PTRACE_EVENT_STOP: i32 = 128;

/// Held while this command writes a request into process `pid` (an abstract socket
/// name, `mig/<pid>/frame`, gone with the command); `None` if another command holds it.
pub fn writer_lock(pid: i32) -> Option<std::os::unix::net::UnixListener> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(format!("mig/{pid}/frame")).ok()?;
    std::os::unix::net::UnixListener::bind_addr(&addr).ok()
}

/// A live thread of `pid`, seized and stopped (`PTRACE_INTERRUPT`), for `f`; let go
/// after it (unless `f` let it go itself).
fn with_stopped_thread(pid: i32, f: impl FnOnce(i32) -> io::Result<()>) -> io::Result<()> {
    let tid = fs::read_dir(format!("/proc/{pid}/task"))?
        .flatten()
        .filter_map(|t| t.file_name().to_str()?.parse::<i32>().ok())
        .find(|t| {
            fs::read_to_string(format!("/proc/{pid}/task/{t}/stat")).is_ok_and(|s| !s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')))
        })
        .ok_or_else(|| io::Error::other("no live thread"))?;
    ptrace(libc::PTRACE_SEIZE, tid, 0, 0)?;
    let r = ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0).and_then(|_| {
        loop {
            let st = wait(tid)?;
            if !libc::WIFSTOPPED(st) {
                return Err(io::Error::other("the thread ended"));
            }
            if st >> 16 == PTRACE_EVENT_STOP {
                break f(tid);
            }
            // A signal of the program's on its way: it goes on its way.
            ptrace(libc::PTRACE_CONT, tid, 0, libc::WSTOPSIG(st) as usize)?;
        }
    });
    let _ = ptrace(libc::PTRACE_DETACH, tid, 0, 0);
    r
}

/// Makes a thread of `pid` run the checkpoint handler (`p.entry`) with a request
/// (`SI_QUEUE`, `nonce`) as if the checkpoint signal had brought it: for a process
/// where no signal can carry one (the program took every real-time signal).
pub fn inject_request(pid: i32, p: &Published, nonce: u64) -> io::Result<()> {
    with_stopped_thread(pid, |tid| {
        let entry = mig_checkpoint::tracer::Entry {
            pid: pid as u32,
            entry: p.entry,
            restorer: p.restorer,
            sig: p.checkpoint_signal as u32,
            code: libc::SI_QUEUE,
            sender: std::process::id(),
            // SAFETY: getuid cannot fail.
            uid: unsafe { libc::getuid() },
            value: nonce,
            sw_features: p.sw_features,
            sw_size: p.sw_size,
            stack_top: p.frame_top,
        };
        match mig_checkpoint::tracer::write_frame(tid as u32, &entry) {
            mig_checkpoint::tracer::Outcome::Stopped => Ok(()),
            _ => Err(io::Error::other("its thread's state cannot be read or written")),
        }
    })
}
