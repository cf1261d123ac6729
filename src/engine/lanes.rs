//! Scoring lanes. On the CPU, libtorch splits each operation over all cores, and the small
//! operations of a 160 px EfficientNet (40 px inputs at the third scale, 2 x 2 maps at the
//! end) keep two cores only partly busy. Scoring several images at once, each on its own
//! thread with one intra-op thread, keeps every core busy for the whole network, and it
//! decodes the images in parallel too. On a GPU there is one lane: the device already
//! runs a whole batch at once.

use crossbeam_channel::unbounded;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tch::Device;

/// Most lanes on one machine: more lanes cost memory and gain little once each has a core.
const MAX_LANES: usize = 8;

/// How many images are scored at once, and with how many intra-op threads each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lanes {
    /// Images in flight.
    pub count: usize,
    /// libtorch intra-op threads of each lane.
    pub threads_each: i32,
}

impl Lanes {
    /// One lane per intra-op thread on the CPU (at most [`MAX_LANES`], the threads shared
    /// out between them); one lane on a GPU.
    pub fn for_device(device: Device) -> Self {
        let total = process_threads();
        match device {
            Device::Cpu => Self::split(total),
            _ => Self {
                count: 1,
                threads_each: total,
            },
        }
    }

    /// `total` intra-op threads shared out between at most [`MAX_LANES`] lanes.
    pub fn split(total: i32) -> Self {
        let total = total.max(1);
        let count = (total as usize).min(MAX_LANES);
        Self {
            count,
            threads_each: (total / count as i32).max(1),
        }
    }

    /// Runs `work` on every item, `count` items at a time, and hands each output to `done`
    /// on the calling thread, in the items' order. Once `stop` returns true no further
    /// item is started; the ones in flight finish and are handed over. Returns how many
    /// items were started.
    ///
    /// A panic in `work` is raised again on the calling thread once every lane has ended.
    pub fn map<I: Send, O: Send>(
        &self,
        items: Vec<I>,
        work: &(dyn Fn(I) -> O + Sync),
        stop: &(dyn Fn() -> bool + Sync),
        done: &mut dyn FnMut(usize, O),
    ) -> usize {
        let total = items.len();
        if self.count <= 1 || total <= 1 {
            for (i, item) in items.into_iter().enumerate() {
                if stop() {
                    return i;
                }
                done(i, work(item));
            }
            return total;
        }
        let before = tch::get_num_threads();
        let started = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let (item_tx, item_rx) = unbounded::<(usize, I)>();
        for pair in items.into_iter().enumerate() {
            let _ = item_tx.send(pair);
        }
        drop(item_tx);
        let (tx, rx) = unbounded::<(usize, O)>();
        let panicked = std::thread::scope(|scope| {
            let mut handles = Vec::new();
            for lane in 0..self.count.min(total) {
                let tx = tx.clone();
                let item_rx = item_rx.clone();
                let started = &started;
                let failed = &failed;
                let handle = std::thread::Builder::new()
                    .name(format!("differnet-lane-{lane}"))
                    .spawn_scoped(scope, move || {
                        pin_threads(self.threads_each);
                        // A panicking lane stops the others: the job fails anyway.
                        let _flag = FailFlag(failed);
                        loop {
                            if stop() || failed.load(Ordering::SeqCst) {
                                break;
                            }
                            let Ok((i, item)) = item_rx.try_recv() else {
                                break;
                            };
                            started.fetch_add(1, Ordering::SeqCst);
                            if tx.send((i, work(item))).is_err() {
                                break;
                            }
                        }
                    })
                    .expect("cannot start a scoring lane");
                handles.push(handle);
            }
            drop(tx);
            // Outputs arrive in any order; hand them over in the items' order.
            let mut pending = BTreeMap::new();
            let mut emitted = 0;
            for (i, out) in rx {
                pending.insert(i, out);
                while let Some(out) = pending.remove(&emitted) {
                    done(emitted, out);
                    emitted += 1;
                }
            }
            // Join every lane (an unjoined panicking one would replace the message), and
            // keep the first panic with its own message.
            let panics: Vec<_> = handles.into_iter().filter_map(|h| h.join().err()).collect();
            panics.into_iter().next()
        });
        // The lanes changed libtorch's default for threads that start later; restore it.
        tch::set_num_threads(before);
        if let Some(payload) = panicked {
            std::panic::resume_unwind(payload);
        }
        started.load(Ordering::SeqCst)
    }
}

