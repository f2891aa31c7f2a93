//! Issue 6, lazy restore: saved pages are mapped from the image, not read; the data is
//! checked behind the running process, which is killed if it is damaged; such a
//! process checkpoints again into an image that no longer needs the first one.

mod common;
use common::*;
use mig_image::{RegionKind, Table};
use std::path::{Path, PathBuf};

/// A `chain` run with a 2 MiB buffer (regions with little saved data are read in even
/// lazily) checkpointed at step 3 and killed: (launch, reference, before, image).
fn chain_image(name: &str) -> (Launch, Vec<String>, Vec<String>, PathBuf) {
    let dir = tempdir(name);
    let l = Launch::new(&compile("chain"), &dir).arg("40").arg("2048");
    let reference = reference(&l.clone_bare());
    let image = dir.join("a.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 3, &image);
    let before = p.kill();
    (l, reference, before, image)
}

fn maps_of(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap()
}

#[test]
fn lazy_restore_maps_the_image_and_eager_reads_it() {
    let (l, reference, before, image) = chain_image("lazy_maps");
    let mut p = l.clone_with("MIG_RESTORE", &image).start();
    p.line().expect("runs");
    let maps = maps_of(p.pid());
    assert!(maps.contains(image.to_str().unwrap()), "pages are mapped from the image");
    // Only the buffer is: regions with little saved data (the program's, its libraries')
    // are read in, as what a resumed program touches first.
    let bytes = std::fs::read(&image).unwrap();
    let img = mig_image::Image::verify(&bytes, &crc32fast::Hasher::new()).unwrap();
    let buffer = (0..img.count(Table::Regions)).map(|i| img.region(i)).max_by_key(|r| r.data_len).unwrap();
    for line in maps.lines().filter(|l| l.ends_with(image.to_str().unwrap())) {
        let (a, b) = line.split_once(' ').unwrap().0.split_once('-').unwrap();
        let (a, b) = (u64::from_str_radix(a, 16).unwrap(), u64::from_str_radix(b, 16).unwrap());
        assert!(buffer.start <= a && b <= buffer.end, "only the buffer is mapped from the image: {line}");
    }
    let (restored, st, err) = p.finish();
    assert!(st.success(), "{err}");
    assert_continues(&reference, &before, &restored);

    let mut p = l.clone_with("MIG_RESTORE", &image).clone_with("MIG_RESTORE_EAGER", Path::new("1")).start();
    p.line().expect("runs");
    assert!(!maps_of(p.pid()).contains(image.to_str().unwrap()), "eager: nothing is mapped from the image");
    std::fs::remove_file(&image).unwrap();
    let (restored, st, err) = p.finish();
    assert!(st.success(), "{err}");
    assert_continues(&reference, &before, &restored);
}

#[test]
fn lazily_restored_process_checkpoints_again_into_a_self_contained_image() {
    let (l, reference, _, first) = chain_image("lazy_again");
    let second = first.with_file_name("b.mig");
    let mut p = l.clone_with("MIG_RESTORE", &first).clone_with("MIG_IMAGE", &second).start();
    checkpoint_at(&mut p, 8, &second);
    let before = p.kill();
    std::fs::remove_file(&first).unwrap();
    let (restored, st, err) = l.clone_with("MIG_RESTORE", &second).start().finish();
    assert!(st.success(), "{err}");
    let first_step = step_of(&before[0]).unwrap();
    let at = reference.iter().position(|s| step_of(s) == Some(first_step)).unwrap();
    assert_continues(&reference[at..], &before, &restored);
}

/// A copy of `image` with one byte of the buffer's saved pages flipped.
fn damaged_buffer(image: &Path) -> PathBuf {
    let mut bytes = std::fs::read(image).unwrap();
    let at = {
        let img = mig_image::Image::verify(&bytes, &crc32fast::Hasher::new()).unwrap();
        let buffer = (0..img.count(Table::Regions))
            .map(|i| img.region(i))
            .filter(|r| r.kind == RegionKind::Anon as u32)
            .max_by_key(|r| r.data_len)
            .expect("a saved buffer");
        assert!(buffer.data_len >= 2 << 20, "the buffer is saved whole");
        (buffer.data_off + buffer.data_len / 2) as usize
    };
    bytes[at] ^= 0x40;
    let out = image.with_file_name("damaged.mig");
    std::fs::write(&out, bytes).unwrap();
    out
}

#[test]
fn damaged_mapped_data_kills_the_restored_process_and_eager_refuses_it() {
    let (l, _, _, image) = chain_image("lazy_damaged");
    let bad = damaged_buffer(&image);
    let (_, st, err) = l.clone_with("MIG_RESTORE", &bad).start().finish();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(libc::SIGKILL), "killed: {st:?} {err}");
    assert!(err.contains(bad.to_str().unwrap()) && err.contains("is damaged") && err.contains("was killed"), "{err}");

    let (out, st, err) = l.clone_with("MIG_RESTORE", &bad).clone_with("MIG_RESTORE_EAGER", Path::new("1")).start().finish();
    assert_eq!(st.code(), Some(125), "{err}");
    assert!(out.is_empty(), "refused before it runs: {out:?}");
    assert!(err.contains(bad.to_str().unwrap()), "{err}");
}

