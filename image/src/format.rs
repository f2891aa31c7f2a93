//! Records of the image, byte for byte. All integers are little-endian (x86_64 only);
//! every struct is `repr(C)` with explicit padding so that its bytes are fully defined.

use core::mem::size_of;

pub const MAGIC: [u8; 8] = *b"MIGIMAGE";
/// Bumped on any change of layout or meaning.
pub const VERSION: u32 = 4;
/// ELF machine number of x86_64.
pub const ARCH_X86_64: u32 = 62;
pub const PAGE: u64 = 4096;
/// The trailer holds one CRC per this many bytes of each blob's data (the last block of
/// a blob may be shorter): a lazy restore checks a block before the program sees it.
pub const BLOCK: u64 = 64 << 10;

/// How many block CRCs a blob of `len` bytes has.
pub const fn blocks_of(len: u64) -> u64 {
    len.div_ceil(BLOCK)
}
pub const HEADER_LEN: usize = 4096;
pub const NSIG: usize = 64;
pub const NRLIMITS: usize = 16;

// Limits that every image `Image::open` accepts stays within (see `check.rs`): what a
// Linux x86_64 process can have, and what the restore can make again.

/// The top of the user address space (4-level paging, `TASK_SIZE`): no region ends above.
pub const USER_TOP: u64 = 0x7fff_ffff_f000;
/// The lowest address a program may map (Linux's default `mmap_min_addr`, and the
/// floor `PR_SET_MM_MAP` applies with security modules): no region starts below.
pub const MIN_ADDR: u64 = 0x1_0000;
/// Threads the library stops and saves at most (`checkpoint::threads`).
pub const MAX_THREADS: usize = 4096;
/// Descriptor numbers are below this: the largest `fs.nr_open` Linux accepts.
pub const MAX_FD: i32 = 0x7fff_ffc0;
/// Paths are shorter than this (`PATH_MAX`, with its NUL).
pub const PATH_MAX: usize = 4096;
/// Room for the auxiliary vector in the kernel (`mm->saved_auxv`, Linux 6.x x86_64):
/// `PR_SET_MM_MAP` refuses a longer one.
pub const AUXV_MAX: usize = 448;
/// The largest file offset (`MAX_LFS_FILESIZE`): a file mapping ends below it.
pub const FILE_MAX: u64 = i64::MAX as u64;
/// Bytes of the kernel's `struct termios` (`FdKind::Tty`'s `extra`).
pub const TERMIOS_LEN: usize = 36;

/// Marker for types that may be read from / written as raw bytes: `repr(C)`, no
/// implicit padding, every bit pattern valid.
///
/// # Safety
/// Implement only for such types.
pub unsafe trait Pod: Copy + 'static {}

/// The bytes of a plain record.
pub fn bytes_of<T: Pod>(v: &T) -> &[u8] {
    // SAFETY: `T: Pod` has no padding, so all `size_of::<T>()` bytes are initialised.
    unsafe { core::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
}

/// The bytes of a slice of plain records.
pub fn slice_bytes<T: Pod>(v: &[T]) -> &[u8] {
    // SAFETY: as in `bytes_of`, for `v.len()` consecutive records.
    unsafe { core::slice::from_raw_parts(v.as_ptr().cast::<u8>(), core::mem::size_of_val(v)) }
}

/// Reads record `index` of a table of `T` starting at `bytes[0]`, if it is in bounds.
pub fn read_record<T: Pod>(bytes: &[u8], index: usize) -> Option<T> {
    let size = size_of::<T>();
    let start = index.checked_mul(size)?;
    let rec = bytes.get(start..start.checked_add(size)?)?;
    // SAFETY: `rec` holds exactly `size_of::<T>()` bytes and any bit pattern is a valid `T`.
    Some(unsafe { core::ptr::read_unaligned(rec.as_ptr().cast::<T>()) })
}

/// A byte string stored in the strings table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StrRef {
    pub off: u32,
    pub len: u32,
}

/// Where a table lives in the file.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TableDesc {
    pub off: u64,
    pub count: u64,
    pub rec_size: u64,
}

/// The tables, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Table {
    Process = 0,
    Threads = 1,
    Regions = 2,
    Extents = 3,
    Fds = 4,
    Timers = 5,
    Strings = 6,
}
pub const TABLES: usize = 7;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Header {
    pub magic: [u8; 8],
    pub version: u32,
    pub arch: u32,
    pub page_size: u32,
    /// CRC32 of the whole 4096-byte header with this field set to zero.
    pub header_crc: u32,
    pub flags: u64,
    pub created_unix_ns: u64,
    pub pid: u32,
    /// CRC32 of the bytes `meta_off .. meta_off + meta_len`.
    pub meta_crc: u32,
    pub meta_off: u64,
    pub meta_len: u64,
    pub data_off: u64,
    pub data_len: u64,
    pub trailer_off: u64,
    pub trailer_len: u64,
    pub total_len: u64,
    pub blobs: u64,
    pub tables: [TableDesc; TABLES],
    /// Block CRCs in the trailer: Σ `blocks_of(data_len)` over the blobs.
    pub blocks: u64,
    /// How long the process was stopped for this image, in microseconds (0: not
    /// known, for an image streamed while the process was stopped).
    pub stopped_us: u64,
    pub pad: [u8; HEADER_LEN - 128 - 24 * TABLES],
}
const _: () = assert!(size_of::<Header>() == HEADER_LEN);

