//! Threads that block the stop signal, stopped from outside.
//!
//! A thread that blocks every signal (jemalloc's background thread, a runtime's
//! workers, a program that masks everything in its helpers) never runs the stop
//! handler; nor does any thread of a program that took every real-time signal (the Go
//! runtime). For those, the coordinator starts a helper process that shares the
//! address space (`spawn_vm`, not a thread of the program, so it may trace the
//! program's threads) and, for each one: seizes and interrupts it with `ptrace`, reads
//! its registers, its extended FPU state and its signal mask, and writes a signal frame
//! as the kernel would for the stop signal, at the top of a stop slot of mig's (never
//! on the program's stack: a goroutine's is a few KiB; the handler then needs about
//! 2 KiB of the slot's 32). It points the thread at the stop handler's entry on that
//! slot, with every signal blocked, and lets go. The thread runs the stop handler as
//! any other thread does and, once released (or restored), returns through
//! `rt_sigreturn`, which puts back its registers, FPU state and mask from the frame. A
//! call it was blocked in is set to run again (`interrupted::after_stop`): the ptrace
//! stop shows the call's number. `mig checkpoint` writes a request into a thread the
//! same way (`write_frame`), pointed at the checkpoint handler.
//!
//! The frame's alternate-stack field is filled by the thread itself in the handler
//! (`fix_frame`): only it can read its alternate stack. Without the right to trace
//! (another tracer, a non-dumpable process, a seccomp filter against `ptrace`), or with
//! a CET shadow stack, a thread stays unstopped and the checkpoint is abandoned as
//! before.
#![allow(unsafe_code)]

use crate::sys::{self, CPath};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};

/// At most this many threads stopped from outside per checkpoint.
pub const MAX: usize = 256;
/// `si_errno` of a frame written here (the kernel leaves it 0 for `tgkill`).
const MARKER: i32 = 0x006d_6967;
const STACK: usize = 256 << 10;
const XSAVE_MAX: usize = 32 << 10;
const NT_X86_XSTATE: usize = 0x202;
const PTRACE_GETSIGMASK: u32 = 0x420a;
const PTRACE_SETSIGMASK: u32 = 0x420b;
const PTRACE_EVENT_STOP: i32 = 128;
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
/// `uc_flags`: `UC_FP_XSTATE`, `UC_SIGCONTEXT_SS`, `UC_STRICT_RESTORE_SS`.
const UC_FLAGS: u64 = 1 | 2 | 4;
/// The kernel's `struct rt_sigframe`: `pretcode`, `struct ucontext` (304 bytes), siginfo.
const FRAME: u64 = 8 + 304 + 128;
const UC_AT: u64 = 8;
const INFO_AT: u64 = 8 + 304;

/// What became of a thread.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// It runs the stop handler now.
    Stopped,
    /// It ended meanwhile.
    Gone,
    /// It cannot be traced.
    Refused,
}

// Shared with the helper, which runs in this address space.
static TIDS: [AtomicU32; MAX] = [const { AtomicU32::new(0) }; MAX];
static OUTCOMES: [AtomicU32; MAX] = [const { AtomicU32::new(0) }; MAX];
static COUNT: AtomicU32 = AtomicU32::new(0);
static SIGNAL: AtomicU32 = AtomicU32::new(0);
static PID: AtomicU32 = AtomicU32::new(0);
static ENTRY: AtomicU64 = AtomicU64::new(0);
/// Every listed thread gets a frame (the stop signal is not ours to send).
static ALL: AtomicU32 = AtomicU32::new(0);
/// Set once the helper may trace (`PR_SET_PTRACER` done).
static GO: AtomicU32 = AtomicU32::new(0);
/// Not 0 while the helper exists (the kernel clears it as the helper ends).
static LIVE: AtomicU32 = AtomicU32::new(0);

