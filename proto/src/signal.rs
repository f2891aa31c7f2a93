//! Signals by name or number, as `MIG_SIGNAL` and `MIG_THREAD_SIGNAL` give them.

/// The names `MIG_SIGNAL` accepts (without `SIG`), besides `RTMIN+n` and `RTMAX-n`.
const NAMES: [(&str, i32); 18] = [
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("CONT", libc::SIGCONT),
    ("TSTP", libc::SIGTSTP),
    ("WINCH", libc::SIGWINCH),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
    ("URG", libc::SIGURG),
    ("IO", libc::SIGIO),
    ("PROF", libc::SIGPROF),
    ("VTALRM", libc::SIGVTALRM),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
];

/// The name of signal `sig` without `SIG` (`TERM`), if it has one here.
pub fn name(sig: u32) -> Option<&'static str> {
    NAMES.iter().find(|&&(_, n)| n as u32 == sig).map(|&(name, _)| name)
}

/// A signal by number (`40`) or name, in any case, with or without `SIG` (`USR1`,
/// `sigterm`, `SIGRTMIN+3`, `RTMAX-1`); `None` for anything else.
pub fn parse(v: &str) -> Option<u32> {
    let v = v.trim();
    if let Ok(n) = v.parse::<u32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let mut upper = [0u8; 16];
    let bytes = v.as_bytes();
    let up = upper.get_mut(..bytes.len())?;
    for (u, c) in up.iter_mut().zip(bytes) {
        *u = c.to_ascii_uppercase();
    }
    let up = core::str::from_utf8(up).ok()?;
    let name = up.strip_prefix("SIG").unwrap_or(up);
    if let Some(&(_, n)) = NAMES.iter().find(|(n, _)| *n == name) {
        return u32::try_from(n).ok();
    }
    // RTMIN, RTMIN+n, RTMAX, RTMAX-n.
    let (base, off) = if let Some(r) = name.strip_prefix("RTMIN") {
        (rtmin(), if r.is_empty() { 0 } else { r.strip_prefix('+')?.parse::<i32>().ok()? })
    } else if let Some(r) = name.strip_prefix("RTMAX") {
        (rtmax(), if r.is_empty() { 0 } else { -r.strip_prefix('-')?.parse::<i32>().ok()? })
    } else {
        return None;
    };
    let n = base.checked_add(off)?;
    (rtmin()..=rtmax()).contains(&n).then(|| u32::try_from(n).ok()).flatten()
}

fn rtmin() -> i32 {
    libc::SIGRTMIN()
}

fn rtmax() -> i32 {
    libc::SIGRTMAX()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("SIGUSR1"), Some(libc::SIGUSR1 as u32));
        assert_eq!(parse("usr2"), Some(libc::SIGUSR2 as u32));
        assert_eq!(parse("TERM"), Some(libc::SIGTERM as u32));
        assert_eq!(parse("sighup"), Some(libc::SIGHUP as u32));
        assert_eq!(parse("10"), Some(10));
        assert_eq!(parse("0"), None);
        assert_eq!(parse("65"), None);
        assert_eq!(parse("SIGFOO"), None);
        assert_eq!(parse("RTMIN+1"), Some(libc::SIGRTMIN() as u32 + 1));
        assert_eq!(parse("SIGRTMAX-1"), Some(libc::SIGRTMAX() as u32 - 1));
        assert_eq!(parse("rtmin"), Some(libc::SIGRTMIN() as u32));
        assert_eq!(parse("RTMAX+1"), None, "beyond RTMAX");
    }
}
