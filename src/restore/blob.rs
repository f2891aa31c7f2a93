//! The restore blob: the only code that runs while the address space is replaced.
//!
//! Algorithm (the blob itself is a syscall interpreter; `plan` decides every step):
//! 1. `plan` (normal code) maps a *hole*: an address range free both in this fresh
//!    process and in the saved layout. It copies the blob's code there, and lays out
//!    next to it everything the blob will touch: the list of operations, every struct
//!    and string they point to, a stack, and the hand-off for the restored process.
//! 2. `enter` switches to the hole's stack and jumps to the blob's copy. From here on
//!    nothing outside the hole is used: no libc, no heap, no Rust runtime.
//! 3. The blob runs the operations in order, each one system call: unmap the fresh
//!    process, move `[vvar]`/`[vdso]` to their old addresses, map every saved region and
//!    read its pages from the image, set brk and the other `mm` fields, TLS, robust
//!    list, rseq, signal actions, descriptors, cwd, limits and timers. A failing
//!    operation (none should: `plan` checked everything it could) prints what it was
//!    doing and exits with status 127: there is no process left to go back to.
//! 4. It loads the saved callee-saved registers and stack pointer and jumps to the saved
//!    resume point with rax = 1 and rdx = the hand-off: `save_context` in the checkpoint
//!    handler "returns" a second time, the handler picks up its new settings, unmaps the
//!    hole, and returns; `rt_sigreturn` restores every other register from the signal
//!    frame on the saved stack.
//!
//! The code below is position independent (only relative references inside it), so a
//! byte copy of `mig_blob_start..mig_blob_end` runs anywhere.
#![allow(unsafe_code)]

use core::arch::{asm, global_asm};
use mig_image::Context;

/// One operation: a system call and what to check of its result.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Op {
    pub nr: u64,
    pub args: [u64; 6],
    pub check: u64,
    /// With `STORE_U32`: where to store the low 32 bits of the result.
    pub store: u64,
    /// What the operation does, for the failure message (address and length).
    pub what: u64,
    pub what_len: u64,
}
const _: () = assert!(core::mem::size_of::<Op>() == 88);

/// Fail on an error return (-4095..-1).
pub const CHECK_OK: u64 = 1;
/// Fail unless the result equals argument 0 (`mmap` at a fixed address).
pub const CHECK_EQ_A0: u64 = 2;
/// Fail unless the result equals argument 2 (`pread64` of a full length).
pub const CHECK_EQ_A2: u64 = 4;
/// Fail unless the result equals argument 4 (`mremap` to a fixed address).
pub const CHECK_EQ_A4: u64 = 16;
/// Store the result (a tid) as a u32 at `store`.
pub const STORE_U32: u64 = 8;
/// A `clone` whose child resumes a thread: `store` points to the thread's `Context`,
/// argument 5 (unused by `clone`) is the hand-off it gets in rdx.
pub const CLONE_RESUME: u64 = 32;
/// `nr` of the last operation.
pub const END: u64 = u64::MAX;

/// What the blob reads first; its address arrives in rdi.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlobArgs {
    pub ops: u64,
    pub ctx: Context,
    pub handoff: u64,
}
const _: () = assert!(core::mem::size_of::<BlobArgs>() == 80);

