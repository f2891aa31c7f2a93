//! `mig ps`: the user's processes that run with the library, and their checkpoints.
//!
//! Everything comes from `/proc` and the image files: a process runs with the library
//! if `libmig.so` is mapped in it; its settings are the `MIG_*` variables of its
//! environment (which the library read when it started or was restored); its last
//! checkpoint is its image file (the header says when, and how long the process was
//! stopped); a checkpoint is in progress while a temporary image file beside it is
//! locked by its writer.

use crate::Result;
use crate::control;
use crate::util::{self, json_str};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// List the processes running under mig (yours; all of them as root).
#[derive(clap::Args)]
#[command(after_long_help = "\
COLUMNS:
  PID, COMMAND   the process
  IMAGE          where its checkpoints go (MIG_IMAGE, or its default name)
  INTERVAL       MIG_INTERVAL, if it checkpoints by itself
  LAST           when its last image was written, its size, how long it stopped
  NOW            `writing N MiB` while a checkpoint is being written")]
pub struct Args {
    /// Print JSON (an array of objects) instead of a table.
    #[arg(long)]
    pub json: bool,
}

struct Row {
    pid: i32,
    comm: String,
    image: Option<PathBuf>,
    interval: Option<String>,
    last: Option<Last>,
    writing: Option<u64>,
}

struct Last {
    created_ns: u64,
    bytes: u64,
    stopped_us: Option<u64>,
}

pub fn main(a: Args) -> Result<u8> {
    let me = control::uid();
    let mut rows = vec![];
    let mut pids: Vec<i32> = std::fs::read_dir("/proc").map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect()).unwrap_or_default();
    pids.sort_unstable();
    for pid in pids {
        let owner = std::fs::metadata(format!("/proc/{pid}")).map(|m| m.uid()).unwrap_or(u32::MAX);
        if (me != 0 && owner != me) || pid == std::process::id() as i32 || !control::alive(pid) || !control::runs_library(pid) {
            continue;
        }
        // mig's own helpers (a writer, a copier, a restore's loader) are no program.
        if control::comm(pid).starts_with("mig-") {
            continue;
        }
        rows.push(row(pid));
    }
    if a.json {
        let items: Vec<String> = rows.iter().map(json_row).collect();
        println!("[{}]", items.join(","));
        return Ok(0);
    }
    if rows.is_empty() {
        println!("no process runs under mig");
        return Ok(0);
    }
    println!("{:>7}  {:<16} {:<40} {:>8}  {:<44} NOW", "PID", "COMMAND", "IMAGE", "INTERVAL", "LAST");
    for r in &rows {
        let image = r.image.as_ref().map_or("?".to_string(), |p| p.display().to_string());
        let last = r.last.as_ref().map_or("none yet".to_string(), |l| {
            let stopped = l.stopped_us.map_or(String::new(), |us| format!(", stopped {}", util::duration(std::time::Duration::from_micros(us))));
            format!("{}, {}{stopped}", util::utc(l.created_ns), util::size(l.bytes))
        });
        let now = r.writing.map_or("-".to_string(), |b| format!("writing {}", util::size(b)));
        println!("{:>7}  {:<16} {:<40} {:>8}  {:<44} {now}", r.pid, r.comm, image, r.interval.as_deref().unwrap_or("-"), last);
    }
    Ok(0)
}

fn row(pid: i32) -> Row {
    let env = control::environ(pid).unwrap_or_default();
    let get = |k: &str| env.iter().find_map(|(n, v)| (n == k).then(|| v.clone())).filter(|v| !v.is_empty());
    let image = match get(mig_proto::env::IMAGE) {
        Some(p) => Some(PathBuf::from(p)),
        // The library's default: <exe-name>.<pid>.mig where the process started (its
        // working directory now is the best guess left).
        None => {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            let name = exe.as_ref().and_then(|e| e.file_name()).map(|n| n.to_string_lossy().into_owned());
            control::cwd(pid).ok().zip(name).map(|(cwd, name)| cwd.join(format!("{name}.{pid}.mig")))
        }
    };
    let last = image.as_deref().and_then(last_image);
    let writing = image.as_deref().and_then(in_progress);
    Row { pid, comm: control::comm(pid), image, interval: get(mig_proto::env::INTERVAL), last, writing }
}

/// The image at `path`: when it was written, its size, how long its process stopped.
fn last_image(path: &Path) -> Option<Last> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut head = vec![0u8; mig_image::HEADER_LEN];
    f.read_exact(&mut head).ok()?;
    let h: mig_image::Header = mig_image::read_record(&head, 0)?;
    if h.magic != mig_image::MAGIC {
        return None;
    }
    let stopped_us = (h.version >= 3 && h.stopped_us > 0).then_some(h.stopped_us);
    Some(Last { created_ns: h.created_unix_ns, bytes: f.metadata().ok()?.len(), stopped_us })
}

/// The size of a temporary image file beside `image` that a writer holds locked: a
/// checkpoint in progress.
fn in_progress(image: &Path) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let dir = image.parent()?;
    let prefix = format!("{}.tmp.", image.file_name()?.to_string_lossy());
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        if !e.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        let Ok(f) = std::fs::File::open(e.path()) else { continue };
        // SAFETY: a non-blocking probe of the lock on our own descriptor.
        let free = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0;
        if !free {
            return f.metadata().ok().map(|m| m.len());
        }
    }
    None
}

fn json_row(r: &Row) -> String {
    let opt = |v: Option<String>| v.map_or("null".to_string(), |s| json_str(&s));
    let last = r.last.as_ref().map_or("null".to_string(), |l| {
        format!(
            "{{\"created_unix_ns\":{},\"created\":{},\"bytes\":{},\"stopped_us\":{}}}",
            l.created_ns,
            json_str(&util::utc(l.created_ns)),
            l.bytes,
            l.stopped_us.map_or("null".to_string(), |v| v.to_string())
        )
    });
    format!(
        "{{\"pid\":{},\"command\":{},\"image\":{},\"interval\":{},\"last\":{last},\"writing_bytes\":{}}}",
        r.pid,
        json_str(&r.comm),
        opt(r.image.as_ref().map(|p| p.display().to_string())),
        opt(r.interval.clone()),
        r.writing.map_or("null".to_string(), |b| b.to_string())
    )
}