/// Identity of a file the image depends on (the executable, a library, an open file).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileId {
    pub path: StrRef,
    pub size: u64,
    pub mtime_ns: i64,
    /// Device and inode as the checkpointed process saw them (informative: they differ
    /// on another machine, so restore compares size, mtime and build-id).
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub build_id_len: u32,
    pub build_id: [u8; 20],
    pub pad: [u8; 4],
}
const _: () = assert!(size_of::<FileId>() == 72);

/// The `mm` fields of `/proc/self/stat` plus the current break.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MmFields {
    pub start_code: u64,
    pub end_code: u64,
    pub start_data: u64,
    pub end_data: u64,
    pub start_brk: u64,
    pub brk: u64,
    pub start_stack: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
}

/// The kernel's `struct sigaction` on x86_64 (as used by `rt_sigaction`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KSigaction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Rlimit {
    pub cur: u64,
    pub max: u64,
}

/// `struct itimerval`: interval then value, each as seconds and microseconds.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Itimer {
    pub interval_sec: i64,
    pub interval_usec: i64,
    pub value_sec: i64,
    pub value_usec: i64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ProcessRecord {
    pub exe: FileId,
    pub mm: MmFields,
    /// Raw `/proc/self/auxv`.
    pub auxv: StrRef,
    pub cwd: StrRef,
    pub umask: u32,
    /// Its controlling terminal's device number (`tty_nr` of `/proc/self/stat`); 0: none.
    pub ctty: u32,
    pub comm: [u8; 16],
    pub rlimits: [Rlimit; NRLIMITS],
    pub itimers: [Itimer; 3],
    /// Index `sig - 1`.
    pub sigactions: [KSigaction; NSIG],
    pub cpu: CpuFeatures,
    /// CRC32 of the `[vdso]` code: another kernel's vdso is another ABI.
    pub vdso_crc: u32,
    pub pad2: u32,
    /// What the checkpoint could not save as it was: its warnings, one a line.
    pub warnings: StrRef,
    pub attrs: Attributes,
}

/// Process-wide settings a program makes with `prctl`, `personality` and
/// `/proc/self/oom_score_adj`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// -1000..=1000.
    pub oom_score_adj: i32,
    pub personality: u32,
    /// `PR_GET_CHILD_SUBREAPER`, 0 or 1.
    pub child_subreaper: u32,
    /// `PR_GET_THP_DISABLE`, 0 or 1.
    pub thp_disable: u32,
    /// `PR_GET_NO_NEW_PRIVS`, 0 or 1.
    pub no_new_privs: u32,
    /// `PR_GET_DUMPABLE`, 0..=2.
    pub dumpable: u32,
    /// `PR_GET_PDEATHSIG` of the main thread: 0 or a signal.
    pub pdeathsig: u32,
    /// `ATTR_*` bits.
    pub flags: u32,
    /// `Seccomp:` of `/proc/self/status` (0 none, 1 strict, 2 filters) and
    /// `Seccomp_filters:` (how many). The kernel does not show filters: those the
    /// program installed through libc are saved (`seccomp_programs`); for the others a
    /// restore requires the restoring process to run under at least as many (a
    /// container's are inherited), and refuses otherwise.
    pub seccomp: u32,
    pub seccomp_filters: u32,
    /// The `membarrier` commands registered (`MEMBARRIER_CMD_GET_REGISTRATIONS`),
    /// registered again.
    pub membarrier: u32,
    /// How many filters `seccomp_programs` holds: the last of `seccomp_filters`.
    pub seccomp_saved: u32,
    /// The saved filters in the order they were installed, each
    /// `[flags u32][length u32][struct sock_filter; length / 8]` (`seccomp_entries`).
    pub seccomp_programs: StrRef,
}

/// The flags a saved seccomp filter may carry (`SECCOMP_FILTER_FLAG_LOG`,
/// `SECCOMP_FILTER_FLAG_SPEC_ALLOW`).
pub const SECCOMP_SAVED_FLAGS: u32 = 2 | 4;
/// The most instructions a seccomp filter has (`BPF_MAXINSNS`).
pub const SECCOMP_MAX_INSNS: usize = 4096;

