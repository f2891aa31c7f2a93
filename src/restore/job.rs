//! Restore of one process of a job's image (`mig_image::tree`), before its own restore:
//! what the job's processes share (pipes, memory) made once, the process's children
//! started.
//!
//! `mig restart` execs the root's executable with `MIG_RESTORE=<job image>`. The root
//! makes every pipe that has a reader in the job (with the bytes it held), every socket
//! pair between two of its processes (with their queues) and every memory object two
//! of its processes map (anonymous shared memory, memfds), and keeps
//! them open across exec; each process then starts its children (`clone3` with their
//! saved pids where it may, else `fork`), puts each in its saved session and group and
//! execs its executable with `MIG_RESTORE_MEMBER=<index>` and the objects' numbers
//! (`MIG_RESTORE_SHARED`); then it restores itself from its part of the file, taking
//! its pipe ends and shared memory from those. The descriptors it does not use are
//! closed by its restore.
#![allow(unsafe_code)]

use mig_image::tree::{Member, TreeHeader, is_tree};
use mig_image::{FdKind, FdRecord, Image, Params, PipeParams, REGION_DATA_IN_FD, REGION_DELETED, RegionKind, SocketPairParams, SocketParams, Table};
use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Which process of the job this is (index in the job's table; 0, the root, if unset).
const MEMBER: &str = "MIG_RESTORE_MEMBER";
/// What the job's processes share, inherited (`Shared::encode`).
const SHARED: &str = "MIG_RESTORE_SHARED";

/// This process's part of a job's image.
pub struct Part {
    pub off: u64,
    pub len: u64,
    pub shared: Shared,
}

/// What the job's processes share, made once by its root; descriptors open in every
/// process of the job.
#[derive(Default)]
pub struct Shared {
    /// Pipes by saved inode: read and write ends.
    pub pipes: HashMap<u64, [i32; 2]>,
    /// Memory objects mapped by two processes or more, by saved (dev, ino).
    pub memory: HashMap<(u64, u64), i32>,
    /// Socket pairs between two processes, by each end's saved inode: the ends, their
    /// queues already put back.
    pub ends: HashMap<u64, i32>,
    /// Open file descriptions two processes or more hold (`tree::Share`), by group.
    pub files: HashMap<u32, i32>,
    /// This process's descriptors that are one of `files`: saved number -> shared one.
    pub my_files: HashMap<i32, i32>,
    /// System V segments, found or made again with their contents: saved id -> id.
    pub sysv: HashMap<u64, i32>,
    /// Pseudo-terminals whose master one process holds and whose slave another: the
    /// new master, by saved number.
    pub ptys: HashMap<u32, i32>,
    /// TCP connections between two processes of the job, and the job's TCP listeners
    /// then, by saved inode.
    pub sockets: HashMap<u64, i32>,
    /// The pids of the job's processes, as saved (each process reads them from the
    /// image's table; not passed on).
    pub pids: Vec<u32>,
}

impl Shared {
    /// `p:ino:read:write`, `m:dev:ino:fd`, `s:ino:fd:0`, `f:group:fd:0`,
    /// `v:saved:id:0`, `t:index:fd:0` and `c:ino:fd:0`, comma-separated.
    fn encode(&self) -> String {
        let pipes = self.pipes.iter().map(|(ino, [r, w])| format!("p:{ino}:{r}:{w}"));
        let memory = self.memory.iter().map(|((dev, ino), fd)| format!("m:{dev}:{ino}:{fd}"));
        let ends = self.ends.iter().map(|(ino, fd)| format!("s:{ino}:{fd}:0"));
        let files = self.files.iter().map(|(group, fd)| format!("f:{group}:{fd}:0"));
        let sysv = self.sysv.iter().map(|(saved, id)| format!("v:{saved}:{id}:0"));
        let ptys = self.ptys.iter().map(|(index, fd)| format!("t:{index}:{fd}:0"));
        let sockets = self.sockets.iter().map(|(ino, fd)| format!("c:{ino}:{fd}:0"));
        pipes.chain(memory).chain(ends).chain(files).chain(sysv).chain(ptys).chain(sockets).collect::<Vec<_>>().join(",")
    }

    fn decode(v: &str) -> Shared {
        let mut s = Shared::default();
        for e in v.split(',') {
            let f: Vec<&str> = e.split(':').collect();
            let n = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok());
            match (f.first(), n(1), n(2), n(3)) {
                (Some(&"p"), Some(ino), Some(r), Some(w)) => {
                    s.pipes.insert(ino, [r as i32, w as i32]);
                }
                (Some(&"m"), Some(dev), Some(ino), Some(fd)) => {
                    s.memory.insert((dev, ino), fd as i32);
                }
                (Some(&"s"), Some(ino), Some(fd), _) => {
                    s.ends.insert(ino, fd as i32);
                }
                (Some(&"f"), Some(group), Some(fd), _) => {
                    s.files.insert(group as u32, fd as i32);
                }
                (Some(&"v"), Some(saved), Some(id), _) => {
                    s.sysv.insert(saved, id as i32);
                }
                (Some(&"t"), Some(index), Some(fd), _) => {
                    s.ptys.insert(index as u32, fd as i32);
                }
                (Some(&"c"), Some(ino), Some(fd), _) => {
                    s.sockets.insert(ino, fd as i32);
                }
                _ => {}
            }
        }
        s
    }
}

