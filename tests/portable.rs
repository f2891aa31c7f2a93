//! Issue 4, portable images: they carry the program's and libraries' code, so they
//! restore after a library was replaced or the program rebuilt; a machine whose CPU or
//! kernel differs is refused with a reason.

mod common;
use common::*;
use mig_image::{HEADER_PORTABLE, Header, ProcessRecord, REGION_WHOLE, Table};
use std::path::{Path, PathBuf};
use std::process::Command;

fn cc(args: &[&str], out: &Path, src: &Path) {
    let ok = Command::new("cc").args(args).arg("-o").arg(out).arg(src).status().unwrap();
    assert!(ok.success());
}

/// Runs `l` portably, checkpoints at `at`, kills it; returns (reference, lines before, image).
fn portable_checkpoint(l: &Launch, dir: &Path, at: u32) -> (Vec<String>, Vec<String>, PathBuf) {
    let reference = reference(&l.clone_bare());
    let image = dir.join("p.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).clone_with("MIG_PORTABLE", Path::new("1")).start();
    checkpoint_at(&mut p, at, &image);
    let before = p.kill();
    (reference, before, image)
}

fn restore(l: &Launch, image: &Path) -> (Vec<String>, String) {
    let (restored, st, err) = l.clone_with("MIG_RESTORE", image).start().finish();
    assert!(st.success(), "restore failed: {st:?}\n{err}");
    (restored, err)
}

#[test]
fn portable_image_restores_after_a_library_was_replaced() {
    let dir = tempdir("portable_lib");
    let bin = build_uses_lib(&dir, 3);
    let l = Launch::new(&bin, &dir);
    let (reference, before, image) = portable_checkpoint(&l, &dir, 4);
    let bytes = std::fs::read(&image).unwrap();
    let img = mig_image::Image::verify(&bytes, &crc32fast::Hasher::new()).unwrap();
    assert_ne!(img.header.flags & HEADER_PORTABLE, 0, "the header says portable");
    let lib_whole = (0..img.count(Table::Regions))
        .map(|i| img.region(i))
        .filter(|r| img.str(r.file.path).ends_with(b"libstep.so"))
        .all(|r| r.flags & REGION_WHOLE != 0 && r.data_len == r.end - r.start);
    assert!(lib_whole, "every page of the library is in the image");

    // Another build of the library (other factor, other code and data) in its place.
    std::thread::sleep(std::time::Duration::from_millis(20)); // a distinct mtime, not a synchronisation
    build_uses_lib(&dir, 4);
    let (restored, _) = restore(&l, &image);
    assert_continues(&reference, &before, &restored);
}

#[test]
fn portable_image_restores_after_the_program_was_rebuilt() {
    let dir = tempdir("portable_exe");
    let src = repo().join("c-tests/chain.c");
    let bin = dir.join("chain");
    cc(&["-O1", "-g"], &bin, &src);
    let l = Launch::new(&bin, &dir).arg("20");
    let (reference, before, image) = portable_checkpoint(&l, &dir, 3);
    // Same path, other code: built without optimisation.
    std::thread::sleep(std::time::Duration::from_millis(20)); // a distinct mtime, not a synchronisation
    cc(&["-O0"], &bin, &src);
    let (restored, _) = restore(&l, &image);
    assert_continues(&reference, &before, &restored);
}

/// Rewrites the process record of an image with `edit`, resealing its CRCs.
fn patch_process(image: &Path, out: &Path, edit: impl FnOnce(&mut ProcessRecord)) {
    let mut bytes = std::fs::read(image).unwrap();
    let img = mig_image::Image::verify(&bytes, &crc32fast::Hasher::new()).unwrap();
    let mut header: Header = img.header;
    let mut p = img.process();
    edit(&mut p);
    let at = header.tables[Table::Process as usize].off as usize;
    bytes[at..at + size_of::<ProcessRecord>()].copy_from_slice(mig_image::bytes_of(&p));
    let meta = &bytes[header.meta_off as usize..(header.meta_off + header.meta_len) as usize];
    header.meta_crc = crc32fast::hash(meta);
    mig_image::layout::seal_header(&mut header, &crc32fast::Hasher::new());
    bytes[..size_of::<Header>()].copy_from_slice(mig_image::bytes_of(&header));
    std::fs::write(out, bytes).unwrap();
}

fn assert_refused(l: &Launch, image: &Path, reason: &str) {
    let (out, st, err) = l.clone_with("MIG_RESTORE", image).start().finish();
    assert_eq!(st.code(), Some(125), "refused with status 125: {err}");
    assert!(out.is_empty(), "the program must not run: {out:?}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.contains(&image.display().to_string()) && err.contains(reason), "expected {reason:?} in {err:?}");
}

#[test]
fn another_cpu_or_kernel_is_refused() {
    let dir = tempdir("portable_machine");
    let l = Launch::new(&compile("chain"), &dir).arg("20");
    let (_, _, image) = portable_checkpoint(&l, &dir, 2);

    let cpu = dir.join("cpu.mig");
    // The image's CPU had a feature this one lacks: a bit of cpuid 7 ebx/ecx/edx that
    // this CPU does not set (which ones depends on the CPU: bit 31 of edx is SSBD on
    // Intel's).
    let l7 = std::arch::x86_64::__cpuid_count(7, 0);
    let (word, bit) = [(2usize, l7.ebx), (3, l7.ecx), (4, l7.edx)]
        .into_iter()
        .find_map(|(w, v)| (0..32).find(|b| v & (1 << b) == 0).map(|b| (w, b)))
        .expect("a cpuid 7 feature this CPU lacks");
    patch_process(&image, &cpu, |p| p.cpu.cpuid[word] |= 1 << bit);
    assert_refused(&l, &cpu, "this CPU lacks features");

    let xsave = dir.join("xsave.mig");
    patch_process(&image, &xsave, |p| p.cpu.xcr0 ^= 1 << 9);
    assert_refused(&l, &xsave, "other register state");

    let kernel = dir.join("kernel.mig");
    patch_process(&image, &kernel, |p| p.vdso_crc ^= 1);
    assert_refused(&l, &kernel, "the kernel differs");

    // The untouched image restores.
    let (_, err) = restore(&l, &image);
    assert!(!err.contains("mig:"), "{err}");
}

#[test]
fn mig_checkpoint_portable_and_inspect_say_so() {
    let dir = tempdir("portable_cli");
    let l = Launch::new(&compile("chain"), &dir).arg("40");
    let mut p = l.start();
    p.until("step 2 ");
    let image = dir.join("cli.mig");
    let mig = env!("CARGO_BIN_EXE_mig");
    let out = Command::new(mig).args(["checkpoint", &p.pid().to_string(), "--portable", "--to"]).arg(&image).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(mig).arg("inspect").arg(&image).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("portable"), "{text}");
    let json = Command::new(mig).args(["inspect", "--json"]).arg(&image).output().unwrap();
    assert!(String::from_utf8_lossy(&json.stdout).contains("\"portable\": true"));
    p.kill();
    // A plain checkpoint is not portable.
    let plain = dir.join("plain.mig");
    let mut p = l.clone_with("MIG_IMAGE", &plain).start();
    checkpoint_at(&mut p, 2, &plain);
    p.kill();
    let json = Command::new(mig).args(["inspect", "--json"]).arg(&plain).output().unwrap();
    assert!(String::from_utf8_lossy(&json.stdout).contains("\"portable\": false"));
}