/// Thread `tid`'s `/proc/<pid>/task/<tid>/status` into `buf`.
fn status(pid: u32, tid: u32, buf: &mut [u8]) -> &[u8] {
    let mut path = sys::msg::Msg::<64>::new();
    path.s("/proc/").num(pid as u64).s("/task/").num(tid as u64).s("/status");
    let n = CPath::new(path.as_bytes()).and_then(|p| sys::read_file(&p, buf).ok()).unwrap_or(0);
    buf.get(..n).unwrap_or(&[])
}

/// The value of line `name` (with its colon and tab) of a status file.
fn field<'a>(text: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let at = text.windows(name.len()).position(|w| w == name)?;
    let rest = text.get(at + name.len()..)?;
    rest.get(..rest.iter().position(|&c| c == b'\n')?)
}

/// A thread's signal sets, as its `/proc` status shows them.
pub struct SignalSets {
    /// Sent to the thread itself and not taken (`SigPnd`).
    pub own: u64,
    /// Sent to the process and not taken (`ShdPnd`).
    pub shared: u64,
    pub blocked: u64,
    /// Signals queued for the process's user, in every process (`SigQ`).
    pub user_queued: u64,
}

/// Thread `tid` of process `pid`'s signal sets (all empty if it is gone).
pub fn signal_sets(pid: u32, tid: u32) -> SignalSets {
    let mut buf = [0u8; 2048];
    let text = status(pid, tid, &mut buf);
    let set = |name: &[u8]| field(text, name).and_then(|f| f.iter().try_fold(0u64, |v, &c| Some(v << 4 | (c as char).to_digit(16)? as u64))).unwrap_or(0);
    let queued = field(text, b"SigQ:\t").map_or(0, |f| f.iter().take_while(|c| c.is_ascii_digit()).fold(0u64, |v, &c| v * 10 + (c - b'0') as u64));
    SignalSets { own: set(b"SigPnd:\t"), shared: set(b"ShdPnd:\t"), blocked: set(b"SigBlk:\t"), user_queued: queued }
}

/// Whether `sig` waits, blocked, for thread `tid` of process `pid`: sent, and not
/// taken. A thread in the stop handler has taken it (and blocks it there).
pub fn waiting(pid: u32, tid: u32, sig: u32) -> bool {
    let sets = signal_sets(pid, tid);
    let bit = if (1..=64).contains(&sig) { 1u64 << (sig - 1) } else { 0 };
    sets.own & sets.blocked & bit != 0
}

/// Whether thread `tid` of `pid` runs with a shadow stack (CET): `rt_sigreturn` would
/// look there for a token only the kernel's own signal delivery leaves.
fn shadow_stack(pid: u32, tid: u32) -> bool {
    let mut buf = [0u8; 2048];
    field(status(pid, tid, &mut buf), b"x86_Thread_features:\t").is_some_and(|f| f.windows(5).any(|w| w == b"shstk"))
}

