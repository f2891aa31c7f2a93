//! The only place that issues the `syscall` instruction from Rust code (the restore
//! blob has its own, in `restore/blob.rs`).
#![allow(unsafe_code)]

use core::arch::asm;

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

/// Starts `f(arg)` in a new process that shares this address space (`CLONE_VM`; not a
/// thread of this process, with its own copy of the descriptor table, exit signal 0 so
/// no `SIGCHLD`), running on `stack_top`. When `f` returns, the new process unmaps
/// `[unmap, unmap + unmap_len)` (the mapping that holds its stack) and exits, touching
/// no memory in between. Returns the new pid, or a negative errno.
///
/// # Safety
/// `stack_top` must be the 16-byte-aligned top of writable memory inside the unmapped
/// range, used by nothing else; `f` must not unwind and may touch only memory that stays
/// valid while the process it was started from runs on (and changes) concurrently.
pub unsafe fn spawn_vm(stack_top: usize, f: extern "C" fn(usize), arg: usize, unmap: usize, unmap_len: usize) -> isize {
    let ret: isize;
    // SAFETY: the clone system call; the child resumes after `syscall` with the same
    // registers and `rsp = stack_top`: it calls `f` there, then munmap and exit with
    // registers only. The parent returns normally with the pid in rax.
    unsafe {
        asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "mov rdi, r14",
            "mov rsi, r15",
            "mov eax, {munmap}",
            "syscall",
            "xor edi, edi",
            "mov eax, {exit}",
            "syscall",
            "ud2",
            "2:",
            munmap = const libc::SYS_munmap,
            exit = const libc::SYS_exit,
            inlateout("rax") libc::SYS_clone as isize => ret,
            in("rdi") libc::CLONE_VM as usize,
            in("rsi") stack_top,
            in("rdx") 0usize, in("r10") 0usize, in("r8") 0usize,
            in("r12") arg, in("r13") f as usize, in("r14") unmap, in("r15") unmap_len,
            lateout("rcx") _, lateout("r11") _,
        );
    }
    ret
}