/// The entries of `Attributes::seccomp_programs`: (flags, instructions); `None` ends
/// them early where the bytes are malformed (a length past the end).
pub fn seccomp_entries(mut bytes: &[u8]) -> impl Iterator<Item = Option<(u32, &[u8])>> {
    core::iter::from_fn(move || {
        if bytes.is_empty() {
            return None;
        }
        let word = |b: &[u8], i: usize| b.get(i..i + 4).and_then(|w| w.try_into().ok()).map(u32::from_ne_bytes);
        let entry = (|| {
            let (flags, len) = (word(bytes, 0)?, word(bytes, 4)? as usize);
            Some((flags, bytes.get(8..8usize.checked_add(len)?)?))
        })();
        bytes = match entry {
            Some((_, insns)) => bytes.get(8 + insns.len()..).unwrap_or(&[]),
            None => &[],
        };
        Some(entry)
    })
}

/// `Attributes` flag: the working directory was removed while the process worked in
/// it (`cwd` is the path it had): the restored process works in a removed directory
/// too.
pub const ATTR_CWD_DELETED: u32 = 1;
/// `Attributes` flags: `mlockall(MCL_FUTURE)` (with `ATTR_MLOCK_ONFAULT`:
/// `| MCL_ONFAULT`), seen by the hook.
pub const ATTR_MLOCK_FUTURE: u32 = 2;
pub const ATTR_MLOCK_ONFAULT: u32 = 4;
/// The `membarrier` registration commands (`Attributes::membarrier`): global, private
/// and private sync-core expedited, private expedited rseq.
pub const MEMBARRIER_REGISTRATIONS: u32 = 4 | 16 | 64 | 256;

/// A thread's scheduling, each thread's own: what `sched_getattr`,
/// `sched_getaffinity` and `PR_GET_TIMERSLACK` say.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadSched {
    /// `SCHED_OTHER`, `SCHED_FIFO`, `SCHED_RR`, `SCHED_BATCH` or `SCHED_IDLE`
    /// (`SCHED_DEADLINE` is saved as `SCHED_OTHER`, with a warning).
    pub policy: u32,
    /// `sched_flags` (`SCHED_FLAG_RESET_ON_FORK`).
    pub flags: u32,
    /// Real-time priority, 0..=99.
    pub priority: u32,
    /// -20..=19.
    pub nice: i32,
    /// Nanoseconds; 0: nothing read.
    pub timerslack_ns: u64,
    /// CPUs the thread may run on (bit n: CPU n); all zero: nothing read.
    pub affinity: [u64; 16],
}

impl ThreadSched {
    pub const ZERO: ThreadSched = ThreadSched { policy: 0, flags: 0, priority: 0, nice: 0, timerslack_ns: 0, affinity: [0; 16] };
}

impl Default for ThreadSched {
    fn default() -> Self {
        Self::ZERO
    }
}

/// The CPU features a program may have detected and used: a restore needs them all.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    /// `cpuid` leaf 1 ecx, edx; leaf 7 ebx, ecx, edx.
    pub cpuid: [u32; 5],
    pub pad: u32,
    /// Register state the kernel saves in signal frames (`xgetbv(0)`).
    pub xcr0: u64,
}

/// Header flag: every page of the program's and libraries' file mappings is in the
/// image, so it restores where those files differ or are missing.
pub const HEADER_PORTABLE: u64 = 1;
/// Header flag: the image is of one process of a job (`tree`), whose standard
/// descriptors may be pipes to the job's other processes.
pub const HEADER_JOB_MEMBER: u64 = 2;

/// What the resume point of a thread needs: the callee-saved registers, stack and
/// return address of the call that saved it. Everything else (all general purpose,
/// FP/SSE/AVX registers, the signal mask) is in the signal frame on the saved stack
/// and comes back when the thread returns from its signal handler.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Context {
    pub rbx: u64,
    pub rbp: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rsp: u64,
    pub rip: u64,
}
pub const CONTEXT_RSP: usize = 48;
pub const CONTEXT_RIP: usize = 56;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadRecord {
    pub tid: u32,
    pub rseq_len: u32,
    pub ctx: Context,
    pub fs_base: u64,
    /// `set_tid_address` pointer (glibc: `&pthread->tid`).
    pub clear_tid: u64,
    pub robust_head: u64,
    pub robust_len: u64,
    pub rseq_addr: u64,
    pub rseq_sig: u32,
    pub altstack_flags: u32,
    pub altstack_sp: u64,
    pub altstack_size: u64,
    pub sched: ThreadSched,
}