/// The coordinator: makes each thread of `tids` (for which `sig` waits; with `all`,
/// whatever it waits for) run the stop handler; `out[i]` says what became of
/// `tids[i]`. Waits at most 2 s for the helper.
pub fn stop(tids: &[u32], sig: u32, all: bool, out: &mut [Outcome]) {
    let n = tids.len().min(MAX).min(out.len());
    for (i, (slot, outcome)) in TIDS.iter().zip(OUTCOMES.iter()).enumerate().take(n) {
        slot.store(tids.get(i).copied().unwrap_or(0), SeqCst);
        outcome.store(0, SeqCst);
    }
    out.iter_mut().for_each(|o| *o = Outcome::Refused);
    COUNT.store(n as u32, SeqCst);
    SIGNAL.store(sig, SeqCst);
    PID.store(sys::getpid(), SeqCst);
    ENTRY.store(crate::stacks::injected_entry as *const () as u64, SeqCst);
    ALL.store(all as u32, SeqCst);
    GO.store(0, SeqCst);
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    // SAFETY: a new anonymous mapping where the kernel chooses; the helper unmaps it.
    let Ok(base) = (unsafe { sys::mmap(0, STACK, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0) }) else { return };
    let child = sys::adopts_orphans();
    let r = if child {
        // SAFETY: the stack is the top of the mapping just made, which only the helper
        // uses and unmaps as it ends; `helper` touches only this module's statics, its
        // stack and the program's threads through system calls.
        unsafe { sys::spawn_vm(base + STACK, helper, 0, base, STACK, &LIVE) }
    } else {
        // SAFETY: as above; in the checkpoint handler, every catchable signal is blocked.
        unsafe { sys::spawn_vm_orphan(base + STACK, helper, 0, base, STACK, &LIVE) }.map_or_else(|e| -(e.0 as isize), |pid| pid as isize)
    };
    if r <= 0 {
        // SAFETY: no helper started: the mapping is ours alone.
        let _ = unsafe { sys::munmap(base, STACK) };
        return;
    }
    let helper_pid = r as u32;
    // Under Yama's ptrace_scope 1, only a declared tracer may attach (no ancestor here).
    sys::set_ptracer(helper_pid);
    GO.store(1, SeqCst);
    sys::futex_wake_private(&GO);
    let deadline = sys::clock_monotonic_ns() + 2_000_000_000;
    loop {
        let live = LIVE.load(SeqCst);
        if live == 0 {
            break;
        }
        let now = sys::clock_monotonic_ns();
        if now >= deadline {
            // Its tracees are let go as it dies.
            let _ = sys::kill(helper_pid, libc::SIGKILL);
            sys::futex_wait(&LIVE, live, 1000);
            break;
        }
        sys::futex_wait(&LIVE, live, ((deadline - now) / 1_000_000).max(1));
    }
    sys::set_ptracer(0);
    if child {
        let _ = sys::reap_quiet(helper_pid);
    }
    for (o, got) in out.iter_mut().zip(OUTCOMES.iter()).take(n) {
        *o = match got.load(SeqCst) {
            1 => Outcome::Stopped,
            2 => Outcome::Gone,
            _ => Outcome::Refused,
        };
    }
}

/// The helper process: stops each listed thread.
extern "C" fn helper(_: usize) {
    let deadline = sys::clock_monotonic_ns() + 1_000_000_000;
    while GO.load(SeqCst) == 0 && sys::clock_monotonic_ns() < deadline {
        sys::futex_wait_private(&GO, 0, 100);
    }
    for (tid, outcome) in TIDS.iter().zip(OUTCOMES.iter()).take(COUNT.load(SeqCst) as usize) {
        let o = match redirect(tid.load(SeqCst)) {
            Outcome::Stopped => 1,
            Outcome::Gone => 2,
            Outcome::Refused => 3,
        };
        outcome.store(o, SeqCst);
    }
}

#[repr(C, align(64))]
struct Xsave([u8; XSAVE_MAX]);

/// Seizes and interrupts `tid`, runs `f` on it stopped, and lets it go.
fn seized(tid: u32, f: impl FnOnce() -> Outcome) -> Outcome {
    let gone = |e: sys::Errno| if e.0 == libc::ESRCH { Outcome::Gone } else { Outcome::Refused };
    if let Err(e) = sys::ptrace(libc::PTRACE_SEIZE, tid, 0, 0) {
        return gone(e);
    }
    let _ = sys::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0);
    // A signal being delivered stops it first: that signal is handed back on detach.
    let redeliver = loop {
        let Ok(st) = sys::wait_traced(tid) else { return Outcome::Gone };
        if st & 0x7f == 0 || ((st & 0x7f) + 1) as i8 >> 1 > 0 {
            return Outcome::Gone; // exited or killed
        }
        if st & 0xff == 0x7f {
            let (event, sig) = (st >> 16, (st >> 8) & 0xff);
            if event == PTRACE_EVENT_STOP {
                break 0;
            }
            if event == 0 {
                break sig;
            }
        }
        let _ = sys::ptrace(libc::PTRACE_CONT, tid, 0, 0);
    };
    let r = f();
    let _ = sys::ptrace(libc::PTRACE_DETACH, tid, 0, redeliver as usize);
    r
}

