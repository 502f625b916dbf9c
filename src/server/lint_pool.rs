//! Where `POST /lint` runs: threads of its own, a concurrency limit and a memory budget, so that
//! no amount of `/lint` traffic takes CPU or memory from admission.
//!
//! Admission requests are evaluated on the tokio workers (or tokio's blocking pool for large
//! reviews); `/lint` never touches either. Its evaluation runs on `--lint-concurrency` dedicated
//! threads at the lowest CPU priority ([`lower_priority`]), so the kernel runs admission first
//! whenever both want a core, while /lint still progresses when admission leaves CPU idle. A
//! request takes a thread and its share of `--lint-memory-bytes` before its body is read, or is
//! refused at once with 503 and `Retry-After`: a waiting request would hold its connection and,
//! over HTTP/2, the connection's flow-control window.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Bytes of memory one byte of `/lint` body takes while it is linted, at the peak: the body
/// itself, the parsed documents with the position of every value, the per-object reports (each
/// with the mutated object) and the rendered report. Measured on release builds with 3 MB
/// streams of the shared DaemonSet corpus (documents of 1 to 20 KiB): 47 to 50x the body at the
/// peak of one request. The budget (64 MiB by default) is a quarter of the chart's memory
/// limit, so the few percent above this estimate stay well inside the limit, while charging the
/// worst case would shrink the largest body `/lint` takes.
pub const LINT_BYTES_PER_BODY_BYTE: usize = 48;

type Job = Box<dyn FnOnce() + Send>;

/// Why a `/lint` request cannot start now.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Every lint thread is busy.
    Busy,
    /// The memory budget has no room for this body now.
    NoMemory,
    /// The body could never fit the memory budget, even alone.
    TooLarge {
        /// The largest body that fits the budget.
        max_body_bytes: usize,
    },
}

/// The lint threads, their concurrency limit and the memory budget.
#[derive(Debug)]
pub struct LintPool {
    jobs: Mutex<mpsc::Sender<Job>>,
    threads: usize,
    slots: Arc<Semaphore>,
    budget_kib: u32,
    budget: Arc<Semaphore>,
}

/// Holds a thread slot and a share of the memory budget until the request is answered.
#[derive(Debug)]
pub struct LintPermit {
    _slot: OwnedSemaphorePermit,
    _memory: OwnedSemaphorePermit,
}

impl LintPool {
    /// Starts `threads` lint threads (at least one) sharing `memory_bytes`. The threads stop
    /// when the pool is dropped and their current job is done.
    pub fn new(threads: usize, memory_bytes: usize) -> std::io::Result<LintPool> {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("lint-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => {
                                job();
                                return_memory();
                            }
                            Err(_) => return,
                        }
                    }
                })?;
        }
        let budget_kib = u32::try_from(memory_bytes / 1024)
            .unwrap_or(u32::MAX)
            .clamp(1, Semaphore::MAX_PERMITS as u32);
        Ok(LintPool {
            jobs: Mutex::new(tx),
            threads,
            slots: Arc::new(Semaphore::new(threads)),
            budget_kib,
            budget: Arc::new(Semaphore::new(budget_kib as usize)),
        })
    }

    /// The largest body that can be linted within the memory budget (capped by `cap`).
    pub fn max_body_bytes(&self, cap: usize) -> usize {
        (self.budget_kib as usize * 1024 / LINT_BYTES_PER_BODY_BYTE).min(cap)
    }

    /// Takes a thread slot and the memory a body of `body_bytes` needs, or says why not.
    pub fn try_admit(&self, body_bytes: usize) -> Result<LintPermit, Refusal> {
        let kib = body_bytes
            .saturating_mul(LINT_BYTES_PER_BODY_BYTE)
            .div_ceil(1024)
            .max(1);
        let Ok(kib) = u32::try_from(kib) else {
            return Err(self.too_large());
        };
        if kib > self.budget_kib {
            return Err(self.too_large());
        }
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Busy)?;
        let memory = self
            .budget
            .clone()
            .try_acquire_many_owned(kib)
            .map_err(|_| Refusal::NoMemory)?;
        Ok(LintPermit {
            _slot: slot,
            _memory: memory,
        })
    }

    fn too_large(&self) -> Refusal {
        Refusal::TooLarge {
            max_body_bytes: self.max_body_bytes(usize::MAX),
        }
    }

    /// Lint threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The memory budget in bytes.
    pub fn budget_bytes(&self) -> usize {
        self.budget_kib as usize * 1024
    }

    /// Runs `f` on a lint thread and waits for its result. `None` if it panicked or the pool
    /// is gone.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(result.ok());
        });
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job)
            .ok()?;
        rx.await.ok().flatten()
    }
}