impl ThreadRecord {
    pub const ZERO: ThreadRecord = ThreadRecord {
        tid: 0,
        rseq_len: 0,
        ctx: Context { rbx: 0, rbp: 0, r12: 0, r13: 0, r14: 0, r15: 0, rsp: 0, rip: 0 },
        fs_base: 0,
        clear_tid: 0,
        robust_head: 0,
        robust_len: 0,
        rseq_addr: 0,
        rseq_sig: 0,
        altstack_flags: 0,
        altstack_sp: 0,
        altstack_size: 0,
        sched: ThreadSched::ZERO,
    };
}

/// What a region is, which decides how it is saved and mapped back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum RegionKind {
    /// Private anonymous memory; present pages saved.
    Anon = 1,
    Heap = 2,
    Stack = 3,
    /// Private mapping of a file: mapped from the file again, pages written to saved.
    FilePrivate = 4,
    /// Shared mapping of a file: mapped from the file again, the file holds the data.
    FileShared = 5,
    /// Shared anonymous memory (or a shared mapping of a deleted file): all pages saved.
    SharedAnon = 6,
    /// Private mapping of a file that is gone or replaced: all pages saved.
    Orphan = 7,
    Vvar = 8,
    VvarVclock = 9,
    Vdso = 10,
    /// Shared mapping of a memfd, a `/dev/shm` file or a deleted file: the file is
    /// recreated once and every such mapping of it maps it again, so they stay shared.
    /// Pages saved unless `REGION_DATA_IN_FD` (a descriptor record carries the file).
    SharedObject = 11,
    /// An attach of a System V shared memory segment (`shmat`): `file.ino` is the
    /// segment's id, `file.size` its size, `file.mode` its `shm_perm.mode` (with
    /// `SHM_DEST` if it was marked for removal), the key in `file.path` (`/SYSV%08x`).
    /// The segment is found or made again (with its id where ids may be chosen), its
    /// contents put back once, and attached again: all pages saved.
    SysvShm = 12,
}

/// The key of a System V segment, from the name the kernel gives its mappings
/// (`/SYSV%08x`).
pub fn sysv_key(path: &[u8]) -> Option<i32> {
    let hex = path.strip_prefix(b"/SYSV").filter(|h| h.len() == 8)?;
    let text = core::str::from_utf8(hex).ok()?;
    u32::from_str_radix(text, 16).ok().map(|k| k as i32)
}