/// The part of `image` this process restores, its children started; `None` if
/// `image` is the image of one process.
pub fn start(image: &Path) -> Result<Option<Part>, String> {
    let file = std::fs::File::open(image).map_err(|e| format!("cannot open it: {e}"))?;
    // SAFETY: read-only private mapping of an image, replaced only by rename.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("cannot map it: {e}"))?;
    if !is_tree(&map) {
        return Ok(None);
    }
    let hasher = crc32fast::Hasher::new();
    let header = TreeHeader::read(&map, &hasher).map_err(|e| e.to_string())?;
    let members = header.members();
    let index: usize = std::env::var(MEMBER).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let me = *members.get(index).ok_or_else(|| format!("the job has no process {index}"))?;
    let images: Vec<Option<Image>> = members
        .iter()
        .map(|m| match m.exited() {
            true => Ok(None),
            false => Image::open(&map[m.off as usize..(m.off + m.len) as usize], &hasher).map(Some).map_err(|e| format!("process {} of the job: {e}", m.pid)),
        })
        .collect::<Result<_, _>>()?;
    let shares: Vec<mig_image::tree::Share> = header.shares(&map).collect();
    let mut shared = match std::env::var(SHARED) {
        Ok(v) => Shared::decode(&v),
        Err(_) => {
            let all: Vec<&Image> = images.iter().flatten().collect();
            // Connections `mig hold` keeps for the job (`--exit`) go first: the job's
            // processes make them again.
            if all.iter().any(|img| super::fds::saves_a_connection(img)) {
                super::held::release(me.pid);
            }
            let files = make_files(&images, &shares)?;
            Shared {
                pipes: make_pipes(&all)?,
                memory: make_memory(&all)?,
                ends: make_socket_pairs(&images, &|k, fd| {
                    shares.iter().find(|sh| (sh.member as usize, sh.fd) == (k, fd)).and_then(|sh| files.get(&sh.group).copied())
                })?,
                files,
                my_files: HashMap::new(),
                // Made for the whole job: kept even if a process's restore is refused.
                sysv: super::sysv::make(&all)?.keep(),
                ptys: make_ptys(&all)?,
                sockets: make_sockets(&images, &shares)?,
                pids: Vec::new(),
            }
        }
    };
    let listed = shared.encode();
    shared.pids = members.iter().map(|m| m.pid).collect();
    shared.my_files = shares.iter().filter(|sh| sh.member as usize == index).filter_map(|sh| Some((sh.fd, *shared.files.get(&sh.group)?))).collect();
    let mut ended = Vec::new();
    for (k, child) in members.iter().enumerate().filter(|(_, m)| m.ppid == me.pid && m.pid != me.pid) {
        match &images[k] {
            Some(img) => spawn(child, k, img.str(img.process().exe.path), img.str(img.process().cwd), &listed)?,
            None => ended.push(spawn_ended(child)?),
        }
    }
    settle(&ended);
    Ok(Some(Part { off: me.off, len: me.len, shared }))
}

