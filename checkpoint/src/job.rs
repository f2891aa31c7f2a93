//! What one checkpoint is asked to do, from the signal or from `mig checkpoint`.

use super::control;
use crate::runtime::{self, FixedPath};
use crate::sys;

/// What one checkpoint is asked to do.
#[derive(Clone, Copy)]
pub struct Job {
    /// Where the image goes (unless it is streamed).
    pub dest: FixedPath,
    pub portable: bool,
    /// End the process once the image is safe (`mig checkpoint --exit`).
    pub exit: bool,
    /// The connection to `mig checkpoint` the outcome is reported on (-1: nobody asked).
    /// It is a descriptor of whichever process reports: the program, its forked
    /// writer, or the pre-copy's copier.
    pub conn: i32,
    /// The descriptor the image is streamed to (-1: to `dest`).
    pub stream: i32,
    /// The checkpointed process (not the forked writer).
    pub pid: u32,
    /// The image's creation time (its header's): with `pid`, what tells this image
    /// from any other, also one copied over it in place (same inode).
    pub created_ns: u64,
    /// When the process stopped.
    pub t0: u64,
    /// Pre-copy rounds the image took (0: none).
    pub rounds: u32,
    /// One process of a job saved whole: stopped until every one is (`control::hold`).
    pub held: bool,
    /// A held process that may pre-copy before it stops (its copier holds first).
    pub pre: bool,
}

impl Job {
    /// The default job of a plain checkpoint signal.
    pub fn plain() -> Job {
        let rt = runtime::get();
        Job {
            dest: rt.settings.image,
            portable: rt.settings.portable,
            exit: false,
            conn: -1,
            stream: -1,
            pid: sys::getpid(),
            created_ns: sys::clock_realtime_ns(),
            t0: 0,
            rounds: 0,
            held: false,
            pre: false,
        }
    }

    /// The job `mig checkpoint` asked for.
    pub fn requested(r: &control::Request) -> Job {
        let rt = runtime::get();
        Job {
            dest: r.to.unwrap_or(rt.settings.image),
            portable: rt.settings.portable || r.portable,
            exit: r.exit,
            conn: r.conn,
            stream: r.stream,
            held: r.held,
            pre: r.pre,
            ..Job::plain()
        }
    }

    /// The image goes to a descriptor (`mig migrate`, `mig checkpoint --to -`).
    pub fn streamed(&self) -> bool {
        self.stream >= 0
    }

    /// This job's descriptors, to close once they are handed on.
    pub fn request(&self) -> control::Request {
        control::Request { conn: self.conn, to: None, exit: self.exit, portable: self.portable, stream: self.stream, held: self.held, pre: self.pre }
    }
}

/// Microseconds since `t0` (CLOCK_MONOTONIC nanoseconds): how long the process stopped.
pub fn since_us(t0: u64) -> u64 {
    sys::clock_monotonic_ns().saturating_sub(t0) / 1000
}