impl RegionKind {
    pub fn from_u32(v: u32) -> Option<Self> {
        use RegionKind::*;
        Some(match v {
            1 => Anon,
            2 => Heap,
            3 => Stack,
            4 => FilePrivate,
            5 => FileShared,
            6 => SharedAnon,
            7 => Orphan,
            8 => Vvar,
            9 => VvarVclock,
            10 => Vdso,
            11 => SharedObject,
            12 => SysvShm,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        use RegionKind::*;
        match self {
            Anon => "anon",
            Heap => "heap",
            Stack => "stack",
            FilePrivate => "file",
            FileShared => "file-shared",
            SharedAnon => "shared-anon",
            Orphan => "orphan",
            Vvar => "vvar",
            VvarVclock => "vvar-vclock",
            Vdso => "vdso",
            SharedObject => "shared-object",
            SysvShm => "sysv-shm",
        }
    }
    /// Mapped by the kernel itself; moved back, never saved.
    pub fn is_kernel(self) -> bool {
        matches!(self, RegionKind::Vvar | RegionKind::VvarVclock | RegionKind::Vdso)
    }
    pub fn has_file(self) -> bool {
        matches!(self, RegionKind::FilePrivate | RegionKind::FileShared)
    }
}

pub const PROT_READ: u32 = 1;
pub const PROT_WRITE: u32 = 2;
pub const PROT_EXEC: u32 = 4;

/// Region flag: the program mapped this region itself (seen by the `mmap` hook).
pub const REGION_BY_PROGRAM: u32 = 1;
/// Region flag (`SharedObject`): the file's contents are saved with the descriptor
/// record of the same file (`file.dev`/`file.ino`), not with the region.
pub const REGION_DATA_IN_FD: u32 = 2;
/// Region flag: every page saved (portable image); the file is used only if unchanged.
pub const REGION_WHOLE: u32 = 4;
/// Region flag: mapped with `MAP_NORESERVE` (seen by the `mmap` hook): no swap space
/// reserved, so no overcommit check either; mapped again so.
pub const REGION_NORESERVE: u32 = 8;
/// Region flags: the advice and locking the kernel keeps for a mapping (`VmFlags` of
/// `/proc/self/smaps`: dc, dd, hg, nh, wf, mg, lo, lf), given again by the restore.
pub const REGION_DONTFORK: u32 = 16;
pub const REGION_DONTDUMP: u32 = 32;
pub const REGION_HUGEPAGE: u32 = 64;
pub const REGION_NOHUGEPAGE: u32 = 128;
pub const REGION_WIPEONFORK: u32 = 256;
pub const REGION_MERGEABLE: u32 = 512;
/// `mlock`ed (with `REGION_LOCKONFAULT`: `mlock2(MLOCK_ONFAULT)`).
pub const REGION_LOCKED: u32 = 1024;
pub const REGION_LOCKONFAULT: u32 = 2048;
/// Region flag (`SharedObject`): the file was deleted (`/proc/self/maps` said so); a
/// `/dev/shm` file is made again without its name.
pub const REGION_DELETED: u32 = 4096;
/// Every advice bit, as `VmFlags` names them.
pub const REGION_ADVICE: [(u32, &[u8; 2]); 8] = [
    (REGION_DONTFORK, b"dc"),
    (REGION_DONTDUMP, b"dd"),
    (REGION_HUGEPAGE, b"hg"),
    (REGION_NOHUGEPAGE, b"nh"),
    (REGION_WIPEONFORK, b"wf"),
    (REGION_MERGEABLE, b"mg"),
    (REGION_LOCKED, b"lo"),
    (REGION_LOCKONFAULT, b"lf"),
];

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RegionRecord {
    pub start: u64,
    pub end: u64,
    pub prot: u32,
    pub kind: u32,
    pub flags: u32,
    /// Index into the extents table of this region's first saved page run.
    pub first_extent: u32,
    pub extents: u32,
    /// Index of this region's blob (its CRC in the trailer); `u32::MAX` for none.
    pub blob: u32,
    pub file_off: u64,
    pub file: FileId,
    pub data_off: u64,
    pub data_len: u64,
}

/// A run of saved pages, relative to its region's start. A region's runs are stored
/// one after the other in its blob.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Extent {
    pub first_page: u64,
    pub pages: u64,
}

/// What a descriptor refers to, which decides how it comes back. `params` and
/// `extra` (bytes in the strings table) hold what each kind needs, as listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum FdKind {
    /// A file or directory reopened by path. For this kind, `Deleted`, `Device`,
    /// `Memfd` and `Shm`, `extra` is an array of `LockEntry`: the locks held through
    /// this open file description (none for a copy, `dup_of` ≥ 0).
    File = 1,
    /// A regular file unlinked while open: contents in the blob.
    Deleted = 2,
    /// A device node reopened by path (`/dev/null`, …).
    Device = 3,
    /// Not restorable: comes back as a broken pipe end (a warning named it).
    Unsupported = 4,
    /// An end of a pipe whose read end is in the process. `file.ino` names the pipe;
    /// `params[0]`: its capacity. The first read end's blob holds the unread bytes.
    Pipe = 5,
    /// A UNIX socket whose peer is in the process too (`socketpair`). `params`:
    /// [domain, type, peer inode, SO_SNDBUF]; `file.ino`: this end. Blob: its receive
    /// queue (for datagram types, each message as a `u32` length then its bytes).
    SocketPair = 6,
    /// A connected stream socket to a peer outside the process: comes back reset
    /// (reads see end of file, writes `EPIPE`). `params[0]`: domain.
    Reset = 7,
    /// A socket recreated from its settings: `params` = [domain, type, protocol,
    /// backlog when listening else 0, bound address length, peer address length,
    /// option bits (`SOCKOPT_*`), instructions of its classic BPF filter]; `extra`:
    /// bound address then peer address, then the valued options (`SockOpts`), then the
    /// filter (`struct sock_filter`s). Blob: for datagram types, the queued datagrams;
    /// for a connected stream socket (a TCP connection), its `TcpConn` and queues.
    Socket = 8,
    /// epoll: `extra` is an array of `EpollEntry`.
    Epoll = 9,
    /// eventfd: `params` = [count, semaphore].
    EventFd = 10,
    /// signalfd: `params[0]`: the signal mask.
    SignalFd = 11,
    /// timerfd: `params` = [clock, unread expirations, value s, value ns,
    /// interval s, interval ns] (the value is the time left).
    TimerFd = 12,
    /// inotify: `extra` is an array of `InotifyWatch`.
    Inotify = 13,
    /// A terminal: reattached to the restoring process's terminal. `extra`: the
    /// kernel `struct termios` (`TCGETS`).
    Tty = 14,
    /// A memfd (`file.path` is `/memfd:name`): contents in the blob, `params[0]`:
    /// its seals.
    Memfd = 15,
    /// A file in `/dev/shm`: contents in the blob, written back at restore.
    Shm = 16,
    /// A pidfd made again (`PidfdParams`): of the process itself (for the restored
    /// process), of a process that ended and was reaped (of one that did too), or of
    /// another process of the job (of that process, back with its pid).
    Pidfd = 17,
    /// A named FIFO, opened again by its path (`file.path`): `params` = [capacity,
    /// deleted (1: made again under a temporary name and removed)] (`FifoParams`).
    /// Blob, with the first read end: the bytes in it.
    Fifo = 18,
    /// A POSIX message queue (`mq_open`), opened again by its name (`file.path`, as
    /// `/name`), or made again with its attributes and messages where that name is
    /// gone: `params` = [`mq_maxmsg`, `mq_msgsize`, deleted (1: made again under a
    /// temporary name and removed)] (`MqParams`). Blob, with its first descriptor: the
    /// messages, each with its priority (`Queue::prioritized`).
    PosixMq = 19,
}

