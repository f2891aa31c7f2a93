//! Why a checkpoint could not be taken: the error every part of the core returns.

use super::scratch::Full;
use crate::sys::{self, Errno};

/// Why a checkpoint could not be taken.
#[derive(Clone, Copy, Debug)]
pub enum Failure {
    /// A fixed-size scratch list overflowed.
    Full,
    Sys(&'static str, Errno),
    Other(&'static str),
}

impl Failure {
    /// What went wrong, in words.
    pub fn describe(self, m: &mut sys::msg::Msg<960>) {
        match self {
            Failure::Full => m.s("the process is too large for the checkpoint's tables"),
            Failure::Other(what) => m.s(what),
            Failure::Sys(what, e) => match e.text() {
                Some(text) => m.s(what).s(": ").s(text),
                None => m.s(what).s(" (errno ").num(e.0 as u64).s(")"),
            },
        };
    }
}

impl From<Full> for Failure {
    fn from(_: Full) -> Self {
        Failure::Full
    }
}
