//! `mig inspect`: what an image holds, and whether every part of it is intact.
//!
//! Works on damaged images as far as they can be read: the header is shown if its CRC
//! holds, the records if the tables' CRC holds, and each saved blob is checked on its
//! own, so the report names the region or descriptor whose data is damaged.

mod details;
mod json;
mod text;

use crate::compress::{self, Stop};
use crate::util;
use crate::{Fail, Result};
use mig_image::{FdKind, HEADER_LEN, Header, Image, ImageError, PROT_EXEC, PROT_READ, PROT_WRITE, RegionKind, Table};
use std::io::Read;
use std::path::PathBuf;

/// Show what an image holds and check it.
///
/// Prints the header (executable, pid, when the image was made, format version,
/// threads), every memory region (address range, permissions, kind, file, size,
/// saved bytes and whether its CRC holds) and every descriptor (number, kind, flags,
/// offset, path). A damaged image is shown as far as it can be read, and mig says
/// where the damage is: header, tables, trailer, or which region's or descriptor's
/// saved data. A zstd-compressed image is decompressed (in memory) and shown with its
/// size on disk and compression ratio.
#[derive(clap::Args)]
#[command(after_long_help = "\
Region permissions are r, w, x and p (private) or s (shared). Region kinds: heap,
stack, anon (private anonymous), file (private file mapping), file-shared,
shared-anon, orphan (a file mapping whose file is gone: saved whole), vvar, vdso.
CRC: ok, BAD, `-` (nothing saved), missing (cut off), ? (cannot be checked).

EXIT STATUS:
  0  the image is intact;  2  it is damaged (or not an image);  1  it cannot be read.")]
pub struct Args {
    /// The image file.
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One place where the image is damaged.
struct Damage {
    /// `header`, `tables`, `trailer`, `file`, `region 7`, `descriptor 3`.
    place: String,
    what: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Crc {
    Ok,
    Bad,
    None,
    Missing,
    Unknown,
}

impl Crc {
    fn name(self) -> &'static str {
        match self {
            Crc::Ok => "ok",
            Crc::Bad => "BAD",
            Crc::None => "-",
            Crc::Missing => "missing",
            Crc::Unknown => "?",
        }
    }
}

struct Region {
    start: u64,
    end: u64,
    perms: String,
    kind: String,
    path: String,
    saved: u64,
    blob: Option<u32>,
    crc: Crc,
}

struct Fd {
    fd: i32,
    kind: String,
    flags: String,
    offset: i64,
    path: String,
    /// What the descriptor holds, decoded from its kind's record.
    details: String,
    saved: u64,
    crc: Crc,
}

struct Process {
    exe: String,
    comm: String,
    cwd: String,
    /// What the checkpoint said it could not save as it was.
    warnings: Vec<String>,
}

/// A compressed image file: its size on disk.
struct Packed {
    size: u64,
}

struct Report {
    file: String,
    /// Of the (decompressed) image.
    size: u64,
    compressed: Option<Packed>,
    header: Option<Header>,
    process: Option<Process>,
    regions: Vec<Region>,
    fds: Vec<Fd>,
    blobs_checked: u64,
    damage: Vec<Damage>,
}

pub fn main(a: Args) -> Result<u8> {
    let path = util::absolute(&a.image)?;
    match show(&path, a.json) {
        // With --json, a failure is JSON too (and its line on stderr).
        Err(f) if a.json => {
            println!("{{\"image\":{},\"error\":{}}}", util::json_str(&path.display().to_string()), util::json_str(&f.msg));
            Err(f)
        }
        r => r,
    }
}

fn show(path: &std::path::Path, json_out: bool) -> Result<u8> {
    let path = path.to_path_buf();
    let open_err = |e: std::io::Error| Fail::new(format!("cannot open {}: {}", path.display(), util::io_error(&e)));
    let file = std::fs::File::open(&path).map_err(open_err)?;
    let meta = file.metadata().map_err(|e| Fail::new(format!("{}: {}", path.display(), util::io_error(&e))))?;
    if meta.is_dir() {
        return Err(Fail::new(format!("{} is a directory, not an image", path.display())));
    }
    let size = meta.len();
    // A compressed image is decompressed into memory (a memfd) and shown from there;
    // a damaged one as far as it decompresses.
    let mut unpacked = None;
    let mut file = file;
    if size >= 4 {
        let head = compress::peek(&mut file).map_err(|e| Fail::new(format!("cannot read {}: {e}", path.display())))?;
        if compress::is_zstd(&head) {
            let u = compress::unpack(std::io::Cursor::new(head).chain(file), compress::memfd()?);
            let damage = match u.stop {
                None => None,
                Some(Stop::Damaged(why)) => Some(format!("{why}, after {} of the image", util::size(u.len))),
                Some(Stop::Source(e)) => return Err(Fail::new(format!("cannot read {}: {e}", path.display()))),
                Some(Stop::Dest(e)) => {
                    return Err(Fail::new(format!("cannot hold the decompressed image of {} in memory: {e}", path.display())));
                }
            };
            file = u.file;
            unpacked = Some((u.len, damage));
        }
    }
    let len = unpacked.as_ref().map_or(size, |u| u.0);
    let map = if len == 0 {
        None
    } else {
        // SAFETY: a read-only private mapping that mig only reads; see restart.rs.
        Some(unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Fail::new(format!("cannot map {}: {e}", path.display())))?)
    };
    let bytes: &[u8] = map.as_deref().unwrap_or(&[]);
    if mig_image::tree::is_tree(bytes) && unpacked.is_none() {
        return show_job(path.display().to_string(), bytes, json_out);
    }
    let mut report = examine(path.display().to_string(), bytes);
    if let Some((_, damage)) = unpacked {
        report.compressed = Some(Packed { size });
        if let Some(what) = damage {
            report.damage.insert(0, Damage { place: "compressed data".into(), what });
        }
    }
    let text = if json_out { json::json(&report) } else { text::text(&report) };
    print!("{text}");
    match report.damage.first() {
        None => Ok(0),
        Some(d) => {
            let more = match report.damage.len() {
                1 => String::new(),
                n => format!(" (and {} more damaged part{})", n - 1, if n > 2 { "s" } else { "" }),
            };
            // Not an `Err`: the report is out already (with --json, a failure would
            // print a second JSON object).
            eprintln!("mig: {} is damaged: {}: {}{more}", report.file, d.place, d.what);
            Ok(2)
        }
    }
}

