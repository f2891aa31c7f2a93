//! Restore, descriptors (normal code, before anything is replaced): the plan. Every
//! saved descriptor is made again by its kind's restore side (`mig_checkpoint::kinds`)
//! at a number above all saved ones; copies (`dup`) share what their original made;
//! memory files are shared with the mappings (`objects`). The blob then only moves
//! them onto their saved numbers (`dup3`) and does what needs those numbers (epoll
//! registrations) or must wait for the point of no return (terminal modes).

use mig_checkpoint::kinds::{self, Shared, epoll, lock, memfd, os::isatty, socketpair};
use mig_image::*;
use std::collections::HashMap;

pub use mig_checkpoint::kinds::os::{Expect, open_expecting, open_raw, raise_fd};

/// Descriptors ready to be placed, and what follows placement.
#[derive(Default)]
pub struct FdPlan {
    /// (prepared descriptor, saved number, close-on-exec).
    pub place: Vec<(i32, i32, bool)>,
    /// Memory shared through a file (memfd, `/dev/shm`, deleted file), read-write, by
    /// (dev, ino) as saved: what `SharedObject` regions map.
    pub objects: HashMap<(u64, u64), i32>,
    /// Those of `objects` the job's root made with their contents: not read in again.
    pub filled: std::collections::HashSet<(u64, u64)>,
    /// (epoll descriptor's saved number, registration).
    pub epoll: Vec<(i32, EpollEntry)>,
    /// (saved number, kernel `struct termios`) to apply to a terminal.
    pub termios: Vec<(i32, Vec<u8>)>,
    /// (saved number, lock) to take again once every descriptor is placed.
    pub locks: Vec<(i32, LockEntry)>,
    /// Files to write back as they were, at the point of no return.
    pub put_back: Vec<kinds::file::PutBack>,
    /// The inotify instances made, whose queues the write-backs must not fill.
    pub inotify: Vec<i32>,
}

impl FdPlan {
    /// Writes back the files set aside (`kinds::file::commit`), and reads away the
    /// inotify events that caused.
    pub fn commit(&self) {
        if self.put_back.is_empty() {
            return;
        }
        kinds::file::commit(&self.put_back);
        self.inotify.iter().for_each(|&fd| kinds::inotify::drain(fd));
    }
}

/// Whether `img` has a TCP connection saved whole (repair mode).
pub fn saves_a_connection(img: &Image) -> bool {
    (0..img.count(Table::Fds)).map(|i| img.fd(i)).any(|f| f.kind == FdKind::Socket as u32 && SocketParams::decode(&f.params).is_connection() && f.data_len > 0)
}