/// The open file descriptions two processes of the job or more hold, each made once
/// as the process first in the job's table had it (a file with its flags and offset, a
/// listening socket bound once, an eventfd with its count...: `made_once_for_a_job`). A file whose
/// contents the image carries is put back here, before any process of the job can run
/// on (each one's own restore would put it back when it runs on, under the others).
fn make_files(images: &[Option<Image>], shares: &[mig_image::tree::Share]) -> Result<HashMap<u32, i32>, String> {
    use mig_checkpoint::kinds;
    let mut files = HashMap::new();
    let mut owners: Vec<&mig_image::tree::Share> = shares.iter().collect();
    owners.sort_by_key(|sh| (sh.group, sh.member));
    owners.dedup_by_key(|sh| sh.group);
    for sh in owners {
        let Some(img) = images.get(sh.member as usize).and_then(Option::as_ref) else { continue };
        // The bytes a FIFO held are put back by whoever makes the end that saved them
        // (here only if it is this one).
        let records: Vec<FdRecord> = (0..img.count(Table::Fds))
            .map(|i| img.fd(i))
            .map(|mut r| {
                if r.kind == FdKind::Fifo as u32 && r.fd != sh.fd {
                    r.data_len = 0;
                }
                r
            })
            .collect();
        let once = |f: &&FdRecord| FdKind::from_u32(f.kind).is_some_and(FdKind::made_once_for_a_job);
        let Some(f) = records.iter().find(|f| f.fd == sh.fd && f.dup_of < 0).filter(once) else { continue };
        let mut cx = kinds::Shared::new(img, &records, 0);
        let fd = kinds::restore(f, &mut cx)
            .map_err(|e| format!("descriptor {} ({}) of the job's processes: {e}", f.fd, String::from_utf8_lossy(img.str(f.file.path))))?;
        kinds::file::commit(&cx.pending);
        for b in &cx.pending {
            kinds::os::close(b.fd);
        }
        // The ends a FIFO was opened through: held by every process, a reader would
        // never see its writers gone.
        cx.close_scaffolding();
        // SAFETY: fcntl on the descriptor just made: it stays open across exec for the
        // job's processes.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        files.insert(sh.group, fd);
    }
    Ok(files)
}

/// Socket pairs whose ends are in two processes of the job, made once, each end's
/// queue sent again from its peer and the ends shut down as they were (by
/// `socketpair::fill`, as for a pair within one process). A pair within one process is
/// that process's to make; an end whose peer was outside the job comes back reset.
/// `job_file(k, fd)` is the description made once for the job that process `k`'s `fd`
/// is, if it is one.
fn make_socket_pairs(images: &[Option<Image>], job_file: &dyn Fn(usize, i32) -> Option<i32>) -> Result<HashMap<u64, i32>, String> {
    let images: Vec<(usize, &Image)> = images.iter().enumerate().filter_map(|(k, i)| Some((k, i.as_ref()?))).collect();
    let records = |img: &Image| -> Vec<FdRecord> {
        (0..img.count(Table::Fds)).map(|i| img.fd(i)).filter(|f| f.kind == FdKind::SocketPair as u32 && f.dup_of < 0).collect()
    };
    let mut owner: HashMap<u64, usize> = HashMap::new();
    for &(k, img) in &images {
        owner.extend(records(img).iter().map(|f| (f.file.ino, k)));
    }
    let mut ends: HashMap<u64, i32> = HashMap::new();
    for &(k, img) in &images {
        for f in records(img) {
            let p = SocketPairParams::decode(&f.params);
            if ends.contains_key(&f.file.ino) || owner.get(&p.peer_ino).is_none_or(|&o| o == k) {
                continue;
            }
            let mut sv = [0i32; 2];
            // SAFETY: `sv` is a valid out-array; no SOCK_CLOEXEC: the job inherits them.
            if unsafe { libc::socketpair(p.domain, p.ty, 0, sv.as_mut_ptr()) } != 0 {
                return Err(format!("cannot make the job's socket pairs: {}", std::io::Error::last_os_error()));
            }
            ends.insert(f.file.ino, sv[0]);
            ends.insert(p.peer_ino, sv[1]);
        }
    }
    for &(k, img) in &images {
        let shared: Vec<FdRecord> = records(img).into_iter().filter(|f| ends.contains_key(&f.file.ino)).collect();
        let all: Vec<FdRecord> = (0..img.count(Table::Fds)).map(|i| img.fd(i)).collect();
        let mut maker = mig_checkpoint::kinds::Shared::new(img, &all, 0);
        // An end in flight of a pair of the job's is that pair's end.
        maker.ends = ends.clone();
        let carried = make_in_flight(img, &shared, &all, &mut maker, &|fd| job_file(k, fd));
        maker.ends.retain(|ino, _| !ends.contains_key(ino));
        let mut cx = mig_checkpoint::kinds::Shared::new(img, &shared, 0);
        cx.ends = ends.clone();
        let filled = carried.as_ref().map_err(Clone::clone).and_then(|c| mig_checkpoint::kinds::socketpair::fill(&cx, &|saved| c.get(&saved).copied()));
        if let Ok(c) = &carried {
            let fds: std::collections::HashSet<i32> = c.values().copied().collect();
            fds.into_iter().for_each(mig_checkpoint::kinds::os::close);
        }
        maker.close_scaffolding();
        filled?;
    }
    Ok(ends)
}