/// A job's image: its processes as a tree, then each one's report.
fn show_job(file: String, bytes: &[u8], json_out: bool) -> Result<u8> {
    let header = match mig_image::tree::TreeHeader::read(bytes, &crc32fast::Hasher::new()) {
        Ok(h) => h,
        Err(e) => {
            if json_out {
                println!("{{\"image\": {}, \"size\": {}, \"intact\": false, \"processes\": null}}", util::json_str(&file), bytes.len());
            }
            eprintln!("mig: {file} is damaged: {e}");
            return Ok(2);
        }
    };
    let members: Vec<(mig_image::tree::Member, Option<Report>)> = header
        .members()
        .iter()
        .map(|m| (*m, (!m.exited()).then(|| examine(format!("{file} (process {})", m.pid), &bytes[m.off as usize..(m.off + m.len) as usize]))))
        .collect();
    // Descriptors two processes or more hold as one open file description, by group:
    // "pid:fd" each.
    let mut shared: Vec<Vec<String>> = Vec::new();
    for sh in header.shares(bytes) {
        let at = sh.group as usize;
        if shared.len() <= at {
            shared.resize(at + 1, Vec::new());
        }
        shared[at].push(format!("{}:{}", header.members().get(sh.member as usize).map_or(0, |m| m.pid), sh.fd));
    }
    let comm = |m: &mig_image::tree::Member, r: &Option<Report>| match r {
        Some(r) => r.process.as_ref().map_or("?".to_string(), |p| p.comm.clone()),
        None => format!("(ended, wait status {:#x}, not reaped)", m.status),
    };
    if json_out {
        let mut o = format!(
            "{{\n  \"image\": {},\n  \"size\": {},\n  \"intact\": {},\n  \"processes\": [\n",
            util::json_str(&file),
            bytes.len(),
            members.iter().flat_map(|(_, r)| r).all(|r| r.damage.is_empty())
        );
        for (i, (m, r)) in members.iter().enumerate() {
            let sep = if i + 1 < members.len() { "," } else { "" };
            o.push_str(&format!(
                "    {{\"pid\": {}, \"ppid\": {}, \"pgid\": {}, \"sid\": {}, \"command\": {}, \"size\": {}, \"exited\": {}, \"status\": {}, \"report\": {}}}{sep}\n",
                m.pid,
                m.ppid,
                m.pgid,
                m.sid,
                util::json_str(&comm(m, r)),
                m.len,
                m.exited(),
                m.status,
                r.as_ref().map_or("null".to_string(), |r| json::json(r).trim_end().to_string())
            ));
        }
        o.push_str("  ],\n");
        let groups: Vec<String> = shared.iter().map(|g| format!("[{}]", g.iter().map(|d| util::json_str(d)).collect::<Vec<_>>().join(", "))).collect();
        o.push_str(&format!("  \"shared_descriptors\": [{}],\n", groups.join(", ")));
        o.push_str(&format!("  \"output_len\": {}\n}}\n", header.output_len().map_or("null".to_string(), |n| n.to_string())));
        print!("{o}");
    } else {
        let mut o = format!("job image: {file} ({}), {} processes\n", util::size(bytes.len() as u64), members.len());
        o.push_str("     PID     PPID     PGID      SID  SIZE        COMMAND\n");
        let depth = |m: &mig_image::tree::Member| {
            let mut d = 0;
            let mut at = *m;
            while let Some(p) = members.iter().map(|(p, _)| *p).find(|p| p.pid == at.ppid && p.pid != at.pid) {
                d += 1;
                at = p;
            }
            d
        };
        for (m, r) in &members {
            o.push_str(&format!("{:>8} {:>8} {:>8} {:>8}  {:<10}  {}{}\n", m.pid, m.ppid, m.pgid, m.sid, util::size(m.len), "  ".repeat(depth(m)), comm(m, r)));
        }
        for g in &shared {
            o.push_str(&format!("one open file description: {} (process:descriptor)\n", g.join(", ")));
        }
        if let Some(n) = header.output_len() {
            o.push_str(&format!("its output file was {n} bytes long when it was taken\n"));
        }
        for (m, r) in members.iter().filter_map(|(m, r)| Some((m, r.as_ref()?))) {
            o.push_str(&format!("\n--- process {} ---\n{}", m.pid, text::text(r)));
        }
        print!("{o}");
    }
    let damaged: Vec<String> =
        members.iter().filter_map(|(m, r)| r.as_ref()?.damage.first().map(|d| format!("process {}: {}: {}", m.pid, d.place, d.what))).collect();
    match damaged.first() {
        None => Ok(0),
        Some(d) => {
            eprintln!("mig: {file} is damaged: {d}");
            Ok(2)
        }
    }
}

