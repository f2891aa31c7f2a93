//! Where `mig checkpoint` finds how to ask a process for a checkpoint, whatever the
//! program does with signals: `libmig.so` exports a record under [`SYMBOL`], which the
//! command reads from the process's memory (with the right to trace it).
//!
//! Layout ([`LEN`] bytes, native endian): [`MAGIC`] @0, the request signal (u32) @8, a
//! version (u32) @12, the checkpoint handler's entry (u64) @16, the `sa_restorer` the
//! library's handlers return through (u64) @24, the extended-state components (u64)
//! @32 and size (u32) @40 of this process's signal frames (0: not known), the
//! checkpoint signal (u32) @44, whether a checkpoint handler runs (u32) @48, the top
//! of the area a request's frame goes in (u64) @56.
//!
//! The request signal is a real-time signal whose handler is always mig's checkpoint
//! handler: chosen among the free ones at start, chosen again if the program takes it
//! (0: none free). A request sent on it works like one on the checkpoint signal. When
//! no signal can carry a request (none free, or every thread blocks it while no
//! checkpoint runs), the command writes a signal frame into one thread itself and
//! points it at the entry.

/// The exported symbol.
pub const SYMBOL: &[u8] = b"MIG_CONTROL";
pub const MAGIC: [u8; 8] = *b"migctl01";
pub const LEN: usize = 64;
