//! A persistent thread pool for splitting one operation's work across cores.
//!
//! The pool keeps `n_threads - 1` worker threads; [`ThreadPool::run`] publishes a
//! job (a borrowed closure and a task count), takes part itself, and returns once
//! every task has run. Tasks are claimed from an atomic counter, so a slow thread
//! never holds up the others' share.
//!
//! A forward pass runs hundreds of small operations per token, a few microseconds
//! each, so the cost of handing a job to the workers matters as much as the
//! kernels. Like ggml's threadpool (ggml-cpu.c, `ggml_graph_compute_poll_for_work`)
//! workers spin on the job state for a while after each job ([`SPIN`]) and only
//! then park on a condition variable; a job published while they spin starts
//! within a cache-line transfer instead of a futex wake-up. Publishing takes the
//! mutex only when some worker is parked.
//!
//! Joining a job is optional: a worker enters it by incrementing the count of
//! workers inside (one compare-and-swap on the job state) and the caller closes
//! the job once every task is claimed and no worker is inside. A worker that the
//! OS has descheduled (a busy machine) therefore never delays the caller: it
//! finds the job closed when it runs again and goes back to waiting.
//!
//! One job runs at a time: concurrent callers of `run` on the same pool are
//! serialised by a lock, so sharing a pool between threads is safe.

use std::any::Any;
use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker spins before parking: long enough to bridge the gap
/// between two operations of a forward pass (and between two decoded tokens),
/// short enough that an idle model costs no CPU.
const SPIN: Duration = Duration::from_micros(500);

/// The closure a job runs once per task index.
type TaskFn<'a> = dyn Fn(usize) + Sync + 'a;

/// A job as the workers see it: the closure with its lifetime erased and the
/// task count.
#[derive(Clone, Copy)]
struct Job {
    task: &'static TaskFn<'static>,
    n_tasks: usize,
}

/// The job state word: the job generation in the high bits, an "open" flag and
/// the number of workers inside the job in the low [`GEN_SHIFT`] bits.
mod state {
    /// Bits below the generation.
    pub const GEN_SHIFT: u32 = 16;
    /// Set while workers may enter the job.
    pub const OPEN: u64 = 1 << 15;
    /// Workers inside the job.
    pub const INSIDE: u64 = OPEN - 1;
    /// The generation that tells workers to exit.
    pub const SHUTDOWN: u64 = u64::MAX >> GEN_SHIFT;

    pub fn generation(s: u64) -> u64 {
        s >> GEN_SHIFT
    }
}

/// State shared between the caller and the workers.
struct Inner {
    /// See [`state`].
    state: AtomicU64,
    /// The current job: written by the caller only while the job is closed with
    /// no worker inside, read by workers only while inside.
    job: UnsafeCell<Option<Job>>,
    /// The next task index to claim.
    next: AtomicUsize,
    /// Workers parked (or about to park) on `wake`.
    parked: AtomicUsize,
    /// Guards parking; `wake` is notified under it.
    lock: Mutex<()>,
    wake: Condvar,
    /// The first panic a worker caught in the current job.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

// SAFETY: `job` is only written by the one caller holding `run_lock` while the
// job is closed and no worker is inside, and only read by workers between a
// successful entering compare-and-swap (acquire) and their release decrement of
// the inside count; the other fields are atomics or locks.
unsafe impl Sync for Inner {}

/// A fixed set of worker threads that run the tasks of one job at a time.
pub struct ThreadPool {
    inner: Arc<Inner>,
    workers: Vec<JoinHandle<()>>,
    n_threads: usize,
    /// Serialises concurrent `run` calls.
    run_lock: Mutex<()>,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("n_threads", &self.n_threads)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock only happens inside this module's short
    // critical sections, which leave the state consistent; keep going.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ThreadPool {
    /// A pool that runs jobs on `n_threads` threads in all: the caller and
    /// `n_threads - 1` workers (`0` is taken as `1`).
    pub fn new(n_threads: usize) -> ThreadPool {
        let n_threads = n_threads.max(1);
        let inner = Arc::new(Inner {
            state: AtomicU64::new(0),
            job: UnsafeCell::new(None),
            next: AtomicUsize::new(0),
            parked: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            panic: Mutex::new(None),
        });
        let workers = (1..n_threads)
            .map(|i| {
                let inner = Arc::clone(&inner);
                std::thread::Builder::new()
                    .name(format!("hearth-worker-{i}"))
                    .spawn(move || worker_loop(&inner))
                    .expect("spawning a pool worker thread")
            })
            .collect();
        ThreadPool {
            inner,
            workers,
            n_threads,
            run_lock: Mutex::new(()),
        }
    }