impl FdKind {
    pub fn from_u32(v: u32) -> Option<Self> {
        use FdKind::*;
        Some(match v {
            1 => File,
            2 => Deleted,
            3 => Device,
            4 => Unsupported,
            5 => Pipe,
            6 => SocketPair,
            7 => Reset,
            8 => Socket,
            9 => Epoll,
            10 => EventFd,
            11 => SignalFd,
            12 => TimerFd,
            13 => Inotify,
            14 => Tty,
            15 => Memfd,
            16 => Shm,
            17 => Pidfd,
            18 => Fifo,
            19 => PosixMq,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        use FdKind::*;
        match self {
            File => "file",
            Pidfd => "pidfd",
            Fifo => "fifo",
            PosixMq => "posix-mq",
            Deleted => "deleted-file",
            Device => "device",
            Unsupported => "unsupported",
            Pipe => "pipe",
            SocketPair => "socketpair",
            Reset => "reset-socket",
            Socket => "socket",
            Epoll => "epoll",
            EventFd => "eventfd",
            SignalFd => "signalfd",
            TimerFd => "timerfd",
            Inotify => "inotify",
            Tty => "tty",
            Memfd => "memfd",
            Shm => "shm",
        }
    }
    /// Kinds whose blob holds a file's contents, copied from the file as the image is
    /// written (a `File`'s saved contents are read during the stop instead, as a pipe's
    /// bytes are: they are small, and a forked writer then needs no stop).
    pub fn saves_file(self) -> bool {
        matches!(self, FdKind::Deleted | FdKind::Memfd | FdKind::Shm)
    }
    /// (locks, data segments) of a record's `extra`: the `LockEntry`s, then, for the
    /// kinds whose contents are saved, `params[SEGMENTS_PARAM]` `Segment`s.
    pub fn split_extra(self, f: &FdRecord) -> (StrRef, StrRef) {
        let segs = if self.saves_file() { f.params[SEGMENTS_PARAM].min(u32::MAX as u64 / 16) as u32 * 16 } else { 0 };
        let segs = segs.min(f.extra.len);
        let locks = f.extra.len - segs;
        (StrRef { off: f.extra.off, len: locks }, StrRef { off: f.extra.off.saturating_add(locks), len: segs })
    }
    /// Kinds a job's root makes once for every process of the job that holds one open
    /// file description of them (`tree::Share`): not pipes and socket pairs (the job's
    /// by their inodes), nor what is tied to one process's other descriptors or memory
    /// (epoll sets, memory files, pidfds), nor terminals (the restoring process's).
    pub fn made_once_for_a_job(self) -> bool {
        use FdKind::*;
        matches!(self, File | Device | Socket | EventFd | SignalFd | TimerFd | Inotify | Fifo | PosixMq)
    }
    /// Kinds whose `extra` lists the locks held through them (`LockEntry`).
    pub fn holds_locks(self) -> bool {
        matches!(self, FdKind::File | FdKind::Deleted | FdKind::Device | FdKind::Memfd | FdKind::Shm)
    }
}

/// `FdKind::Socket` option bits.
pub const SOCKOPT_REUSEADDR: u64 = 1;
pub const SOCKOPT_REUSEPORT: u64 = 2;
pub const SOCKOPT_KEEPALIVE: u64 = 4;
pub const SOCKOPT_NODELAY: u64 = 8;
pub const SOCKOPT_V6ONLY: u64 = 16;
pub const SOCKOPT_BROADCAST: u64 = 32;
/// `IP_FREEBIND` (or `IPV6_FREEBIND`): set before `bind`, so an address this machine
/// lacks binds again too.
pub const SOCKOPT_FREEBIND: u64 = 64;
/// `SO_LOCK_FILTER`: the filter cannot be changed any more (set after attaching it).
pub const SOCKOPT_LOCK_FILTER: u64 = 128;
/// A TCP connection being made (`SYN_SENT`): the peer address is where it goes
/// (`SO_PEERNAME`); the restore starts the connection again.
pub const SOCKOPT_CONNECTING: u64 = 256;
/// Every `SOCKOPT_*` bit.
pub const SOCKOPTS: u64 = 0x1ff;
/// Bytes of one classic BPF instruction (`struct sock_filter`).
pub const SOCK_FILTER_LEN: usize = 8;

/// The valued options of a socket (`FdKind::Socket`), after its addresses in `extra`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockOpts {
    /// `SO_RCVBUF` and `SO_SNDBUF` as `getsockopt` reads them (twice what was set).
    pub rcvbuf: u32,
    pub sndbuf: u32,
    /// `SO_LINGER`: on (0/1) and seconds.
    pub linger_on: u32,
    pub linger_secs: u32,
    /// TCP only: `TCP_KEEPIDLE`, `TCP_KEEPINTVL` (seconds), `TCP_KEEPCNT`; 0: not read.
    pub keepidle: u32,
    pub keepintvl: u32,
    pub keepcnt: u32,
    pub pad: u32,
    /// `SO_RCVTIMEO` and `SO_SNDTIMEO` in microseconds (0: none).
    pub rcvtimeo_us: u64,
    pub sndtimeo_us: u64,
}

/// A TCP connection (`FdKind::Socket`, a connected stream socket) as the kernel's
/// repair mode reads it: the head of its blob, then the bytes of its receive queue,
/// then those of its send queue.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpConn {
    /// `TCP_QUEUE_SEQ` of the send queue (the sequence number after its last byte) and
    /// of the receive queue (the next one expected).
    pub snd_seq: u32,
    pub rcv_seq: u32,
    /// Bytes in each queue (the send queue's: sent and not acknowledged, then not sent).
    pub sendq_len: u32,
    pub recvq_len: u32,
    /// `TCP_MAXSEG`; `tcpi_options` (`TCPI_OPT_*`) and the window scales negotiated.
    pub mss: u32,
    pub options: u32,
    pub snd_wscale: u32,
    pub rcv_wscale: u32,
    /// `TCP_TIMESTAMP`: the connection's timestamp clock.
    pub timestamp: u32,
    /// `struct tcp_repair_window`: snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup.
    pub window: [u32; 5],
    /// The bytes at the end of the send queue never sent (`SIOCOUTQNSD`).
    pub unsent: u32,
    /// `tcpi_state`: established (1), FIN_WAIT1 (4), FIN_WAIT2 (5), CLOSE_WAIT (8),
    /// LAST_ACK (9) or CLOSING (11). The sequence numbers and queues are those of the
    /// bytes alone, without the FINs sent or received.
    pub state: u32,
    /// `TCP_CONN_*` bits.
    pub flags: u32,
}

