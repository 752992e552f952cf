//! Long database work that must not slow the FHIR API: one thread per store, at the lowest CPU priority.
//!
//! A Bulk Data export reads and writes for minutes. Paced alone (`bulk::pace`), it still took a third of the
//! two cores' reads away while it ran (issue 14). Its chunks run here instead: one OS thread started on first use,
//! with the lowest priority the OS gives an unprivileged thread (on Linux, niceness 19, a per-thread value:
//! `man 7 sched`, "The nice value"), so the scheduler gives the FHIR API's threads the CPU first whenever both want
//! it, and the export runs at full speed when nothing else does.
//!
//! The thread takes no [`Store::blocking`](super::Store::blocking) permit: a low-priority thread holding one of
//! the few permits while it waits for the CPU would make the API's requests wait behind it (priority inversion).
//! It is one thread, a bound of its own, and its jobs run one after another. The work sent here should not hold
//! the write lock for long for the same reason: the export records its files through `Store::blocking`.

use crate::error::SandboxError;
use std::sync::Mutex;
use std::sync::mpsc::{Sender, channel};

/// One piece of work for the background thread.
type Job = Box<dyn FnOnce() + Send>;

/// The queue of the store's background thread, started on first use.
#[derive(Default)]
pub(super) struct Background {
    queue: Mutex<Option<Sender<Job>>>,
}

impl Background {
    /// Queues `job`, starting the thread when it is not running.
    pub(super) fn submit(&self, job: Job) -> Result<(), SandboxError> {
        let mut queue = self.queue.lock().map_err(|_| SandboxError::Internal {
            reason: "the background queue's lock was poisoned".into(),
        })?;
        let job = match queue.as_ref() {
            Some(running) => match running.send(job) {
                Ok(()) => return Ok(()),
                // The thread ended (jobs cannot end it, so it never does): start a new one.
                Err(returned) => returned.0,
            },
            None => job,
        };
        let (sender, receiver) = channel::<Job>();
        std::thread::Builder::new()
            .name("sandbox-background".into())
            .spawn(move || {
                lower_priority();
                // Ends when the store (and with it the sender) is dropped.
                for job in receiver {
                    // A panicking job must not take the thread (and every later job) with it; its caller
                    // sees its answer channel dropped.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })
            .map_err(|e| SandboxError::Internal {
                reason: format!("could not start the background database thread ({e})"),
            })?;
        sender.send(job).map_err(|_| SandboxError::Internal {
            reason: "the background database thread stopped".into(),
        })?;
        *queue = Some(sender);
        Ok(())
    }
}

/// Gives the calling thread the lowest priority it may have; logs once when the OS refuses.
fn lower_priority() {
    if let Err(e) = thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min) {
        tracing::warn!(error = ?e, "could not lower the background thread's priority; exports compete with reads");
    }
}

#[cfg(test)]
mod tests {
    use crate::store::tests::temp_store as store;

    #[tokio::test]
    async fn background_work_runs_on_one_thread_and_returns_its_answer() {
        let (_dir, store) = store();
        let first = store
            .background(|s| {
                Ok::<_, crate::error::SandboxError>((s.path().to_owned(), std::thread::current().id()))
            })
            .await
            .unwrap();
        let second = store
            .background(|_| Ok::<_, crate::error::SandboxError>(std::thread::current().id()))
            .await
            .unwrap();
        assert_eq!(first.0, store.path());
        assert_eq!(first.1, second, "one thread for the store's background work");
        assert_ne!(first.1, std::thread::current().id());
    }

    #[tokio::test]
    async fn a_panicking_job_answers_an_error_and_the_next_job_still_runs() {
        let (_dir, store) = store();
        let failed = store
            .background(|_| -> Result<(), crate::error::SandboxError> { panic!("a bug in a job") })
            .await;
        assert!(
            matches!(failed, Err(crate::error::SandboxError::Internal { .. })),
            "{failed:?}"
        );
        let next = store
            .background(|_| Ok::<_, crate::error::SandboxError>(7))
            .await
            .unwrap();
        assert_eq!(next, 7);
    }

    /// Linux keeps the nice value per thread (`/proc/thread-self/stat`, field 19).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_background_thread_has_the_lowest_priority_and_the_callers_keep_theirs() {
        fn nice() -> i64 {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
            // The command name (field 2) is in parentheses and may hold spaces: count fields after it.
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            after.split(' ').nth(16).unwrap().parse().unwrap()
        }
        let (_dir, store) = store();
        let before = nice();
        let (inside, name) = store
            .background(|_| {
                Ok::<_, crate::error::SandboxError>((
                    nice(),
                    std::thread::current().name().map(str::to_owned),
                ))
            })
            .await
            .unwrap();
        assert_eq!(inside, 19, "the background thread runs at niceness 19");
        assert_eq!(name.as_deref(), Some("sandbox-background"));
        assert_eq!(nice(), before, "the caller's thread is left as it was");
        let pooled = store
            .blocking(|_| Ok::<_, crate::error::SandboxError>(nice()))
            .await
            .unwrap();
        assert_eq!(pooled, before, "the API's database tasks keep their priority");
    }
}
