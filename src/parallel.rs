//! Work spread over the CPUs, for the few steps of a large policy that
//! take long enough to be worth it (parsing, rule checks, map fills).

use std::sync::atomic::{AtomicUsize, Ordering};

/// How many threads the machine runs at once.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `f` of every item, in item order. Up to one thread per CPU takes the
/// next item until none are left, so uneven items keep every thread busy.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = cpus().min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(index) else {
                return done;
            };
            done.push((index, f(item)));
        }
    };
    let mut all: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads).map(|_| scope.spawn(work)).collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker thread panicked"))
            .collect()
    });
    all.sort_unstable_by_key(|&(index, _)| index);
    all.into_iter().map(|(_, result)| result).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_item_order_whatever_thread_ran_them() {
        let items: Vec<u64> = (0..1000).collect();
        let squares = map(&items, |&n| {
            // uneven work, so threads finish items out of order
            std::thread::sleep(std::time::Duration::from_micros(n % 7));
            n * n
        });
        assert_eq!(squares, items.iter().map(|n| n * n).collect::<Vec<_>>());
    }

    #[test]
    fn no_items_no_results() {
        assert!(map(&[] as &[u8], |&b| b).is_empty());
    }
}