    /// A pool with one thread per available core.
    pub fn with_available_parallelism() -> ThreadPool {
        ThreadPool::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Threads that run a job's tasks, the caller included.
    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// Runs `task(i)` for every `i` in `0..n_tasks`, spread over the pool's
    /// threads, and returns when all have finished. The order and the thread a
    /// task runs on are unspecified. A panic in a task is re-raised here after
    /// the other tasks have finished.
    pub fn run(&self, n_tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        if n_tasks == 0 {
            return;
        }
        if n_tasks == 1 || self.workers.is_empty() {
            (0..n_tasks).for_each(task);
            return;
        }
        let _serial = lock(&self.run_lock);
        let inner = &*self.inner;
        // SAFETY: the erased reference is only used by workers inside the job,
        // and this function does not return (or unwind) before closing the job
        // with no worker inside.
        let erased: &'static TaskFn<'static> =
            unsafe { std::mem::transmute::<&TaskFn<'_>, &'static TaskFn<'static>>(task) };
        // SAFETY: the previous job is closed with no worker inside (the previous
        // `run` returned only then) and no worker reads `job` before entering the
        // job opened below; `run_lock` excludes other callers.
        unsafe {
            *inner.job.get() = Some(Job {
                task: erased,
                n_tasks,
            });
        }
        inner.next.store(0, Ordering::Relaxed);
        let generation = state::generation(inner.state.load(Ordering::Relaxed)) + 1;
        // SeqCst pairs with the worker's SeqCst `parked` increment: either the
        // worker sees this job before parking, or this sees it parked.
        inner.state.store(
            generation << state::GEN_SHIFT | state::OPEN,
            Ordering::SeqCst,
        );
        if inner.parked.load(Ordering::SeqCst) > 0 {
            let _g = lock(&inner.lock);
            inner.wake.notify_all();
        }

        let mine = catch_unwind(AssertUnwindSafe(|| claim_tasks(task, n_tasks, &inner.next)));

        // Every task is claimed; close the job once no worker is inside (those
        // inside are finishing the last claimed tasks).
        let open = generation << state::GEN_SHIFT | state::OPEN;
        let mut spins = 0u32;
        while inner
            .state
            .compare_exchange_weak(
                open,
                generation << state::GEN_SHIFT,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_err()
        {
            spins += 1;
            if spins < 1 << 12 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        // SAFETY: the job is closed and no worker is inside.
        unsafe { *inner.job.get() = None };
        let theirs = lock(&inner.panic).take();
        if let Err(p) = mine {
            resume_unwind(p);
        }
        if let Some(p) = theirs {
            resume_unwind(p);
        }
    }
}

/// Runs tasks claimed from `next` until none are left.
fn claim_tasks(task: &TaskFn<'_>, n_tasks: usize, next: &AtomicUsize) {
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= n_tasks {
            return;
        }
        task(i);
    }
}

/// Waits for a job generation other than `seen`: spins for [`SPIN`], then
/// parks. Returns the state word that showed it.
fn wait_for_job(inner: &Inner, seen: u64) -> u64 {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        let s = inner.state.load(Ordering::Acquire);
        if state::generation(s) != seen {
            return s;
        }
        spins = spins.wrapping_add(1);
        if !spins.is_multiple_of(64) || start.elapsed() < SPIN {
            std::hint::spin_loop();
            continue;
        }
        inner.parked.fetch_add(1, Ordering::SeqCst);
        let mut guard = lock(&inner.lock);
        let s = loop {
            let s = inner.state.load(Ordering::SeqCst);
            if state::generation(s) != seen {
                break s;
            }
            guard = inner
                .wake
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner);
        };
        drop(guard);
        inner.parked.fetch_sub(1, Ordering::SeqCst);
        return s;
    }
}

fn worker_loop(inner: &Inner) {
    let mut seen = 0u64;
    loop {
        let mut s = wait_for_job(inner, seen);
        // Enter the job if it is still open.
        let entered = loop {
            let generation = state::generation(s);
            if generation == state::SHUTDOWN {
                return;
            }
            seen = generation;
            if s & state::OPEN == 0 || s & state::INSIDE == state::INSIDE {
                break false;
            }
            match inner
                .state
                .compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => break true,
                Err(now) => s = now,
            }
        };
        if !entered {
            continue;
        }
        // SAFETY: inside the job (entered above); the caller wrote it before
        // opening it and leaves it alone until no worker is inside.
        let job = unsafe { *inner.job.get() }.expect("an open job is set");
        let result = catch_unwind(AssertUnwindSafe(|| {
            claim_tasks(job.task, job.n_tasks, &inner.next)
        }));
        if let Err(p) = result {
            lock(&inner.panic).get_or_insert(p);
        }
        inner.state.fetch_sub(1, Ordering::Release);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        let inner = &*self.inner;
        inner
            .state
            .store(state::SHUTDOWN << state::GEN_SHIFT, Ordering::SeqCst);
        {
            let _g = lock(&inner.lock);
            inner.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            // A worker only exits by returning; its tasks' panics were caught.
            let _ = w.join();
        }
    }
}

/// A raw view of a mutable slice that tasks running in parallel write through,
/// each at indices no other task touches.
///
/// This is how a job's tasks fill disjoint parts of one output buffer without
/// locks: the caller guarantees disjointness, [`SharedSlice::write`] checks bounds.
#[derive(Clone, Copy, Debug)]
pub struct SharedSlice<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: std::marker::PhantomData<&'a mut [T]>,
}