global_asm!(
    r#"
    .pushsection .text.mig_blob,"ax",@progbits
    .globl mig_blob_start
    .hidden mig_blob_start
    .globl mig_blob_end
    .hidden mig_blob_end
mig_blob_start:
    mov r12, rdi                    // r12 = &BlobArgs for the whole run (syscall keeps it)
    mov r13, [r12]                  // r13 = the current Op
2:
    mov rax, [r13]                  // system call number
    cmp rax, -1                     // END?
    je 8f
    mov rdi, [r13 + 8]              // arguments 0..5 in the kernel's registers
    mov rsi, [r13 + 16]
    mov rdx, [r13 + 24]
    mov r10, [r13 + 32]
    mov r8,  [r13 + 40]
    mov r9,  [r13 + 48]
    syscall
    mov rcx, [r13 + 56]             // rcx = check flags (syscall clobbered rcx already)
    test rcx, 32                    // CLONE_RESUME, in the child (rax = 0)?
    jz 12f
    test rax, rax
    jnz 12f
    mov rdx, [r13 + 48]             // the child: hand-off in rdx
    mov rax, [r13 + 64]             // rax = this thread's Context
    mov rbx, [rax + 0]              // its callee-saved registers
    mov rbp, [rax + 8]
    mov r12, [rax + 16]
    mov r13, [rax + 24]
    mov r14, [rax + 32]
    mov r15, [rax + 40]
    mov rcx, [rax + 56]             // its resume address; rsp is its own already (clone)
    mov eax, 1                      // "restored"
    jmp rcx
12:
    test rcx, 1                     // CHECK_OK: an errno is fatal
    jz 3f
    cmp rax, -4095
    jae 9f
3:
    test rcx, 2                     // CHECK_EQ_A0
    jz 4f
    cmp rax, [r13 + 8]
    jne 9f
4:
    test rcx, 4                     // CHECK_EQ_A2
    jz 5f
    cmp rax, [r13 + 24]
    jne 9f
5:
    test rcx, 16                    // CHECK_EQ_A4
    jz 6f
    cmp rax, [r13 + 40]
    jne 9f
6:
    test rcx, 8                     // STORE_U32
    jz 7f
    mov rdx, [r13 + 64]
    mov [rdx], eax
7:
    add r13, 88                     // next Op
    jmp 2b
8:
    mov rdx, [r12 + 72]             // rdx = hand-off, second return value
    mov rbx, [r12 + 8]              // the saved callee-saved registers
    mov rbp, [r12 + 16]
    mov r13, [r12 + 32]
    mov r14, [r12 + 40]
    mov r15, [r12 + 48]
    mov rsp, [r12 + 56]             // the stack as it was after the saving call returned
    mov rcx, [r12 + 64]             // the resume address
    mov r12, [r12 + 24]             // last: r12 held the args pointer
    mov eax, 1                      // first return value: "restored"
    jmp rcx
9:
    mov r14, rax                    // keep the failing result
    mov eax, 1                      // write(2, prefix)
    mov edi, 2
    lea rsi, [rip + 11f]
    mov edx, 26
    syscall
    mov eax, 1                      // write(2, what the op was doing)
    mov edi, 2
    mov rsi, [r13 + 72]
    mov rdx, [r13 + 80]
    syscall
    mov rax, r14                    // format -result in decimal below the stack pointer
    neg rax
    lea rsi, [rsp - 8]
    mov byte ptr [rsi], 10          // trailing newline
    mov ecx, 10
10:
    xor edx, edx
    div rcx
    add dl, 48
    dec rsi
    mov [rsi], dl
    test rax, rax
    jnz 10b
    sub rsi, 8                      // prepend ": errno "
    mov rax, 0x206f6e727265203a     // ": errno " as little-endian bytes
    mov [rsi], rax
    lea rdx, [rsp - 7]
    sub rdx, rsi                    // length through the newline
    mov eax, 1
    mov edi, 2
    syscall
    mov eax, 231                    // exit_group(127)
    mov edi, 127
    syscall
    ud2
11:
    .ascii "mig: restore failed while "
mig_blob_end:
    .popsection
"#
);

unsafe extern "C" {
    static mig_blob_start: u8;
    static mig_blob_end: u8;
}

/// The blob's code, to be copied into the hole.
pub fn code() -> &'static [u8] {
    // SAFETY: both symbols are labels in the same section, start before end; the bytes
    // between them are the blob's instructions, mapped read-only for the library's life.
    unsafe {
        let start = &raw const mig_blob_start;
        let end = &raw const mig_blob_end;
        core::slice::from_raw_parts(start, end.offset_from(start) as usize)
    }
}

/// Switches to `stack_top` and runs the blob copy at `entry` with `args`.
///
/// # Safety
/// `entry` must be a copy of [`code`] mapped executable, and `args`, its operations
/// and everything they point to must lie in memory the operations do not unmap.
pub unsafe fn enter(entry: usize, args: *const BlobArgs, stack_top: usize) -> ! {
    // SAFETY: the caller guarantees the blob and its data are self-contained; the old
    // stack is abandoned, never returned to.
    unsafe {
        asm!(
            "mov rsp, {stack}",   // the hole's stack: the old one is about to be unmapped
            "xor ebp, ebp",
            "jmp {entry}",
            stack = in(reg) stack_top,
            entry = in(reg) entry,
            in("rdi") args,
            options(noreturn),
        )
    }
}