/// Makes every saved descriptor again, above `base`. Fails with the reason a restore
/// has to be refused; what can only be approximated is said in a warning. For a
/// process of a job, `job` is what its processes share, made once for all of them
/// (`restore::job`); a pipe end not among its pipes led out of the job.
pub fn prepare(img: &Image, base: i32, job: Option<&super::job::Shared>) -> Result<FdPlan, String> {
    let mut records: Vec<FdRecord> = (0..img.count(Table::Fds)).map(|i| img.fd(i)).collect();
    let job_pipes = job.map(|j| &j.pipes);
    if let Some(jp) = job_pipes {
        // A standard descriptor stays the restoring process's own (as `mig restart`'s
        // are), others come back broken, as a pipe end of a single process's does.
        records.retain(|f| !(f.fd <= 2 && f.kind == FdKind::Pipe as u32 && !jp.contains_key(&f.file.ino)));
        for f in records.iter_mut().filter(|f| f.kind == FdKind::Pipe as u32 && !jp.contains_key(&f.file.ino)) {
            f.kind = FdKind::Unsupported as u32;
        }
    }
    if let Some(j) = job {
        // A FIFO's bytes saved with an end the job's root made put back there.
        for f in records.iter_mut().filter(|f| f.kind == FdKind::Fifo as u32 && j.my_files.contains_key(&f.fd)) {
            f.data_len = 0;
        }
        // A socket pair end between two processes of the job has its queue back (the
        // root put it); one whose peer is in neither this process nor the job is reset.
        let inos: Vec<u64> = records.iter().filter(|f| f.kind == FdKind::SocketPair as u32).map(|f| f.file.ino).collect();
        for f in records.iter_mut().filter(|f| f.kind == FdKind::SocketPair as u32) {
            let peer = SocketPairParams::decode(&f.params).peer_ino;
            if j.ends.contains_key(&f.file.ino) {
                f.data_len = 0;
            } else if !inos.contains(&peer) {
                f.kind = FdKind::Reset as u32;
            }
        }
    }
    let mut cx = Shared::new(img, &records, base);
    if let Some(j) = job {
        cx.pipes.extend(j.pipes.iter().map(|(&ino, &ends)| (ino, ends)));
        cx.objects.extend(j.memory.iter().map(|(&key, &fd)| (key, fd)));
        cx.ends.extend(j.ends.iter().map(|(&ino, &fd)| (ino, fd)));
        cx.ptys.extend(j.ptys.iter().map(|(&index, &fd)| (index, fd)));
        cx.job_pids.clone_from(&j.pids);
    }
    let needed = in_flight_needed(img, &records);
    if job.is_none() && saves_a_connection(img) {
        super::held::release(img.header.pid);
    }
    let mut plan = FdPlan::default();
    let mut made: HashMap<i32, i32> = HashMap::new();
    // Descriptors made only to be sent in flight, closed once the queues are back.
    let mut carried = vec![];
    // TCP connections, in repair mode until every descriptor is made.
    let mut connections = vec![];
    for f in &records {
        if f.in_flight == 1 && !needed.contains(&f.fd) {
            continue;
        }
        let what = |why: String| format!("descriptor {} ({}): {why}", f.fd, String::from_utf8_lossy(img.str(f.file.path)));
        let job_pipe = job_pipes.is_some() && f.kind == FdKind::Pipe as u32;
        // A standard descriptor on a pseudo-terminal of the job's (`forkpty`) is one
        // of its ends again.
        let job_pty = f.kind == FdKind::Tty as u32 && job.is_some_and(|j| j.ptys.contains_key(&TtyParams::decode(&f.params).index));
        if f.fd <= 2 && !job_pipe && !job_pty {
            // A terminal on a standard descriptor: the restoring process's own one
            // stays, and gets the saved modes if it is a terminal too.
            if isatty(f.fd) {
                made.insert(f.fd, f.fd);
                plan.termios.push((f.fd, img.str(f.extra).to_vec()));
            }
            continue;
        }
        let fd = match made.get(&f.dup_of) {
            Some(&original) => original,
            None => {
                // One open file description with descriptors of other processes of the
                // job: the one the root opened.
                let once = FdKind::from_u32(f.kind).is_some_and(FdKind::made_once_for_a_job);
                let socket = f.kind == FdKind::Socket as u32;
                let connection = socket && SocketParams::decode(&f.params).is_connection();
                // Or a TCP socket the root made (`job::make_sockets`).
                let shared = job.and_then(|j| j.my_files.get(&f.fd).filter(|_| once).or_else(|| j.sockets.get(&f.file.ino).filter(|_| socket)));
                let fd = match shared {
                    Some(&shared) => kinds::os::dup(shared).map_err(|e| what(format!("cannot take the job's shared descriptor: {e}")))?,
                    None => kinds::restore(f, &mut cx).map_err(|e| what(e.to_string()))?,
                };
                let fd = raise_fd(fd, base)?;
                if connection {
                    connections.push((fd, f));
                }
                if f.in_flight == 1 {
                    made.insert(f.fd, fd);
                    carried.push(fd);
                    continue;
                }
                if f.kind == FdKind::Inotify as u32 {
                    plan.inotify.push(fd);
                }
                if f.kind == FdKind::Tty as u32 && isatty(fd) {
                    plan.termios.push((f.fd, img.str(f.extra).to_vec()));
                }
                if let Some(kind) = FdKind::from_u32(f.kind).filter(|k| k.holds_locks()) {
                    for l in img.records::<LockEntry>(kind.split_extra(f).0) {
                        if l.kind == LOCK_LEASE {
                            match lock::lease_free(fd, &l) {
                                Ok(()) => plan.locks.push((f.fd, l)),
                                Err(e) => eprintln!("mig: warning: {}", what(format!("its lease cannot be taken again ({e}); it comes back without it"))),
                            }
                            continue;
                        }
                        lock::check(fd, &l).map_err(|held| what(refusal(&l, held)))?;
                        plan.locks.push((f.fd, l));
                    }
                }
                fd
            }
        };
        made.insert(f.fd, fd);
        if f.in_flight == 0 {
            plan.place.push((fd, f.fd, f.fd_flags & libc::FD_CLOEXEC as u32 != 0));
        }
    }
    for (fd, f) in connections {
        kinds::tcp::finish(fd, f, img.data(f.data_off, f.data_len));
    }
    take_controlling_terminal(img, &cx);
    socketpair::fill(&cx, &|saved| made.get(&saved).copied())?;
    carried.into_iter().for_each(kinds::os::close);
    epoll::dry_run(&cx.epoll, &made)?;
    cx.close_scaffolding();
    memfd::shared_objects(&mut cx)?;
    plan.objects = std::mem::take(&mut cx.objects);
    plan.filled = job.map(|j| j.memory.keys().copied().collect()).unwrap_or_default();
    plan.epoll = std::mem::take(&mut cx.epoll);
    plan.put_back = std::mem::take(&mut cx.pending);
    Ok(plan)
}

