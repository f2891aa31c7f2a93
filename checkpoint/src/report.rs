//! The outcome of a checkpoint, told to whoever should hear it.

use super::control;
use super::failure::Failure;
use super::job::Job;
use crate::sys::{self, msg::msg};

/// Reports the outcome: to `mig checkpoint` if it asked, on stderr if it failed (or
/// always with `MIG_LOG=debug`); ends the process if asked and the image is safe.
pub fn complete(job: &Job, result: Result<u64, Failure>, stopped_us: u64) {
    let mut why = msg();
    if let Err(f) = result {
        f.describe(&mut why);
    }
    control::report(job.conn, result.map_err(|_| &why), job.dest.as_bytes(), stopped_us);
    match result {
        Ok(len) => {
            if sys::msg::debug_enabled() {
                let mut m = msg();
                m.s("checkpoint written to ")
                    .bytes(if job.streamed() { b"a stream" } else { job.dest.as_bytes() })
                    .s(" (")
                    .num(len)
                    .s(" bytes, process stopped for ");
                m.num(stopped_us / 1000).s(".").num(stopped_us / 100 % 10).s(" ms");
                if job.rounds > 0 {
                    m.s(", pre-copied in ").num(job.rounds as u64).s(" rounds");
                }
                m.s(")").emit();
            }
            if job.exit {
                crate::kinds::tcp::hold();
                crate::held::hand_over();
                sys::exit_group(0);
            }
        }
        Err(_) => msg().s("checkpoint to ").bytes(if job.streamed() { b"a stream" } else { job.dest.as_bytes() }).s(" failed: ").bytes(why.as_bytes()).emit(),
    }
}
