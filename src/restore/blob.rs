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
//!    read its pages from the image (or register it with the lazy loader's
//!    userfaultfd), set brk and the other `mm` fields, the TLS and tid address, signal
//!    actions, descriptors, cwd, umask, limits, timers and name; last, `clone` every
//!    other thread, each resumed at its saved context (robust list, rseq and alternate
//!    stack each thread registers itself), with its saved tid where the kernel lets
//!    (`clone3` with `set_tid`), else a new one. A failing operation (none should: `plan`
//!    checked everything it could) prints what it was doing and exits with status 127:
//!    there is no process left to go back to.
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
use core::mem::offset_of;
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
/// On success (no errno), skip the next operation: the next one is the fallback of
/// this one (`clone` after a `clone3` that asked for the saved tid).
pub const SKIP_NEXT_IF_OK: u64 = 64;
/// On `EEXIST`, wait a millisecond and try again (at most `RETRIES` times): a tid asked
/// for may still be held by a thread that is ending (a rollback's `execve` has ended
/// the process's other threads, but the kernel frees their tids a moment later).
pub const RETRY_EEXIST: u64 = 128;
const RETRIES: u64 = 500;
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
// No padding: `plan` copies it into the hole as bytes.
const _: () = assert!(size_of::<BlobArgs>() == 8 + size_of::<Context>() + 8);

// Where the blob finds what it reads, and what it compares against: every offset from
// the structs themselves, every value from its Rust constant (`const` operands), so that
// changing either cannot silently break the blob.
const OP_NR: usize = offset_of!(Op, nr);
const OP_A0: usize = offset_of!(Op, args);
const OP_A1: usize = OP_A0 + 8;
const OP_A2: usize = OP_A0 + 16;
const OP_A3: usize = OP_A0 + 24;
const OP_A4: usize = OP_A0 + 32;
const OP_A5: usize = OP_A0 + 40;
const OP_CHECK: usize = offset_of!(Op, check);
const OP_STORE: usize = offset_of!(Op, store);
const OP_WHAT: usize = offset_of!(Op, what);
const OP_WHAT_LEN: usize = offset_of!(Op, what_len);
const OP_SIZE: usize = size_of::<Op>();
const CTX_RBX: usize = offset_of!(Context, rbx);
const CTX_RBP: usize = offset_of!(Context, rbp);
const CTX_R12: usize = offset_of!(Context, r12);
const CTX_R13: usize = offset_of!(Context, r13);
const CTX_R14: usize = offset_of!(Context, r14);
const CTX_R15: usize = offset_of!(Context, r15);
const CTX_RSP: usize = offset_of!(Context, rsp);
const CTX_RIP: usize = offset_of!(Context, rip);
const ARGS_OPS: usize = offset_of!(BlobArgs, ops);
const ARGS_CTX: usize = offset_of!(BlobArgs, ctx);
const ARGS_HANDOFF: usize = offset_of!(BlobArgs, handoff);
/// `save_context`'s first return value in a restored process.
const RESTORED: u32 = 1;
/// The exit status of a restore that failed past the point of no return.
const FAILED: u32 = 127;
/// The kernel returns -4095..-1 for an error.
const FIRST_ERRNO: i64 = -4095;
/// What goes between the failing operation and its errno, as one little-endian word.
const ERRNO_SEP: u64 = u64::from_le_bytes(*b": errno ");
const STDERR: u32 = 2;

