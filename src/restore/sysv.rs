//! System V shared memory segments (`shmget`/`shmat`), the restore side (saved as
//! `RegionKind::SysvShm` regions by `mig_checkpoint::kinds::region`).
//!
//! Each segment a process (or a job) had attached is found again (the same id, key,
//! size and creator: this machine, the segment outlived the process) or made again,
//! with its saved id where ids may be chosen (`shm_next_id`, which needs
//! `CAP_CHECKPOINT_RESTORE`), and its saved contents are put back once, before any
//! process attaches it. Each process then holds it in its restore's hole (so that a
//! segment marked for removal outlives the old mappings the blob takes away), the blob
//! attaches it at its saved addresses and marks it for removal again if it was.
#![allow(unsafe_code)]

use mig_image::{Image, PAGE, PROT_EXEC, PROT_WRITE, RegionKind, RegionRecord, Table, sysv_key};
use std::collections::HashMap;

/// `shm_perm.mode` bit: marked for removal (not in the libc crate).
const SHM_DEST: u32 = 0o1000;

/// A segment as saved.
#[derive(Clone, Copy, Debug)]
pub struct Saved {
    pub id: u64,
    /// The key it can be found by: none (`IPC_PRIVATE`) once marked for removal.
    pub key: i32,
    pub size: u64,
    pub mode: u32,
}

impl Saved {
    fn of(img: &Image, r: &RegionRecord) -> Option<Saved> {
        let dest = r.file.mode & SHM_DEST != 0;
        let key = if dest { libc::IPC_PRIVATE } else { sysv_key(img.str(r.file.path))? };
        Some(Saved { id: r.file.ino, key, size: r.file.size, mode: r.file.mode })
    }

    /// Marked for removal (`IPC_RMID`) while attached: it goes with its last attach.
    pub fn dest(&self) -> bool {
        self.mode & SHM_DEST != 0
    }
}

/// The segments a process's regions attach, by saved id.
pub fn saved(img: &Image) -> HashMap<u64, Saved> {
    regions(img).filter_map(|r| Some((r.file.ino, Saved::of(img, &r)?))).collect()
}

fn regions<'a>(img: &'a Image) -> impl Iterator<Item = RegionRecord> + 'a {
    (0..img.count(Table::Regions)).map(|i| img.region(i)).filter(|r| r.kind == RegionKind::SysvShm as u32)
}

/// Segments made for a restore, removed again if it is refused (`keep` once it cannot be).
#[derive(Default)]
pub struct Made {
    /// Saved id -> id now.
    pub ids: HashMap<u64, i32>,
    created: Vec<i32>,
}

impl Made {
    pub fn keep(mut self) -> HashMap<u64, i32> {
        self.created.clear();
        std::mem::take(&mut self.ids)
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        for &id in &self.created {
            // SAFETY: removing a segment this restore made and nothing attached yet.
            unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
        }
    }
}

/// Finds or makes every segment the processes of `images` attach, and puts back its
/// contents (the pages each attach saved; the first saved copy of a page wins: they
/// were all taken at one moment).
pub fn make(images: &[&Image]) -> Result<Made, String> {
    let mut made = Made::default();
    let mut all: Vec<Saved> = images.iter().flat_map(|img| saved(img).into_values()).collect();
    all.sort_by_key(|s| s.id);
    all.dedup_by_key(|s| s.id);
    for s in all {
        let (id, new) = find_or_make(&s)?;
        if new {
            made.created.push(id);
        }
        made.ids.insert(s.id, id);
        if id as u64 != s.id {
            eprintln!(
                "mig: warning: System V shared memory segment {} came back as segment {id}: the id the program holds no longer names it (ids can be chosen with CAP_CHECKPOINT_RESTORE only)",
                s.id
            );
        }
        fill(images, &s, id)?;
    }
    Ok(made)
}

fn stat(id: i32) -> Option<libc::shmid_ds> {
    // SAFETY: all-integer C struct, written by IPC_STAT.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is a valid `shmid_ds` for the call to fill.
    (unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) } == 0).then_some(ds)
}

