//! The checkpoint request protocol between `mig checkpoint` and the library.
//!
//! 1. The command listens on the abstract UNIX socket [`address`]`(pid, nonce)` and
//!    sends the checkpoint signal with `sigqueue`, the nonce as its value.
//! 2. The library connects and checks the listener's user (`SO_PEERCRED`); the command
//!    checks the connection is the process's.
//! 3. The command sends a [`Request`]: `key=value` lines, then an empty line; a stream's
//!    descriptor comes with it (`SCM_RIGHTS`).
//! 4. The process (or its writer) answers: `writing=` (the image file) and `total=`
//!    (about how many bytes) once it writes, `warning=` lines, then the outcome
//!    (`status=ok` with `path=`, `bytes=`, `stopped_us=`, or `status=error` with
//!    `reason=`), read back with [`Answer`].

/// `mig/<pid>/<nonce as 16 hex digits>`, the socket's name (without its leading NUL)
/// in `out`.
pub fn address(pid: u32, nonce: u64, out: &mut [u8; 48]) -> &[u8] {
    let mut w = Writer::new(out);
    w.put(b"mig/");
    w.num(pid as u64);
    w.put(b"/");
    for i in (0..16).rev() {
        w.put(&[HEX[(nonce >> (4 * i) & 15) as usize]]);
    }
    w.done()
}

const HEX: [u8; 16] = *b"0123456789abcdef";

/// What `mig checkpoint` asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request<'a> {
    /// Where the image goes (none: the process's own `MIG_IMAGE`).
    pub to: Option<&'a [u8]>,
    /// End the process once the image is safe.
    pub exit: bool,
    /// A portable image.
    pub portable: bool,
    /// The image goes to the descriptor that comes with the request.
    pub stream: bool,
    /// One process of a job saved whole: it waits, stopped, for [`GO`] before it saves,
    /// and for [`RESUME`] once its image is taken, so that every process of the job is
    /// stopped while any is saved (answers [`answer::held`]).
    pub held: bool,
    /// For a held process: it may pre-copy first (its copier says `copied` once its
    /// rounds are done, copies on meanwhile, and stops it at [`STOP`]).
    pub pre: bool,
    /// For a held process: the job's image its image goes into (what the job's root
    /// rolls back to).
    pub job: Option<&'a [u8]>,
}

/// What the command sends the copier of a held process that pre-copies (said `copied`),
/// once every such process of the job has: the process stops for its final stop.
pub const STOP: &[u8] = b"stop\n";
/// What the command sends a held process once every process of the job has stopped.
pub const GO: &[u8] = b"go\n";
/// What the command sends a held process once every process of the job is saved.
pub const RESUME: &[u8] = b"resume\n";
/// What the command sends held processes that stay stopped (the job ends once its
/// image is safe) once every one is taken: their writers may write.
pub const WRITE: &[u8] = b"write\n";
/// What the command sends a held process whose job's checkpoint is abandoned.
pub const ABANDON: &[u8] = b"abandon\n";
/// The reason a process gives, once stopped, for not saving itself alone: it has a
/// child (started since the command looked). The command then saves the job.
pub const HAS_CHILDREN: &str = "the process has children: it is saved with them, as a job";

impl<'a> Request<'a> {
    /// The request's lines, ended by an empty line, given to `out` a piece at a time.
    pub fn encode(&self, mut out: impl FnMut(&[u8])) {
        for (key, path) in [(&b"to="[..], self.to), (b"job=", self.job)] {
            if let Some(p) = path {
                out(key);
                out(p);
                out(b"\n");
            }
        }
        for (on, line) in
            [(self.exit, &b"exit=1\n"[..]), (self.portable, b"portable=1\n"), (self.stream, b"stream=1\n"), (self.held, b"held=1\n"), (self.pre, b"pre=1\n")]
        {
            if on {
                out(line);
            }
        }
        out(b"\n");
    }

    /// Whether `text` holds a whole request (its empty line has come).
    pub fn complete(text: &[u8]) -> bool {
        text.starts_with(b"\n") || text.windows(2).any(|w| w == b"\n\n")
    }

