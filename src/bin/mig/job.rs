//! `mig checkpoint` of a job: the process asked for and all its descendants, saved at
//! one moment into one image (`mig_image::tree`).
//!
//! Each process gets a request of its own (`request.rs`), marked `held`: it stops its
//! threads and waits. Once every one has stopped (and no new child appeared), each is
//! told to go: it saves itself (descriptors first, while all are still stopped, then
//! its memory through a forked writer) into an image of its own beside the job's, and
//! waits again. Once every one is taken, all go on. Then the images are put into the
//! job's one file, written aside and renamed like any image.

use crate::checkpoint::{self, Dest, Outcome};
use crate::control;
use crate::request::{self, Done, Options, Reply, Target};
use crate::util;
use crate::{Fail, Result};
use mig_image::PAGE;
use mig_image::tree::{Member, Share, TreeHeader};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A process of the job, as `/proc/<pid>/stat` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    pub zombie: bool,
    /// For a zombie: the status its parent's `wait` will get (`exit_code` of its stat).
    pub exit_code: u32,
}

fn stat(pid: i32) -> Option<Proc> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name (which ends with the last ')'): state ppid pgrp session.
    let mut f = text.get(text.rfind(')')? + 1..)?.split_whitespace();
    let state = f.next()?;
    let (ppid, pgid, sid) = (f.next()?.parse().ok()?, f.next()?.parse().ok()?, f.next()?.parse().ok()?);
    // Field 52, the exit code, is the 46th after the session.
    let exit_code = f.nth(45).and_then(|c| c.parse().ok()).unwrap_or(0);
    Some(Proc { pid, ppid, pgid, sid, zombie: state == "Z" || state == "X", exit_code })
}

/// mig's own helpers (a forked writer, a pre-copy's copier) are not the job's.
fn is_helper(pid: i32) -> bool {
    control::comm(pid).starts_with("mig-")
}

/// `root` and its descendants, parents before children.
pub fn members(root: i32) -> Vec<Proc> {
    let all: Vec<Proc> =
        std::fs::read_dir("/proc").map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()).filter_map(stat).collect()).unwrap_or_default();
    let Some(r) = stat(root) else { return vec![] };
    let mut out = vec![r];
    let mut i = 0;
    while let Some(&p) = out.get(i) {
        let mut kids: Vec<Proc> = all.iter().filter(|c| c.ppid == p.pid && c.pid != root && !is_helper(c.pid)).copied().collect();
        kids.sort_by_key(|c| c.pid);
        out.extend(kids);
        i += 1;
    }
    out
}

