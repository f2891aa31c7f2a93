//! The mig checkpoint image format (see `docs/image-format.md`).
//!
//! An image is one file, written strictly front to back so it can be streamed:
//!
//! ```text
//! 0            4096          meta_off+meta_len  data_off (page aligned)        trailer_off
//! | Header     | tables ...  | pad to page      | blob 0 | blob 1 | ... | blob n | CRCs | CRC |
//! ```
//!
//! Tables hold fixed-size `repr(C)` records; every blob (a region's saved pages, the
//! contents of a deleted file) starts on a page boundary, so a region can be mapped
//! back straight from the file. The header carries its own CRC and the CRC of the
//! tables; the trailer the CRC of every blob and its own CRC.
//!
//! This crate is `no_std` and never allocates: the checkpoint writer, which runs in a
//! signal handler, uses the same types and layout arithmetic as the reader.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

mod check;
pub mod format;
pub mod layout;
pub mod pagecrc;
pub mod params;
pub mod tree;
pub mod verify;

pub use format::*;
pub use layout::Layout;
pub use params::*;
pub use verify::{Image, ImageError};

/// Exit status of a restore that was refused before anything was replaced (the
/// library's `MIG_RESTORE` and `mig restart` alike): outside the range programs
/// commonly use, as `env` and `timeout` do, so it cannot be taken for the restored
/// program's own status.
pub const EXIT_REFUSED: i32 = 125;
/// Exit status of a restore that failed after the fresh process was replaced.
pub const EXIT_RESTORE_FAILED: i32 = 127;
