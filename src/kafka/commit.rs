//! Offset commits on a thread of their own.
//!
//! librdkafka's synchronous commit waits for the group coordinator without
//! end while no broker is reachable, and the consume loop must keep
//! serving meanwhile (readiness, metrics, the alert log). Its asynchronous
//! commit reports no outcome through rdkafka's `BaseConsumer` (the commit
//! event is only posted for automatic commits), so neither the commit
//! latency nor a failure could be seen. The committer runs synchronous
//! commits one after another on its own thread; offsets submitted while one
//! is under way are merged (the newest offset of a partition wins) and go
//! in the next.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prometheus::Histogram;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use tracing::warn;

/// Offsets to commit: (topic, partition) → next offset to read.
pub type Offsets = BTreeMap<(String, i32), i64>;

/// A submitted commit, to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

#[derive(Default)]
struct State {
    pending: Offsets,
    /// The ticket the pending offsets will complete.
    submitted: u64,
    /// Every ticket up to this one is done (committed or failed).
    done: u64,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    /// Set when a commit failed; the loop commits those offsets again.
    failed: AtomicBool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub struct Committer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    /// Starts the commit thread; fails if the system cannot start one
    /// (thread or memory limits).
    pub fn start<C: ConsumerContext + 'static>(
        consumer: Arc<BaseConsumer<C>>,
        latency: Histogram,
    ) -> std::io::Result<Committer> {
        let shared =
            Arc::new(Shared { state: Mutex::default(), changed: Condvar::new(), failed: AtomicBool::new(false) });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("vigil-commit".into())
            .spawn(move || commit_loop(&consumer, &worker, &latency))?;
        Ok(Committer { shared, thread: Some(thread) })
    }

    /// Queues offsets for the next commit.
    pub fn submit(&self, offsets: Offsets) -> Ticket {
        if offsets.is_empty() {
            return Ticket(0);
        }
        let mut state = self.shared.state();
        // Offsets join the commit that waits to start, or begin a new one.
        if state.pending.is_empty() {
            state.submitted += 1;
        }
        state.pending.extend(offsets);
        self.shared.changed.notify_all();
        Ticket(state.submitted)
    }

    /// Waits until the commit holding `ticket` is done; false on timeout.
    pub fn wait(&self, ticket: Ticket, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.state();
        while state.done < ticket.0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self.shared.changed.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        true
    }

    /// Whether a commit failed since the last call.
    pub fn take_failure(&self) -> bool {
        self.shared.failed.swap(false, Ordering::Relaxed)
    }

    /// Stops the thread once it is idle. A commit still waiting for the
    /// broker is abandoned: the checkpoints cover its offsets.
    pub fn stop(mut self, timeout: Duration) {
        let idle = {
            let mut state = self.shared.state();
            state.stop = true;
            self.shared.changed.notify_all();
            let ticket = Ticket(state.submitted);
            drop(state);
            self.wait(ticket, timeout)
        };
        if idle {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        } else {
            warn!("An offset commit is still waiting for the broker at shutdown; the checkpoints cover it");
        }
    }
}

fn commit_loop<C: ConsumerContext>(consumer: &BaseConsumer<C>, shared: &Shared, latency: &Histogram) {
    loop {
        let (offsets, ticket) = {
            let mut state = shared.state();
            while state.pending.is_empty() && !state.stop {
                state = shared.changed.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            if state.pending.is_empty() {
                return;
            }
            (std::mem::take(&mut state.pending), state.submitted)
        };
        let mut list = TopicPartitionList::with_capacity(offsets.len());
        for ((topic, partition), offset) in &offsets {
            if let Err(err) = list.add_partition_offset(topic, *partition, Offset::Offset(*offset)) {
                warn!(%err, topic, partition, "Could not list an offset to commit");
            }
        }
        let started = Instant::now();
        match consumer.commit(&list, CommitMode::Sync) {
            Ok(()) => latency.observe(started.elapsed().as_secs_f64()),
            Err(err) => {
                warn!(%err, "Committing offsets failed; the next checkpoint commits them again");
                shared.failed.store(true, Ordering::Relaxed);
            }
        }
        let mut state = shared.state();
        state.done = ticket;
        shared.changed.notify_all();
    }
}
