//! Restore, POSIX timers (normal code): created again under their saved ids by their
//! kind's restore side (`mig_checkpoint::kinds::ptimer`), armed by the blob at the end.

use mig_image::{Image, Table, TimerRecord};

/// Creates the image's timers (disarmed); returns (id, {interval, value}) to arm.
pub fn create(img: &Image) -> Result<Vec<(i32, [i64; 4])>, String> {
    let timers: Vec<TimerRecord> = (0..img.count(Table::Timers)).map(|i| img.timer(i)).collect();
    mig_checkpoint::kinds::ptimer::restore(&timers)
}
