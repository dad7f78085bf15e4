//! A persistent thread pool for splitting one operation's work across cores.
//!
//! The pool keeps `n_threads - 1` worker threads parked on a condition variable;
//! [`ThreadPool::run`] publishes a job (a borrowed closure and a task count), wakes
//! the workers, takes part itself, and returns once every task has run. Tasks are
//! claimed from an atomic counter, so a slow thread never holds up the others'
//! share. This is the simple and correct version: workers sleep between jobs
//! rather than spin, which costs a wake-up (microseconds) per operation.
//!
//! One job runs at a time: concurrent callers of `run` on the same pool are
//! serialised by a lock, so sharing a pool between threads is safe.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

/// The closure a job runs once per task index.
type TaskFn<'a> = dyn Fn(usize) + Sync + 'a;

/// A job as the workers see it: the closure with its lifetime erased, the task
/// count and the counter tasks are claimed from.
struct Job {
    task: &'static TaskFn<'static>,
    n_tasks: usize,
    next: Arc<AtomicUsize>,
}

/// State shared between the caller and the workers, under one mutex.
struct Shared {
    /// Bumped once per job; a worker runs a job when it sees a new generation.
    generation: u64,
    job: Option<Job>,
    /// Workers still inside the current job.
    busy: usize,
    /// The first panic a worker caught in the current job.
    panic: Option<Box<dyn Any + Send>>,
    shutdown: bool,
}

struct Inner {
    shared: Mutex<Shared>,
    /// Signals workers that a job (or shutdown) was published.
    start: Condvar,
    /// Signals the caller that a worker left the job.
    done: Condvar,
}

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
            shared: Mutex::new(Shared {
                generation: 0,
                job: None,
                busy: 0,
                panic: None,
                shutdown: false,
            }),
            start: Condvar::new(),
            done: Condvar::new(),
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
        let next = Arc::new(AtomicUsize::new(0));
        // SAFETY: the erased reference is only used by workers between the
        // publication below and the moment `busy` drops back to zero, and this
        // function does not return (or unwind) before waiting for that; the job
        // is removed from the shared state before returning, so no worker can
        // observe the reference after `task`'s lifetime ends.
        let erased: &'static TaskFn<'static> =
            unsafe { std::mem::transmute::<&TaskFn<'_>, &'static TaskFn<'static>>(task) };
        {
            let mut s = lock(&self.inner.shared);
            s.generation += 1;
            s.job = Some(Job {
                task: erased,
                n_tasks,
                next: Arc::clone(&next),
            });
            s.busy = self.workers.len();
            s.panic = None;
        }
        self.inner.start.notify_all();

        let mine = catch_unwind(AssertUnwindSafe(|| claim_tasks(task, n_tasks, &next)));

        let mut s = lock(&self.inner.shared);
        while s.busy > 0 {
            s = self
                .inner
                .done
                .wait(s)
                .unwrap_or_else(PoisonError::into_inner);
        }
        s.job = None;
        let theirs = s.panic.take();
        drop(s);
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

fn worker_loop(inner: &Inner) {
    let mut seen = 0u64;
    loop {
        let (task, n_tasks, next) = {
            let mut s = lock(&inner.shared);
            while !s.shutdown && s.generation == seen {
                s = inner.start.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
            if s.shutdown {
                return;
            }
            seen = s.generation;
            let job = s
                .job
                .as_ref()
                .expect("a new generation always carries a job");
            (job.task, job.n_tasks, Arc::clone(&job.next))
        };
        let result = catch_unwind(AssertUnwindSafe(|| claim_tasks(task, n_tasks, &next)));
        let mut s = lock(&inner.shared);
        if let Err(p) = result {
            s.panic.get_or_insert(p);
        }
        s.busy -= 1;
        if s.busy == 0 {
            inner.done.notify_all();
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        lock(&self.inner.shared).shutdown = true;
        self.inner.start.notify_all();
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
