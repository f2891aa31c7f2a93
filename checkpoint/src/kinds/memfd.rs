//! Files whose contents the image carries: memfds (`file.path` is `/memfd:name`),
//! files in `/dev/shm` and regular files deleted (or replaced) while open. Each file
//! is made again once, written back, and every descriptor and `SharedObject` mapping
//! of it shares it.

use crate::failure::Failure;
use crate::files::Strings;
use crate::sys;
use mig_image::{FdRecord, MemfdParams, OWNER_PARAMS, Params, SEGMENTS_PARAM, Segment, StrRef, bytes_of};

/// At most this many runs of data are saved for a sparse file; more, and it is saved
/// whole.
const MAX_SEGMENTS: usize = 4096;

/// The runs of data of the file of `fd` (whose contents are saved), appended to `rec`'s
/// `extra` (after its locks) when the file has holes: the blob then holds only them.
/// The descriptor's offset, which `SEEK_DATA` moves, is put back (the process is
/// stopped: nothing sees it move).
pub fn segments(fd: i32, st: &libc::stat, rec: &mut FdRecord, strings: &mut Strings) -> Result<(), Failure> {
    let size = st.st_size as u64;
    // Blocks allocated cover the size: no hole worth the bookkeeping.
    if size == 0 || (st.st_blocks as u64) * 512 >= size {
        return Ok(());
    }
    let offset = sys::lseek(fd, 0, libc::SEEK_CUR);
    let start = strings.bytes.len();
    let (mut at, mut n, mut total) = (0u64, 0usize, 0u64);
    let whole = loop {
        let data = match sys::lseek(fd, at as i64, libc::SEEK_DATA) {
            Ok(d) => d as u64,
            Err(sys::Errno(libc::ENXIO)) => break false, // no data past `at`
            Err(_) => break true,                        // no SEEK_DATA here
        };
        let hole = match sys::lseek(fd, data as i64, libc::SEEK_HOLE) {
            Ok(h) => (h as u64).min(size),
            Err(_) => break true,
        };
        if data >= size || hole <= data {
            break false;
        }
        n += 1;
        if n > MAX_SEGMENTS {
            break true;
        }
        strings.bytes.extend(bytes_of(&Segment { off: data, len: hole - data }))?;
        total += hole - data;
        at = hole;
    };
    if let Ok(o) = offset {
        let _ = sys::lseek(fd, o, libc::SEEK_SET);
    }
    if whole {
        strings.bytes.truncate(start);
        return Ok(());
    }
    rec.extra = StrRef { off: if rec.extra.len > 0 { rec.extra.off } else { start as u32 }, len: rec.extra.len + (strings.bytes.len() - start) as u32 };
    rec.params[SEGMENTS_PARAM] = n as u64;
    rec.data_len = total;
    Ok(())
}

/// A file whose contents are saved: its owner, made again with it.
pub fn owner(st: &libc::stat, rec: &mut FdRecord) {
    let [uid, gid] = OWNER_PARAMS;
    if let Some(p) = rec.params.get_mut(uid) {
        *p = st.st_uid as u64 + 1;
    }
    if let Some(p) = rec.params.get_mut(gid) {
        *p = st.st_gid as u64 + 1;
    }
}

/// A memfd: its seals, and its size to save.
pub fn save(fd: i32, st: &libc::stat, rec: &mut FdRecord) {
    rec.params = MemfdParams { seals: sys::fcntl(fd, libc::F_GET_SEALS, 0).unwrap_or(0) as u64 }.encode();
    rec.data_len = st.st_size as u64;
}

#[cfg(feature = "restore")]
pub use restore::{memfd, restore, shared_objects};

#[cfg(feature = "restore")]
#[allow(unsafe_code)]
mod restore {
    use super::super::{Shared, file::seek, os::*};
    use mig_image::{FdKind, FdRecord, MemfdParams, Params, REGION_DATA_IN_FD, REGION_DELETED, RegionKind, Segment, Table};