/// Feeds a device in batches: decodes `items` with `decode` on `threads` CPU threads, a
/// batch of `batch` items at a time, while the calling thread runs `work` on the batch
/// decoded before (one batch decoded ahead). `work` gets the index of the batch's first
/// item and the decoded batch, in the items' order. Once `stop` returns true no further
/// batch is started. Returns how many items were handed to `work`.
///
/// A panic in `decode` is raised again on the calling thread.
pub fn pipelined_batches<I: Send, D: Send>(
    items: Vec<I>,
    batch: usize,
    threads: usize,
    decode: &(dyn Fn(I) -> D + Sync),
    stop: &(dyn Fn() -> bool + Sync),
    work: &mut dyn FnMut(usize, Vec<D>),
) -> usize {
    let batch = batch.max(1);
    let threads = threads.max(1);
    let mut chunks: Vec<Vec<I>> = Vec::new();
    for item in items {
        match chunks.last_mut() {
            Some(c) if c.len() < batch => c.push(item),
            _ => chunks.push(vec![item]),
        }
    }
    let (tx, rx) = crossbeam_channel::bounded::<Vec<D>>(1);
    let mut handed = 0;
    let panicked = std::thread::scope(|scope| {
        let producer = std::thread::Builder::new()
            .name("differnet-decode".into())
            .spawn_scoped(scope, move || {
                for chunk in chunks {
                    if stop() {
                        break;
                    }
                    if tx.send(decode_all(chunk, threads, decode)).is_err() {
                        break;
                    }
                }
            })
            .expect("cannot start the decoding thread");
        for decoded in rx.iter() {
            if stop() {
                break;
            }
            let len = decoded.len();
            work(handed, decoded);
            handed += len;
        }
        // Unblock a producer waiting to send, then join it.
        drop(rx);
        producer.join().err()
    });
    if let Some(payload) = panicked {
        std::panic::resume_unwind(payload);
    }
    handed
}

/// `decode` of every item, on up to `threads` threads, in the items' order.
fn decode_all<I: Send, D: Send>(
    items: Vec<I>,
    threads: usize,
    decode: &(dyn Fn(I) -> D + Sync),
) -> Vec<D> {
    let n = items.len();
    let slots: Vec<std::sync::Mutex<Option<I>>> = items
        .into_iter()
        .map(|i| std::sync::Mutex::new(Some(i)))
        .collect();
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, D)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.min(n))
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= n {
                            break out;
                        }
                        let item = slots[i]
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .take()
                            .expect("each item is taken once");
                        out.push((i, decode(item)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, d)| d).collect()
}

/// A value the lanes share read-only that is not `Sync` to the compiler: a model (its
/// tensors, the backbone's `Rc`), or a function over one (a frozen backbone's forward pass,
/// a detector's scoring). The one such wrapper of the engine; made by [`ReadOnly::new`],
/// whose contract each maker keeps and says why at the call.
pub struct ReadOnly<'a, T: ?Sized>(&'a T);

// SAFETY: a `ReadOnly` exists only through `ReadOnly::new`, whose caller promises that the
// threads sharing it only read the value (its contract, below): concurrent forward (and
// backward) passes over shared tensors are what libtorch supports, grad mode is per thread,
// and nothing whose shared use would race (an `Rc`'s count, a mutation) is touched.
unsafe impl<T: ?Sized> Sync for ReadOnly<'_, T> {}

impl<'a, T: ?Sized> ReadOnly<'a, T> {
    /// Shares `value` between the lanes.
    ///
    /// # Safety
    ///
    /// Whatever runs on `value` through the `ReadOnly`, from any thread, only reads it and
    /// builds new tensors: forward passes over its tensors, with gradients off or under a
    /// grad mode the thread sets itself, and gradients with respect to new tensors only
    /// (`run_backward` with inputs, which accumulates nothing into the value's). Nothing
    /// mutates the value or any of its tensors (no in-place operation, no optimiser step,
    /// no `&mut` through a cell), clones or drops an `Rc` inside it (the backbone's), or
    /// draws from libtorch's global random generator.
    pub unsafe fn new(value: &'a T) -> Self {
        Self(value)
    }

    /// The shared value, for the reads the maker promised.
    pub fn get(&self) -> &'a T {
        self.0
    }
}

/// Makes the calling thread's libtorch operations run on `n` threads (per thread in
/// libtorch's OpenMP build). A thread's first operation would otherwise set its count from
/// libtorch's process-wide default, which another worker's lanes may have changed in the
/// meantime, so the count is first read (which does that initialisation) and then set.
pub fn pin_threads(n: i32) {
    let _ = tch::get_num_threads();
    tch::set_num_threads(n);
}