// SAFETY: the view only hands out access through `write`/`slice_mut`, whose
// callers guarantee that no two threads touch the same index; T: Send suffices
// for moving values into another thread's view.
unsafe impl<T: Send> Send for SharedSlice<'_, T> {}
// SAFETY: as above; shared references to the view only allow disjoint writes.
unsafe impl<T: Send> Sync for SharedSlice<'_, T> {}

impl<'a, T> SharedSlice<'a, T> {
    /// Wraps `slice` for the duration of its borrow.
    pub fn new(slice: &'a mut [T]) -> Self {
        SharedSlice {
            ptr: slice.as_mut_ptr(),
            len: slice.len(),
            _borrow: std::marker::PhantomData,
        }
    }

    /// Length of the underlying slice.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the underlying slice is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes `value` at `i` (panics if out of bounds).
    ///
    /// # Safety
    /// No other thread may read or write index `i` while the view is in use.
    pub unsafe fn write(&self, i: usize, value: T) {
        assert!(
            i < self.len,
            "SharedSlice index {i} out of bounds {}",
            self.len
        );
        // SAFETY: in bounds (checked above); exclusive per the caller's contract.
        unsafe { self.ptr.add(i).write(value) }
    }

    /// The sub-slice `start..start + len` as a mutable slice (panics if out of bounds).
    ///
    /// # Safety
    /// No other thread may access any index of that range while it is borrowed.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice_mut(&self, start: usize, len: usize) -> &mut [T] {
        assert!(
            start.checked_add(len).is_some_and(|end| end <= self.len),
            "SharedSlice range {start}+{len} out of bounds {}",
            self.len
        );
        // SAFETY: in bounds (checked above); exclusive per the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_exactly_once() {
        let pool = ThreadPool::new(4);
        for n_tasks in [0, 1, 3, 4, 17, 1000] {
            let hits: Vec<AtomicUsize> = (0..n_tasks).map(|_| AtomicUsize::new(0)).collect();
            pool.run(n_tasks, &|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(
                hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                "n_tasks {n_tasks}"
            );
        }
    }

    #[test]
    fn disjoint_writes_through_a_shared_slice() {
        let pool = ThreadPool::new(3);
        let mut out = vec![0usize; 257];
        let view = SharedSlice::new(&mut out);
        pool.run(view.len(), &|i| {
            // SAFETY: task i writes only index i.
            unsafe { view.write(i, i * i) }
        });
        assert!(out.iter().enumerate().all(|(i, &v)| v == i * i));
    }

    #[test]
    fn a_panicking_task_is_reraised_and_the_pool_stays_usable() {
        let pool = ThreadPool::new(3);
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(64, &|i| assert!(i != 40, "task 40 fails"));
        }));
        assert!(r.is_err());
        let count = AtomicUsize::new(0);
        pool.run(10, &|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn parked_workers_wake_for_the_next_job() {
        let pool = ThreadPool::new(3);
        for round in 0..4 {
            // Long enough for the workers to stop spinning and park.
            std::thread::sleep(SPIN * 4);
            let seen: Vec<AtomicUsize> = (0..64).map(|_| AtomicUsize::new(0)).collect();
            pool.run(seen.len(), &|i| {
                seen[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(
                seen.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                "round {round}"
            );
        }
    }

    #[test]
    fn a_worker_takes_part_while_the_caller_is_busy() {
        let pool = ThreadPool::new(2);
        let main = std::thread::current().id();
        let by_worker = AtomicUsize::new(0);
        // The caller's task waits (up to a generous bound) for the other task to
        // be run by the worker; with a broken pool the caller would run both.
        pool.run(2, &|_| {
            if std::thread::current().id() != main {
                by_worker.fetch_add(1, Ordering::SeqCst);
                return;
            }
            let start = Instant::now();
            while by_worker.load(Ordering::SeqCst) == 0 && start.elapsed() < Duration::from_secs(10)
            {
                std::thread::yield_now();
            }
        });
        // At least one task ran on the worker (it may claim both before the
        // caller claims any).
        assert!(by_worker.load(Ordering::SeqCst) >= 1);
    }

    #[test]
    fn concurrent_callers_share_one_pool() {
        let pool = Arc::new(ThreadPool::new(2));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let pool = Arc::clone(&pool);
                std::thread::spawn(move || {
                    let sum = AtomicUsize::new(0);
                    pool.run(100, &|i| {
                        sum.fetch_add(i, Ordering::Relaxed);
                    });
                    sum.load(Ordering::Relaxed)
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), 4950);
        }
    }
}