/// `TcpConn` flag: the process shut down its receiving side (`shutdown(SHUT_RD)`).
pub const TCP_CONN_SHUT_RD: u32 = 1;

impl TcpConn {
    /// The blob length its queues make it.
    pub fn blob_len(&self) -> u64 {
        size_of::<TcpConn>() as u64 + self.sendq_len as u64 + self.recvq_len as u64
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FdRecord {
    pub fd: i32,
    pub kind: u32,
    /// `fcntl(F_GETFL)`.
    pub flags: u32,
    /// `fcntl(F_GETFD)`.
    pub fd_flags: u32,
    pub offset: i64,
    /// The file; for others what `/proc/self/fd` said (`pipe:[123]`), with the inode.
    pub file: FileId,
    pub data_off: u64,
    pub data_len: u64,
    pub blob: u32,
    /// Flags the program passed to `open` (seen by the hook, so `O_CREAT`/`O_TRUNC`
    /// included); 0 when no hook saw the open (glibc-internal opens, inherited fds).
    pub open_flags: u32,
    /// An earlier descriptor of the same open file description (`dup`), or -1: this
    /// one is then a copy of that one, whatever its kind.
    pub dup_of: i32,
    /// 1: no descriptor of the program but one in flight in a socket queue
    /// (`SCM_RIGHTS`), at a number the program did not use: made again only to be sent
    /// with the queue's message, then closed.
    pub in_flight: u32,
    pub extra: StrRef,
    pub params: [u64; 8],
}

/// `EpollEntry::events` bit: a registration made under a number that is closed now
/// (its file lives on through another descriptor of the process, `fd`): it is made
/// again through a copy of `fd`, so that `fd`'s own registration, if any, stays one.
/// The kernel uses none of bits 14 to 27.
pub const EPOLL_THROUGH_COPY: u32 = 1 << 27;

/// One registration of an epoll set (`FdKind::Epoll`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EpollEntry {
    pub fd: i32,
    pub events: u32,
    pub data: u64,
}

/// One watch of an inotify instance (`FdKind::Inotify`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct InotifyWatch {
    pub wd: i32,
    pub mask: u32,
    pub path: StrRef,
}

