//! The only place that issues the `syscall` instruction from Rust code (the restore
//! blob has its own, in `restore/blob.rs`).
#![allow(unsafe_code)]

use core::arch::asm;
use core::sync::atomic::{AtomicU32, Ordering::SeqCst};

/// `syscall(nr, a0, …, a5)` — the raw kernel entry: returns the kernel's value, a
/// negative errno on failure. Touches no libc state (not even `errno`).
///
/// # Safety
/// The call must be valid for the arguments given: pointers the kernel dereferences
/// must be valid for what that system call reads or writes.
#[inline(always)]
pub unsafe fn syscall6(nr: usize, a0: usize, a1: usize, a2: usize, a3: usize, a4: usize, a5: usize) -> isize {
    let ret: isize;
    // SAFETY: the x86_64 Linux system call convention: number in rax, arguments in
    // rdi, rsi, rdx, r10, r8, r9; the kernel clobbers rcx and r11 only.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a0, in("rsi") a1, in("rdx") a2, in("r10") a3, in("r8") a4, in("r9") a5,
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// The new process's part of [`spawn_vm`] and [`clone_twice`]: `f(arg)` (r13, r12) on
/// its stack, then munmap of `[r14, r14 + r15)` (the mapping that holds that stack) and
/// exit, touching no memory once `f` returned.
macro_rules! run_unmap_exit {
    () => {
        "xor ebp, ebp\n mov rdi, r12\n call r13\n mov rdi, r14\n mov rsi, r15\n mov eax, {munmap}\n syscall\n xor edi, edi\n mov eax, {exit}\n syscall\n ud2"
    };
}

/// Starts `f(arg)` in a new process that shares this address space (`CLONE_VM`; not a
/// thread of this process, with its own copy of the descriptor table, exit signal 0 so
/// no `SIGCHLD`), running on `stack_top`. When `f` returns, the new process unmaps
/// `[unmap, unmap + unmap_len)` (the mapping that holds its stack) and exits, touching
/// no memory in between. `live` is not 0 from now until the kernel sets it to 0 (and
/// wakes its futex waiters) once the new process has unmapped its stack and ended.
/// Returns the new pid, or a negative errno.
///
/// # Safety
/// `stack_top` must be the 16-byte-aligned top of writable memory inside the unmapped
/// range, used by nothing else; `f` must not unwind and may touch only memory that stays
/// valid while the process it was started from runs on (and changes) concurrently.
pub unsafe fn spawn_vm(stack_top: usize, f: extern "C" fn(usize), arg: usize, unmap: usize, unmap_len: usize, live: &AtomicU32) -> isize {
    let ret: isize;
    // Until the new process runs (and the kernel stores its pid there).
    live.store(u32::MAX, SeqCst);
    // SAFETY: the clone system call; the child resumes after `syscall` with the same
    // registers and `rsp = stack_top`: it calls `f` there, then munmap and exit with
    // registers only. The parent returns normally with the pid in rax.
    unsafe {
        asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            run_unmap_exit!(),
            "2:",
            munmap = const libc::SYS_munmap,
            exit = const libc::SYS_exit,
            inlateout("rax") libc::SYS_clone as isize => ret,
            in("rdi") (libc::CLONE_VM | libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID) as usize,
            in("rsi") stack_top,
            in("rdx") 0usize, in("r10") live.as_ptr(), in("r8") 0usize,
            in("r12") arg, in("r13") f as usize, in("r14") unmap, in("r15") unmap_len,
            lateout("rcx") _, lateout("r11") _,
        );
    }
    if ret < 0 {
        live.store(0, SeqCst);
    }
    ret
}

/// The raw double clone behind [`crate::spawn_orphan`] and [`crate::spawn_vm_orphan`]:
/// an intermediate (`CLONE_VM | CLONE_VFORK | CLONE_FILES`, exit signal 0, on the
/// caller's stack, which it never writes: the caller is suspended until it exits)
/// clones the new process with `flags` (`CLONE_PARENT_SETTID` storing into `ptid`,
/// `CLONE_CHILD_SETTID` and `CLONE_CHILD_CLEARTID` into `ctid`) and exits at once, with the inner clone's errno as its status (0: started).
/// Returns the intermediate's pid (or a negative errno) in the caller; 0 in a new
/// process started without a stack of its own (`stack_top` 0: a fork), which returns
/// from here as a forked child does. With a stack, the new process calls `f(arg)`
/// there, then unmaps `[unmap, unmap + unmap_len)` and exits, as [`spawn_vm`]'s does.
///
/// # Safety
/// `ptid` and `ctid` must be valid for the kernel's writes `flags` asks for; with `stack_top` as
/// for [`spawn_vm`]. Every catchable signal must be blocked (the intermediate runs on
/// the caller's stack).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn clone_twice(flags: u64, stack_top: usize, ptid: *mut u32, ctid: *mut u32, f: usize, arg: usize, unmap: usize, unmap_len: usize) -> isize {
    let ret: isize;
    // SAFETY: two clone system calls. The outer one ignores rdx, r10 and r8 (none of
    // CLONE_PARENT_SETTID, CLONE_CHILD_*TID, CLONE_SETTLS): they carry the inner one's
    // arguments. The intermediate touches registers only; the new process either
    // leaves through the same exit as the caller with rax = 0 (a fork: its own copy of
    // the memory and stack) or runs `f` on its own stack as in `spawn_vm`.
    unsafe {
        asm!(
            "syscall",
            "test rax, rax",
            "jnz 3f",
            // The intermediate: clone(flags, stack_top, ptid, ctid, 0).
            "mov rdi, r8",
            "mov rsi, r9",
            "xor r8d, r8d",
            "mov eax, {clone}",
            "syscall",
            "test rax, rax",
            "jz 2f",
            "xor edi, edi",
            "test rax, rax",
            "jns 4f",
            "mov rdi, rax",
            "neg rdi",
            "4:",
            "mov eax, {exit}",
            "syscall",
            "ud2",
            // The new process.
            "2:",
            "test r13, r13",
            "jz 3f",
            run_unmap_exit!(),
            "3:",
            clone = const libc::SYS_clone,
            munmap = const libc::SYS_munmap,
            exit = const libc::SYS_exit,
            inlateout("rax") libc::SYS_clone as isize => ret,
            inlateout("rdi") (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_FILES) as usize => _,
            inlateout("rsi") 0usize => _,
            inlateout("rdx") ptid => _,
            inlateout("r10") ctid => _,
            inlateout("r8") flags => _,
            inlateout("r9") stack_top => _,
            in("r12") arg, in("r13") f, in("r14") unmap, in("r15") unmap_len,
            lateout("rcx") _, lateout("r11") _,
        );
    }
    ret
}
