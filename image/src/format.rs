//! Records of the image, byte for byte. All integers are little-endian (x86_64 only);
//! every struct is `repr(C)` with explicit padding so that its bytes are fully defined.

use core::mem::size_of;

pub const MAGIC: [u8; 8] = *b"MIGIMAGE";
/// Bumped on any change of layout or meaning.
pub const VERSION: u32 = 1;
/// ELF machine number of x86_64.
pub const ARCH_X86_64: u32 = 62;
pub const PAGE: u64 = 4096;
pub const HEADER_LEN: usize = 4096;
pub const NSIG: usize = 64;
pub const NRLIMITS: usize = 16;

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
    Strings = 5,
}
pub const TABLES: usize = 6;

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
    pub pad: [u8; HEADER_LEN - 112 - 24 * TABLES],
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
    pub pad: u32,
    pub comm: [u8; 16],
    pub rlimits: [Rlimit; NRLIMITS],
    pub itimers: [Itimer; 3],
    /// Index `sig - 1`.
    pub sigactions: [KSigaction; NSIG],
}

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum FdKind {
    /// A file or directory reopened by path.
    File = 1,
    /// A regular file unlinked while open: contents saved in a blob.
    Deleted = 2,
    /// A device node reopened by path (`/dev/null`, a tty, …).
    Device = 3,
    /// Not restorable yet (pipe, socket, event fd …): comes back as a broken pipe end.
    Unsupported = 4,
}

impl FdKind {
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => FdKind::File,
            2 => FdKind::Deleted,
            3 => FdKind::Device,
            4 => FdKind::Unsupported,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            FdKind::File => "file",
            FdKind::Deleted => "deleted-file",
            FdKind::Device => "device",
            FdKind::Unsupported => "unsupported",
        }
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
    /// For `Unsupported`, what `/proc/self/fd` said (`pipe:[123]`, `socket:[45]`).
    pub file: FileId,
    pub data_off: u64,
    pub data_len: u64,
    pub blob: u32,
    /// Flags the program passed to `open` (seen by the hook, so `O_CREAT`/`O_TRUNC`
    /// included); 0 when no hook saw the open (glibc-internal opens, inherited fds).
    pub open_flags: u32,
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
unsafe impl Pod for Context {}
unsafe impl Pod for ThreadRecord {}
unsafe impl Pod for RegionRecord {}
unsafe impl Pod for Extent {}
unsafe impl Pod for FdRecord {}
unsafe impl Pod for u8 {}
unsafe impl Pod for u32 {}
unsafe impl Pod for u64 {}

const _: () = assert!(size_of::<MmFields>() == 88);
const _: () = assert!(size_of::<ProcessRecord>() == 72 + 88 + 16 + 8 + 16 + 256 + 96 + 2048);
const _: () = assert!(size_of::<ThreadRecord>() == 8 + 64 + 8 * 5 + 8 + 16);
const _: () = assert!(size_of::<RegionRecord>() == 16 + 24 + 8 + 72 + 16);
const _: () = assert!(size_of::<FdRecord>() == 24 + 72 + 24);

/// An all-zero record.
pub fn zeroed<T: Pod>() -> T {
    // SAFETY: for a `Pod` type every bit pattern, all zeroes included, is a valid value.
    unsafe { core::mem::zeroed() }
}