/// TCP connections between two processes of the job (an end in one whose addresses,
/// crossed, are an end's in another), both ends made here in repair mode and taken
/// out of it once every one is made: an end's window probe would find its peer, not
/// a port nobody holds yet (which answers with a reset). The job's TCP listeners are
/// made here first (those two processes share were made with the job's files): bound
/// after a connection on its port has left repair mode, a listener would find the
/// port taken. Inherited by every process, each takes its own by its saved inode.
fn make_sockets(images: &[Option<Image>], shares: &[mig_image::tree::Share]) -> Result<HashMap<u64, i32>, String> {
    let images: Vec<(usize, &Image)> = images.iter().enumerate().filter_map(|(k, i)| Some((k, i.as_ref()?))).collect();
    let sockets = |img: &Image, want: &dyn Fn(&SocketParams) -> bool| -> Vec<FdRecord> {
        (0..img.count(Table::Fds))
            .map(|i| img.fd(i))
            .filter(|f| f.kind == FdKind::Socket as u32 && f.dup_of < 0 && f.in_flight == 0 && want(&SocketParams::decode(&f.params)))
            .collect()
    };
    let connection = |p: &SocketParams| p.is_connection();
    let mut pairs = vec![];
    for &(k, img) in &images {
        for f in sockets(img, &connection) {
            let Some(me) = SocketParams::connection(&f, img.str(f.extra)) else { continue };
            let ends_of_one =
                |other: &Image, g: &FdRecord| SocketParams::connection(g, other.str(g.extra)).is_some_and(|them| SocketParams::ends_of_one(me, them));
            if images.iter().any(|&(j, other)| j != k && sockets(other, &connection).iter().any(|g| ends_of_one(other, g))) {
                pairs.push((img, f));
            }
        }
    }
    let mut made: HashMap<u64, i32> = HashMap::new();
    if pairs.is_empty() {
        return Ok(made);
    }
    let listener = |p: &SocketParams| p.backlog > 0 && p.ty == libc::SOCK_STREAM && p.domain != libc::AF_UNIX;
    let listeners = images.iter().flat_map(|&(k, img)| {
        sockets(img, &listener).into_iter().filter(move |f| !shares.iter().any(|sh| (sh.member as usize, sh.fd) == (k, f.fd))).map(move |f| (img, f))
    });
    let mut make = |img: &Image, f: &FdRecord| -> Result<i32, String> {
        let all: Vec<FdRecord> = (0..img.count(Table::Fds)).map(|i| img.fd(i)).collect();
        let mut cx = mig_checkpoint::kinds::Shared::new(img, &all, 0);
        let fd = mig_checkpoint::kinds::restore(f, &mut cx).map_err(|e| format!("descriptor {} of a process of the job: {e}", f.fd))?;
        // SAFETY: fcntl on our descriptor: the job's processes inherit it.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        made.insert(f.file.ino, fd);
        Ok(fd)
    };
    for (img, f) in listeners.collect::<Vec<_>>() {
        make(img, &f)?;
    }
    let mut to_finish = vec![];
    for (img, f) in pairs {
        to_finish.push((make(img, &f)?, f, img));
    }
    for (fd, f, img) in to_finish {
        mig_checkpoint::kinds::tcp::finish(fd, &f, img.data(f.data_off, f.data_len));
    }
    Ok(made)
}

