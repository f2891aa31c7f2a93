//! The system call a stop interrupted, made to go on as if no stop had come.
//!
//! How a blocked call ends is decided by the kernel before a signal handler runs: a
//! call that returns `-ERESTARTSYS` (`read`, `accept`, `wait4`, a futex without a
//! timeout) is rewound for an `SA_RESTART` handler, but every call that returns
//! `-ERESTARTNOHAND`, `-ERESTART_RESTARTBLOCK` or `-EINTR` (`poll`, `select`, the
//! sleeps, `epoll_wait`, `sigtimedwait`, `pause`, timed futex waits, a socket with a
//! timeout…) comes back with EINTR. The signal frame holds that outcome, so a restore
//! replays it too. mig's handlers rewrite the frame before anything is saved: the
//! call's number back in `rax`, `rip` back on its `syscall` instruction, and where the
//! kernel left the time still to wait (`ppoll`, `pselect6`, `select` update their
//! timeout; `nanosleep`'s remainder), that time. The call then runs again when the
//! handler returns, in place and after a restore.
//!
//! The frame does not say which call it was (`orig_rax` is not in it). For the threads
//! a checkpoint stops, the coordinator reads `/proc/self/task/TID/syscall` just before
//! it signals each one (`sample`); the handler trusts it if the frame's stack and
//! instruction pointers are the sample's. The thread that takes the checkpoint signal
//! was not sampled: its call is read from the instruction before `syscall`
//! (`mov $nr, %eax`, how glibc makes its calls).
//!
//! A program signal that arrived meanwhile and would have interrupted the call undoes
//! the rewrite when the handler leaves (`Restart::settle`): the call returns EINTR
//! and the program's handler runs, as it would have without mig.
//!
//! A call with a relative timeout the kernel keeps to itself (`poll`, `epoll_wait`,
//! `sigtimedwait`, `semtimedop`, a sleep without a remainder, a relative futex wait,
//! `io_getevents`) runs again for the time it has left when the program made it through
//! libc, its wrapper or `syscall(2)` (the hook noted the deadline, `intent::Waiting`);
//! made with a `syscall` instruction of its own or with `SO_RCVTIMEO`, it waits its
//! whole timeout again, never less. An unknown call keeps its EINTR.
#![allow(unsafe_code)]

use crate::sys::{self, CPath};
use core::ffi::c_void;
use core::sync::atomic::{AtomicU32, Ordering::SeqCst};
use libc::{REG_R8, REG_R10, REG_RAX, REG_RDI, REG_RDX, REG_RIP, REG_RSI, REG_RSP};

const EINTR: i64 = -(libc::EINTR as i64);
const SYSCALL_INSN: [u8; 2] = [0x0f, 0x05];

/// A call a thread was blocked in, as `/proc/self/task/TID/syscall` shows it.
#[derive(Clone, Copy, Default)]
pub struct Call {
    tid: u32,
    nr: u32,
    args: [u64; 6],
    sp: u64,
    pc: u64,
}

struct Samples(core::cell::UnsafeCell<[Call; crate::threads::MAX_THREADS]>);
// SAFETY: entry `i` is written by the coordinator before `SAMPLED` counts it (and
// before the thread is signalled); handlers read only the entries counted.
unsafe impl Sync for Samples {}
static SAMPLES: Samples = Samples(core::cell::UnsafeCell::new([Call { tid: 0, nr: 0, args: [0; 6], sp: 0, pc: 0 }; crate::threads::MAX_THREADS]));
static SAMPLED: AtomicU32 = AtomicU32::new(0);

/// Before a checkpoint stops the threads: forgets the last one's samples.
pub fn forget_samples() {
    SAMPLED.store(0, SeqCst);
}

/// The coordinator, just before it signals thread `tid`: notes the call it is blocked
/// in, if any.
pub fn sample(tid: u32) {
    let Some(call) = read_call(tid) else { return };
    let i = SAMPLED.load(SeqCst) as usize;
    // SAFETY: see `Samples`: only the coordinator writes, and entry `i` is not yet
    // counted, so no handler reads it.
    if let Some(slot) = unsafe { (*SAMPLES.0.get()).get_mut(i) } {
        *slot = call;
        SAMPLED.store(i as u32 + 1, SeqCst);
    }
}

fn sampled(tid: u32) -> Option<Call> {
    let n = SAMPLED.load(SeqCst) as usize;
    // SAFETY: see `Samples`: the first `n` entries are written and no longer change.
    let all = unsafe { (&*SAMPLES.0.get()).get(..n)? };
    all.iter().rev().find(|c| c.tid == tid).copied()
}