/// Makes the main thread of process `pid` run the checkpoint handler as if `sender`
/// had queued it the checkpoint signal: for a process that left mig no signal to send
/// (the program took them all). Queued (`SI_QUEUE`), a request that finds another
/// checkpoint running is dropped, never sent again as the signal (the program's). The
/// caller must be allowed to trace it; the frame goes below `stack_top`, in an area no
/// other frame uses meanwhile.
pub fn ask_checkpoint(pid: u32, sender: u32, stack_top: u64) -> Outcome {
    let c = &crate::control::MIG_CONTROL;
    let entry = Entry {
        pid,
        entry: c.entry.load(SeqCst),
        restorer: c.restorer.load(SeqCst),
        sig: c.checkpoint_signal.load(SeqCst),
        code: libc::SI_QUEUE,
        sender,
        uid: sys::getuid(),
        value: 0,
        sw_features: c.sw_features.load(SeqCst),
        sw_size: c.sw_size.load(SeqCst),
        stack_top,
    };
    seized(pid, || write_frame(pid, &entry))
}

/// Seizes `tid`, writes its signal frame and points it at the stop handler.
fn redirect(tid: u32) -> Outcome {
    seized(tid, || redirect_stopped(tid))
}

fn redirect_stopped(tid: u32) -> Outcome {
    // Stopped, it cannot change: one that took the signal meanwhile comes by itself
    // (its call, cut short by this stop, made to run again).
    let (pid, sig) = (PID.load(SeqCst), SIGNAL.load(SeqCst));
    if ALL.load(SeqCst) != 0 || waiting(pid, tid, sig) {
        let c = &crate::control::MIG_CONTROL;
        let Some(stack_top) = crate::stacks::take_stop_slot() else { return Outcome::Refused };
        let entry = Entry {
            pid,
            entry: ENTRY.load(SeqCst),
            restorer: c.restorer.load(SeqCst),
            sig,
            code: libc::SI_TKILL,
            sender: pid,
            uid: sys::getuid(),
            value: 0,
            sw_features: c.sw_features.load(SeqCst),
            sw_size: c.sw_size.load(SeqCst),
            stack_top,
        };
        let r = write_frame(tid, &entry);
        if r != Outcome::Stopped {
            // The slot was never used.
            crate::threads::SLOTS_LEFT.fetch_add(1, SeqCst);
        }
        r
    } else {
        resume_call(tid)
    }
}

/// `user_regs_struct` indices.
mod ur {
    pub const R15: usize = 0;
    pub const R14: usize = 1;
    pub const R13: usize = 2;
    pub const R12: usize = 3;
    pub const RBP: usize = 4;
    pub const RBX: usize = 5;
    pub const R11: usize = 6;
    pub const R10: usize = 7;
    pub const R9: usize = 8;
    pub const R8: usize = 9;
    pub const RAX: usize = 10;
    pub const RCX: usize = 11;
    pub const RDX: usize = 12;
    pub const RSI: usize = 13;
    pub const RDI: usize = 14;
    pub const ORIG_RAX: usize = 15;
    pub const RIP: usize = 16;
    pub const CS: usize = 17;
    pub const EFLAGS: usize = 18;
    pub const RSP: usize = 19;
    pub const SS: usize = 20;
    pub const FS: usize = 25;
    pub const GS: usize = 26;
}

/// A call the stop cut short with EINTR (not one the kernel restarts by itself) set to
/// run again; the thread goes on as it was.
fn resume_call(tid: u32) -> Outcome {
    let mut regs = [0u64; 27];
    // SAFETY: PTRACE_GETREGS writes one `user_regs_struct` (27 words).
    if unsafe { sys::ptrace_out(libc::PTRACE_GETREGS, tid, 0, regs.as_mut_ptr().cast()) }.is_ok() {
        let r = |i: usize| regs.get(i).copied().unwrap_or(0);
        let nr = r(ur::ORIG_RAX) as i64;
        let args = [r(ur::RDI), r(ur::RSI), r(ur::RDX), r(ur::R10), r(ur::R8), r(ur::R9)];
        if nr >= 0
            && r(ur::RAX) as i64 == -(libc::EINTR as i64)
            && let Some(edit) = crate::interrupted::after_stop(nr as u32, args, r(ur::RAX) as i64)
        {
            let mut g = [0u64; 23];
            if let Some((at, v)) = edit
                && let Some(slot) = g.get_mut(at)
            {
                *slot = v;
            }
            let greg = |reg: libc::c_int| g.get(reg as usize).copied().filter(|&v| v != 0);
            for (i, v) in [(ur::RAX, nr as u64), (ur::RIP, r(ur::RIP) - 2)]
                .into_iter()
                .chain(greg(libc::REG_RDI).map(|v| (ur::RDI, v)))
                .chain(greg(libc::REG_RDX).map(|v| (ur::RDX, v)))
            {
                if let Some(slot) = regs.get_mut(i) {
                    *slot = v;
                }
            }
            let _ = sys::ptrace_in(libc::PTRACE_SETREGS, tid, 0, &regs);
        }
    }
    Outcome::Stopped
}

