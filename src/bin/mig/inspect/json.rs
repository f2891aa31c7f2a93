//! `mig inspect --json`'s report.

use super::Report;
use crate::util::{self, json_str};
use mig_image::Table;
use std::fmt::Write as _;

pub fn json(r: &Report) -> String {
    let mut o = String::from("{\n");
    let _ = writeln!(o, "  \"image\": {},", json_str(&r.file));
    let _ = writeln!(o, "  \"size\": {},", r.size);
    match &r.compressed {
        None => o.push_str("  \"compressed\": null,\n"),
        Some(p) => {
            let _ = writeln!(o, "  \"compressed\": {{\"format\": \"zstd\", \"size\": {}, \"ratio\": {:.3}}},", p.size, r.size as f64 / p.size.max(1) as f64);
        }
    }
    let _ = writeln!(o, "  \"intact\": {},", r.damage.is_empty());
    match &r.header {
        Some(h) => {
            let _ = writeln!(
                o,
                "  \"header\": {{\"version\": {}, \"portable\": {}, \"arch\": \"x86_64\", \"page_size\": {}, \"pid\": {}, \"created_unix_ns\": {}, \"created\": {}, \"stopped_us\": {}, \"threads\": {}, \"regions\": {}, \"descriptors\": {}, \"blobs\": {}, \"data_len\": {}, \"total_len\": {}}},",
                h.version,
                h.flags & mig_image::HEADER_PORTABLE != 0,
                h.page_size,
                h.pid,
                h.created_unix_ns,
                json_str(&util::utc(h.created_unix_ns)),
                h.stopped_us,
                h.tables[Table::Threads as usize].count,
                h.tables[Table::Regions as usize].count,
                h.tables[Table::Fds as usize].count,
                h.blobs,
                h.data_len,
                h.total_len
            );
        }
        None => o.push_str("  \"header\": null,\n"),
    }
    match &r.process {
        Some(p) => {
            let _ = writeln!(
                o,
                "  \"process\": {{\"executable\": {}, \"command\": {}, \"directory\": {}, \"warnings\": [{}]}},",
                json_str(&p.exe),
                json_str(&p.comm),
                json_str(&p.cwd),
                p.warnings.iter().map(|w| json_str(w)).collect::<Vec<_>>().join(", ")
            );
        }
        None => o.push_str("  \"process\": null,\n"),
    }
    o.push_str("  \"regions\": [");
    for (i, x) in r.regions.iter().enumerate() {
        let _ = write!(
            o,
            "{}\n    {{\"start\": {}, \"end\": {}, \"start_hex\": \"{:#x}\", \"end_hex\": \"{:#x}\", \"perms\": {}, \"kind\": {}, \"path\": {}, \"size\": {}, \"saved\": {}, \"blob\": {}, \"crc\": {}}}",
            if i > 0 { "," } else { "" },
            x.start,
            x.end,
            x.start,
            x.end,
            json_str(&x.perms),
            json_str(&x.kind),
            json_str(&x.path),
            x.end.saturating_sub(x.start),
            x.saved,
            x.blob.map_or("null".to_string(), |b| b.to_string()),
            json_str(x.crc.name())
        );
    }
    o.push_str(if r.regions.is_empty() { "],\n" } else { "\n  ],\n" });
    o.push_str("  \"descriptors\": [");
    for (i, x) in r.fds.iter().enumerate() {
        let _ = write!(
            o,
            "{}\n    {{\"fd\": {}, \"kind\": {}, \"flags\": {}, \"offset\": {}, \"path\": {}, \"details\": {}, \"saved\": {}, \"crc\": {}}}",
            if i > 0 { "," } else { "" },
            x.fd,
            json_str(&x.kind),
            json_str(&x.flags),
            x.offset,
            json_str(&x.path),
            json_str(&x.details),
            x.saved,
            json_str(x.crc.name())
        );
    }
    o.push_str(if r.fds.is_empty() { "],\n" } else { "\n  ],\n" });
    o.push_str("  \"damage\": [");
    for (i, d) in r.damage.iter().enumerate() {
        let _ = write!(o, "{}\n    {{\"where\": {}, \"what\": {}}}", if i > 0 { "," } else { "" }, json_str(&d.place), json_str(&d.what));
    }
    o.push_str(if r.damage.is_empty() { "]\n" } else { "\n  ]\n" });
    o.push_str("}\n");
    o
}
