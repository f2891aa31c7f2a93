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