/// The segment itself if it still exists (same id, key and size, made by this user),
/// else a new one (the saved id asked for): (id, made now).
fn find_or_make(s: &Saved) -> Result<(i32, bool), String> {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let same = |ds: &libc::shmid_ds| ds.shm_perm.__key == s.key && ds.shm_segsz as u64 == s.size && ds.shm_perm.cuid == me;
    if s.id <= i32::MAX as u64 && stat(s.id as i32).is_some_and(|ds| same(&ds)) {
        return Ok((s.id as i32, false));
    }
    let asked = std::fs::write("/proc/sys/kernel/shm_next_id", s.id.to_string()).is_ok();
    let flags = libc::IPC_CREAT | libc::IPC_EXCL | (s.mode & 0o777) as i32;
    // SAFETY: shmget has no memory arguments.
    let id = unsafe { libc::shmget(s.key, s.size as usize, flags) };
    let err = std::io::Error::last_os_error();
    if asked && id < 0 {
        let _ = std::fs::write("/proc/sys/kernel/shm_next_id", "-1");
    }
    match id {
        -1 if err.raw_os_error() == Some(libc::EEXIST) => {
            Err(format!("the key {:#010x} of its System V shared memory segment {} is taken by another segment", s.key as u32, s.id))
        }
        -1 => Err(format!("cannot make its System V shared memory segment {} again: {err}", s.id)),
        id => Ok((id, true)),
    }
}

/// Writes the saved pages of segment `s` into segment `id`, through an attach of its own.
fn fill(images: &[&Image], s: &Saved, id: i32) -> Result<(), String> {
    // SAFETY: the kernel chooses where; detached below.
    let at = unsafe { libc::shmat(id, std::ptr::null(), 0) };
    if at as isize == -1 {
        return Err(format!("cannot attach System V shared memory segment {id}: {}", std::io::Error::last_os_error()));
    }
    let size = s.size.next_multiple_of(PAGE);
    let of = |r: &RegionRecord| r.kind == RegionKind::SysvShm as u32 && r.file.ino == s.id;
    let result = super::shared_pages::each(images, of, |off, page| {
        if off + PAGE <= size {
            // SAFETY: `off` is within the attach of `size` bytes just made.
            unsafe { std::ptr::copy_nonoverlapping(page.as_ptr(), at.cast::<u8>().add(off as usize), page.len()) };
        }
        Ok(())
    });
    // SAFETY: the attach made above, used no more.
    unsafe { libc::shmdt(at) };
    result
}

/// Room each process's restore holds its segments in (in its hole).
pub fn hold_len(segments: &HashMap<u64, Saved>) -> u64 {
    segments.values().map(|s| s.size.next_multiple_of(PAGE)).sum()
}

/// Attaches every segment of this process at `at` on (in the hole, which the restored
/// process unmaps once it runs): while the blob replaces the old mappings, no segment
/// loses its last attach.
pub fn hold(segments: &HashMap<u64, Saved>, ids: &HashMap<u64, i32>, mut at: u64) -> Result<(), String> {
    for s in segments.values() {
        let id = *ids.get(&s.id).ok_or_else(|| format!("System V shared memory segment {} was not made again", s.id))?;
        // SAFETY: `at` is in the hole, mapped for this and used by nothing else.
        let got = unsafe { libc::shmat(id, at as *const libc::c_void, libc::SHM_REMAP) };
        if got as u64 != at {
            return Err(format!("cannot attach System V shared memory segment {id}: {}", std::io::Error::last_os_error()));
        }
        at += s.size.next_multiple_of(PAGE);
    }
    Ok(())
}

/// The address ranges the attaches of this process's segments cover (whole segments,
/// also where the process had unmapped part of one): the hole must be elsewhere.
pub fn attach_ranges(img: &Image) -> Vec<(u64, u64)> {
    regions(img).filter(|r| r.file_off == 0).map(|r| (r.start, r.start + r.file.size.next_multiple_of(PAGE))).collect()
}

/// How the blob attaches region `r` (`shmat` flags); for the first region of an attach.
pub fn attach_flags(r: &RegionRecord) -> u64 {
    let ro = if r.prot & PROT_WRITE == 0 { libc::SHM_RDONLY } else { 0 };
    let exec = if r.prot & PROT_EXEC != 0 { libc::SHM_EXEC } else { 0 };
    (libc::SHM_REMAP | ro | exec) as u64
}
