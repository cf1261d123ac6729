//! Memory a job used is given back when it ends, even when it is cancelled: the resident
//! size of the process after a cancelled training returns near where it was before. In
//! its own test binary, so no other test shares the process's memory.

mod common;

use common::{tiny_config, wait_for, worker, write_set};
use differnet::core::protocol::{Command, Event, Phase, TrainRequest};

/// Resident memory of this process in MiB.
fn resident_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb / 1024.0
}

#[test]
fn a_cancelled_training_gives_its_memory_back() {
    let dir = tempfile::tempdir().unwrap();
    let train = write_set(&dir.path().join("train"), "good", 0..24, false);
    let w = worker();
    // A warm-up job loads the backbone and libtorch's kernels: that memory stays.
    let mut config = tiny_config();
    config.train.epochs = 1;
    w.send(Command::Train(TrainRequest {
        train: train[..4].to_vec(),
        validation: Vec::new(),
        config: config.clone().into(),
        defects: Vec::new(),
    }))
    .unwrap();
    wait_for(&w, |e| matches!(e, Event::Trained(_)).then_some(()));
    let before = resident_mib();

    // Large images make a large feature cache; cancel once the flow is training on it.
    let mut big = tiny_config();
    big.model.image_size = 448;
    big.train.epochs = 10_000;
    w.send(Command::Train(TrainRequest {
        train,
        validation: Vec::new(),
        config: big.into(),
        defects: Vec::new(),
    }))
    .unwrap();
    let mut peak = before;
    wait_for(&w, |e| {
        peak = peak.max(resident_mib());
        matches!(
            e,
            Event::Progress {
                phase: Phase::Training,
                ..
            }
        )
        .then_some(())
    });
    peak = peak.max(resident_mib());
    w.cancel();
    wait_for(&w, |e| matches!(e, Event::Cancelled { .. }).then_some(()));
    std::thread::sleep(std::time::Duration::from_millis(200));
    let after = resident_mib();
    eprintln!(
        "resident memory: {before:.0} MiB before, {peak:.0} MiB training, {after:.0} MiB after the cancel"
    );
    assert!(
        peak - before > 100.0,
        "the job should need memory: {before:.0} -> {peak:.0} MiB"
    );
    assert!(
        after - before < 0.25 * (peak - before),
        "kept {:.0} of the {:.0} MiB the cancelled job took",
        after - before,
        peak - before
    );
}