/// Raises its flag when its lane unwinds from a panic.
struct FailFlag<'a>(&'a AtomicBool);

impl Drop for FailFlag<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

/// libtorch's intra-op threads for this process (its default: the cores, or
/// `OMP_NUM_THREADS`), read once, before any lane has set its own. Each worker thread pins
/// itself to it, so a worker started while another's lanes run (they change libtorch's
/// default for new threads) computes exactly as any other.
pub fn process_threads() -> i32 {
    static THREADS: OnceLock<i32> = OnceLock::new();
    *THREADS.get_or_init(|| tch::get_num_threads().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_shared_out_between_lanes() {
        assert_eq!(
            Lanes::split(2),
            Lanes {
                count: 2,
                threads_each: 1
            }
        );
        assert_eq!(
            Lanes::split(16),
            Lanes {
                count: 8,
                threads_each: 2
            }
        );
        assert_eq!(Lanes::split(0).count, 1);
    }

    #[test]
    fn batches_come_decoded_in_order_and_stop_when_asked() {
        let items: Vec<u64> = (0..23).collect();
        // Early items take longest, so they finish after later ones.
        let decode = |i: u64| {
            std::thread::sleep(std::time::Duration::from_millis(23 - i));
            i * 10
        };
        let mut seen = Vec::new();
        let mut starts = Vec::new();
        let handed = pipelined_batches(items, 5, 3, &decode, &|| false, &mut |first, batch| {
            starts.push(first);
            seen.extend(batch);
        });
        assert_eq!(handed, 23);
        assert_eq!(starts, [0, 5, 10, 15, 20]);
        assert_eq!(seen, (0..23).map(|i| i * 10).collect::<Vec<_>>());

        // Stopped after the second batch: no third one reaches the work.
        let stopped = AtomicBool::new(false);
        let mut batches = 0;
        let handed = pipelined_batches(
            (0..23).collect::<Vec<u64>>(),
            5,
            2,
            &|i| i,
            &|| stopped.load(Ordering::SeqCst),
            &mut |_, _| {
                batches += 1;
                if batches == 2 {
                    stopped.store(true, Ordering::SeqCst);
                }
            },
        );
        assert_eq!((batches, handed), (2, 10));
    }

    #[test]
    fn outputs_come_back_in_order_whatever_order_they_finish_in() {
        let lanes = Lanes {
            count: 3,
            threads_each: 1,
        };
        let items: Vec<u64> = (0..20).collect();
        // Early items take longest, so they finish after later ones.
        let work = |i: u64| {
            std::thread::sleep(std::time::Duration::from_millis(20 - i));
            i * 10
        };
        let mut seen = Vec::new();
        let started = lanes.map(items, &work, &|| false, &mut |i, out| seen.push((i, out)));
        assert_eq!(started, 20);
        let expected: Vec<(usize, u64)> = (0..20).map(|i| (i as usize, i * 10)).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn stop_ends_the_job_early_and_hands_over_what_was_done() {
        let lanes = Lanes {
            count: 2,
            threads_each: 1,
        };
        let items: Vec<usize> = (0..100).collect();
        let stop = AtomicBool::new(false);
        let work = |i: usize| {
            if i == 5 {
                stop.store(true, Ordering::SeqCst);
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
            i
        };
        let mut seen = Vec::new();
        let started = lanes.map(
            items,
            &work,
            &|| stop.load(Ordering::SeqCst),
            &mut |i, out| {
                assert_eq!(i, out);
                seen.push(i)
            },
        );
        assert!(started < 10, "started {started}");
        assert_eq!(seen, (0..seen.len()).collect::<Vec<_>>());
        assert!(seen.len() >= 6);
    }

    #[test]
    fn a_panic_in_a_lane_reaches_the_caller_with_its_message() {
        let lanes = Lanes {
            count: 2,
            threads_each: 1,
        };
        let items: Vec<usize> = (0..200).collect();
        let ran = AtomicUsize::new(0);
        let work = |i: usize| {
            ran.fetch_add(1, Ordering::SeqCst);
            assert_ne!(i, 2, "lane failure");
            // Slow enough that the panic's report (a backtrace with RUST_BACKTRACE=1 takes
            // about 0.1 s to print) ends long before the other lane could reach 50 items.
            std::thread::sleep(std::time::Duration::from_millis(20));
            i
        };
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lanes.map(items, &work, &|| false, &mut |_, _| {})
        }));
        let payload = caught.expect_err("the panic is raised again");
        assert!(
            ran.load(Ordering::SeqCst) < 50,
            "the other lane went on after the panic"
        );
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(message.contains("lane failure"), "{message}");
    }
}