/// Where a frame written into a thread sends it, and what its siginfo says.
pub struct Entry {
    /// The thread's process (whose memory gets the frame).
    pub pid: u32,
    /// The handler's entry, and the `sa_restorer` it returns through.
    pub entry: u64,
    pub restorer: u64,
    /// The siginfo: signal, code, sender, its user, value (`SI_QUEUE`'s).
    pub sig: u32,
    pub code: i32,
    pub sender: u32,
    pub uid: u32,
    pub value: u64,
    /// The extended state of the process's own signal frames (`Published`).
    pub sw_features: u64,
    pub sw_size: u32,
    /// Where the frame goes: below this (mig's memory, never a program's stack).
    pub stack_top: u64,
}

/// Makes thread `tid`, in a ptrace stop of the caller's, run `e.entry` as a signal
/// handler when it goes on: a signal frame written below its stack pointer (as the
/// kernel would write it: registers, extended state, mask; a call it was in set to run
/// again), its registers pointed at the entry, every signal blocked.
pub fn write_frame(tid: u32, e: &Entry) -> Outcome {
    if shadow_stack(e.pid, tid) {
        return Outcome::Refused;
    }
    let mut regs = [0u64; 27];
    // SAFETY: PTRACE_GETREGS writes one `user_regs_struct` (27 words).
    if unsafe { sys::ptrace_out(libc::PTRACE_GETREGS, tid, 0, regs.as_mut_ptr().cast()) }.is_err() {
        return Outcome::Refused;
    }
    let mut xsave = Xsave([0; XSAVE_MAX]);
    let mut iov = libc::iovec { iov_base: xsave.0.as_mut_ptr().cast(), iov_len: XSAVE_MAX };
    // SAFETY: PTRACE_GETREGSET writes at most `iov_len` bytes at `iov_base`, and the
    // length it wrote into `iov`.
    let xstate = unsafe { sys::ptrace_out(libc::PTRACE_GETREGSET, tid, NT_X86_XSTATE, (&mut iov as *mut libc::iovec).cast()) }.is_ok();
    let fp_len = if xstate {
        // The frame's software bytes, which `rt_sigreturn` checks before it restores
        // the extended state (else only the legacy part comes back).
        // The kernel's own frames for this process give the size and components
        // (ptrace gives every component the CPU has: AMX's too, where a process
        // without the permission gets no room for them in its frames).
        let (features, size) = (e.sw_features, e.sw_size as usize);
        if size == 0 {
            return Outcome::Refused;
        }
        let n = iov.iov_len.min(size);
        let mut sw = [0u8; 24];
        sw[..4].copy_from_slice(&FP_XSTATE_MAGIC1.to_ne_bytes());
        sw[4..8].copy_from_slice(&(n as u32 + 4).to_ne_bytes());
        sw[8..16].copy_from_slice(&features.to_ne_bytes());
        sw[16..20].copy_from_slice(&(n as u32).to_ne_bytes());
        if let Some(dst) = xsave.0.get_mut(464..488) {
            dst.copy_from_slice(&sw);
        }
        n
    } else {
        // SAFETY: PTRACE_GETFPREGS writes the 512-byte FXSAVE area.
        if unsafe { sys::ptrace_out(libc::PTRACE_GETFPREGS, tid, 0, xsave.0.as_mut_ptr()) }.is_err() {
            return Outcome::Refused;
        }
        512
    };
    let mut mask = 0u64;
    // SAFETY: PTRACE_GETSIGMASK writes `addr` (8) bytes.
    if unsafe { sys::ptrace_out(PTRACE_GETSIGMASK, tid, 8, (&mut mask as *mut u64).cast()) }.is_err() {
        return Outcome::Refused;
    }

    let r = |i: usize| regs.get(i).copied().unwrap_or(0);
    let mut g = [0u64; 23];
    let seg = r(ur::CS) & 0xffff | (r(ur::GS) & 0xffff) << 16 | (r(ur::FS) & 0xffff) << 32 | (r(ur::SS) & 0xffff) << 48;
    for (at, v) in [
        (libc::REG_R8, r(ur::R8)),
        (libc::REG_R9, r(ur::R9)),
        (libc::REG_R10, r(ur::R10)),
        (libc::REG_R11, r(ur::R11)),
        (libc::REG_R12, r(ur::R12)),
        (libc::REG_R13, r(ur::R13)),
        (libc::REG_R14, r(ur::R14)),
        (libc::REG_R15, r(ur::R15)),
        (libc::REG_RDI, r(ur::RDI)),
        (libc::REG_RSI, r(ur::RSI)),
        (libc::REG_RBP, r(ur::RBP)),
        (libc::REG_RBX, r(ur::RBX)),
        (libc::REG_RDX, r(ur::RDX)),
        (libc::REG_RAX, r(ur::RAX)),
        (libc::REG_RCX, r(ur::RCX)),
        (libc::REG_RSP, r(ur::RSP)),
        (libc::REG_RIP, r(ur::RIP)),
        (libc::REG_EFL, r(ur::EFLAGS)),
        (libc::REG_CSGSFS, seg),
        (libc::REG_OLDMASK, mask),
    ] {
        if let Some(slot) = g.get_mut(at as usize) {
            *slot = v;
        }
    }
    // A call it was in runs again when it returns to it.
    let nr = r(ur::ORIG_RAX) as i64;
    if nr >= 0 {
        let args = [r(ur::RDI), r(ur::RSI), r(ur::RDX), r(ur::R10), r(ur::R8), r(ur::R9)];
        if let Some(edit) = crate::interrupted::after_stop(nr as u32, args, r(ur::RAX) as i64) {
            if let Some(slot) = g.get_mut(libc::REG_RAX as usize) {
                *slot = nr as u64;
            }
            if let Some(slot) = g.get_mut(libc::REG_RIP as usize) {
                *slot = r(ur::RIP) - 2;
            }
            if let Some((at, v)) = edit
                && let Some(slot) = g.get_mut(at)
            {
                *slot = v;
            }
        }
    }

    // Laid out as the kernel lays out a signal frame: the FPU state 64-byte aligned,
    // then the frame (16-byte aligned less the return address).
    let fp_total = fp_len as u64 + if xstate { 4 } else { 0 };
    let fp = (e.stack_top - fp_total) & !63;
    let frame = ((fp - FRAME) & !15) - 8;
    let len = (fp + fp_total - frame) as usize;
    let mut buf = [0u8; XSAVE_MAX + 1024];
    let Some(b) = buf.get_mut(..len) else { return Outcome::Refused };
    let mut put = |at: u64, bytes: &[u8]| {
        if let Some(dst) = b.get_mut(at as usize..at as usize + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    };
    put(0, &e.restorer.to_ne_bytes());
    put(UC_AT, &(if xstate { UC_FLAGS } else { UC_FLAGS & !1 }).to_ne_bytes());
    // uc_stack: disabled until the thread says what its alternate stack is.
    put(UC_AT + 16 + 8, &(libc::SS_DISABLE as u32).to_ne_bytes());
    for (i, v) in g.iter().enumerate() {
        put(UC_AT + 40 + 8 * i as u64, &v.to_ne_bytes());
    }
    put(UC_AT + 40 + 184, &fp.to_ne_bytes());
    put(UC_AT + 296, &mask.to_ne_bytes());
    let sig = e.sig;
    put(INFO_AT, &(sig as i32).to_ne_bytes());
    put(INFO_AT + 4, &MARKER.to_ne_bytes());
    put(INFO_AT + 8, &e.code.to_ne_bytes());
    put(INFO_AT + 16, &e.sender.to_ne_bytes());
    put(INFO_AT + 20, &e.uid.to_ne_bytes());
    put(INFO_AT + 24, &e.value.to_ne_bytes());
    put(fp - frame, xsave.0.get(..fp_len).unwrap_or(&[]));
    if xstate {
        put(fp - frame + fp_len as u64, &FP_XSTATE_MAGIC2.to_ne_bytes());
    }
    if !sys::write_other(e.pid, frame, b) {
        return Outcome::Refused;
    }

    // Into the handler as the kernel enters one: arguments, no call to restart, DF, TF
    // and RF clear, every signal blocked.
    let mut entry = regs;
    for (i, v) in [
        (ur::RSP, frame),
        (ur::RIP, e.entry),
        (ur::RDI, sig as u64),
        (ur::RSI, frame + INFO_AT),
        (ur::RDX, frame + UC_AT),
        (ur::RAX, 0),
        (ur::ORIG_RAX, u64::MAX),
        (ur::EFLAGS, r(ur::EFLAGS) & !(0x400 | 0x100 | 0x1_0000)),
    ] {
        if let Some(slot) = entry.get_mut(i) {
            *slot = v;
        }
    }
    if sys::ptrace_in(libc::PTRACE_SETREGS, tid, 0, &entry).is_err() {
        return Outcome::Refused;
    }
    let _ = sys::ptrace_in(PTRACE_SETSIGMASK, tid, 8, &u64::MAX);
    Outcome::Stopped
}

/// In the stop handler: a frame written here gets the thread's alternate stack (which
/// `rt_sigreturn` sets back from it), and the stop signal sent to the thread before it
/// was found blocking it is taken, so it does not stop the thread again later.
pub fn fix_frame(info: Option<&libc::siginfo_t>, uc: *mut core::ffi::c_void) {
    let Some(info) = info else { return };
    if info.si_errno != MARKER {
        return;
    }
    // SAFETY: as `info`: the frame's ucontext, on this thread's stack.
    let Some(uc) = (unsafe { uc.cast::<libc::ucontext_t>().as_mut() }) else { return };
    let mut ss = libc::stack_t { ss_sp: core::ptr::null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 };
    if sys::sigaltstack(&mut ss).is_ok() {
        ss.ss_flags &= !libc::SS_ONSTACK;
        uc.uc_stack = ss;
    }
    if info.si_code == libc::SI_TKILL && info.si_signo > 0 {
        sys::take_pending(info.si_signo);
    }
}

/// In a handler the kernel entered (at start, and at each checkpoint): notes the
/// extended-state layout of its frame `uc`, which the frames written here copy.
pub fn note_frame(uc: *const core::ffi::c_void) {
    // SAFETY: the kernel passes an `SA_SIGINFO` handler its frame's ucontext.
    let Some(uc) = (unsafe { uc.cast::<libc::ucontext_t>().as_ref() }) else { return };
    let fp = uc.uc_mcontext.fpregs as u64;
    let mut sw = [0u8; 24];
    if fp == 0 || !sys::read_own(fp + 464, &mut sw) {
        return;
    }
    let word = |at: usize| sw.get(at..at + 4).and_then(|b| b.try_into().ok()).map_or(0, u32::from_ne_bytes);
    if word(0) == FP_XSTATE_MAGIC1 && uc.uc_flags & 1 != 0 {
        let c = &crate::control::MIG_CONTROL;
        c.sw_features.store(sw.get(8..16).and_then(|b| b.try_into().ok()).map_or(0, u64::from_ne_bytes), SeqCst);
        c.sw_size.store(word(16), SeqCst);
    }
}
