//! libFuzzer target for the image reader: `cargo +nightly fuzz run reader`.
//!
//! The input's first 8 bytes seed a valid image (`forge::build`, as in
//! `image/tests/fuzz_reader.rs`); the rest are patches, 8 bytes each (offset in the
//! tables and header: u32; size 1, 2, 4 or 8: low bits of a byte; value: 3 bytes,
//! sign-extended, or one of a few boundary values), applied before every CRC is
//! resealed, so that libFuzzer steers the fields the records' checks look at. The raw
//! input is also read as an image. Nothing may panic, and every image `Image::open`
//! accepts must hold the invariants the restore relies on.
#![no_main]

#[path = "../../image/tests/forge/mod.rs"]
mod forge;

use libfuzzer_sys::fuzz_target;
use mig_image::{Header, Image, read_record};

fn check(bytes: &[u8]) {
    match Image::open(bytes, &crc32fast::Hasher::new()) {
        Ok(img) => {
            if let Err(why) = forge::invariants(&img) {
                panic!("Image::open accepted an image that breaks an invariant: {why}");
            }
            forge::read_all(&img);
        }
        Err(_) => {
            if let Some(header) = read_record::<Header>(bytes, 0) {
                forge::read_all(&Image { bytes, header });
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let Some((seed, patches)) = data.split_first_chunk::<8>() else { return };
    let mut bytes = forge::build(&mut forge::Rng::new(u64::from_le_bytes(*seed))).bytes;
    let Some(h) = read_record::<Header>(&bytes, 0) else { return };
    let span = (h.meta_off + h.meta_len) as usize;
    for p in patches.chunks_exact(8) {
        let at = u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as usize % span;
        let size = 1 << (p[4] & 3);
        let raw = i32::from_le_bytes([p[5], p[6], p[7], if p[7] & 0x80 != 0 { 0xff } else { 0 }]) as i64 as u64;
        let value = match p[4] >> 4 {
            0 => u64::MAX,
            1 => i64::MAX as u64,
            2 => mig_image::USER_TOP,
            _ => raw,
        };
        if at + size <= bytes.len() {
            bytes[at..at + size].copy_from_slice(&value.to_le_bytes()[..size]);
        }
    }
    forge::reseal(&mut bytes);
    check(&bytes);
});