/// How long the /lint listener stays without a request in flight before it hands its heap back:
/// long enough for the last answer to be written out, short enough that the memory of a burst is
/// returned soon after it.
const LISTENER_IDLE_GRACE: Duration = Duration::from_millis(250);

/// The requests in flight on the /lint listener, which reads bodies (up to 1.3 MiB each with the
/// default budget) into its own thread's heap and frees them when the answer is written; mimalloc
/// keeps such memory in the thread's heap until that thread collects it. The lint threads collect
/// after each request ([`LintPool::new`]); the listener collects once no request has been in
/// flight for [`LISTENER_IDLE_GRACE`], so once per burst rather than once per request.
#[derive(Debug, Default)]
pub(crate) struct ListenerMemory {
    in_flight: AtomicUsize,
    idle: Notify,
}

/// One request on the /lint listener, until dropped.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<ListenerMemory>);

impl ListenerMemory {
    /// Counts a request in flight until the guard drops.
    pub(crate) fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// Returns the calling thread's freed memory each time the listener goes idle; spawn it on
    /// the listener's own single-threaded runtime, whose thread holds the heap. Never returns.
    pub(crate) async fn return_when_idle(self: Arc<Self>) {
        loop {
            // A notification sent while this waits below is kept, so a burst that ends during
            // the grace gets its own collection.
            self.idle.notified().await;
            tokio::time::sleep(LISTENER_IDLE_GRACE).await;
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return_memory();
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_one();
        }
    }
}

/// Hands the memory this thread freed (a request's parse trees and report) back to the OS now,
/// rather than keeping it in the thread's heap for a next request that may never come. The
/// binary's global allocator is mimalloc; where it is not (tests), this only tidies mimalloc's
/// own, empty, heap.
fn return_memory() {
    // SAFETY: no arguments to uphold; collects the calling thread's heap and purges free pages.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// The lowest CPU priority for the calling thread: `SCHED_IDLE`, so the kernel runs it only
/// when no thread at normal priority in the pod wants the core, and admission never waits
/// behind it; nice 10 where `SCHED_IDLE` is refused. Linux applies both to one thread (the
/// calling one, by its tid). Best effort: without either the threads still never take tokio's
/// workers.
pub(crate) fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread; `param` lives across the call.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::pid_t;
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param) != 0 {
            let _ = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_takes_a_thread_and_its_memory_and_gives_them_back() {
        // Room for two bodies of 64 KiB, one thread.
        let pool = LintPool::new(1, 2 * 64 * 1024 * LINT_BYTES_PER_BODY_BYTE).unwrap();
        let first = pool.try_admit(64 * 1024).unwrap();
        assert_eq!(pool.try_admit(1).unwrap_err(), Refusal::Busy);
        drop(first);
        assert!(pool.try_admit(64 * 1024).is_ok());
    }

    #[test]
    fn memory_runs_out_before_threads_do() {
        let pool = LintPool::new(4, 100 * 1024 * LINT_BYTES_PER_BODY_BYTE).unwrap();
        let _a = pool.try_admit(60 * 1024).unwrap();
        assert_eq!(pool.try_admit(60 * 1024).unwrap_err(), Refusal::NoMemory);
        let _b = pool.try_admit(30 * 1024).unwrap();
    }

    #[test]
    fn a_body_larger_than_the_whole_budget_is_too_large() {
        let pool = LintPool::new(1, 100 * 1024 * LINT_BYTES_PER_BODY_BYTE).unwrap();
        assert_eq!(pool.max_body_bytes(usize::MAX), 100 * 1024);
        assert_eq!(pool.max_body_bytes(4096), 4096);
        assert_eq!(
            pool.try_admit(100 * 1024 + 1).unwrap_err(),
            Refusal::TooLarge {
                max_body_bytes: 100 * 1024
            }
        );
        assert!(pool.try_admit(100 * 1024).is_ok());
    }

    #[tokio::test]
    async fn jobs_run_on_the_lint_threads_and_panics_are_contained() {
        let pool = LintPool::new(2, 1 << 20).unwrap();
        let name = pool
            .run(|| std::thread::current().name().map(str::to_string))
            .await;
        assert!(name.flatten().is_some_and(|n| n.starts_with("lint-")));
        assert_eq!(pool.run(|| -> u8 { panic!("boom") }).await, None);
        assert_eq!(pool.run(|| 7).await, Some(7));
    }
}
