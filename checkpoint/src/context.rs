//! The resume point: a call that returns once when the checkpoint is written, and a
//! second time, in the restored process, when the restore blob jumps back into it.
#![allow(unsafe_code)]

use core::arch::naked_asm;
use core::ffi::c_void;
use mig_image::Context;

/// What `save_context` returned: `restored == 0` after the checkpoint body ran,
/// `restored == 1` in a restored process, with the restore's hand-off.
#[repr(C)]
pub struct Resumed {
    pub restored: u64,
    pub handoff: u64,
}

pub type Body = extern "C" fn(ctx: *mut Context, arg: *mut c_void) -> u64;

/// `save_context(ctx, body, arg)` — records the callee-saved registers, the stack
/// pointer and the return address in `ctx`, then runs `body(ctx, arg)` on the stack
/// below. Everything of the caller above that stack pointer is what the image saves.
///
/// # Safety
/// `ctx` must be valid for writes; `body` must not unwind.
#[unsafe(naked)]
pub unsafe extern "C" fn save_context(ctx: *mut Context, body: Body, arg: *mut c_void) -> Resumed {
    naked_asm!(
        "mov [rdi + 0], rbx", // callee-saved registers, in `Context` order
        "mov [rdi + 8], rbp",
        "mov [rdi + 16], r12",
        "mov [rdi + 24], r13",
        "mov [rdi + 32], r14",
        "mov [rdi + 40], r15",
        "lea rax, [rsp + 8]", // the stack pointer once this call has returned
        "mov [rdi + 48], rax",
        "mov rax, [rsp]", // the return address: where a restore resumes
        "mov [rdi + 56], rax",
        "mov rax, rsi", // body(ctx, arg)
        "mov rsi, rdx",
        "sub rsp, 8", // keep the stack 16-byte aligned for the call
        "call rax",
        "add rsp, 8",
        "xor edx, edx", // hand-off: none
        "ret",          // rax = body's result (0)
    )
}