/// A `lazy_memory` run checkpointed at step 3 and killed: (launch, reference, before,
/// image). Its `madvise` and `mremap` calls come at steps 8 to 12.
fn lazy_memory_image(name: &str) -> (Launch, Vec<String>, Vec<String>, PathBuf) {
    let dir = tempdir(name);
    let l = Launch::new(&compile("lazy_memory"), &dir);
    let reference = reference(&l.clone_bare());
    let image = dir.join("a.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 3, &image);
    let before = p.kill();
    assert!(!before.iter().any(|s| s.starts_with("FAIL")), "{before:?}");
    (l, reference, before, image)
}

/// The first step a restored run printed, asserted to come before the subject's first
/// `madvise` (step 8).
fn before_the_calls(first: &str) {
    let step = step_of(first).unwrap_or_else(|| panic!("restored run starts with {first:?}"));
    assert!(step < 8, "restored at step {step}: the calls under test already ran");
}

/// `madvise(MADV_DONTNEED)` leaves zeros, `MADV_FREE` succeeds, `mremap` grows, shrinks
/// and moves ranges that a lazy restore made into alternating image-backed and
/// anonymous mappings, and grows one mapped from the image whole with zeros after its
/// pages: all as on the anonymous memory the program had. The subject checks each
/// result (it prints `FAIL` otherwise).
#[test]
fn lazily_restored_memory_behaves_as_anonymous_memory() {
    let (l, reference, before, image) = lazy_memory_image("lazy_memory");
    let mut p = l.clone_with("MIG_RESTORE", &image).start();
    before_the_calls(&p.line().expect("runs"));
    let maps = maps_of(p.pid());
    // Block M alone: 320 saved pages with an untouched one after each.
    let mapped = maps.lines().filter(|m| m.contains(image.to_str().unwrap())).count();
    assert!(mapped >= 320, "restored lazily, the saved pages mapped from the image one by one: {mapped} mappings\n{maps}");
    let (restored, st, err) = p.finish();
    assert!(st.success(), "{st:?}\nstderr: {err}\nstdout: {restored:?}");
    assert_continues(&reference, &before, &restored);
}

/// The control: restored eagerly, nothing is mapped from the image and the same calls
/// behave the same.
#[test]
fn eagerly_restored_memory_behaves_as_anonymous_memory() {
    let (l, reference, before, image) = lazy_memory_image("lazy_memory_eager");
    let mut p = l.clone_with("MIG_RESTORE", &image).clone_with("MIG_RESTORE_EAGER", Path::new("1")).start();
    before_the_calls(&p.line().expect("runs"));
    assert!(!maps_of(p.pid()).contains(image.to_str().unwrap()), "eager: nothing is mapped from the image");
    let (restored, st, err) = p.finish();
    assert!(st.success(), "{st:?}\nstderr: {err}\nstdout: {restored:?}");
    assert_continues(&reference, &before, &restored);
}

/// A lazily restored process whose `madvise` and `mremap` calls turned image-backed
/// pages into anonymous memory checkpoints again (at step 13, after the calls) into an
/// image that restores without the first one.
#[test]
fn lazily_restored_process_checkpoints_again_after_madvise_and_mremap() {
    let (l, reference, _, first) = lazy_memory_image("lazy_memory_again");
    let second = first.with_file_name("b.mig");
    let mut p = l.clone_with("MIG_RESTORE", &first).clone_with("MIG_IMAGE", &second).start();
    before_the_calls(&p.line().expect("runs"));
    checkpoint_at(&mut p, 13, &second);
    let before = p.kill();
    assert!(!before.iter().any(|s| s.starts_with("FAIL")), "{before:?}");
    std::fs::remove_file(&first).unwrap();
    let (restored, st, err) = l.clone_with("MIG_RESTORE", &second).start().finish();
    assert!(st.success(), "{st:?}\nstderr: {err}\nstdout: {restored:?}");
    let first_step = step_of(&before[0]).unwrap();
    let at = reference.iter().position(|s| step_of(s) == Some(first_step)).unwrap();
    assert_continues(&reference[at..], &before, &restored);
    assert!(step_of(&restored[0]).unwrap() > 13, "{restored:?}");
}
