//! The library's own stacks: every signal handler of mig switches to one of them at
//! once, so that what mig runs on a program thread's stack — or on its alternate
//! signal stack, which runtimes such as Go keep at 32 KiB without a guard page — is the
//! kernel's signal frame and two words.
//!
//! - The *coordinator's* stack (1 MiB, a guard page below it) serves the checkpoint and
//!   rollback handlers, one at a time: a handler that finds it taken by another
//!   thread's returns at once (a checkpoint signal then is as if it had come during
//!   that checkpoint; a rollback is done once that checkpoint ends).
//! - *Stop slots* (32 KiB each, one per thread that a checkpoint stops) serve the stop
//!   handler. A slot is handed out by an atomic counter; the coordinator reuses the
//!   slots only once every thread has left its slot of the last checkpoint.
//!
//! Both are mappings of their own in the image, so a restored thread resumes on the
//! stack it was stopped on and returns through the same trampoline to its own.
#![allow(unsafe_code)]

use crate::sys;
use core::arch::naked_asm;
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering::SeqCst};

const COORDINATOR: usize = 1 << 20;
const SLOT: usize = 32 << 10;
const SLOTS: usize = super::threads::MAX_THREADS;

/// Top of the coordinator's stack (0: none, the handlers run where they are).
static COORDINATOR_TOP: AtomicUsize = AtomicUsize::new(0);
/// The coordinator's stack is in use.
static BUSY: AtomicU32 = AtomicU32::new(0);
/// Base of the stop slots (0: none).
static SLOTS_BASE: AtomicUsize = AtomicUsize::new(0);

/// Maps the stacks (in the constructor, before any handler is installed). Without
/// them (no memory), the handlers run on the interrupted stack, as they always did.
pub fn init() {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let page = mig_image::PAGE as usize;
    // SAFETY: a new anonymous mapping where the kernel chooses (no MAP_FIXED).
    if let Ok(base) = unsafe { sys::mmap(0, COORDINATOR + page, libc::PROT_NONE, flags, -1, 0) } {
        // The lowest page stays a guard: an overflow faults instead of writing on.
        // SAFETY: adds access to the mapping just made, which nothing uses yet.
        if unsafe { sys::mprotect(base + page, COORDINATOR, rw as u32) }.is_ok() {
            COORDINATOR_TOP.store(base + page + COORDINATOR, SeqCst);
        }
    }
    // SAFETY: a new anonymous mapping where the kernel chooses (no MAP_FIXED).
    if let Ok(base) = unsafe { sys::mmap(0, SLOT * SLOTS, rw, flags, -1, 0) } {
        SLOTS_BASE.store(base, SeqCst);
    }
}

/// Whether `[start, end)` lies in mig's own stacks (the coordinator's, the stop slots).
/// Mostly untouched: a pre-copy does not track them (their few used pages, where the
/// stopped threads' frames are, are saved at the final stop).
pub fn own(start: u64, end: u64) -> bool {
    let page = mig_image::PAGE;
    let top = COORDINATOR_TOP.load(SeqCst) as u64;
    let coordinator = top != 0 && start >= top - COORDINATOR as u64 - page && end <= top;
    let base = SLOTS_BASE.load(SeqCst) as u64;
    let slots = base != 0 && start >= base && end <= base + (SLOT * SLOTS) as u64;
    coordinator || slots
}

