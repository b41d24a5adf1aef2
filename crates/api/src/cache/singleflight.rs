//! Single flight: concurrent loads of one key share one execution.
//!
//! A load belongs to the flight, not to whoever asked for it: it runs as a task of its own,
//! to completion (or its own deadline), whether or not anyone still waits, then releases
//! what it holds (a database connection) and removes its map entry. A caller that gives up
//! (its client went away) only stops waiting.
//!
//! Each flight carries a tag (the cache generation its starter saw): a caller joins only a
//! flight with the same tag, so a caller that can already see a write never receives a
//! load that started before it.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};
use parking_lot::Mutex;

/// `None` when the load task panicked.
type Flight<V> = Shared<BoxFuture<'static, Option<V>>>;

#[derive(Debug)]
struct Entry<T, V: Clone> {
    id: u64,
    tag: T,
    flight: Flight<V>,
    /// Set when the load finished (the entry may still linger).
    done: Arc<AtomicBool>,
}

/// Map of in-flight loads. Cloning shares the map.
///
/// A finished load stays in the map for `linger`, answering late joiners: a request whose
/// cache lookup missed just before the load filled the cache would otherwise start a
/// second load. Writers [`forget`](SingleFlight::forget) the key, so a lingering value
/// never outlives a write.
pub struct SingleFlight<K, T, V: Clone> {
    inflight: Arc<Mutex<HashMap<K, Entry<T, V>>>>,
    next_id: Arc<AtomicU64>,
    linger: std::time::Duration,
    /// Which finished values may linger (say, only those that were also cached).
    lingers: fn(&V) -> bool,
}

impl<K, T, V: Clone> Clone for SingleFlight<K, T, V> {
    fn clone(&self) -> Self {
        Self {
            inflight: self.inflight.clone(),
            next_id: self.next_id.clone(),
            linger: self.linger,
            lingers: self.lingers,
        }
    }
}

impl<K, T, V: Clone> std::fmt::Debug for SingleFlight<K, T, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleFlight").finish_non_exhaustive()
    }
}

impl<K, T, V: Clone> Default for SingleFlight<K, T, V> {
    fn default() -> Self {
        Self {
            inflight: Default::default(),
            next_id: Default::default(),
            linger: std::time::Duration::ZERO,
            lingers: |_| false,
        }
    }
}

