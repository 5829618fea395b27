//! Memory per active series: creates N series with vigil's label shape in a store, appends a
//! window of samples to each, and reports the growth of the resident set per series.
//!
//! `cargo run --release -p vigil-tsdb --example memory_per_series -- [N] [SAMPLES] [DIR|memory] [--blocks]`
//! (N defaults to 1,000,000 series, SAMPLES to 30 per series: five minutes of 10 s windows, each
//! series a counter stepping as vigil's do;
//! the store is opened on a temporary directory, as vigil runs, unless `memory` or a
//! directory is given). The WAL and the closed head chunks then go to files: the page cache
//! holds them, not the process, and the kernel reclaims it under pressure.
//!
//! With `--blocks` the head is then cut into blocks (and those compacted, with 2,161 samples or
//! more: six hours and one sample), reporting the most the heap grew meanwhile, and the heap an
//! open block takes is reported per series: what every block of the retention costs a store
//! that holds them open.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

use vigil_tsdb::{Db, Labels, Options};

/// The system allocator, counting the bytes live on the heap: what the store asked for, apart
/// from the allocator's own rounding and the pages it keeps (which the resident set shows).
struct Counting;

static HEAP: AtomicUsize = AtomicUsize::new(0);

/// The most `HEAP` has been since it was last reset.
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = HEAP.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: forwards to the system allocator unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: the caller's contract is passed on as is.
        unsafe { INNER.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { INNER.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grew(new_size);
        HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { INNER.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

static INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A size in bytes from `/proc/self/status`: `VmRSS` (resident set), `RssAnon` (its heap and
/// stack part), `RssFile` (its mapped-file part).
fn status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Bytes of the files under `dir`.
fn du(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn main() {
    let blocks = std::env::args().any(|a| a == "--blocks");
    let mut args = std::env::args().skip(1).filter(|a| a != "--blocks");
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let per: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let where_ = args.next();
    let tmp = tempfile::tempdir().expect("temporary directory");
    let dir = match where_.as_deref() {
        Some("memory") => None,
        Some(d) => Some(std::path::PathBuf::from(d)),
        None => Some(tmp.path().to_path_buf()),
    };
    // Each series a counter as vigil writes them (the chunk bench's vigil counter): in about a
    // third of the windows it steps up by 0 to 7. Held apart from what is measured.
    let mut values = vec![0u32; n];
    let mut rng = fastrand::Rng::with_seed(7);
    let (before, anon_before, file_before) = (status("VmRSS"), status("RssAnon"), status("RssFile"));
    let heap_before = HEAP.load(Ordering::Relaxed);
    let db = match &dir {
        Some(d) => Db::open(d, Options::default()).expect("open the store"),
        None => Db::in_memory(),
    };
    let t0 = 1_795_392_000_000i64;
    let mut refs = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(50_000) {
        let mut app = db.appender();
        for &i in chunk {
            let labels = Labels::from_pairs([
                ("__name__", "vigil_http_requests_total".to_owned()),
                ("service", format!("svc-{}", i % 300)),
                ("route", format!("route-{}", i % 3_000)),
                ("method", ["GET", "POST", "PUT", "DELETE"][i % 4].to_owned()),
                ("path", format!("/v1/things/{}/items", i / 12)),
                ("status", ["200", "201", "404", "500"][(i / 4) % 3].to_owned()),
            ]);
            refs.push(app.append(&labels, t0, 0.0).expect("append"));
        }
        app.commit().expect("commit");
    }
    for w in 1..per {
        let mut app = db.appender();
        for (r, v) in refs.iter().zip(values.iter_mut()) {
            if rng.u8(..) < 90 {
                *v += u32::from(rng.u8(..8));
            }
            app.append_ref(*r, t0 + w * 10_000, f64::from(*v));
        }
        app.commit().expect("commit");
    }
    drop(refs);
    let (after, anon, file) = (status("VmRSS"), status("RssAnon"), status("RssFile"));
    let heap = HEAP.load(Ordering::Relaxed) - heap_before;
    let stats = db.stats();
    let per = |bytes: u64| bytes as f64 / stats.series as f64;
    println!(
        "{} series, {} samples ({}): {:.0} bytes of memory per series ({} MiB resident growth: \
         {:.0} B/series anonymous, {:.0} mapped files; {:.0} asked of the heap)",
        stats.series,
        stats.samples,
        dir.as_ref().map_or("in memory", |_| "on disk"),
        per(after.saturating_sub(before)),
        after.saturating_sub(before) >> 20,
        per(anon.saturating_sub(anon_before)),
        per(file.saturating_sub(file_before)),
        per(heap as u64),
    );
    if let Some(d) = &dir {
        println!(
            "files: {:.0} B/series of closed head chunks, {:.0} of WAL (in the page cache, not the process)",
            per(du(&d.join("chunks_head"))),
            per(du(&d.join("wal"))),
        );
    }
    if let (Some(d), true) = (&dir, blocks) {
        let before = HEAP.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let report = db.flush_to_blocks().expect("cut the head into blocks");
        println!(
            "cutting {} blocks (with rollups) and compacting {} took {:.2} s; the heap grew by {:.0} \
             bytes per series at most",
            report.cut,
            report.compacted,
            started.elapsed().as_secs_f64(),
            per(PEAK.load(Ordering::Relaxed).saturating_sub(before) as u64),
        );
        drop(db);
        let started = std::time::Instant::now();
        let reopened = Db::open(d, Options::default()).expect("reopen the store");
        println!(
            "reopening the store ({} series in its head, {} blocks) took {:.2} s",
            reopened.stats().series,
            reopened.blocks().len(),
            started.elapsed().as_secs_f64()
        );
        drop(reopened);
        for entry in std::fs::read_dir(d.join("blocks")).expect("list blocks").flatten() {
            let before = HEAP.load(Ordering::Relaxed);
            let block = vigil_tsdb::block::Block::open(&entry.path()).expect("open a block");
            let heap = HEAP.load(Ordering::Relaxed) - before;
            let m = block.meta();
            println!(
                "block of {} h, {} series, {} chunks: {:.0} bytes of heap per series open ({:.1} per chunk); \
                 {:.0} on disk",
                (m.max_t - m.min_t + 1) / 3_600_000,
                m.series,
                m.chunks,
                heap as f64 / m.series as f64,
                heap as f64 / m.chunks as f64,
                block.size() as f64 / m.series as f64,
            );
        }
    }
}