/// The descriptors in flight in the queues between two processes of the job that
/// `img`'s process receives, made here to be sent, by saved number. One that is a copy
/// of a descriptor of that process is the description made once for the job if that
/// descriptor is one (`job_file`), else one of its own.
fn make_in_flight(
    img: &Image,
    shared: &[FdRecord],
    all: &[FdRecord],
    maker: &mut mig_checkpoint::kinds::Shared,
    job_file: &dyn Fn(i32) -> Option<i32>,
) -> Result<HashMap<i32, i32>, String> {
    let needed = super::fds::in_flight_needed(img, shared);
    let mut carried: HashMap<i32, i32> = HashMap::new();
    for f in all.iter().filter(|f| f.in_flight == 1 && needed.contains(&f.fd)) {
        let src = all.iter().find(|o| o.fd == f.dup_of).unwrap_or(f);
        let fd = match (carried.get(&src.fd), job_file(src.fd).filter(|_| src.in_flight == 0)) {
            (Some(&fd), _) => Ok(fd),
            (None, Some(once)) => mig_checkpoint::kinds::os::dup(once),
            (None, None) => mig_checkpoint::kinds::restore(src, maker),
        }
        .map_err(|e| format!("a descriptor in flight in a socket queue ({}): {e}", String::from_utf8_lossy(img.str(f.file.path))))?;
        carried.insert(src.fd, fd);
        carried.insert(f.fd, fd);
    }
    Ok(carried)
}

/// Pseudo-terminals whose master is in one process of the job and a slave in another
/// (`forkpty`): made once, inherited by every process, each of which opens its ends of
/// them (`kinds::tty`).
fn make_ptys(images: &[&Image]) -> Result<HashMap<u32, i32>, String> {
    use mig_image::{Params, TTY_PTY_MASTER, TTY_PTY_SLAVE, TtyParams};
    let ends = |role: u32| -> Vec<(usize, FdRecord)> {
        let mut v = vec![];
        for (k, img) in images.iter().enumerate() {
            for f in (0..img.count(Table::Fds)).map(|i| img.fd(i)) {
                if f.kind == FdKind::Tty as u32 && TtyParams::decode(&f.params).role == role {
                    v.push((k, f));
                }
            }
        }
        v
    };
    let (masters, slaves) = (ends(TTY_PTY_MASTER), ends(TTY_PTY_SLAVE));
    let mut ptys = HashMap::new();
    for (k, m) in &masters {
        let p = TtyParams::decode(&m.params);
        let split = slaves.iter().any(|(j, s)| j != k && TtyParams::decode(&s.params).index == p.index);
        if split && !ptys.contains_key(&p.index) {
            let fd = mig_checkpoint::kinds::tty::pty_master(&p).map_err(|e| format!("cannot make the job's pseudo-terminal again: {e}"))?;
            // SAFETY: fcntl on the master just made: the job's processes inherit it.
            unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
            if let Some((j, held)) = masters.iter().find(|(_, o)| TtyParams::decode(&o.params).index == p.index && o.data_len > 0) {
                mig_checkpoint::kinds::tty::refill(fd, held, images[*j]).map_err(|e| format!("the job's pseudo-terminal's waiting bytes: {e}"))?;
            }
            ptys.insert(p.index, fd);
        }
    }
    Ok(ptys)
}

/// A memory object of the job: as large as its largest mapping needs, mapped by these
/// processes (indices), named as it was.
struct Object {
    size: u64,
    mapped_by: Vec<usize>,
    name: Vec<u8>,
    deleted: bool,
}

