//! The reader's fuzz target, bounded so that `cargo test` runs it (issue 13, finding 5):
//! a deterministic, seeded, structure-aware mutation fuzzer on stable Rust. Each case
//! builds a valid image (`forge::build`), changes one to four fields of the header, the
//! records or the strings (boundary values, neighbours, flipped bits, swapped values),
//! recomputes every CRC (so that the records' checks are what decides), and runs
//! `Image::open`, `Image::verify` and every reading accessor. No case may panic, and
//! every image `open` accepts must hold the invariants the restore relies on, checked
//! apart from `check.rs` (`forge::invariants`).
//!
//! Bounded: `MIG_FUZZ_ITERS` cases (default 40000) or `MIG_FUZZ_SECS` seconds (default
//! 15), whichever comes first. A failure names its seed; `MIG_FUZZ_SEED=<seed>
//! MIG_FUZZ_ITERS=1` runs that case alone.

mod forge;

use forge::{Rng, build, invariants, mutate, read_all, reseal};
use mig_image::{Header, Image, ImageError, read_record};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const ITERATIONS: u64 = 40_000;
const SECONDS: u64 = 15;
const SEED: u64 = 0x6d69_675f_6675_7a7a;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.strip_prefix("0x").map_or_else(|| v.parse().ok(), |h| u64::from_str_radix(h, 16).ok())).unwrap_or(default)
}

#[test]
fn built_images_are_valid() {
    // The builder's images must pass, or the fuzzer would test nothing but refusals;
    // they also cover legitimate variety (pre-copied blob order, portable images).
    for seed in 0..500 {
        let b = build(&mut Rng::new(seed)).bytes;
        let img = Image::verify(&b, &crc32fast::Hasher::new()).unwrap_or_else(|e| panic!("seed {seed}: a built image is refused: {e}"));
        invariants(&img).unwrap_or_else(|why| panic!("seed {seed}: a built image breaks an invariant: {why}"));
    }
}

/// What `open` said of one case.
enum Verdict {
    Accepted,
    Refused(ImageError),
}

fn run(bytes: &[u8]) -> Result<Verdict, String> {
    let hasher = crc32fast::Hasher::new();
    match Image::open(bytes, &hasher) {
        Ok(img) => {
            invariants(&img)?;
            read_all(&img);
            let _ = Image::verify(bytes, &hasher);
            Ok(Verdict::Accepted)
        }
        Err(e) => {
            // Read as far as it goes, as `mig inspect` does with a damaged image.
            if let Some(header) = read_record::<Header>(bytes, 0) {
                read_all(&Image { bytes, header });
            }
            Ok(Verdict::Refused(e))
        }
    }
}

#[test]
fn forged_images_never_panic_and_accepted_ones_hold_the_invariants() {
    let (base, iterations) = (env("MIG_FUZZ_SEED", SEED), env("MIG_FUZZ_ITERS", ITERATIONS));
    let budget = Duration::from_secs(env("MIG_FUZZ_SECS", SECONDS));
    let t0 = Instant::now();
    let (mut cases, mut accepted) = (0u64, 0u64);
    let mut refusals: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..iterations {
        if t0.elapsed() > budget {
            break;
        }
        let seed = base.wrapping_add(i);
        let mut rng = Rng::new(seed);
        let mut bytes = build(&mut rng).bytes;
        let what = mutate(&mut bytes, &mut rng);
        // Mostly with every CRC right, so that the records' checks decide; sometimes not.
        if rng.chance(95) {
            reseal(&mut bytes);
        }
        let result = std::panic::catch_unwind(|| run(&bytes));
        let rerun = format!("rerun with MIG_FUZZ_SEED={seed:#x} MIG_FUZZ_ITERS=1");
        match result {
            Err(_) => panic!("seed {seed:#x}: the reader panicked on {what:?}; {rerun}"),
            Ok(Err(why)) => panic!("seed {seed:#x}: Image::open accepted an image that breaks an invariant ({why}) after {what:?}; {rerun}"),
            Ok(Ok(Verdict::Accepted)) => accepted += 1,
            Ok(Ok(Verdict::Refused(e))) => *refusals.entry(e.reason().to_string()).or_default() += 1,
        }
        cases += 1;
    }
    let mut top: Vec<(&String, &u64)> = refusals.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1));
    eprintln!(
        "fuzz_reader: {cases} cases in {:.1} s from seed {base:#x}: {accepted} accepted, {} refused for {} reasons; most often:\n{}",
        t0.elapsed().as_secs_f64(),
        cases - accepted,
        refusals.len(),
        top.iter().take(12).map(|(r, n)| format!("  {n:>6}  {r}")).collect::<Vec<_>>().join("\n")
    );
    assert!(cases >= 1000.min(iterations), "only {cases} cases ran");
}