fn read_call(tid: u32) -> Option<Call> {
    let mut path = sys::msg::Msg::<48>::new();
    path.s("/proc/self/task/").num(tid as u64).s("/syscall");
    let mut buf = [0u8; 256];
    let n = sys::read_file(&CPath::new(path.as_bytes())?, &mut buf).ok()?;
    let mut fields = buf.get(..n)?.split(|&c| c == b' ' || c == b'\n').filter(|f| !f.is_empty());
    let nr = crate::maps::dec(fields.next()?)?;
    let mut vals = [0u64; 8];
    for v in vals.iter_mut() {
        *v = hex(fields.next()?)?;
    }
    let [a0, a1, a2, a3, a4, a5, sp, pc] = vals;
    Some(Call { tid, nr: u32::try_from(nr).ok()?, args: [a0, a1, a2, a3, a4, a5], sp, pc })
}

fn hex(s: &[u8]) -> Option<u64> {
    let digits = s.strip_prefix(b"0x")?;
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    digits.iter().try_fold(0u64, |v, &c| Some(v << 4 | (c as char).to_digit(16)? as u64))
}

/// A frame rewritten to run its call again; `settle` keeps or undoes it.
#[must_use]
pub struct Restart {
    uc: *mut libc::ucontext_t,
    /// The frame's `rax` and `rip` as the kernel left them.
    rax: i64,
    rip: i64,
    /// An argument register changed, and its value before.
    arg: Option<(usize, i64)>,
}

/// A handler's first step: if the frame `uc` shows a call that the signal cut short
/// with EINTR, rewrites it to make that call again. `stopped`: this thread was
/// sampled (a thread a checkpoint stops); else its call is decoded (the coordinator).
pub fn restart(uc: *mut c_void, stopped: bool) -> Option<Restart> {
    let uc = uc.cast::<libc::ucontext_t>();
    // SAFETY: the kernel passes an `SA_SIGINFO` handler its frame's `ucontext`, which
    // stays on this thread's stack until the handler returns.
    let g = unsafe { &mut uc.as_mut()?.uc_mcontext.gregs };
    let saved = *g;
    let reg = |r: libc::c_int| saved.get(r as usize).copied().unwrap_or(0);
    let (rax, rip, rsp) = (reg(REG_RAX), reg(REG_RIP), reg(REG_RSP));
    if rax != EINTR {
        // Made to run again already (by the kernel, or from outside by `tracer`).
        let _ = time_left(g);
        return None;
    }
    let call = if stopped {
        sampled(sys::gettid()).filter(|c| c.pc == rip as u64 && c.sp == rsp as u64)?
    } else {
        decode(rip as u64, [REG_RDI, REG_RSI, REG_RDX, REG_R10, REG_R8, libc::REG_R9].map(|r| reg(r) as u64))?
    };
    let arg = again(&call)?;
    let before = arg.map(|(r, v)| {
        let old = reg(r as libc::c_int);
        if let Some(slot) = g.get_mut(r) {
            *slot = v as i64;
        }
        (r, old)
    });
    if let Some(a) = g.get_mut(REG_RAX as usize) {
        *a = call.nr as i64;
    }
    if let Some(p) = g.get_mut(REG_RIP as usize) {
        *p = rip - 2;
    }
    let before = before.or(time_left(g));
    Some(Restart { uc, rax, rip, arg: before })
}

/// A frame about to make a call again that the thread's hook noted with a relative
/// timeout (`intent::Waiting`): the timeout becomes the time it has left. Returns the
/// register changed and its value before.
fn time_left(g: &mut [i64; 23]) -> Option<(usize, i64)> {
    let w = crate::intent::waiting().filter(|w| w.nr != 0)?;
    let rip = g.get(REG_RIP as usize).copied()? as u64;
    let mut insn = [0u8; 2];
    if g.get(REG_RAX as usize).copied()? != w.nr as i64 || !sys::read_own(rip, &mut insn) || insn != SYSCALL_INSN {
        return None;
    }
    let left = w.deadline_ns.saturating_sub(sys::clock_monotonic_ns());
    w.left = [(left / 1_000_000_000) as i64, (left % 1_000_000_000) as i64];
    let ms = left.div_ceil(1_000_000) as i64;
    let at_left = core::ptr::addr_of!(w.left) as i64;
    let (r, v) = match w.nr as i64 {
        libc::SYS_poll => (REG_RDX, ms),
        libc::SYS_epoll_wait | libc::SYS_epoll_pwait => (REG_R10, ms),
        libc::SYS_clock_nanosleep | libc::SYS_rt_sigtimedwait => (REG_RDX, at_left),
        libc::SYS_semtimedop | libc::SYS_futex => (REG_R10, at_left),
        libc::SYS_nanosleep => (REG_RDI, at_left),
        libc::SYS_io_getevents => (REG_R8, at_left),
        _ => return None,
    };
    let slot = g.get_mut(r as usize)?;
    let old = *slot;
    *slot = v;
    Some((r as usize, old))
}