/// The memory objects (anonymous shared memory, memfds, deleted files, `/dev/shm`
/// files, as Python's semaphores are) that two processes of the job or more map, made
/// once, as large as the largest mapping needs, with the pages they saved
/// (`shared_pages`: the processes' own restores do not write them again, over what the
/// processes restored before them have done since). Not objects whose contents are
/// saved with a descriptor (`REGION_DATA_IN_FD`): those come back per process (`mig
/// checkpoint` said so).
fn make_memory(images: &[&Image]) -> Result<HashMap<(u64, u64), i32>, String> {
    // By object: what it needs.
    let mut need: HashMap<(u64, u64), Object> = HashMap::new();
    for (k, img) in images.iter().enumerate() {
        for r in (0..img.count(Table::Regions)).map(|i| img.region(i)) {
            let path = img.str(r.file.path);
            if r.kind != RegionKind::SharedObject as u32 || r.flags & REGION_DATA_IN_FD != 0 {
                continue;
            }
            let deleted = r.flags & REGION_DELETED != 0;
            let e = need.entry((r.file.dev, r.file.ino)).or_insert_with(|| Object { size: 0, mapped_by: vec![], name: path.to_vec(), deleted });
            e.size = e.size.max(r.file_off + (r.end - r.start));
            if !e.mapped_by.contains(&k) {
                e.mapped_by.push(k);
            }
        }
    }
    let mut memory = HashMap::new();
    for (key, Object { size, name, deleted, .. }) in need.into_iter().filter(|(_, o)| o.mapped_by.len() > 1) {
        // A file in /dev/shm is that file again (as a process alone has it), filled
        // here once: filled by each process as it is restored, it would lose what the
        // processes restored before had written to it meanwhile (a semaphore's count).
        let made = if name.starts_with(b"/dev/shm/") {
            mig_checkpoint::kinds::os::make_shared_file(&name, deleted, 0o600)
        } else {
            mig_checkpoint::kinds::memfd::memfd(&name, false)
        };
        // The job inherits it.
        let fd = made.and_then(|fd| {
            // SAFETY: clearing FD_CLOEXEC on the descriptor just made.
            if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == 0 { Ok(fd) } else { Err(std::io::Error::last_os_error()) }
        });
        let fd = fd.map_err(|e| format!("cannot make the memory the job's processes share ({}): {e}", String::from_utf8_lossy(&name)))?;
        // SAFETY: fstat into a zeroed stat, and growing (never shrinking) our file.
        let sized = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            libc::fstat(fd, &mut st) == 0 && (st.st_size as u64 >= size || libc::ftruncate(fd, size as i64) == 0)
        };
        if !sized {
            return Err(format!("cannot make the memory the job's processes share: {}", std::io::Error::last_os_error()));
        }
        let of = |r: &mig_image::RegionRecord| r.kind == RegionKind::SharedObject as u32 && (r.file.dev, r.file.ino) == key;
        super::shared_pages::each(images, of, |off, page| {
            // SAFETY: writing a page we hold into the memfd just made.
            match unsafe { libc::pwrite(fd, page.as_ptr().cast(), page.len(), off as i64) } {
                n if n == page.len() as isize => Ok(()),
                _ => Err(format!("cannot fill the memory the job's processes share: {}", std::io::Error::last_os_error())),
            }
        })?;
        memory.insert(key, fd);
    }
    Ok(memory)
}

/// Every pipe with a reader in the job, made once with the bytes it held (saved by
/// each process that had a read end of it: the first one's are taken) and the
/// capacity it had. A pipe whose reader was outside the job is not made: its ends
/// come back broken, or, as standard descriptors, as the restoring process's own.
fn make_pipes(images: &[&Image]) -> Result<HashMap<u64, [i32; 2]>, String> {
    let mut pipes = HashMap::new();
    let records = images.iter().flat_map(|&img| (0..img.count(Table::Fds)).map(move |i| (img, img.fd(i))));
    let pipe_ends: Vec<_> = records.filter(|(_, f)| f.kind == FdKind::Pipe as u32 && f.dup_of < 0).collect();
    for (_, f) in &pipe_ends {
        let ino = f.file.ino;
        let reads = |flags: u32| flags & libc::O_ACCMODE as u32 != libc::O_WRONLY as u32;
        if pipes.contains_key(&ino) || !pipe_ends.iter().any(|(_, o)| o.file.ino == ino && reads(o.flags)) {
            continue;
        }
        let mut p = [0i32; 2];
        // SAFETY: `p` is a valid out-array of two descriptors; no O_CLOEXEC: the job's
        // other processes inherit them across exec.
        if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_NONBLOCK) } != 0 {
            return Err(format!("cannot make the job's pipes: {}", std::io::Error::last_os_error()));
        }
        let capacity = PipeParams::decode(&f.params).capacity;
        if capacity > 0 {
            // SAFETY: resizing the pipe just made; a failure keeps the default.
            unsafe { libc::fcntl(p[1], libc::F_SETPIPE_SZ, capacity as i32) };
        }
        if let Some((src, held)) = pipe_ends.iter().find(|(_, o)| o.file.ino == ino && o.data_len > 0) {
            let bytes = src.data(held.data_off, held.data_len);
            // SAFETY: writing bytes we hold into the pipe just made.
            let n = unsafe { libc::write(p[1], bytes.as_ptr().cast(), bytes.len()) };
            if n != bytes.len() as isize {
                return Err(format!("the {} bytes a pipe of the job held do not fit a new pipe", bytes.len()));
            }
        }
        pipes.insert(ino, p);
    }
    Ok(pipes)
}