    pub fn restore(f: &FdRecord, cx: &mut Shared) -> std::io::Result<i32> {
        let object = file_object(f, cx)?;
        // A file made with `O_TMPFILE` keeps `O_DIRECTORY` in its status flags (part of
        // the `O_TMPFILE` value); reopened with it, a file is refused.
        let flags = f.flags as i32 & REOPEN_FLAGS & !libc::O_DIRECTORY;
        // The description `memfd_create` made, as the program's was: a memfd reopened
        // read-write counts as open for writing, and `exec` of it is refused (ETXTBSY).
        let key = (f.file.dev, f.file.ino);
        if f.kind == FdKind::Memfd as u32 && flags & libc::O_ACCMODE == libc::O_RDWR && cx.memfds_taken.insert(key) {
            let fd = dup(object)?;
            // SAFETY: fcntl on the descriptor just made.
            unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_ACCMODE) };
            return Ok(seek(fd, f.offset));
        }
        open_raw(format!("/proc/self/fd/{object}").as_bytes(), flags, 0).map(|fd| seek(fd, f.offset))
    }

    /// The recreated file behind a saved descriptor, read-write (made once per file).
    fn file_object(f: &FdRecord, cx: &mut Shared) -> std::io::Result<i32> {
        let key = (f.file.dev, f.file.ino);
        if let Some(&fd) = cx.objects.get(&key) {
            return Ok(fd);
        }
        let path = cx.img.str(f.file.path);
        let mode = f.file.mode & 0o7777;
        let seals = MemfdParams::decode(&f.params).seals;
        let fd = match FdKind::from_u32(f.kind) {
            Some(FdKind::Memfd) => memfd(path, seals != 0)?,
            Some(FdKind::Shm) => {
                let fd = make_shared_file(path, false, mode)?;
                // SAFETY: truncating a file we opened read-write.
                last_error::<i32>(unsafe { libc::ftruncate(fd, 0) })?;
                fd
            }
            _ => make_shared_file(path, true, mode)?,
        };
        write_contents(fd, f, cx.img)?;
        keep_owner(fd, f, path);
        keep_mode_and_time(fd, f);
        if f.kind == FdKind::Memfd as u32 && seals != 0 {
            // SAFETY: fcntl on the memfd we just made.
            last_error::<i32>(unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals as i32) })?;
        }
        let fd = raise_fd(fd, cx.base).map_err(Error::other)?;
        cx.objects.insert(key, fd);
        Ok(fd)
    }

    /// The new file `fd` gets the saved file's owner where it was saved and this process
    /// may give it (root); elsewhere a warning names the owner it has instead.
    fn keep_owner(fd: i32, f: &FdRecord, path: &[u8]) {
        let [uid, gid] = mig_image::OWNER_PARAMS.map(|i| f.params.get(i).copied().unwrap_or(0));
        if uid == 0 || gid == 0 {
            return;
        }
        let (uid, gid) = ((uid - 1) as u32, (gid - 1) as u32);
        // SAFETY: fstat and fchown of the file we made, into a zeroed stat.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut st) != 0 || (st.st_uid, st.st_gid) == (uid, gid) {
                return;
            }
            if libc::fchown(fd, uid, gid) != 0 {
                eprintln!(
                    "mig: warning: the file {} comes back owned by {}:{}, not {uid}:{gid} ({})",
                    String::from_utf8_lossy(path),
                    st.st_uid,
                    st.st_gid,
                    std::io::Error::last_os_error()
                );
            }
        }
    }

    /// The new file `fd` gets the saved file's mode (not what the restoring process's
    /// umask leaves of it) and its modification time (not the time its contents were
    /// written back).
    fn keep_mode_and_time(fd: i32, f: &FdRecord) {
        let mtime = f.file.mtime_ns;
        let times = [
            libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT },
            libc::timespec { tv_sec: mtime.div_euclid(1_000_000_000), tv_nsec: mtime.rem_euclid(1_000_000_000) },
        ];
        // SAFETY: fchmod and futimens on the file we made, with a valid two-element array.
        unsafe {
            libc::fchmod(fd, f.file.mode & 0o7777);
            if mtime != 0 {
                libc::futimens(fd, times.as_ptr());
            }
        }
    }

    /// The saved contents into the new file `fd`: the whole file, or its runs of data
    /// at their offsets and the size around them (holes stay holes).
    fn write_contents(fd: i32, f: &FdRecord, img: &mig_image::Image) -> std::io::Result<()> {
        let data = img.data(f.data_off, f.data_len);
        let kind = FdKind::from_u32(f.kind).unwrap_or(FdKind::Deleted);
        let runs = kind.split_extra(f).1;
        if runs.len == 0 {
            return write_all(fd, data);
        }
        let mut at = 0usize;
        for run in img.records::<Segment>(runs) {
            let piece = data.get(at..at + run.len as usize).ok_or_else(|| Error::other("its saved data runs do not fit its data"))?;
            write_all_at(fd, piece, run.off)?;
            at += piece.len();
        }
        // SAFETY: sizing our file.
        last_error::<i32>(unsafe { libc::ftruncate(fd, f.file.size as i64) }).map(drop)
    }

    /// Memory files that only mappings refer to (their descriptor was closed): made
    /// again, empty, as large as the mappings need; the regions' saved pages fill them.
    pub fn shared_objects(cx: &mut Shared) -> Result<(), String> {
        for i in 0..cx.img.count(Table::Regions) {
            let r = cx.img.region(i);
            if r.kind != RegionKind::SharedObject as u32 {
                continue;
            }
            let key = (r.file.dev, r.file.ino);
            let path = cx.img.str(r.file.path);
            let fd = match cx.objects.get(&key) {
                Some(&fd) => fd,
                None if r.flags & REGION_DATA_IN_FD != 0 => return Err(format!("mapping {:#x}: its file's descriptor is not in the image", r.start)),
                None => {
                    let deleted = r.flags & REGION_DELETED != 0;
                    let made = if path.starts_with(b"/dev/shm/") { make_shared_file(path, deleted, 0o600) } else { memfd(path, false) };
                    let fd = made.map_err(|e| format!("mapping {:#x}: cannot make {} again: {e}", r.start, String::from_utf8_lossy(path)))?;
                    let fd = raise_fd(fd, cx.base)?;
                    cx.objects.insert(key, fd);
                    fd
                }
            };
            let need = r.file_off + (r.end - r.start);
            // SAFETY: fstat/ftruncate on a descriptor we own; `st` is plain old data.
            let grown = unsafe {
                let mut st: libc::stat = std::mem::zeroed();
                libc::fstat(fd, &mut st) == 0 && (st.st_size as u64 >= need || libc::ftruncate(fd, need as i64) == 0)
            };
            if !grown {
                return Err(format!("mapping {:#x}: cannot size {}: {}", r.start, String::from_utf8_lossy(path), Error::last_os_error()));
            }
        }
        Ok(())
    }

    /// A new memfd named as the saved one was.
    pub fn memfd(path: &[u8], sealable: bool) -> std::io::Result<i32> {
        let name = path.strip_prefix(b"/memfd:").unwrap_or(path.rsplit(|&c| c == b'/').next().unwrap_or(b"mig"));
        let name = CString::new(name).unwrap_or_default();
        let flags = libc::MFD_CLOEXEC | if sealable { libc::MFD_ALLOW_SEALING } else { 0 };
        // SAFETY: a valid name and flags.
        last_error(unsafe { libc::memfd_create(name.as_ptr(), flags) })
    }
}