/// A signal handler that runs `$handler` on the coordinator's stack; if another
/// thread's handler has it, runs the `$taken` instructions instead (then returns; `1b`
/// starts over). Once the handler is done and the stack released, the `$after`
/// instructions run, with the signal's number in edi.
macro_rules! coordinator_entry {
    ($(#[$doc:meta])* $name:ident => $handler:path, taken: [$($taken:literal),*], after: [$($after:literal),*] $(, $op:ident = $kind:ident $sym:path)*) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// Only for the kernel to call, as an `SA_SIGINFO` signal handler.
        #[unsafe(naked)]
        pub unsafe extern "C" fn $name(sig: c_int, info: *mut libc::siginfo_t, uc: *mut c_void) {
            naked_asm!(
                "1:",
                "mov rax, [rip + {top}]",       // our stack's top (0: none)
                "test rax, rax",
                "jz 3f",
                "mov r10d, 1",
                "xchg r10d, [rip + {busy}]",    // take it (xchg with memory is atomic)
                "test r10d, r10d",
                "jnz 2f",
                "mov r11, rsp",                 // the interrupted stack
                "mov rsp, rax",
                "push r11",                     // kept on ours, for the way back
                "push rdi",                     // the signal (and 16-byte alignment at the call)
                "call {handler}",               // rdi, rsi, rdx: the handler's arguments
                "pop rdi",
                "pop rsp",                      // back on the interrupted stack
                "mov dword ptr [rip + {busy}], 0",
                $($after,)*
                "ret",                          // to the signal frame's restorer
                "2:",
                $($taken,)*
                "ret",
                "3:",
                "jmp {handler}",                // no stack of ours: where we are
                top = sym COORDINATOR_TOP,
                busy = sym BUSY,
                handler = sym $handler,
                $($op = $kind $sym,)*
            )
        }
    };
}

/// A checkpoint asked while another thread's handler had the coordinator's stack (the
/// pre-copy's call for its final stop, say): its holder asks again once done.
static CHECKPOINT_DEFERRED: AtomicU32 = AtomicU32::new(0);

coordinator_entry! {
    /// The checkpoint signal's handler, as installed: `handler::on_checkpoint` on the
    /// coordinator's stack. Taken by another thread's checkpoint: noted, and asked again
    /// (the signal sent to the process) by that thread once its handler is done; if it
    /// was done meanwhile, and nobody took the note, here at once. A request of `mig
    /// checkpoint` (`SI_QUEUE`) is not noted: asked again, it would lose what it carries;
    /// the command sends it again.
    checkpoint_entry => super::handler::on_checkpoint,
    taken: [
        "test rsi, rsi",
        "jz 5f",
        "cmp dword ptr [rsi + 8], -1",
        "je 6f",
        "5:",
        "mov dword ptr [rip + {deferred}], 1",
        "cmp dword ptr [rip + {busy}], 0",
        "jne 6f",
        "xor r10d, r10d",
        "xchg r10d, [rip + {deferred}]",
        "test r10d, r10d",
        "jnz 1b",
        "6:"
    ],
    after: [
        "xor r10d, r10d",
        "xchg r10d, [rip + {deferred}]",
        "test r10d, r10d",
        "jz 7f",
        "mov r10d, edi",
        "mov eax, {getpid}",
        "syscall",
        "mov edi, eax",
        "mov esi, r10d",
        "mov eax, {kill}",
        "syscall",
        "7:"
    ],
    deferred = sym CHECKPOINT_DEFERRED,
    getpid = const libc::SYS_getpid,
    kill = const libc::SYS_kill
}

coordinator_entry! {
    /// The rollback signal's handler, as installed: `rollback::on_rollback` on the
    /// coordinator's stack, or once the checkpoint that has it ends.
    rollback_entry => super::rollback::on_rollback, taken: ["mov dword ptr [rip + {deferred}], 1"], after: [], deferred = sym super::rollback::DEFERRED
}

/// The stop signal's handler, as installed: `threads::on_stop` on a stop slot of its own.
///
/// # Safety
/// Only for the kernel to call, as an `SA_SIGINFO` signal handler.
#[unsafe(naked)]
pub unsafe extern "C" fn stop_entry(sig: c_int, info: *mut libc::siginfo_t, uc: *mut c_void) {
    naked_asm!(
        "mov rax, [rip + {base}]",      // the slots (0: none)
        "test rax, rax",
        "jz 3f",
        "mov r10d, 1",
        "lock xadd [rip + {taken}], r10d", // r10 = our slot's number
        "cmp r10d, {slots}",
        "jae 4f",
        "inc r10",                      // its top: base + (number + 1) * size
        "imul r10, r10, {slot}",
        "add rax, r10",
        "mov r11, rsp",
        "mov rsp, rax",
        "push r11",
        "sub rsp, 8",
        "call {handler}",
        "add rsp, 8",
        "pop rsp",
        "lock inc dword ptr [rip + {left}]",
        "ret",
        "4:",                           // no slot left: where we are
        "sub rsp, 8",
        "call {handler}",
        "add rsp, 8",
        "lock inc dword ptr [rip + {left}]",
        "ret",
        "3:",
        "jmp {handler}",
        base = sym SLOTS_BASE,
        taken = sym super::threads::SLOTS_TAKEN,
        left = sym super::threads::SLOTS_LEFT,
        slots = const SLOTS,
        slot = const SLOT,
        handler = sym super::threads::on_stop,
    )
}

/// Takes a stop slot for a frame written from outside (`tracer`): its top, or `None`
/// when there is none left. The slot is left when the thread returns through
/// `injected_entry`.
pub fn take_stop_slot() -> Option<u64> {
    let base = SLOTS_BASE.load(SeqCst);
    let i = super::threads::SLOTS_TAKEN.fetch_add(1, SeqCst) as usize;
    if base == 0 || i >= SLOTS {
        super::threads::SLOTS_LEFT.fetch_add(1, SeqCst);
        return None;
    }
    Some((base + (i + 1) * SLOT) as u64)
}

/// Where a thread stopped from outside enters the stop handler: its signal frame is at
/// the top of a stop slot (`take_stop_slot`) and it is already there, so nothing of mig's
/// touches the program's stacks; it leaves the slot as it returns to the restorer.
///
/// # Safety
/// Only for `tracer` to point a thread at, with its frame as the kernel lays one out.
#[unsafe(naked)]
pub unsafe extern "C" fn injected_entry(sig: c_int, info: *mut libc::siginfo_t, uc: *mut c_void) {
    naked_asm!(
        "sub rsp, 8",
        "call {handler}",
        "add rsp, 8",
        "lock inc dword ptr [rip + {left}]",
        "ret",
        left = sym super::threads::SLOTS_LEFT,
        handler = sym super::threads::on_stop,
    )
}