/// Starts the job's process `m` (index `k`): its saved pid if this process may choose
/// pids, its session and group, its executable restoring it.
fn spawn(m: &Member, k: usize, exe: &[u8], cwd: &[u8], shared: &str) -> Result<(), String> {
    let c = |b: &[u8]| CString::new(b).map_err(|_| "a path of the job holds a NUL byte".to_string());
    let (exe, cwd) = (c(exe)?, c(cwd)?);
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != MEMBER && k != SHARED)
        .filter_map(|(k, v)| CString::new([k.as_bytes(), b"=", v.as_bytes()].concat()).ok())
        .collect();
    env.push(c(format!("{MEMBER}={k}").as_bytes())?);
    env.push(c(format!("{SHARED}={shared}").as_bytes())?);
    let envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).chain([std::ptr::null()]).collect();
    let argv = [exe.as_ptr(), std::ptr::null()];
    let (pid, why) = clone_with_pid(m.pid as i32)?;
    if pid == 0 {
        // The child: only system calls from here to exec.
        // SAFETY: plain system calls on values prepared before the fork.
        unsafe {
            if m.sid == m.pid {
                libc::setsid();
            } else if m.pgid == m.pid {
                libc::setpgid(0, 0);
            } else {
                libc::setpgid(0, m.pgid as i32);
            }
            libc::chdir(cwd.as_ptr());
            libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
            let msg = b"mig: cannot restore a process of the job: its executable cannot be run\n";
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::_exit(mig_image::EXIT_REFUSED);
        }
    }
    if pid != m.pid as i32 {
        eprintln!("mig: warning: process {} of the job came back as process {pid} ({why}): its parent's waitpid({}) and kill({}) miss it", m.pid, m.pid, m.pid);
    }
    Ok(())
}

/// Makes the job's process `m` again as it was, ended and not reaped: a child that
/// ends at once with its saved status. Returns its pid.
fn spawn_ended(m: &Member) -> Result<i32, String> {
    let (pid, why) = clone_with_pid(m.pid as i32)?;
    if pid == 0 {
        let st = m.status as i32;
        // SAFETY: plain system calls in the child, which ends here.
        unsafe {
            if libc::WIFSIGNALED(st) {
                let sig = libc::WTERMSIG(st);
                libc::signal(sig, libc::SIG_DFL);
                let limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                libc::setrlimit(libc::RLIMIT_CORE, &limit);
                libc::sigprocmask(libc::SIG_SETMASK, &std::mem::zeroed(), std::ptr::null_mut());
                libc::kill(libc::getpid(), sig);
            }
            libc::_exit(libc::WEXITSTATUS(st));
        }
    }
    if pid != m.pid as i32 {
        eprintln!("mig: warning: process {} of the job, which had ended, came back as process {pid} ({why}): its parent's waitpid({}) misses it", m.pid, m.pid);
    }
    Ok(pid)
}

/// Waits until the processes made ended have ended (not reaping them: their parent
/// does), and takes away the SIGCHLD they sent (signals are blocked during a restore):
/// their parent had had it before the checkpoint.
fn settle(ended: &[i32]) {
    if ended.is_empty() {
        return;
    }
    for &pid in ended {
        // SAFETY: waitid with WNOWAIT into a zeroed siginfo: the child stays a zombie.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            while libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) < 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
            {}
        }
    }
    // SAFETY: sigtimedwait on a set holding SIGCHLD, with a zero timeout.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        libc::sigtimedwait(&set, std::ptr::null_mut(), &zero);
    }
}

/// Forks, the child with pid `want` where the kernel lets this process choose it
/// (`clone3` with `set_tid`: CAP_CHECKPOINT_RESTORE, and the pid free), else any.
/// Returns 0 in the child, the child's pid in the parent, with why it is not `want`.
fn clone_with_pid(want: i32) -> Result<(i32, String), String> {
    // SAFETY: this process has one thread (its restore has not started).
    let e = match unsafe { crate::sys::fork_with_freed_pid(want) } {
        Ok(pid) => return Ok((pid as i32, String::new())),
        Err(e) => e,
    };
    let mut why = crate::sys::pid_refusal(e).to_string();
    if e.0 == libc::EEXIST {
        why.push_str(&format!(" by process {want} ({})", std::fs::read_to_string(format!("/proc/{want}/comm")).unwrap_or_default().trim_end()));
    }
    // SAFETY: fork in a process with one thread.
    match unsafe { libc::fork() } {
        -1 => Err(format!("cannot start a process of the job: {}", std::io::Error::last_os_error())),
        pid => Ok((pid, why)),
    }
}