/// The call made at `rip` (just past its `syscall`), read from the instruction before
/// it: `mov $nr, %eax` (`b8` imm32) or `xor %eax, %eax` (nr 0).
fn decode(rip: u64, args: [u64; 6]) -> Option<Call> {
    let mut code = [0u8; 7];
    // Within one page, so that reading it cannot touch another mapping.
    if rip % mig_image::PAGE < 7 || !sys::read_own(rip - 7, &mut code) || code.get(5..) != Some(&SYSCALL_INSN[..]) {
        return None;
    }
    let nr = match code {
        [0xb8, a, b, c, d, ..] => u32::from_le_bytes([a, b, c, d]),
        [_, _, _, 0x31, 0xc0, ..] => 0,
        _ => return None,
    };
    Some(Call { tid: 0, nr, args, sp: 0, pc: rip })
}

/// For a thread stopped from outside (`tracer`) in call `nr` (its `orig_rax`) with
/// `args`, which returned `ret`: whether to run the call again, and an argument to
/// change first (as `again`). The kernel's own restarts (`-ERESTART*`) run again even
/// for a call `again` does not know.
pub fn after_stop(nr: u32, args: [u64; 6], ret: i64) -> Option<Option<(usize, u64)>> {
    // -ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND, -ERESTART_RESTARTBLOCK.
    let call = Call { nr, args, ..Call::default() };
    match ret {
        -512 | -513 | -514 | -516 => Some(again(&call).unwrap_or(None)),
        EINTR => again(&call),
        _ => None,
    }
}

/// Whether `call` may run again, and an argument register to change first (index in
/// `gregs`, new value). `None`: leave its EINTR.
fn again(call: &Call) -> Option<Option<(usize, u64)>> {
    let [_, a1, _, a3, ..] = call.args;
    let same = Some(None);
    match call.nr as i64 {
        // Their timeouts are updated by the kernel, or absent, or absolute.
        libc::SYS_ppoll | libc::SYS_pselect6 | libc::SYS_select | libc::SYS_pause | libc::SYS_rt_sigsuspend => same,
        libc::SYS_msgrcv | libc::SYS_msgsnd | libc::SYS_semop | libc::SYS_mq_timedreceive | libc::SYS_mq_timedsend => same,
        libc::SYS_futex_waitv => same,
        // Relative timeouts the kernel keeps to itself: the whole timeout again.
        libc::SYS_poll | libc::SYS_epoll_wait | libc::SYS_epoll_pwait | libc::SYS_epoll_pwait2 => same,
        // 333: io_pgetevents.
        libc::SYS_rt_sigtimedwait | libc::SYS_semtimedop | libc::SYS_io_getevents | 333 => same,
        // Transfers that moved nothing (a timeout on a socket, `SO_RCVTIMEO`).
        libc::SYS_read | libc::SYS_readv | libc::SYS_recvfrom | libc::SYS_recvmsg | libc::SYS_accept | libc::SYS_accept4 => same,
        libc::SYS_write | libc::SYS_writev | libc::SYS_sendto | libc::SYS_sendmsg => same,
        // The remainder, where the kernel wrote it.
        libc::SYS_nanosleep if a1 != 0 => Some(Some((REG_RDI as usize, a1))),
        libc::SYS_nanosleep => same,
        libc::SYS_clock_nanosleep if a1 & libc::TIMER_ABSTIME as u64 == 0 && a3 != 0 => Some(Some((REG_RDX as usize, a3))),
        libc::SYS_clock_nanosleep => same,
        libc::SYS_futex => match a1 as i32 & libc::FUTEX_CMD_MASK {
            libc::FUTEX_WAIT | libc::FUTEX_WAIT_BITSET | libc::FUTEX_WAIT_REQUEUE_PI | libc::FUTEX_LOCK_PI2 => same,
            _ => None,
        },
        _ => None,
    }
}

impl Restart {
    /// As the handler leaves: undoes the rewrite if a program signal is now pending
    /// that would run a handler of the program's, so the call returns EINTR as it would
    /// have.
    pub fn settle(self) {
        // SAFETY: `uc` is the frame of the handler that made this, which is still running.
        let Some(uc) = (unsafe { self.uc.as_mut() }) else { return };
        // SAFETY: `sigset_t` is at least 64 bits; the first word holds signals 1..=64.
        let mask = unsafe { *(&uc.uc_sigmask as *const libc::sigset_t).cast::<u64>() };
        let waiting = sys::sigpending() & !mask;
        if !(1..=64).any(|sig: i32| waiting & (1u64 << (sig - 1)) != 0 && programs_handler(sig)) {
            return;
        }
        let g = &mut uc.uc_mcontext.gregs;
        if let Some((r, old)) = self.arg
            && let Some(slot) = g.get_mut(r)
        {
            *slot = old;
        }
        if let Some(a) = g.get_mut(REG_RAX as usize) {
            *a = self.rax;
        }
        if let Some(p) = g.get_mut(REG_RIP as usize) {
            *p = self.rip;
        }
    }
}

/// Whether `sig` has a handler of the program's (not mig's, not default, not ignored).
fn programs_handler(sig: i32) -> bool {
    let mut act = mig_image::KSigaction::default();
    if sys::sigaction(sig, None, Some(&mut act)).is_err() || act.handler <= 1 {
        return false;
    }
    !crate::runtime::migs_handler(act.handler)
}
