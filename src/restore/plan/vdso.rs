//! The kernel's regions (`[vvar]`, `[vvar_vclock]`, `[vdso]`): they cannot be mapped
//! from the image, so the fresh process's own are moved to the saved addresses, which
//! needs the same layout as the image's kernel had.

use super::super::blob::{CHECK_EQ_A4, CHECK_OK};
use super::Refusal;
use super::layout::Mapping;
use super::program::Program;
use mig_image::{Image, RegionKind, RegionRecord, Table};

/// One kernel region to move: where it is now, its length, where it was saved.
#[derive(Clone, Copy)]
pub(super) struct Move {
    pub(super) now: u64,
    pub(super) len: u64,
    pub(super) saved: u64,
}

/// The kernel's regions of this process, and where they go (saved addresses).
pub(super) fn moves(img: &Image, current: &[Mapping]) -> Result<Vec<Move>, Refusal> {
    let kind_of = |path: &[u8]| match path {
        b"[vvar]" => Some(RegionKind::Vvar),
        b"[vvar_vclock]" => Some(RegionKind::VvarVclock),
        b"[vdso]" => Some(RegionKind::Vdso),
        _ => None,
    };
    let saved: Vec<RegionRecord> =
        (0..img.count(Table::Regions)).map(|i| img.region(i)).filter(|r| RegionKind::from_u32(r.kind).is_some_and(RegionKind::is_kernel)).collect();
    let here: Vec<(RegionKind, &Mapping)> = current.iter().filter_map(|l| Some((kind_of(&l.path)?, l))).collect();
    let differs = || "the kernel differs from the one the image was made on ([vdso]/[vvar] layout)".to_string();
    if saved.len() != here.len() {
        return Err(differs());
    }
    let mut moves = Vec::new();
    for (s, (kind, l)) in saved.iter().zip(&here) {
        if s.kind != *kind as u32 || s.end - s.start != l.end - l.start {
            return Err(differs());
        }
        moves.push(Move { now: l.start, len: l.end - l.start, saved: s.start });
    }
    Ok(moves)
}

/// Step 2: `[vvar]`/`[vdso]` to their old addresses, through `tmp` in the hole in case
/// the two layouts overlap.
pub(super) fn move_back(prog: &mut Program, moves: &[Move], tmp: u64) {
    let f = (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64;
    let mut at = tmp;
    for m in moves {
        prog.op(libc::SYS_mremap, &[m.now, m.len, m.len, f, at], CHECK_OK | CHECK_EQ_A4, "moving [vdso] aside");
        at += m.len;
    }
    let mut at = tmp;
    for m in moves {
        prog.op(libc::SYS_mremap, &[at, m.len, m.len, f, m.saved], CHECK_OK | CHECK_EQ_A4, "moving [vdso] to its old address");
        at += m.len;
    }
}