/// A session leader whose controlling terminal was a pseudo-terminal made again for
/// it (its own pair, or its job's: `forkpty`) takes that one's slave again; its group
/// is then the terminal's foreground group, as `TIOCSCTTY` leaves it.
fn take_controlling_terminal(img: &Image, cx: &kinds::Shared) {
    let ctty = img.process().ctty as u64;
    // The kernel's encoding of a device number in `tty_nr`.
    let (major, minor) = ((ctty >> 8) & 0xfff, (ctty & 0xff) | ((ctty >> 12) & 0xfff00));
    let Some(&master) = (136..=143).contains(&major).then(|| cx.ptys.get(&(((major - 136) * 256 + minor) as u32))).flatten() else { return };
    if let Err(e) = kinds::tty::take_controlling(master) {
        eprintln!("mig: warning: its controlling terminal cannot be taken again: {e}");
    }
}

/// The descriptors in flight this process sends again: those the queues it fills
/// carry, and the earlier ones in flight those are copies of.
pub fn in_flight_needed(img: &Image, records: &[FdRecord]) -> std::collections::HashSet<i32> {
    let mut needed = std::collections::HashSet::new();
    for f in records.iter().filter(|f| f.kind == FdKind::SocketPair as u32 && f.data_len > 0 && SocketPairParams::decode(&f.params).rights == 1) {
        let mut rest = img.data(f.data_off, f.data_len);
        while let Some((_, numbers, taken)) = Queue::message(rest) {
            needed.extend(numbers.chunks_exact(4).filter_map(|b| b.try_into().ok()).map(i32::from_le_bytes));
            rest = rest.get(taken..).unwrap_or_default();
        }
    }
    // Copies come after their originals.
    for f in records.iter().rev().filter(|f| f.in_flight == 1 && f.dup_of >= 0) {
        if needed.contains(&f.fd) {
            needed.insert(f.dup_of);
        }
    }
    needed
}

/// Why lock `l` cannot be taken again.
fn refusal(l: &LockEntry, held: lock::Held) -> String {
    let kind = match l.kind {
        LOCK_FLOCK => "flock",
        LOCK_OFD => "open file description",
        _ => "POSIX",
    };
    let mode = if l.write == 1 { "write" } else { "read" };
    let who = match held {
        lock::Held::By(pid) => format!("process {pid}"),
        lock::Held::Unnamed => "another open file description".into(),
    };
    let range = match (l.kind, l.len) {
        (LOCK_FLOCK, _) => String::new(),
        (_, 0) => format!(" on bytes {} to the end", l.start),
        (_, n) => format!(" on bytes {}..{}", l.start, l.start + n),
    };
    format!("it held a {kind} {mode} lock{range}, and {who} holds one in its way now")
}
