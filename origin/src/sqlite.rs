//! Running local libSQL calls without holding up the runtime.
//!
//! A local libSQL connection does its work on the calling thread, and waits
//! there, up to its busy timeout, while another connection holds SQLite's
//! write lock (a Hrana client inside an interactive transaction, say). On a
//! runtime worker, a few such waits stop every other task, including the
//! request that would commit and let go of the lock: the waiters then fail
//! with `SQLITE_BUSY` having achieved nothing. [`off_runtime`] moves the
//! wait off the worker.
//!
//! The hand-off is not free: on two cores, doing it for checkout's three
//! stock writes per order cost a third of checkout throughput, so those
//! stay on the worker (a stalled stock write times out into a retry).

use std::future::Future;
use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `work` (libSQL calls) to completion where its blocking cannot stall
/// other tasks: the worker first hands its other tasks to a fresh worker.
/// On a current-thread runtime, which cannot do that, it just awaits.
pub async fn off_runtime<F: Future>(work: F) -> F::Output {
    let handle = Handle::current();
    if handle.runtime_flavor() == RuntimeFlavor::MultiThread {
        tokio::task::block_in_place(|| handle.block_on(work))
    } else {
        work.await
    }
}
