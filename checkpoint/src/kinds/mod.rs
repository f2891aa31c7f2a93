//! One module per kind of state the image holds. Each has its save side (`save`:
//! async-signal-safe, no allocation, called while collecting) and its typed record in
//! the image crate (`mig_image::params` for descriptors, `mig_image::format` for the
//! rest).
//!
//! Descriptors and POSIX timers are made again in normal code before anything is
//! replaced: their restore side (`restore`, behind the `restore` feature, called by the
//! library's restore planner) is in the same module. Adding a descriptor kind is adding
//! a module here, its record there, and one line in `describe` (`fds.rs`) and in
//! `restore` below.
//!
//! - `file`: regular files, directories and devices reopened by path.
//! - `memfd`: memfds, `/dev/shm` files and deleted files: contents in the image.
//! - `pipe`: pipes wholly in the process, with the bytes they hold.
//! - `socketpair`: UNIX socket pairs, with their queues.
//! - `socket`: sockets recreated from their settings (UNIX and inet: listening,
//!   datagram, bound), and connected ones that come back reset.
//! - `tcp`: established TCP connections, saved whole in repair mode where allowed.
//! - `epoll`, `eventfd`, `signalfd`, `timerfd`, `inotify`, `tty`, `pidfd`.
//! - `mq`: POSIX message queues, with their messages.
//! - `ptimer`: POSIX timers (`timer_create`), a table of their own.
//! - `lock`: the file locks held through a descriptor of the file kinds.
//!
//! Memory regions, threads and the process's attributes are put back by the blob, the
//! code that replaces the address space: their restore sides are the planner's steps
//! of the same names (`src/restore/plan/{regions,threads,process}.rs`), which turn the
//! records into the blob's program.
//!
//! - `region`: memory regions and the runs of pages saved.
//! - `thread`: each thread's registers, TLS, tid address, robust list, rseq and
//!   alternate stack.
//! - `process`: the `mm` fields, working directory, umask, limits, timers, signal
//!   actions, name, CPU features and executable.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod aio;
pub mod epoll;
pub mod eventfd;
pub mod fifo;
pub mod file;
pub mod inotify;
pub mod lock;
pub mod memfd;
pub mod mq;
pub mod pidfd;
pub mod pipe;
pub mod process;
pub mod ptimer;
pub mod region;
pub mod signalfd;
pub mod socket;
pub mod socketpair;
pub mod tcp;
pub mod thread;
pub mod timerfd;
pub mod tty;

#[cfg(feature = "restore")]
pub mod os;
#[cfg(feature = "restore")]
pub mod peer_fin;
#[cfg(feature = "restore")]
pub mod time_wait;

#[cfg(feature = "restore")]
pub use restore::{Shared, restore};

#[cfg(feature = "restore")]
mod restore {
    use super::os::*;
    use super::*;
    use mig_image::{EpollEntry, FdKind, FdRecord, Image};

    /// What the kinds' restore sides share while the descriptors are made again: the
    /// image, every record, and the objects one record makes for others.
    pub struct Shared<'a> {
        pub img: &'a Image<'a>,
        /// Every descriptor record, in table order.
        pub all: &'a [FdRecord],
        /// Descriptors are made at or above this number.
        pub base: i32,
        /// Memory files by (dev, ino) as saved, read-write: what descriptors reopen
        /// and `SharedObject` regions map.
        pub objects: HashMap<(u64, u64), i32>,
        /// (epoll descriptor's saved number, registration), made by the blob.
        pub epoll: Vec<(i32, EpollEntry)>,
        /// Pipes by saved inode: [read end, write end (-1 once closed)].
        pub pipes: HashMap<u64, [i32; 2]>,
        /// Socket pair ends by saved inode.
        pub ends: HashMap<u64, i32>,
        /// Named FIFOs by saved inode: a read end and a write end, held while the
        /// descriptors are opened on them.
        pub fifos: HashMap<u64, [i32; 2]>,
        /// The restoring process's terminal, once looked for.
        pub terminal: Option<i32>,
        /// `inotify_add_watch` calls left for bringing watch numbers back, in all.
        pub inotify_tries: u32,
        /// Files whose saved contents were dealt with, by (dev, ino) as saved, and the
        /// new file's descriptor where one was made again.
        pub put_back: HashMap<(u64, u64), Option<i32>>,
        /// Memfds whose first open file description (the one `memfd_create` made)
        /// a descriptor took.
        pub memfds_taken: std::collections::HashSet<(u64, u64)>,
        /// POSIX message queues by saved inode: the name to open, and whether it is a
        /// temporary one to remove with the scaffolding.
        pub mqueues: HashMap<u64, (std::ffi::CString, bool)>,
        /// New pseudo-terminals' masters by saved number.
        pub ptys: HashMap<u32, i32>,
        /// The saved pids of the job's processes (none for a process alone).
        pub job_pids: Vec<u32>,
        /// What to write back once the restore can no longer be refused.
        pub pending: Vec<file::PutBack>,
    }

    impl<'a> Shared<'a> {
        pub fn new(img: &'a Image<'a>, all: &'a [FdRecord], base: i32) -> Self {
            Shared {
                img,
                all,
                base,
                objects: HashMap::new(),
                epoll: Vec::new(),
                pipes: HashMap::new(),
                ends: HashMap::new(),
                fifos: HashMap::new(),
                terminal: None,
                inotify_tries: inotify::TRIES,
                put_back: HashMap::new(),
                memfds_taken: std::collections::HashSet::new(),
                mqueues: HashMap::new(),
                ptys: HashMap::new(),
                job_pids: Vec::new(),
                pending: Vec::new(),
            }
        }

        /// Closes what only served to make descriptors (pipes and socket pair ends).
        pub fn close_scaffolding(&mut self) {
            for (_, [r, w]) in self.pipes.drain() {
                close(r);
                if w >= 0 {
                    close(w);
                }
            }
            for (_, fd) in self.ends.drain() {
                close(fd);
            }
            for (_, [r, w]) in self.fifos.drain() {
                close(r);
                close(w);
            }
            for (_, m) in self.ptys.drain() {
                close(m);
            }
            for (_, (name, temporary)) in self.mqueues.drain() {
                if temporary {
                    mq::unlink(&name);
                }
            }
        }
    }

    /// Makes the descriptor of record `f` again, at any number.
    pub fn restore(f: &FdRecord, cx: &mut Shared) -> std::io::Result<i32> {
        match FdKind::from_u32(f.kind).unwrap_or(FdKind::Unsupported) {
            FdKind::File | FdKind::Device => file::restore(f, cx),
            FdKind::Deleted | FdKind::Memfd | FdKind::Shm => memfd::restore(f, cx),
            FdKind::Pipe => pipe::restore(f, cx),
            FdKind::SocketPair => socketpair::restore(f, cx),
            FdKind::Socket | FdKind::Reset | FdKind::Unsupported => socket::restore(f, cx),
            FdKind::Epoll => epoll::restore(f, cx),
            FdKind::EventFd => eventfd::restore(f),
            FdKind::SignalFd => signalfd::restore(f),
            FdKind::TimerFd => timerfd::restore(f),
            FdKind::Inotify => inotify::restore(f, cx),
            FdKind::Tty => tty::restore(f, cx),
            FdKind::Pidfd => pidfd::restore(f, cx),
            FdKind::Fifo => fifo::restore(f, cx),
            FdKind::PosixMq => mq::restore(f, cx),
        }
    }
}