    /// The request in `text`, if it is whole; unknown lines are ignored.
    pub fn parse(text: &'a [u8]) -> Option<Request<'a>> {
        if !Self::complete(text) {
            return None;
        }
        let mut req = Request::default();
        for line in text.split(|&c| c == b'\n') {
            if line.is_empty() {
                return Some(req);
            }
            match split(line) {
                Some((b"to", p)) if !p.is_empty() && !p.contains(&0) => req.to = Some(p),
                Some((b"job", p)) if !p.is_empty() && !p.contains(&0) => req.job = Some(p),
                Some((b"exit", b"1")) => req.exit = true,
                Some((b"portable", b"1")) => req.portable = true,
                Some((b"stream", b"1")) => req.stream = true,
                Some((b"held", b"1")) => req.held = true,
                Some((b"pre", b"1")) => req.pre = true,
                _ => {}
            }
        }
        None
    }
}

fn split(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let eq = line.iter().position(|&c| c == b'=')?;
    Some((line.get(..eq)?, line.get(eq + 1..)?))
}

/// How a checkpoint ended, as the answer says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome<'a> {
    Ok { path: &'a [u8], bytes: u64, stopped_us: u64 },
    Error { reason: &'a [u8] },
}

/// The process's side of the answer: each call gives `out` the pieces of one or more
/// whole lines.
pub mod answer {
    use super::Writer;

    /// The image file being written, and about how large the image will be.
    pub fn writing(tmp: &[u8], total: u64, mut out: impl FnMut(&[u8])) {
        let mut n = [0u8; 20];
        out(b"total=");
        out(Writer::decimal(total, &mut n));
        out(b"\nwriting=");
        out(tmp);
        out(b"\n");
    }

    /// A held process has reached `stage`: `stopped` (it waits for `GO`), `taken` (its
    /// image is taken; it waits for `RESUME`).
    pub fn held(stage: &[u8], mut out: impl FnMut(&[u8])) {
        out(b"held=");
        out(stage);
        out(b"\n");
    }

    /// One warning (one line, without `warning: `).
    pub fn warning(text: &[u8], mut out: impl FnMut(&[u8])) {
        out(b"warning=");
        out(text);
        out(b"\n");
    }

    /// The outcome: `Ok(bytes)` written to `path`, the process stopped `stopped_us`; or
    /// the reason it failed.
    pub fn outcome(result: Result<u64, &[u8]>, path: &[u8], stopped_us: u64, mut out: impl FnMut(&[u8])) {
        let mut n = [0u8; 20];
        match result {
            Ok(bytes) => {
                out(b"status=ok\npath=");
                out(path);
                out(b"\nbytes=");
                out(Writer::decimal(bytes, &mut n));
                out(b"\nstopped_us=");
                out(Writer::decimal(stopped_us, &mut n));
                out(b"\n");
            }
            Err(reason) => {
                out(b"status=error\nreason=");
                out(reason);
                out(b"\n");
            }
        }
    }
}

/// The command's reading of the answer received so far (`text`; only whole lines
/// count).
pub struct Answer<'a> {
    lines: &'a [u8],
}

impl<'a> Answer<'a> {
    pub fn new(text: &'a [u8]) -> Self {
        let whole = text.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
        Answer { lines: text.get(..whole).unwrap_or(&[]) }
    }

    fn field(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.lines.split(|&c| c == b'\n').find_map(|l| split(l).filter(|(k, _)| *k == key).map(|(_, v)| v))
    }

    /// The image file being written, once said.
    pub fn writing(&self) -> Option<&'a [u8]> {
        self.field(b"writing")
    }

    /// About how large the image will be (0: not said).
    pub fn total(&self) -> u64 {
        self.field(b"total").and_then(number).unwrap_or(0)
    }

    /// The last stage a held process said it reached.
    pub fn held(&self) -> Option<&'a [u8]> {
        self.lines.split(|&c| c == b'\n').filter_map(|l| l.strip_prefix(b"held=")).next_back()
    }

    /// The warnings so far.
    pub fn warnings(&self) -> impl Iterator<Item = &'a [u8]> {
        self.lines.split(|&c| c == b'\n').filter_map(|l| l.strip_prefix(b"warning="))
    }

    /// The outcome, once all of it has come.
    pub fn outcome(&self) -> Option<Outcome<'a>> {
        match self.field(b"status")? {
            b"ok" => Some(Outcome::Ok {
                path: self.field(b"path")?,
                bytes: self.field(b"bytes").and_then(number)?,
                stopped_us: self.field(b"stopped_us").and_then(number)?,
            }),
            b"error" => Some(Outcome::Error { reason: self.field(b"reason")? }),
            _ => Some(Outcome::Error { reason: b"unreadable answer (unknown status)" }),
        }
    }
}

