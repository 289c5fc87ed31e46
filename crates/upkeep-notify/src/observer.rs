//! The run engine's observer: derives events from each saved transition
//! and hands them to a delivery thread, so the run never waits on a slow
//! or dead endpoint; only the end of the process waits for the last
//! messages (each bounded by timeout × attempts).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use upkeep_contract::RunRecord;

use crate::config::NotifyConfig;
use crate::deliver::{Deliverer, log};
use crate::event::{Message, render, run_events};
use crate::sent::SentLog;

#[derive(Default)]
struct Seen {
    /// The last record of each run this process saw.
    last: HashMap<String, RunRecord>,
    /// Keys sent before (from the sent-events file) or queued since.
    keys: HashSet<String>,
}

pub struct NotifyObserver {
    config: Arc<NotifyConfig>,
    seen: Mutex<Seen>,
    queue: Mutex<Option<mpsc::Sender<Message>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for NotifyObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyObserver")
            .field("channels", &self.config.channels.len())
            .finish()
    }
}

impl NotifyObserver {
    /// Starts the delivery thread.
    pub fn start(config: NotifyConfig) -> NotifyObserver {
        let config = Arc::new(config);
        let sent = SentLog::new(&config.state_dir);
        let keys = sent.keys();
        let (tx, rx) = mpsc::channel::<Message>();
        let cfg = Arc::clone(&config);
        let worker = std::thread::Builder::new()
            .name("upkeep-notify".into())
            .spawn(move || {
                let deliverer = Deliverer::new(&cfg);
                for msg in rx {
                    let deliveries = deliverer.send_all(&cfg, &msg);
                    log(msg.event.as_str(), &deliveries);
                    // Sent or given up on: either way not again. A failed
                    // channel is in the log; a retry storm on resume is not
                    // what the operator needs.
                    sent.mark(&msg.key);
                }
            });
        let (queue, worker) = match worker {
            Ok(w) => (Some(tx), Some(w)),
            Err(e) => {
                tracing::warn!(
                    "notify: cannot start the delivery thread ({e}); no notifications for this run"
                );
                (None, None)
            }
        };
        NotifyObserver {
            config,
            seen: Mutex::new(Seen {
                last: HashMap::new(),
                keys,
            }),
            queue: Mutex::new(queue),
            worker: Mutex::new(worker),
        }
    }

    /// Called after each transition of a run is saved.
    pub fn record_saved(&self, record: &RunRecord) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let events = run_events(seen.last.get(&record.run_id), record);
        seen.last.insert(record.run_id.clone(), record.clone());
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        for event in events {
            if !seen.keys.insert(event.key.clone()) {
                continue;
            }
            let msg = render(&self.config, &event, Some(record));
            match queue.as_ref() {
                Some(q) => {
                    if q.send(msg).is_err() {
                        tracing::warn!(
                            "notify: the delivery thread has stopped; {} not sent",
                            event.kind
                        );
                    }
                }
                None => tracing::warn!("notify: {} not sent (no delivery thread)", event.kind),
            }
        }
    }

    /// Waits for the queued messages to be delivered or given up on. Called
    /// on drop too; later transitions are no longer sent.
    pub fn finish(&self) {
        drop(self.queue.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(w) = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take()
            && w.join().is_err()
        {
            tracing::warn!("notify: the delivery thread failed");
        }
    }
}

impl Drop for NotifyObserver {
    fn drop(&mut self) {
        self.finish();
    }
}