fn crc(bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(bytes);
    h.finalize()
}

fn range(bytes: &[u8], off: u64, len: u64) -> Option<&[u8]> {
    let end = off.checked_add(len)?;
    bytes.get(usize::try_from(off).ok()?..usize::try_from(end).ok()?)
}

fn examine(file: String, bytes: &[u8]) -> Report {
    let mut r = Report {
        file,
        size: bytes.len() as u64,
        compressed: None,
        header: None,
        process: None,
        regions: vec![],
        fds: vec![],
        blobs_checked: 0,
        damage: vec![],
    };
    let hasher = crc32fast::Hasher::new();
    let (img, tables_ok, trailer_ok) = match Image::open(bytes, &hasher) {
        Ok(img) => (img, true, true),
        Err(e) => {
            let place = match e {
                ImageError::Empty | ImageError::NotAnImage | ImageError::Version(_) | ImageError::Arch(_) | ImageError::HeaderCrc => "header",
                ImageError::Truncated { have, .. } if have < HEADER_LEN as u64 => "header",
                ImageError::Truncated { .. } => "file",
                ImageError::TablesCrc => "tables",
                ImageError::TrailerCrc => "trailer",
                ImageError::Layout(why) if why.contains("trailer") => "trailer",
                ImageError::Layout(_) | ImageError::BlobCrc { .. } => "tables",
            };
            r.damage.push(Damage { place: place.into(), what: e.to_string() });
            if place == "header" {
                return r;
            }
            // The header's own CRC holds: read what can be trusted beyond it.
            let Some(header) = mig_image::read_record::<Header>(bytes, 0) else { return r };
            let img = Image { bytes, header };
            let tables_ok = range(bytes, header.meta_off, header.meta_len).is_some_and(|m| crc(m) == header.meta_crc)
                && !matches!(e, ImageError::Layout(_) if place == "tables");
            let trailer_ok = header.trailer_len >= 4
                && range(bytes, header.trailer_off, header.trailer_len).is_some_and(|t| {
                    let (list, own) = t.split_at(t.len() - 4);
                    crc(list).to_le_bytes() == own
                });
            if place == "file" && !trailer_ok {
                r.damage.push(Damage { place: "trailer".into(), what: "missing (the image is cut off before it)".into() });
            }
            (img, tables_ok, trailer_ok)
        }
    };
    r.header = Some(img.header);
    if !tables_ok {
        return r;
    }
    let p = img.process();
    let s = |v| String::from_utf8_lossy(img.str(v)).into_owned();
    let comm_len = p.comm.iter().position(|&c| c == 0).unwrap_or(p.comm.len());
    let warnings = img.str(p.warnings).split(|&c| c == b'\n').filter(|w| !w.is_empty()).map(|w| String::from_utf8_lossy(w).into_owned()).collect();
    r.process = Some(Process { exe: s(p.exe.path), comm: String::from_utf8_lossy(&p.comm[..comm_len]).into_owned(), cwd: s(p.cwd), warnings });
    let fold = mig_image::pagecrc::PageCrc::for_len(mig_image::BLOCK);
    let check = |r: &mut Report, blob: u32, off: u64, len: u64| -> Crc {
        if blob == u32::MAX {
            return Crc::None;
        }
        let Some(data) = range(bytes, off, len) else { return Crc::Missing };
        if !trailer_ok {
            return Crc::Unknown;
        }
        r.blobs_checked += 1;
        // Block by block too: a lazy restore checks those.
        if data.len() as u64 == len && img.check_blob_blocks(blob, &hasher, &fold).is_ok() { Crc::Ok } else { Crc::Bad }
    };
    for i in 0..img.count(Table::Regions) {
        let rec = img.region(i);
        let kind = RegionKind::from_u32(rec.kind);
        let shared = matches!(kind, Some(RegionKind::FileShared | RegionKind::SharedAnon));
        let perms: String = [(PROT_READ, 'r'), (PROT_WRITE, 'w'), (PROT_EXEC, 'x')]
            .iter()
            .map(|&(bit, c)| if rec.prot & bit != 0 { c } else { '-' })
            .chain([if shared { 's' } else { 'p' }])
            .collect();
        let crc = check(&mut r, rec.blob, rec.data_off, rec.data_len);
        let region = Region {
            start: rec.start,
            end: rec.end,
            perms,
            kind: kind.map_or_else(|| format!("unknown({})", rec.kind), |k| k.name().to_string()),
            path: s(rec.file.path),
            saved: rec.data_len,
            blob: (rec.blob != u32::MAX).then_some(rec.blob),
            crc,
        };
        if matches!(crc, Crc::Bad | Crc::Missing) {
            let what = if crc == Crc::Bad {
                format!("saved data is corrupted (CRC mismatch in blob {})", rec.blob)
            } else {
                format!("saved data (blob {}) is cut off", rec.blob)
            };
            let desc =
                format!("{:#x}-{:#x} {}{}", rec.start, rec.end, region.kind, if region.path.is_empty() { String::new() } else { format!(" {}", region.path) });
            r.damage.push(Damage { place: format!("region {i} ({desc})"), what });
        }
        r.regions.push(region);
    }
    for i in 0..img.count(Table::Fds) {
        let rec = img.fd(i);
        let crc = check(&mut r, rec.blob, rec.data_off, rec.data_len);
        let fd = Fd {
            fd: rec.fd,
            kind: FdKind::from_u32(rec.kind).map_or_else(|| format!("unknown({})", rec.kind), |k| k.name().to_string()),
            flags: fd_flags(rec.flags, rec.fd_flags),
            offset: rec.offset,
            path: s(rec.file.path),
            details: details::describe(&img, &rec),
            saved: rec.data_len,
            crc,
        };
        if matches!(crc, Crc::Bad | Crc::Missing) {
            let what = if crc == Crc::Bad { "saved file contents are corrupted (CRC mismatch)" } else { "saved file contents are cut off" };
            r.damage.push(Damage { place: format!("descriptor {} ({})", rec.fd, fd.path), what: format!("{what}, blob {}", rec.blob) });
        }
        r.fds.push(fd);
    }
    r
}

fn fd_flags(fl: u32, fdfl: u32) -> String {
    let fl = fl as i32;
    let mut v = vec![match fl & libc::O_ACCMODE {
        libc::O_RDONLY => "rdonly",
        libc::O_WRONLY => "wronly",
        _ => "rdwr",
    }];
    for (bit, name) in [
        (libc::O_APPEND, "append"),
        (libc::O_NONBLOCK, "nonblock"),
        (libc::O_DIRECTORY, "directory"),
        (libc::O_SYNC, "sync"),
        (libc::O_DIRECT, "direct"),
        (libc::O_NOATIME, "noatime"),
    ] {
        if fl & bit == bit {
            v.push(name);
        }
    }
    if fdfl as i32 & libc::FD_CLOEXEC != 0 {
        v.push("cloexec");
    }
    v.join(",")
}

fn saved_total(r: &Report) -> u64 {
    r.regions.iter().map(|x| x.saved).sum::<u64>() + r.fds.iter().map(|x| x.saved).sum::<u64>()
}
