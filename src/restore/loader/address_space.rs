//! What the loader knows of an address space it serves: where the saved pages are now
//! (they follow `mremap`), and which were handed over or are no longer wanted.

use mig_image::PAGE;

/// One run of saved pages in an address space: `pages` pages at `addr`, saved pages
/// `g..g + pages` (numbered over all lazy regions, in order).
#[derive(Clone, Copy, Debug)]
pub(super) struct Run {
    pub(super) addr: u64,
    pub(super) g: u64,
    pub(super) pages: u64,
}

impl Run {
    pub(super) fn end(&self) -> u64 {
        self.addr + self.pages * PAGE
    }
}

/// An address space the loader serves: the restored process's, or a forked child's.
#[derive(Clone)]
pub(super) struct Mm {
    pub(super) uffd: i32,
    /// Where the saved pages are in it, ordered by `g` (never overlapping).
    pub(super) runs: Vec<Run>,
    /// `runs` indices ordered by address.
    pub(super) by_addr: Vec<u32>,
    /// Per saved page: handed over, or no longer wanted (dropped, unmapped).
    pub(super) done: Vec<u64>,
    /// Saved pages still to hand over.
    pub(super) left: u64,
    /// The restored process (killed through the pidfd) or a child (a thread id seen
    /// faulting, 0 while none was).
    pub(super) main: bool,
    pub(super) tid: u32,
    pub(super) gone: bool,
}

impl Mm {
    pub(super) fn is_done(&self, g: u64) -> bool {
        self.done[(g / 64) as usize] & 1 << (g % 64) != 0
    }
    pub(super) fn set_done(&mut self, g: u64) {
        let w = &mut self.done[(g / 64) as usize];
        if *w & 1 << (g % 64) == 0 {
            *w |= 1 << (g % 64);
            self.left -= 1;
        }
    }
    pub(super) fn reindex(&mut self) {
        self.by_addr = (0..self.runs.len() as u32).collect();
        let runs = &self.runs;
        self.by_addr.sort_unstable_by_key(|&i| runs[i as usize].addr);
    }
    /// The saved page at `addr`.
    pub(super) fn find(&self, addr: u64) -> Option<u64> {
        let i = self.by_addr.partition_point(|&i| self.runs[i as usize].end() <= addr);
        let r = self.runs[*self.by_addr.get(i)? as usize];
        (r.addr <= addr).then(|| r.g + (addr - r.addr) / PAGE)
    }
    /// Splits runs so that none crosses `at`.
    pub(super) fn cut(&mut self, at: u64) {
        if let Some(i) = self.runs.iter().position(|r| r.addr < at && at < r.end()) {
            let r = self.runs[i];
            let n = (at - r.addr) / PAGE;
            self.runs[i].pages = n;
            self.runs.insert(i + 1, Run { addr: at, g: r.g + n, pages: r.pages - n });
        }
    }
    /// Each run inside `[a, b)` (after cutting there).
    pub(super) fn inside(&mut self, a: u64, b: u64) -> impl Iterator<Item = usize> + '_ {
        self.cut(a);
        self.cut(b);
        self.runs.iter().enumerate().filter(move |(_, r)| a <= r.addr && r.end() <= b).map(|(i, _)| i)
    }
    /// `MADV_DONTNEED`/`MADV_FREE` on `[a, b)`: those pages read as zeros now.
    pub(super) fn remove(&mut self, a: u64, b: u64) {
        let inside: Vec<usize> = self.inside(a, b).collect();
        let gs: Vec<(u64, u64)> = inside.into_iter().map(|i| (self.runs[i].g, self.runs[i].pages)).collect();
        for (g, n) in gs {
            (g..g + n).for_each(|g| self.set_done(g));
        }
        self.reindex();
    }
    /// `munmap` of `[a, b)`.
    pub(super) fn unmap(&mut self, a: u64, b: u64) {
        self.remove(a, b);
        self.runs.retain(|r| !(a <= r.addr && r.end() <= b));
        self.reindex();
    }
    /// `mremap` moved `[from, from + len)` to `to`.
    pub(super) fn remap(&mut self, from: u64, to: u64, len: u64) {
        let moved: Vec<usize> = self.inside(from, from + len).collect();
        for i in moved {
            self.runs[i].addr = self.runs[i].addr - from + to;
        }
        self.reindex();
    }
    /// The pieces of saved pages `g0..g1` it holds: (address, first page, pages).
    pub(super) fn pieces(&self, g0: u64, g1: u64) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        let i = self.runs.partition_point(|r| r.g + r.pages <= g0);
        self.runs[i..].iter().take_while(move |r| r.g < g1).map(move |r| {
            let (a, b) = (r.g.max(g0), (r.g + r.pages).min(g1));
            (r.addr + (a - r.g) * PAGE, a, b - a)
        })
    }
}
