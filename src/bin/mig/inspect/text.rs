//! `mig inspect`'s report as text.

use super::Report;
use crate::compress;
use crate::util;
use mig_image::Table;
use std::fmt::Write as _;

pub fn text(r: &Report) -> String {
    let mut o = String::new();
    match &r.compressed {
        None => {
            let _ = writeln!(o, "image:       {} ({})", r.file, util::size(r.size));
        }
        Some(p) => {
            let _ = writeln!(
                o,
                "image:       {} ({}, zstd-compressed: {} on disk, ratio {})",
                r.file,
                util::size(r.size),
                util::size(p.size),
                compress::ratio(r.size, p.size)
            );
        }
    }
    if let Some(h) = &r.header {
        let portable = if h.flags & mig_image::HEADER_PORTABLE != 0 { ", portable (carries program and library code)" } else { "" };
        let _ = writeln!(o, "format:      version {}, x86_64, {}-byte pages{portable}", h.version, h.page_size);
        if let Some(p) = &r.process {
            let _ = writeln!(o, "executable:  {}", p.exe);
            let _ = writeln!(o, "command:     {}", p.comm);
            let _ = writeln!(o, "directory:   {}", p.cwd);
        }
        let _ = writeln!(o, "pid:         {}", h.pid);
        let _ = writeln!(o, "created:     {}", util::utc(h.created_unix_ns));
        if h.stopped_us > 0 {
            let _ = writeln!(o, "stopped for: {}", util::duration(std::time::Duration::from_micros(h.stopped_us)));
        }
        let _ = writeln!(o, "threads:     {}", h.tables[Table::Threads as usize].count);
        let _ = writeln!(o, "regions:     {}", h.tables[Table::Regions as usize].count);
        let _ = writeln!(o, "descriptors: {}", h.tables[Table::Fds as usize].count);
        let _ = writeln!(o, "saved data:  {} in {} blobs", util::size(h.data_len), h.blobs);
    }
    if let Some(p) = r.process.as_ref().filter(|p| !p.warnings.is_empty()) {
        let _ = writeln!(o, "\nWARNINGS (what did not come back as it was)");
        for w in &p.warnings {
            let _ = writeln!(o, "  {w}");
        }
    }
    if r.process.is_some() {
        let _ = writeln!(o, "\nREGIONS");
        let _ = writeln!(o, "  {:<3} {:<33} {:<4} {:<11} {:>10} {:>10} {:<7} PATH", "#", "ADDRESSES", "PERM", "KIND", "SIZE", "SAVED", "CRC");
        for (i, x) in r.regions.iter().enumerate() {
            let _ = writeln!(
                o,
                "  {i:<3} {:016x}-{:016x} {:<4} {:<11} {:>10} {:>10} {:<7} {}",
                x.start,
                x.end,
                x.perms,
                x.kind,
                util::size(x.end.saturating_sub(x.start)),
                util::size(x.saved),
                x.crc.name(),
                x.path
            );
        }
        let _ = writeln!(o, "\nDESCRIPTORS");
        let _ = writeln!(o, "  {:<4} {:<12} {:<24} {:>10} {:<7} PATH", "FD", "KIND", "FLAGS", "OFFSET", "CRC");
        for x in &r.fds {
            let details = if x.details.is_empty() { String::new() } else { format!(" ({})", x.details) };
            let _ = writeln!(o, "  {:<4} {:<12} {:<24} {:>10} {:<7} {}{details}", x.fd, x.kind, x.flags, x.offset, x.crc.name(), x.path);
        }
    }
    let _ = writeln!(o);
    if r.damage.is_empty() {
        let _ = writeln!(
            o,
            "integrity:   ok (header, tables, trailer and {} blobs, {} of saved data, checked)",
            r.blobs_checked,
            util::size(super::saved_total(r))
        );
    } else {
        let _ = writeln!(o, "integrity:   DAMAGED");
        for d in &r.damage {
            let _ = writeln!(o, "  {}: {}", d.place, d.what);
        }
    }
    o
}