fn number(v: &[u8]) -> Option<u64> {
    core::str::from_utf8(v).ok()?.parse().ok()
}

/// Bytes into a fixed buffer (no allocation).
struct Writer<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> Writer<'b> {
    fn new(buf: &'b mut [u8]) -> Self {
        Writer { buf, len: 0 }
    }
    fn put(&mut self, b: &[u8]) {
        for &c in b {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = c;
                self.len += 1;
            }
        }
    }
    fn num(&mut self, v: u64) {
        let mut n = [0u8; 20];
        self.put(Self::decimal(v, &mut n));
    }
    fn done(self) -> &'b [u8] {
        let len = self.len;
        self.buf.get(..len).unwrap_or(&[])
    }
    /// `v` in decimal, in `n`.
    fn decimal(mut v: u64, n: &mut [u8; 20]) -> &[u8] {
        let mut i = n.len();
        loop {
            i -= 1;
            if let Some(d) = n.get_mut(i) {
                *d = b'0' + (v % 10) as u8;
            }
            v /= 10;
            if v == 0 || i == 0 {
                break;
            }
        }
        n.get(i..).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn collect(f: impl FnOnce(&mut dyn FnMut(&[u8]))) -> Vec<u8> {
        let mut v = Vec::new();
        f(&mut |b: &[u8]| v.extend_from_slice(b));
        v
    }

    #[test]
    fn requests_round_trip() {
        let req = Request { to: Some(b"/a/b.mig"), exit: true, portable: false, stream: false, held: false, pre: false, job: None };
        let text = collect(|out| req.encode(out));
        assert_eq!(text, b"to=/a/b.mig\nexit=1\n\n");
        assert!(Request::complete(&text));
        assert_eq!(Request::parse(&text), Some(req));
        let own = collect(|out| Request::default().encode(out));
        assert_eq!(own, b"\n");
        assert_eq!(Request::parse(&own), Some(Request::default()));
        assert_eq!(Request::parse(b"to=/x\nexit=1\n"), None, "not ended");
        let held = Request { held: true, pre: true, job: Some(b"/a/job.mig"), ..req };
        assert_eq!(Request::parse(&collect(|out| held.encode(out))), Some(held));
    }

    #[test]
    fn answers_round_trip() {
        let mut text = collect(|out| answer::writing(b"/a/b.mig.tmp.00", 4096, out));
        text.extend(collect(|out| answer::warning(b"descriptor 5: gone", out)));
        text.extend(collect(|out| answer::outcome(Ok(8192), b"/a/b.mig", 12, out)));
        let a = Answer::new(&text);
        assert_eq!(a.writing(), Some(&b"/a/b.mig.tmp.00"[..]));
        assert_eq!(a.total(), 4096);
        assert_eq!(a.warnings().collect::<Vec<_>>(), [&b"descriptor 5: gone"[..]]);
        assert_eq!(a.outcome(), Some(Outcome::Ok { path: b"/a/b.mig", bytes: 8192, stopped_us: 12 }));
        // A last line not yet whole does not count.
        assert_eq!(Answer::new(b"status=ok\npath=/a\nbytes=1\nstopped_us=1").outcome(), None);
        let mut h = collect(|out| answer::held(b"stopped", out));
        assert_eq!(Answer::new(&h).held(), Some(&b"stopped"[..]));
        h.extend(collect(|out| answer::held(b"taken", out)));
        assert_eq!(Answer::new(&h).held(), Some(&b"taken"[..]));
        let e = collect(|out| answer::outcome(Err(b"no space"), b"", 0, out));
        assert_eq!(Answer::new(&e).outcome(), Some(Outcome::Error { reason: b"no space" }));
    }

    #[test]
    fn addresses() {
        let mut buf = [0u8; 48];
        assert_eq!(address(42, 0xab, &mut buf), b"mig/42/00000000000000ab");
    }
}