/// `members`, once no child has just ended: a process that has just exited is a
/// zombie until its parent reaps it, which mig's own helpers' parents do at once.
fn settled_members(root: i32) -> Vec<Proc> {
    let t0 = Instant::now();
    loop {
        let m = members(root);
        if !m.iter().any(|p| p.zombie) || t0.elapsed() > Duration::from_millis(300) {
            return m;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `root` has children of its own (other than mig's helpers): then it is saved
/// as a job.
pub fn has_children(root: i32) -> bool {
    members(root).len() > 1
}

/// The process a `mig restart` waits for, when `pid` is that command (it started the
/// image's process with its saved pid): what is asked of the command is for it.
pub fn restored_by(pid: i32) -> i32 {
    let mig = std::env::current_exe().ok();
    let is_mig = mig.is_some_and(|m| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == m));
    if !is_mig || control::runs_library(pid) {
        return pid;
    }
    let children: Vec<Proc> = members(pid).into_iter().filter(|p| p.ppid == pid).collect();
    match children[..] {
        [only] if !only.zombie && control::runs_library(only.pid) => only.pid,
        _ => pid,
    }
}

/// The image path of a process that writes its own (its `MIG_IMAGE`, else the
/// library's default, `<exe-name>.<pid>.mig` in its directory).
pub fn own_image(pid: i32) -> Result<PathBuf> {
    let cwd = control::cwd(pid)?;
    let env = control::environ(pid).unwrap_or_default();
    if let Some((_, v)) = env.iter().find(|(k, v)| k == mig_proto::env::IMAGE && !v.is_empty()) {
        return Ok(cwd.join(v));
    }
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).map_err(|e| Fail::new(format!("cannot read the executable of process {pid}: {e}")))?;
    let name = exe.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "process".into());
    Ok(cwd.join(format!("{name}.{pid}.mig")))
}

/// One process of the job, asked.
struct Asked {
    /// Its place in the job: parents before children (`members`' order).
    order: usize,
    proc: Proc,
    conn: UnixStream,
    reply: Reply,
    open: bool,
    part: PathBuf,
}

impl Asked {
    fn read(&mut self) -> Result<()> {
        if self.open {
            self.open = self.reply.read(&mut self.conn).map_err(|e| Fail::new(format!("reading the answer of process {}: {e}", self.proc.pid)))?;
        }
        Ok(())
    }

    fn failed(&self) -> Option<String> {
        match self.reply.done() {
            Some(Done::Error { reason }) => Some(format!("process {} ({}): {reason}", self.proc.pid, control::comm(self.proc.pid))),
            None if !self.open => Some(format!("process {} ({}) went away during the checkpoint", self.proc.pid, control::comm(self.proc.pid))),
            _ => None,
        }
    }

    fn reached(&self, stage: &[u8]) -> bool {
        self.reply.held() == Some(stage)
    }

    fn say(&self, word: &[u8]) {
        let _ = (&self.conn).write_all(word);
    }
}

/// Checkpoints `root`'s whole job into `dest` (a file, the root's own image, or a
/// stream); the outcome says how many processes the image holds. `stopped` runs once
/// every process is stopped, before any is saved; what it returns, the length of the
/// job's output file then, the image records.
pub fn checkpoint(root: i32, dest: Dest<'_>, opts: Options, timeout: Duration, stopped: &mut dyn FnMut() -> Option<u64>) -> Result<Outcome> {
    let signalled = Instant::now();
    let mut dest = match dest {
        Dest::Own => Dest::File(own_image(root)?),
        d => d,
    };
    // Each process writes its image beside the job's, or, for a stream, in this user's
    // own directory.
    let parts_base = match &dest {
        Dest::File(p) => p.clone(),
        _ => control::control_dir()?.join(format!("job-{root}.mig")),
    };
    let mut asked: Vec<Asked> = Vec::new();
    let mut exited: Vec<Proc> = Vec::new();
    let mut pre_copied = 0;
    let job_image = match &dest {
        Dest::File(p) => Some(p.clone()),
        _ => None,
    };
    let r = (|| {
        // Large processes pre-copy first, while the job runs; then all stop at once.
        if !opts.exit && job_image.is_some() {
            asked = pre_copy(root, &parts_base, job_image.as_deref(), opts, timeout)?;
            let copied: Vec<i32> = asked.iter().filter(|a| a.reached(b"copied")).map(|a| a.proc.pid).collect();
            util::debug(|| format!("job: {} pre-copied, {:.1} ms after the first signal", asked.len(), signalled.elapsed().as_secs_f64() * 1e3));
            // Before looking for more: all of these may be the whole job.
            wait_all(&mut asked, timeout, |a| a.reached(b"stopped"))?;
            pre_copied = asked.iter().filter(|a| copied.contains(&a.proc.pid)).count();
        }
        // Ask every process; once all have stopped, look again for children started
        // meanwhile (their parents are stopped now, so the job is closed). A process
        // that is still starting its program (between exec and the library's
        // handlers) is asked on a later pass; one that ended is seen ended.
        for pass in 0.. {
            let seen = |pid: i32| asked.iter().any(|a| a.proc.pid == pid) || exited.iter().any(|e| e.pid == pid);
            // Only before anything is stopped: a zombie of a stopped job stays one.
            let now = if asked.is_empty() { settled_members(root) } else { members(root) };
            let new: Vec<Proc> = now.into_iter().filter(|p| !seen(p.pid)).collect();
            if new.is_empty() {
                break;
            }
            let mut starting = None;
            let mut asking = vec![];
            for p in new {
                // Ended, not reaped yet: it comes back ended, with its status.
                if p.zombie {
                    exited.push(p);
                    continue;
                }
                if !ready(p.pid) {
                    if control::alive(p.pid) {
                        starting = Some(p);
                    }
                    continue;
                }
                asking.push(p);
            }
            util::debug(|| format!("job: pass {pass}: {} to ask, signalling at {:.1} ms", asking.len(), signalled.elapsed().as_secs_f64() * 1e3));
            asked.extend(ask_each(asking, &parts_base, job_image.as_deref(), Options { held: true, exit: false, pre: false, ..opts }, timeout)?);
            util::debug(|| {
                format!("job: pass {pass}: {} processes asked, {:.1} ms after the first signal", asked.len(), signalled.elapsed().as_secs_f64() * 1e3)
            });
            wait_all(&mut asked, timeout, |a| a.reached(b"stopped"))?;
            util::debug(|| format!("job: pass {pass}: all stopped at {:.1} ms", signalled.elapsed().as_secs_f64() * 1e3));
            if let Some(p) = starting {
                if pass >= 40 {
                    return Err(Fail::new(format!(
                        "process {} ({}) of the job does not run libmig.so (a static or setuid program, or one started without it): the job cannot be saved whole; nothing was saved, the job goes on",
                        p.pid,
                        control::comm(p.pid)
                    )));
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
        let output_len = stopped();
        asked.iter().for_each(|a| a.say(mig_proto::request::GO));
        // One taken while it stayed stopped may give its outcome first.
        wait_all(&mut asked, timeout, |a| a.reached(b"taken") || matches!(a.reply.done(), Some(Done::Ok { .. })))?;
        util::debug(|| format!("job: all taken at {:.1} ms", signalled.elapsed().as_secs_f64() * 1e3));
        // Their descriptors as they are while all are stopped: which are one open file
        // description (by index in the job's table, parents first).
        let tree = members(root);
        for a in asked.iter_mut() {
            a.order = tree.iter().position(|p| p.pid == a.proc.pid).unwrap_or(usize::MAX);
        }
        asked.sort_by_key(|a| a.order);
        let shares = shared_descriptions(&asked);
        // Their writers finish the images while the job runs on; or, for a job that
        // ends once its image is safe, while it stays stopped (it prints nothing more).
        asked.iter().for_each(|a| a.say(if opts.exit { mig_proto::request::WRITE } else { mig_proto::request::RESUME }));
        wait_all(&mut asked, timeout, |a| matches!(a.reply.done(), Some(Done::Ok { .. })))?;
        for a in &asked {
            for w in a.reply.warnings() {
                eprintln!("mig: warning: process {} ({}): {w}", a.proc.pid, control::comm(a.proc.pid));
            }
        }
        let (lost, outward) = leading_out(&asked, opts.exit);
        for w in lost {
            eprintln!("mig: warning: {w}");
        }
        let done = assemble(&asked, &exited, output_len, &shares, &mut dest)?;
        if opts.exit {
            // Its connections to peers outside the job outlive it in `mig hold`, as a
            // process's own do (`checkpoint::held`), until the job's restore.
            let held: Vec<std::os::fd::OwnedFd> = outward.iter().filter_map(|&(pid, fd)| crate::hold::take(pid, fd)).collect();
            // The image is safe: the job ends, every process at once, still stopped.
            for a in &asked {
                // SAFETY: kill(2) of a process of the job, held stopped by its request.
                unsafe { libc::kill(a.proc.pid, libc::SIGKILL) };
            }
            // Gone, their pids free for a restore to take (as far as their parents
            // reap them: a parent outside the job that does not is not waited for long).
            let t0 = Instant::now();
            while asked.iter().any(|a| stat(a.proc.pid).is_some()) && t0.elapsed() < Duration::from_secs(1) {
                std::thread::sleep(Duration::from_millis(2));
            }
            if !held.is_empty() {
                crate::hold::start(root, &held);
            }
        }
        Ok(done)
    })();
    if r.is_err() {
        // Whoever still waits goes on without an image.
        for a in asked.iter_mut() {
            let _ = a.read();
            a.say(if a.reached(b"taken") { mig_proto::request::RESUME } else { mig_proto::request::ABANDON });
        }
    }
    for a in &asked {
        let _ = std::fs::remove_file(&a.part);
    }
    let (bytes, stopped) = r?;
    let path = match dest {
        Dest::File(p) => p,
        _ => PathBuf::from("-"),
    };
    Ok(Outcome { path, bytes, stopped, signalled, processes: asked.len() + exited.len(), pre_copied })
}

/// Asks each of `procs` (signalled first, then each connection taken: they stop at
/// once, not one after the other) to save itself into its part of the job's image; a
/// process that ended meanwhile is left out.
fn ask_each(procs: Vec<Proc>, parts_base: &Path, job: Option<&Path>, opts: Options, timeout: Duration) -> Result<Vec<Asked>> {
    let mut asking = vec![];
    for p in procs {
        match checkpoint::ask(p.pid) {
            Ok(a) => asking.push((p, a)),
            // Ended, or gone into `exec` since it was seen ready (its new program has
            // no library yet): seen again by the next pass, ended or starting.
            Err(_) if !control::alive(p.pid) || !ready(p.pid) => continue,
            Err(e) => return Err(e),
        }
    }
    for (p, a) in asking.iter_mut() {
        if let Err(e) = a.send()
            && control::alive(p.pid)
        {
            return Err(e);
        }
    }
    let mut asked = vec![];
    while !asking.is_empty() {
        let mut i = 0;
        while i < asking.len() {
            let (p, a) = &mut asking[i];
            let conn = match a.answer(Duration::from_millis(1), timeout) {
                Ok(Some(conn)) => conn,
                Ok(None) => {
                    i += 1;
                    continue;
                }
                Err(_) if !control::alive(p.pid) => {
                    asking.swap_remove(i);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let p = *p;
            asking.swap_remove(i);
            let part = part_path(parts_base, p.pid);
            // Held, a process never ends by itself: the command ends the job (`exit`).
            request::send(&conn, &Target::Part { part: &part, job }, opts)?;
            conn.set_nonblocking(true).map_err(|e| Fail::new(format!("{e}")))?;
            asked.push(Asked { order: 0, proc: p, conn, reply: Reply::default(), open: true, part });
        }
    }
    Ok(asked)
}

/// Private memory from which a process of a job pre-copies (the library's own
/// threshold for one process).
const PRE_COPY_MIN: u64 = 64 << 20;

/// The job's large processes (or every one, with `MIG_PRECOPY=1`; none with `=0`),
/// asked to pre-copy: each copier copies, says `copied` once little is left, and copies
/// on meanwhile; once all have, each is told to stop (a process that did not pre-copy
/// after all is stopped already). A process that ends meanwhile is left out.
fn pre_copy(root: i32, parts_base: &Path, job: Option<&Path>, opts: Options, timeout: Duration) -> Result<Vec<Asked>> {
    let wanted = |p: &Proc| {
        let env = control::environ(p.pid).unwrap_or_default();
        match env.iter().find(|(k, _)| k == "MIG_PRECOPY").map(|(_, v)| v.as_str()) {
            Some("0") => false,
            Some("1") => true,
            _ => anon_resident(p.pid) >= PRE_COPY_MIN,
        }
    };
    let big: Vec<Proc> = settled_members(root).into_iter().filter(|p| !p.zombie && ready(p.pid) && wanted(p)).collect();
    if big.is_empty() {
        return Ok(vec![]);
    }
    let mut asked = ask_each(big, parts_base, job, Options { held: true, exit: false, pre: true, ..opts }, timeout)?;
    let deadline = Instant::now() + timeout;
    loop {
        for a in asked.iter_mut() {
            let _ = a.read();
        }
        // Gone while it ran on: its copier reads the end of its connection and gives up.
        asked.retain(|a| a.open || control::alive(a.proc.pid));
        if let Some(why) = asked.iter().find_map(Asked::failed) {
            return Err(Fail::new(why));
        }
        if asked.iter().all(|a| a.reached(b"copied") || a.reached(b"stopped")) {
            break;
        }
        if Instant::now() > deadline {
            return Err(Fail::new(format!("timed out after {} waiting for the job's pre-copy", util::duration(timeout))));
        }
        let mut fds: Vec<libc::pollfd> = asked.iter().map(|a| libc::pollfd { fd: a.conn.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
        // SAFETY: `fds` is a vector of valid pollfds.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 20) };
    }
    asked.iter().filter(|a| a.reached(b"copied")).for_each(|a| a.say(mig_proto::request::STOP));
    Ok(asked)
}

/// A process's private memory resident (`RssAnon`), in bytes.
fn anon_resident(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status.lines().find_map(|l| l.strip_prefix("RssAnon:")).and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok());
    kib.unwrap_or(0) << 10
}

/// What leads out of the job, which a process of it saved as leading to another: pipe
/// ends no process of the job reads (not the standard descriptors, which are the
/// restoring process's own), socket pair ends whose peer no process of it holds, TCP
/// connections to a peer outside the job unless it ends now (`exit`: its processes
/// hold them; else its end later closes them). Also: the (pid, descriptor) of each
/// TCP connection saved whole whose peer is outside the job.
fn leading_out(asked: &[Asked], exit: bool) -> (Vec<String>, Vec<(i32, i32)>) {
    use mig_image::{FdKind, Params, PidfdParams, SocketPairParams, SocketParams, Table};
    let maps: Vec<Option<memmap2::Mmap>> = asked
        .iter()
        // SAFETY: read-only private mappings of the images just written, which only
        // this command renames and removes.
        .map(|a| std::fs::File::open(&a.part).ok().and_then(|f| unsafe { memmap2::Mmap::map(&f) }.ok()))
        .collect();
    let hasher = crc32fast::Hasher::new();
    type Addrs = (Vec<u8>, Vec<u8>);
    /// A record, its path, a TCP connection's (bound, peer) addresses.
    type Saved = (mig_image::FdRecord, String, Option<Addrs>);
    let fds: Vec<(i32, Vec<Saved>)> = asked
        .iter()
        .zip(&maps)
        .filter_map(|(a, m)| {
            let img = mig_image::Image::open(m.as_ref()?, &hasher).ok()?;
            let connection = |f: &mig_image::FdRecord| SocketParams::connection(f, img.str(f.extra)).map(|(b, p)| (b.to_vec(), p.to_vec()));
            let recs = (0..img.count(Table::Fds))
                .map(|i| img.fd(i))
                .filter(|f| f.dup_of < 0)
                .map(|f| (f, String::from_utf8_lossy(img.str(f.file.path)).into_owned(), connection(&f)));
            Some((a.proc.pid, recs.collect()))
        })
        .collect();
    let all = || fds.iter().flat_map(|(_, r)| r.iter().map(|(f, _, _)| f));
    let connected = |(bound, peer): &Addrs| {
        fds.iter().flat_map(|(_, r)| r.iter()).any(|(_, _, c)| c.as_ref().is_some_and(|(b, p)| SocketParams::ends_of_one((bound, peer), (b, p))))
    };
    let reads = |f: &mig_image::FdRecord| f.flags & libc::O_ACCMODE as u32 != libc::O_WRONLY as u32;
    let mut out = vec![];
    let mut outward = vec![];
    for (pid, recs) in &fds {
        for (f, path, addrs) in recs {
            if f.kind == FdKind::Socket as u32 && f.data_len > 0 && addrs.as_ref().is_some_and(|a| !connected(a)) {
                outward.push((*pid, f.fd));
            }
            let lost = match FdKind::from_u32(f.kind) {
                Some(FdKind::Socket) if !exit && addrs.as_ref().is_some_and(|a| !connected(a)) => {
                    "its TCP connection is saved whole, but its peer sees it closed when the job ends, and a restored one is then reset"
                }
                Some(FdKind::Pipe) if f.fd > 2 && !all().any(|o| o.kind == f.kind && o.file.ino == f.file.ino && reads(o)) => {
                    "its reader is outside the job; it comes back as a broken pipe end"
                }
                Some(FdKind::SocketPair) if !all().any(|o| o.kind == f.kind && o.file.ino == SocketPairParams::decode(&f.params).peer_ino) => {
                    "it is connected outside the job; it comes back as a connection reset by the peer"
                }
                Some(FdKind::Pidfd)
                    if PidfdParams::decode(&f.params).of == mig_image::PIDFD_JOB
                        && !fds.iter().any(|(p, _)| *p as u32 == PidfdParams::decode(&f.params).pid) =>
                {
                    "it is a pidfd of a process outside the job; it comes back as a broken pipe end"
                }
                _ => continue,
            };
            out.push(format!("process {pid} ({}): descriptor {} ({path}): {lost}", control::comm(*pid), f.fd));
        }
    }
    (out, outward)
}

/// The descriptors of two processes of the job or more that are one open file
/// description (a file, a listening socket, an eventfd... inherited across `fork`),
/// compared with `kcmp` while every process is stopped; not the standard descriptors
/// (the restoring process's). The restore makes those of the kinds it can once
/// (`FdKind::made_once_for_a_job`; pipes and socket pairs are the job's by inode).
fn shared_descriptions(asked: &[Asked]) -> Vec<Share> {
    use std::os::unix::fs::MetadataExt;
    /// A descriptor: (member, pid, fd).
    type Held = (u32, i32, i32);
    let mut by_file: std::collections::HashMap<(u64, u64), Vec<Held>> = Default::default();
    for (k, a) in asked.iter().enumerate() {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{}/fd", a.proc.pid)) else { continue };
        for e in dir.flatten() {
            let Some(fd) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()).filter(|&fd| fd > 2) else { continue };
            if let Ok(m) = std::fs::metadata(e.path()) {
                by_file.entry((m.dev(), m.ino())).or_default().push((k as u32, a.proc.pid, fd));
            }
        }
    }
    let mut shares = Vec::new();
    let mut group = 0;
    for mut fds in by_file.into_values().filter(|v| v.iter().any(|e| e.0 != v[0].0)) {
        while let Some((member, pid, fd)) = fds.pop() {
            // SAFETY: kcmp(2) with plain integers.
            let same = |&(_, p, f): &Held| unsafe { libc::syscall(libc::SYS_kcmp, pid, p, 0 /* KCMP_FILE */, fd, f) } == 0;
            let (with, rest): (Vec<_>, Vec<_>) = fds.into_iter().partition(|e| same(e));
            fds = rest;
            if with.iter().any(|e| e.0 != member) {
                shares.push(Share { group, member, fd, pad: 0 });
                shares.extend(with.iter().map(|&(m, _, f)| Share { group, member: m, fd: f, pad: 0 }));
                group += 1;
            }
        }
    }
    shares
}

/// Waits until every process asked is `there` (what it said so far), or one failed.
fn wait_all(asked: &mut Vec<Asked>, timeout: Duration, there: impl Fn(&Asked) -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        for a in asked.iter_mut() {
            a.read()?;
        }
        // A process that ended by itself before it stopped (a pipeline's `sleep`) is not
        // in the job any more: a later pass sees it ended, if its parent has not reaped
        // it.
        asked.retain(|a| {
            let ended = !a.open && a.reply.done().is_none() && !a.reached(b"stopped") && !a.reached(b"taken") && !control::alive(a.proc.pid);
            if ended {
                let _ = std::fs::remove_file(&a.part);
            }
            !ended
        });
        if let Some(why) = asked.iter().find_map(Asked::failed) {
            return Err(Fail::new(why));
        }
        if asked.iter().all(&there) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let late = asked.iter().find(|a| !there(a)).map_or(0, |a| a.proc.pid);
            return Err(Fail::new(format!("timed out after {} waiting for process {late} of the job", util::duration(timeout))));
        }
        let mut fds: Vec<libc::pollfd> = asked.iter().map(|a| libc::pollfd { fd: a.conn.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
        // SAFETY: `fds` is a vector of valid pollfds.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 20) };
    }
}

/// Whether `pid` runs the library with its handlers in place (a process between exec
/// and the library's constructor would die of the signal).
fn ready(pid: i32) -> bool {
    control::runs_library(pid) && crate::reach::published(pid).is_some_and(|p| p.entry != 0)
}

/// Where process `pid` writes its image, beside the job's.
fn part_path(dest: &Path, pid: i32) -> PathBuf {
    let mut p = dest.as_os_str().to_os_string();
    p.push(format!(".{pid}.part"));
    PathBuf::from(p)
}

/// The job's image from its processes' images: a file written aside, synced, renamed;
/// or a stream. Returns its size and the longest pause.
fn assemble(asked: &[Asked], exited: &[Proc], output_len: Option<u64>, shares: &[Share], dest: &mut Dest<'_>) -> Result<(u64, Duration)> {
    let mut members = Vec::new();
    let mut off = PAGE;
    let mut stopped = Duration::ZERO;
    for a in asked {
        let Some(Done::Ok { path, bytes, stopped_us }) = a.reply.done() else { unreachable!("checked") };
        if path != a.part {
            return Err(Fail::new(format!("process {} wrote its image to {}, not where it was asked", a.proc.pid, path.display())));
        }
        stopped = stopped.max(Duration::from_micros(stopped_us));
        let p = a.proc;
        members.push(Member { pid: p.pid as u32, ppid: p.ppid as u32, pgid: p.pgid as u32, sid: p.sid as u32, off, len: bytes, ..Default::default() });
        off = (off + bytes).next_multiple_of(PAGE);
    }
    // After every process that runs: their parents come first.
    for p in exited {
        let (pid, ppid, pgid, sid) = (p.pid as u32, p.ppid as u32, p.pgid as u32, p.sid as u32);
        members.push(Member { pid, ppid, pgid, sid, state: mig_image::tree::MEMBER_EXITED, status: p.exit_code, ..Default::default() });
    }
    let shares_off = members.iter().map(|m| m.off + m.len).max().unwrap_or(PAGE).max(PAGE);
    let header = TreeHeader::new(&members, output_len, shares, shares_off, &crc32fast::Hasher::new())
        .ok_or_else(|| Fail::new(format!("a job of {} processes is more than an image holds", members.len())))?;
    let table: Vec<u8> = shares.iter().flat_map(|sh| mig_image::bytes_of(sh).to_vec()).collect();
    let total = shares_off + table.len() as u64;
    let parts = || asked.iter().zip(&members).map(|(a, m)| std::fs::File::open(&a.part).map(|f| (f, m)));
    match dest {
        Dest::Stream(w) => {
            let err = |e: std::io::Error| Fail::new(format!("streaming the job's image: {e}"));
            w.write_all(mig_image::bytes_of(&header)).map_err(err)?;
            let mut at = PAGE;
            for part in parts() {
                let (f, m) = part.map_err(err)?;
                std::io::copy(&mut std::io::repeat(0).take(m.off - at), w).map_err(err)?;
                if std::io::copy(&mut f.take(m.len), w).map_err(err)? != m.len {
                    return Err(err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "a process's image is shorter than it said")));
                }
                at = m.off + m.len;
            }
            std::io::copy(&mut std::io::repeat(0).take(shares_off - at), w).map_err(err)?;
            w.write_all(&table).map_err(err)?;
            w.flush().map_err(err)?;
            Ok((total, stopped))
        }
        Dest::File(dest) => {
            let (tmp, file) = util::create_beside(dest)?;
            let r = (|| {
                let err = |e: std::io::Error| Fail::new(format!("writing the job's image {}: {e}", tmp.display()));
                use std::os::unix::fs::FileExt;
                file.write_all_at(mig_image::bytes_of(&header), 0).map_err(err)?;
                for part in parts() {
                    let (f, m) = part.map_err(err)?;
                    copy_range(&f, &file, m.off, m.len).map_err(err)?;
                }
                file.write_all_at(&table, shares_off).map_err(err)?;
                file.set_len(total).map_err(err)?;
                file.sync_all().map_err(err)?;
                std::fs::rename(&tmp, &*dest).map_err(|e| Fail::new(format!("cannot rename {} to {}: {e}", tmp.display(), dest.display())))?;
                if let Some(dir) = dest.parent()
                    && let Ok(d) = std::fs::File::open(dir)
                {
                    let _ = d.sync_all();
                }
                Ok((total, stopped))
            })();
            if r.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            r
        }
        Dest::Own => unreachable!("resolved"),
    }
}

/// `len` bytes of `from` (from its start) into `to` at `at`, in the kernel.
fn copy_range(from: &std::fs::File, to: &std::fs::File, at: u64, len: u64) -> std::io::Result<()> {
    let (mut src, mut dst) = (0i64, at as i64);
    while (src as u64) < len {
        // SAFETY: copy_file_range between two descriptors we own, with offsets we own.
        let n = unsafe { libc::copy_file_range(from.as_raw_fd(), &mut src, to.as_raw_fd(), &mut dst, (len - src as u64) as usize, 0) };
        match n {
            0 => return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "a process's image is shorter than it said")),
            n if n < 0 => return Err(std::io::Error::last_os_error()),
            _ => {}
        }
    }
    Ok(())
}

/// The root of the job `pid` belongs to: its farthest ancestor that runs the library
/// with the same `MIG_IMAGE` (as the library's own `job_root` decides, a level at a time).
pub fn root_of(pid: i32) -> i32 {
    let image = |p: i32| control::environ(p).and_then(|e| e.into_iter().find(|(k, v)| k == mig_proto::env::IMAGE && !v.is_empty()).map(|(_, v)| v));
    let mut at = pid;
    while let Some(parent) = stat(at).map(|s| s.ppid).filter(|&p| p > 1)
        && let Some(mine) = image(at)
        && image(parent).as_ref() == Some(&mine)
        && control::runs_library(parent)
    {
        at = parent;
    }
    at
}
