//! `/proc/self/fdinfo/<fd>`: what the kernel tells about an event fd, a timerfd, an
//! epoll set or an inotify instance. Parsed in place, without allocation.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::maps::{dec, hex};

/// The lines of the text.
pub fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|&c| c == b'\n')
}

/// The value of `key` (e.g. `b"ticks:"`) on `line`, where it starts the line or
/// follows white space: the token after it, white space skipped.
pub fn value<'a>(line: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut at = 0;
    while let Some(i) = line.get(at..)?.windows(key.len()).position(|w| w == key) {
        let start = at + i;
        if start == 0 || matches!(line.get(start - 1), Some(b' ' | b'\t')) {
            let rest = line.get(start + key.len()..)?;
            let blank = |c: &u8| matches!(c, b' ' | b'\t');
            let rest = rest.get(rest.iter().position(|c| !blank(c)).unwrap_or(rest.len())..)?;
            return rest.split(blank).next();
        }
        at = start + 1;
    }
    None
}

/// The value of `key` on the first line that has it.
pub fn field<'a>(text: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    lines(text).find_map(|l| value(l, key))
}

pub fn hex_field(text: &[u8], key: &[u8]) -> Option<u64> {
    hex(field(text, key)?)
}

pub fn dec_field(text: &[u8], key: &[u8]) -> Option<u64> {
    dec(field(text, key)?)
}

/// The two numbers of a `key: (a, b)` line, as timerfd prints its times.
pub fn pair_field(text: &[u8], key: &[u8]) -> Option<(u64, u64)> {
    let line = lines(text).find(|l| l.starts_with(key))?;
    let inner = line.get(key.len()..)?;
    let mut nums = inner.split(|c| !c.is_ascii_digit()).filter(|t| !t.is_empty());
    Some((dec(nums.next()?)?, dec(nums.next()?)?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_kernel_prints() {
        let epoll = b"pos:\t0\nflags:\t02\nmnt_id:\t16\nino:\t1057\ntfd:        5 events:       19 data:               2a  pos:0 ino:1a sdev:e\n";
        let line = lines(epoll).find(|l| l.starts_with(b"tfd:")).unwrap();
        assert_eq!(value(line, b"tfd:").and_then(dec), Some(5));
        assert_eq!(value(line, b"events:").and_then(hex), Some(0x19));
        assert_eq!(value(line, b"data:").and_then(hex), Some(0x2a));
        assert_eq!(value(line, b"ino:").and_then(hex), Some(0x1a));
        let timerfd = b"clockid: 1\nticks: 3\nsettime flags: 01\nit_value: (9, 999)\nit_interval: (0, 500)\n";
        assert_eq!(dec_field(timerfd, b"ticks:"), Some(3));
        assert_eq!(pair_field(timerfd, b"it_value:"), Some((9, 999)));
        assert_eq!(pair_field(timerfd, b"it_interval:"), Some((0, 500)));
        assert_eq!(hex_field(b"eventfd-count:                5\n", b"eventfd-count:"), Some(5));
    }
}
