//! `/proc/self/maps`, parsed without allocation: the truth about what is mapped.

/// One line of `/proc/self/maps`.
#[derive(Clone, Copy, Debug)]
pub struct MapLine<'a> {
    pub start: u64,
    pub end: u64,
    /// `PROT_*` bits.
    pub prot: u32,
    pub shared: bool,
    pub offset: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub ino: u64,
    pub path: &'a [u8],
}

impl MapLine<'_> {
    /// The file was unlinked (or replaced) since it was mapped.
    pub fn deleted(&self) -> bool {
        self.path.ends_with(b" (deleted)")
    }
    /// The path without a ` (deleted)` suffix.
    pub fn file_path(&self) -> &[u8] {
        self.path.strip_suffix(b" (deleted)").unwrap_or(self.path)
    }
    /// `[heap]`, `[stack]`, `[vdso]`, …
    pub fn pseudo(&self) -> bool {
        self.path.starts_with(b"[")
    }
}

pub fn hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &c| {
        let d = (c as char).to_digit(16)?;
        Some(acc << 4 | d as u64)
    })
}

pub fn dec(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u64))
}

fn split_once(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let mut parts = s.splitn(2, |&c| c == sep);
    Some((parts.next()?, parts.next()?))
}

/// Parses one line (without its newline).
pub fn parse_line(line: &[u8]) -> Option<MapLine<'_>> {
    let (range, rest) = split_once(line, b' ')?;
    let (start, end) = split_once(range, b'-')?;
    let (perms, rest) = split_once(rest, b' ')?;
    let (offset, rest) = split_once(rest, b' ')?;
    let (dev, rest) = split_once(rest, b' ')?;
    let (major, minor) = split_once(dev, b':')?;
    let (ino, rest) = split_once(rest, b' ').unwrap_or((rest, b""));
    let path = match rest.iter().position(|&c| c != b' ') {
        Some(i) => rest.get(i..).unwrap_or(b""),
        None => b"",
    };
    let &[r, w, x, s] = perms else { return None };
    let mut prot = 0;
    if r == b'r' {
        prot |= libc::PROT_READ as u32;
    }
    if w == b'w' {
        prot |= libc::PROT_WRITE as u32;
    }
    if x == b'x' {
        prot |= libc::PROT_EXEC as u32;
    }
    Some(MapLine {
        start: hex(start)?,
        end: hex(end)?,
        prot,
        shared: s == b's',
        offset: hex(offset)?,
        dev_major: hex(major)? as u32,
        dev_minor: hex(minor)? as u32,
        ino: dec(ino)?,
        path,
    })
}

/// Iterates over the lines of a maps text.
pub fn lines(text: &[u8]) -> impl Iterator<Item = MapLine<'_>> {
    text.split(|&c| c == b'\n').filter(|l| !l.is_empty()).filter_map(parse_line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_file_and_anon_lines() {
        let l = parse_line(b"7f477c7cf000-7f477c7d1000 rw-p 001d3000 fe:00 326279      /usr/lib/x86_64-linux-gnu/libc.so.6").unwrap();
        assert_eq!((l.start, l.end, l.offset, l.ino), (0x7f477c7cf000, 0x7f477c7d1000, 0x1d3000, 326279));
        assert_eq!(l.prot, 3);
        assert!(!l.shared);
        assert_eq!(l.dev_major, 0xfe);
        assert_eq!(l.path, b"/usr/lib/x86_64-linux-gnu/libc.so.6");
        let a = parse_line(b"7f477c7e7000-7f477c7e9000 rw-s 00000000 00:01 12 /dev/zero (deleted)").unwrap();
        assert!(a.shared && a.deleted());
        assert_eq!(a.file_path(), b"/dev/zero");
        let h = parse_line(b"56129b0f9000-56129b11a000 ---p 00000000 00:00 0 ").unwrap();
        assert_eq!((h.prot, h.path), (0, &b""[..]));
        assert!(parse_line(b"garbage").is_none());
    }
}