impl<K, T, V> SingleFlight<K, T, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: PartialEq + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Finished loads whose value passes `lingers` answer late joiners for `linger`
    /// (see the type's documentation).
    pub fn with_linger(linger: std::time::Duration, lingers: fn(&V) -> bool) -> Self {
        Self {
            linger,
            lingers,
            ..Self::default()
        }
    }

    /// Runs `load` as a task of its own unless a load of `key` with the same `tag` is
    /// already in flight, in which case it waits for that one. Returns the value (`None`
    /// if the load panicked) and whether this call joined another's flight. `load` may
    /// decline (`Err`, say no capacity is left): its value is returned to this caller
    /// alone, and the map is left as it was.
    ///
    /// Dropping the returned future stops waiting; the load itself goes on. A caller that
    /// joins drops `load` at once, with whatever it holds (a refresh's place among the
    /// refreshes, say), instead of keeping it while it waits.
    pub async fn run(
        &self,
        key: K,
        tag: T,
        load: impl FnOnce() -> Result<BoxFuture<'static, V>, V>,
    ) -> (Option<V>, bool) {
        let (flight, joined) = {
            let mut map = self.inflight.lock();
            match map.get(&key) {
                Some(entry) if entry.tag == tag => {
                    drop(load);
                    (entry.flight.clone(), true)
                }
                // Absent, or started under another generation: a new flight replaces it
                // in the map (the old one finishes on its own and removes nothing).
                _ => {
                    let work = match load() {
                        Ok(work) => work,
                        Err(declined) => return (Some(declined), false),
                    };
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    let this = self.clone();
                    let cleanup_key = key.clone();
                    let done = Arc::new(AtomicBool::new(false));
                    let finished = done.clone();
                    let task = tokio::spawn(async move {
                        let value = work.await;
                        finished.store(true, Ordering::Release);
                        if this.linger.is_zero() || !(this.lingers)(&value) {
                            this.remove_if(&cleanup_key, id);
                        } else {
                            tokio::spawn(async move {
                                tokio::time::sleep(this.linger).await;
                                this.remove_if(&cleanup_key, id);
                            });
                        }
                        value
                    });
                    let flight = async move { task.await.ok() }.boxed().shared();
                    map.insert(
                        key,
                        Entry {
                            id,
                            tag,
                            flight: flight.clone(),
                            done,
                        },
                    );
                    (flight, false)
                }
            }
        };
        (flight.await, joined)
    }

    fn remove_if(&self, key: &K, id: u64) {
        let mut map = self.inflight.lock();
        if map.get(key).is_some_and(|e| e.id == id) {
            map.remove(key);
        }
    }

    /// Lets later callers start a new flight for `key` (after a write: the running one may
    /// have read the old row).
    pub fn forget(&self, key: &K) {
        self.inflight.lock().remove(key);
    }

    /// Forgets every flight (the invalidation channel was lost: writes may have been missed).
    pub fn forget_all(&self) {
        self.inflight.lock().clear();
    }

    /// Drops finished, lingering loads (after a cache clear: the next read should load
    /// afresh); loads still running are kept, as they read the database now anyway.
    pub fn forget_finished(&self) {
        self.inflight
            .lock()
            .retain(|_, e| !e.done.load(Ordering::Acquire));
    }

    pub fn in_flight(&self) -> usize {
        self.inflight.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::atomic::AtomicUsize, time::Duration};

    use super::*;

    /// A flight of `key` (tag 0) that answers `value` once the returned gate is notified,
    /// started by a task of its own; returns once it is in the map.
    async fn held_flight(
        flights: &SingleFlight<i32, u64, u32>,
        key: i32,
        value: u32,
    ) -> (
        tokio::task::JoinHandle<(Option<u32>, bool)>,
        Arc<tokio::sync::Notify>,
    ) {
        let gate = Arc::new(tokio::sync::Notify::new());
        let task = {
            let flights = flights.clone();
            let gate = gate.clone();
            tokio::spawn(async move {
                flights
                    .run(key, 0, move || {
                        Ok(async move {
                            gate.notified().await;
                            value
                        }
                        .boxed())
                    })
                    .await
            })
        };
        while flights.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        (task, gate)
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_load() {
        let flights: SingleFlight<i32, u64, u32> = SingleFlight::default();
        let loads = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let flights = flights.clone();
            let loads = loads.clone();
            let gate = gate.clone();
            tasks.push(tokio::spawn(async move {
                flights
                    .run(7, 1, move || {
                        Ok(async move {
                            loads.fetch_add(1, Ordering::SeqCst);
                            gate.notified().await;
                            42
                        }
                        .boxed())
                    })
                    .await
            }));
        }
        while loads.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        gate.notify_waiters();
        let mut joined = 0;
        for task in tasks {
            let (value, was_joined) = task.await.expect("task");
            assert_eq!(value, Some(42));
            joined += usize::from(was_joined);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert_eq!(joined, 49);
        assert_eq!(flights.in_flight(), 0, "finished flights are removed");
    }

    #[tokio::test]
    async fn a_finished_load_answers_late_joiners_until_it_is_forgotten() {
        let flights: SingleFlight<i32, u64, u32> =
            SingleFlight::with_linger(Duration::from_secs(60), |v| *v < 10);
        let (first, joined) = flights.run(3, 0, || Ok(async { 1 }.boxed())).await;
        assert_eq!((first, joined), (Some(1), false));
        let (late, joined) = flights.run(3, 0, || Ok(async { 2 }.boxed())).await;
        assert_eq!(
            (late, joined),
            (Some(1), true),
            "a late joiner gets the finished load"
        );
        flights.forget(&3);
        let (fresh, joined) = flights.run(3, 0, || Ok(async { 3 }.boxed())).await;
        assert_eq!(
            (fresh, joined),
            (Some(3), false),
            "after forget, a new load runs"
        );

        flights.forget(&3);
        let _ = flights.run(4, 0, || Ok(async { 99 }.boxed())).await;
        let (next, joined) = flights.run(4, 0, || Ok(async { 5 }.boxed())).await;
        assert_eq!(
            (next, joined),
            (Some(5), false),
            "values the predicate rejects do not linger"
        );
    }

    #[tokio::test]
    async fn a_declined_load_answers_its_caller_alone_and_leaves_the_map() {
        let flights: SingleFlight<i32, u64, u32> =
            SingleFlight::with_linger(Duration::from_secs(60), |_| true);
        let (finish, finished) = tokio::sync::oneshot::channel::<()>();
        let first = {
            let flights = flights.clone();
            tokio::spawn(async move {
                flights
                    .run(2, 1, move || {
                        Ok(async move {
                            let _ = finished.await;
                            1
                        }
                        .boxed())
                    })
                    .await
            })
        };
        while flights.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        // Another generation's caller declines to start a load: the running one stays
        // joinable, and nothing is added for another key either.
        assert_eq!(flights.run(2, 2, || Err(9)).await, (Some(9), false));
        assert_eq!(flights.run(3, 1, || Err(8)).await, (Some(8), false));
        assert_eq!(flights.in_flight(), 1);
        let joiner = {
            let flights = flights.clone();
            tokio::spawn(async move { flights.run(2, 1, || Err(7)).await })
        };
        tokio::task::yield_now().await;
        drop(finish);
        assert_eq!(first.await.expect("task"), (Some(1), false));
        assert_eq!(joiner.await.expect("task"), (Some(1), true));
    }

    #[tokio::test]
    async fn a_caller_with_another_tag_does_not_join() {
        let flights: SingleFlight<i32, u64, u32> =
            SingleFlight::with_linger(Duration::from_secs(60), |_| true);
        let (old, _) = flights.run(5, 1, || Ok(async { 1 }.boxed())).await;
        assert_eq!(old, Some(1));
        let (new, joined) = flights.run(5, 2, || Ok(async { 2 }.boxed())).await;
        assert_eq!(
            (new, joined),
            (Some(2), false),
            "a caller that saw a newer generation starts its own load"
        );
    }

    #[tokio::test]
    async fn forget_makes_the_next_caller_start_afresh() {
        let flights: SingleFlight<i32, u64, u32> = SingleFlight::default();
        let (first, gate) = held_flight(&flights, 1, 1).await;
        flights.forget(&1);
        let (second, joined) = flights.run(1, 0, || Ok(async { 2 }.boxed())).await;
        assert_eq!((second, joined), (Some(2), false));
        gate.notify_one();
        assert_eq!(first.await.expect("task").0, Some(1));
    }

    #[tokio::test]
    async fn a_load_nobody_waits_for_still_runs_to_the_end_and_leaves_the_map() {
        let flights: SingleFlight<i32, u64, u32> = SingleFlight::default();
        let finished = Arc::new(AtomicBool::new(false));
        let done = finished.clone();
        let waiter = flights.run(9, 0, move || {
            Ok(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                done.store(true, Ordering::SeqCst);
                7
            }
            .boxed())
        });
        // The only waiter gives up at once (its client went away).
        assert!(
            tokio::time::timeout(Duration::from_millis(1), waiter)
                .await
                .is_err()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(finished.load(Ordering::SeqCst), "the load ran to its end");
        assert_eq!(flights.in_flight(), 0, "and removed its entry");
    }

    #[tokio::test]
    async fn a_caller_that_joins_lets_go_of_its_load_at_once() {
        let flights: SingleFlight<i32, u64, u32> = SingleFlight::default();
        let (first, release) = held_flight(&flights, 3, 1).await;
        // What the joiner's `load` holds, as a refresh holds its place.
        let held = Arc::new(());
        let in_load = held.clone();
        let joiner = {
            let flights = flights.clone();
            tokio::spawn(async move {
                flights
                    .run(3, 0, move || {
                        drop(in_load);
                        Ok(async { 2 }.boxed())
                    })
                    .await
            })
        };
        for _ in 0..1000 {
            if Arc::strong_count(&held) == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(
            Arc::strong_count(&held),
            1,
            "the joiner still holds its load while it waits"
        );
        assert!(!joiner.is_finished(), "the joiner is still waiting");
        // A permit, kept if the load has not reached its wait yet.
        release.notify_one();
        assert_eq!(first.await.expect("task"), (Some(1), false));
        assert_eq!(joiner.await.expect("task"), (Some(1), true));
    }
}
