//! `differnet watch`: the line, until Ctrl-C, SIGTERM or SIGHUP (see
//! [`crate::line`]).

use super::*;

/// `differnet watch`: sorts parts until Ctrl-C, SIGTERM or SIGHUP.
pub(super) fn watch(a: WatchArgs) -> Result<()> {
    use crate::line::{Watch, WatchOptions};
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("cannot install the Ctrl-C handler")?;
    let mut options = WatchOptions::new(a.model, a.input, a.output);
    options.heatmaps = a.heatmaps;
    options.copy = a.copy;
    options.settle = std::time::Duration::from_millis(a.settle_ms);
    options.poll = std::time::Duration::from_millis(a.poll_ms.max(10));
    options.poll_only = a.poll;
    options.summary_every = std::time::Duration::from_secs(a.summary_secs.max(1));
    options.recent_good = a.recent_good;
    options.worker = worker_options(&a.engine, None);
    let mut say = |line: String| eprintln!("{line}");
    // Ctrl-C or SIGTERM while the model loads stops here too (open_until says so).
    let Some(mut w) = Watch::open_until(options, &stop, &mut say)? else {
        return Ok(());
    };
    let t = w.thresholds();
    eprintln!(
        "watching: reject at {}, review from {}; Ctrl-C stops after the part in flight",
        t.reject,
        t.review.map_or("-".to_owned(), |r| r.to_string())
    );
    w.run(&stop, &mut say)
}