global_asm!(
    r#"
    .pushsection .text.mig_blob,"ax",@progbits
    .globl mig_blob_start
    .hidden mig_blob_start
    .globl mig_blob_end
    .hidden mig_blob_end
mig_blob_start:
    mov r12, rdi                    // r12 = &BlobArgs for the whole run (syscall keeps it)
    mov r13, [r12 + {args_ops}]     // r13 = the current Op
    xor r15d, r15d                  // r15 = tries of the current Op
2:
    mov rax, [r13 + {op_nr}]        // system call number
    cmp rax, {end}                  // END?
    je 8f
    mov rdi, [r13 + {op_a0}]        // arguments 0..5 in the kernel's registers
    mov rsi, [r13 + {op_a1}]
    mov rdx, [r13 + {op_a2}]
    mov r10, [r13 + {op_a3}]
    mov r8,  [r13 + {op_a4}]
    mov r9,  [r13 + {op_a5}]
    syscall
    mov rcx, [r13 + {op_check}]     // rcx = check flags (syscall clobbered rcx already)
    test rcx, {retry_eexist}        // RETRY_EEXIST, and it said EEXIST?
    jz 16f
    cmp rax, {eexist}
    jne 16f
    inc r15
    cmp r15, {retries}
    ja 16f
    push {ms}                       // nanosleep(1 ms), then the same Op again
    push 0
    mov rdi, rsp
    xor esi, esi
    mov eax, {sys_nanosleep}
    syscall
    add rsp, 16
    jmp 2b
16:
    test rcx, {clone_resume}        // CLONE_RESUME, in the child (rax = 0)?
    jz 12f
    test rax, rax
    jnz 12f
    mov rdx, [r13 + {op_a5}]        // the child: hand-off in rdx
    mov rax, [r13 + {op_store}]     // rax = this thread's Context
    mov rbx, [rax + {ctx_rbx}]      // its callee-saved registers
    mov rbp, [rax + {ctx_rbp}]
    mov r12, [rax + {ctx_r12}]
    mov r13, [rax + {ctx_r13}]
    mov r14, [rax + {ctx_r14}]
    mov r15, [rax + {ctx_r15}]
    mov rcx, [rax + {ctx_rip}]      // its resume address; rsp is its own already (clone)
    mov eax, {restored}             // "restored"
    jmp rcx
12:
    test rcx, {check_ok}            // CHECK_OK: an errno is fatal
    jz 3f
    cmp rax, {first_errno}
    jae 9f
3:
    test rcx, {check_eq_a0}         // CHECK_EQ_A0
    jz 4f
    cmp rax, [r13 + {op_a0}]
    jne 9f
4:
    test rcx, {check_eq_a2}         // CHECK_EQ_A2
    jz 5f
    cmp rax, [r13 + {op_a2}]
    jne 9f
5:
    test rcx, {check_eq_a4}         // CHECK_EQ_A4
    jz 6f
    cmp rax, [r13 + {op_a4}]
    jne 9f
6:
    test rcx, {store_u32}           // STORE_U32
    jz 7f
    mov rdx, [r13 + {op_store}]
    mov [rdx], eax
7:
    test rcx, {skip_next_if_ok}     // SKIP_NEXT_IF_OK: succeeded, so no fallback
    jz 14f
    cmp rax, {first_errno}
    jae 14f
    add r13, {op_size}
14:
    add r13, {op_size}              // next Op
    xor r15d, r15d
    jmp 2b
8:
    mov rdx, [r12 + {args_handoff}] // rdx = hand-off, second return value
    mov rbx, [r12 + {args_ctx} + {ctx_rbx}] // the saved callee-saved registers
    mov rbp, [r12 + {args_ctx} + {ctx_rbp}]
    mov r13, [r12 + {args_ctx} + {ctx_r13}]
    mov r14, [r12 + {args_ctx} + {ctx_r14}]
    mov r15, [r12 + {args_ctx} + {ctx_r15}]
    mov rsp, [r12 + {args_ctx} + {ctx_rsp}] // the stack as it was after the saving call returned
    mov rcx, [r12 + {args_ctx} + {ctx_rip}] // the resume address
    mov r12, [r12 + {args_ctx} + {ctx_r12}] // last: r12 held the args pointer
    mov eax, {restored}             // first return value: "restored"
    jmp rcx
9:
    mov r14, rax                    // keep the failing result
    mov eax, {sys_write}            // write(2, prefix)
    mov edi, {stderr}
    lea rsi, [rip + 11f]
    lea rdx, [rip + 13f]
    sub rdx, rsi                    // the prefix's length, from the labels around it
    syscall
    mov eax, {sys_write}            // write(2, what the op was doing)
    mov edi, {stderr}
    mov rsi, [r13 + {op_what}]
    mov rdx, [r13 + {op_what_len}]
    syscall
    mov rax, r14                    // format -result in decimal below the stack pointer
    neg rax
    lea rsi, [rsp - 8]
    mov byte ptr [rsi], 10          // trailing newline
    mov ecx, 10
10:
    xor edx, edx
    div rcx
    add dl, 48                      // '0' + digit
    dec rsi
    mov [rsi], dl
    test rax, rax
    jnz 10b
    sub rsi, 8                      // prepend ": errno "
    mov rax, {errno_sep}
    mov [rsi], rax
    lea rdx, [rsp - 7]
    sub rdx, rsi                    // length through the newline
    mov eax, {sys_write}
    mov edi, {stderr}
    syscall
    mov eax, {sys_exit_group}       // exit_group(FAILED)
    mov edi, {failed}
    syscall
    ud2
11:
    .ascii "mig: restore failed while "
13:
mig_blob_end:
    .popsection
"#,
    args_ops = const ARGS_OPS,
    args_ctx = const ARGS_CTX,
    args_handoff = const ARGS_HANDOFF,
    op_nr = const OP_NR,
    op_a0 = const OP_A0,
    op_a1 = const OP_A1,
    op_a2 = const OP_A2,
    op_a3 = const OP_A3,
    op_a4 = const OP_A4,
    op_a5 = const OP_A5,
    op_check = const OP_CHECK,
    op_store = const OP_STORE,
    op_what = const OP_WHAT,
    op_what_len = const OP_WHAT_LEN,
    op_size = const OP_SIZE,
    ctx_rbx = const CTX_RBX,
    ctx_rbp = const CTX_RBP,
    ctx_r12 = const CTX_R12,
    ctx_r13 = const CTX_R13,
    ctx_r14 = const CTX_R14,
    ctx_r15 = const CTX_R15,
    ctx_rsp = const CTX_RSP,
    ctx_rip = const CTX_RIP,
    end = const END as i64,
    check_ok = const CHECK_OK,
    check_eq_a0 = const CHECK_EQ_A0,
    check_eq_a2 = const CHECK_EQ_A2,
    check_eq_a4 = const CHECK_EQ_A4,
    store_u32 = const STORE_U32,
    clone_resume = const CLONE_RESUME,
    skip_next_if_ok = const SKIP_NEXT_IF_OK,
    retry_eexist = const RETRY_EEXIST,
    retries = const RETRIES,
    eexist = const -(libc::EEXIST as i64),
    ms = const 1_000_000,
    sys_nanosleep = const libc::SYS_nanosleep,
    restored = const RESTORED,
    failed = const FAILED,
    first_errno = const FIRST_ERRNO,
    errno_sep = const ERRNO_SEP,
    stderr = const STDERR,
    sys_write = const libc::SYS_write,
    sys_exit_group = const libc::SYS_exit_group,
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