/// One lock held through a descriptor (`extra` of the file kinds), as the
/// descriptor's `fdinfo` lists it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockEntry {
    /// `LOCK_POSIX`, `LOCK_OFD`, `LOCK_FLOCK` or `LOCK_LEASE`.
    pub kind: u32,
    /// 1: a write (exclusive) lock, 0: a read (shared) one.
    pub write: u32,
    /// The first byte locked (0 for `flock`).
    pub start: u64,
    /// How many bytes; 0: to the end of the file, however it grows.
    pub len: u64,
}
/// A run of data in a sparse file whose contents are saved (`FdKind::saves_file`): the
/// blob holds only the runs, one after the other; the rest of the file (up to
/// `file.size`) is holes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub off: u64,
    pub len: u64,
}

/// `params` slot of the kinds whose contents are saved: how many `Segment`s follow the
/// locks in `extra` (0: the blob is the whole file, `file.size` bytes).
pub const SEGMENTS_PARAM: usize = 7;
/// `params` slots of the kinds whose contents are saved: the file's owner, uid + 1 and
/// gid + 1 (0: not saved).
pub const OWNER_PARAMS: [usize; 2] = [5, 6];

/// A POSIX record lock (`fcntl` `F_SETLK`): the process's, released when it closes
/// any descriptor of the file.
pub const LOCK_POSIX: u32 = 1;
/// An open file description lock (`F_OFD_SETLK`).
pub const LOCK_OFD: u32 = 2;
/// A `flock` lock.
pub const LOCK_FLOCK: u32 = 3;
/// A lease (`fcntl` `F_SETLEASE`): `write` 1 for `F_WRLCK`, 0 for `F_RDLCK`.
pub const LOCK_LEASE: u32 = 4;

/// A POSIX timer (`timer_create`), restored under the same id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TimerRecord {
    pub id: i32,
    pub clock: i32,
    /// `SIGEV_SIGNAL`, `SIGEV_NONE` (`SIGEV_THREAD_ID` is aimed at the process).
    pub notify: i32,
    pub signo: i32,
    pub sigval: u64,
    /// Interval then time left, each as seconds and nanoseconds (`struct itimerspec`).
    pub spec: [i64; 4],
}

// SAFETY: all of these are `repr(C)`, made of integers and arrays of integers laid out
// without implicit padding (checked by the size asserts below), so every byte is
// initialised and every bit pattern is valid.
unsafe impl Pod for StrRef {}
unsafe impl Pod for TableDesc {}
unsafe impl Pod for Header {}
unsafe impl Pod for FileId {}
unsafe impl Pod for MmFields {}
unsafe impl Pod for KSigaction {}
unsafe impl Pod for Rlimit {}
unsafe impl Pod for Itimer {}
unsafe impl Pod for ProcessRecord {}
unsafe impl Pod for Attributes {}
unsafe impl Pod for ThreadSched {}
unsafe impl Pod for CpuFeatures {}
unsafe impl Pod for Context {}
unsafe impl Pod for ThreadRecord {}
unsafe impl Pod for RegionRecord {}
unsafe impl Pod for Extent {}
unsafe impl Pod for FdRecord {}
unsafe impl Pod for EpollEntry {}
unsafe impl Pod for InotifyWatch {}
unsafe impl Pod for LockEntry {}
unsafe impl Pod for Segment {}
unsafe impl Pod for SockOpts {}
unsafe impl Pod for TcpConn {}
unsafe impl Pod for TimerRecord {}
unsafe impl Pod for u8 {}
unsafe impl Pod for u32 {}
unsafe impl Pod for u64 {}
unsafe impl Pod for i64 {}

const _: () = assert!(size_of::<MmFields>() == 88);
const _: () = assert!(size_of::<ProcessRecord>() == 72 + 88 + 16 + 8 + 16 + 256 + 96 + 2048 + 32 + 8 + 8 + 56);
const _: () = assert!(size_of::<Attributes>() == 56);
const _: () = assert!(size_of::<ThreadSched>() == 24 + 128);
const _: () = assert!(size_of::<ThreadRecord>() == 8 + 64 + 8 * 5 + 8 + 16 + 152);
const _: () = assert!(size_of::<RegionRecord>() == 16 + 24 + 8 + 72 + 16);
const _: () = assert!(size_of::<FdRecord>() == 24 + 72 + 24 + 8 + 8 + 64);
const _: () = assert!(size_of::<EpollEntry>() == 16);
const _: () = assert!(size_of::<CpuFeatures>() == 32);
const _: () = assert!(size_of::<InotifyWatch>() == 16);
const _: () = assert!(size_of::<LockEntry>() == 24);
const _: () = assert!(size_of::<Segment>() == 16);
const _: () = assert!(size_of::<SockOpts>() == 48);
const _: () = assert!(size_of::<TcpConn>() == 68);
const _: () = assert!(size_of::<TimerRecord>() == 24 + 32);

/// An all-zero record.
pub fn zeroed<T: Pod>() -> T {
    // SAFETY: for a `Pod` type every bit pattern, all zeroes included, is a valid value.
    unsafe { core::mem::zeroed() }
}
