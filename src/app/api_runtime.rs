//! The API's own runtime: every HTTP request (status page, dashboard, JSON API) runs on two
//! worker threads of its own, at a lower CPU priority, with its own database pool. However
//! many readers arrive — and they arrive during outages — the scheduler, the runs, their
//! claims and the store writer keep the service's runtime, its threads and its pool to
//! themselves, so a tick is never late because a page was being rendered.

use std::io;

use tokio::runtime::{Builder, Handle, Runtime};

/// Worker threads for requests: rendering is CPU work, and more threads than cores would
/// only take more CPU from the probes.
const WORKERS: usize = 2;
/// Threads for blocking work started by requests (password hashing and the like).
const BLOCKING: usize = 4;
/// The niceness of the API's threads. The kernel weighs nice 10 at about a tenth of nice 0,
/// so when probes and requests both want the CPU, probes get it; idle, requests get it all.
const NICE: i32 = 10;

/// A runtime stopped in the background when dropped (dropping a runtime inside another
/// runtime's task would panic).
pub struct ApiRuntime {
    runtime: Option<Runtime>,
    handle: Handle,
}

impl ApiRuntime {
    pub fn start() -> io::Result<ApiRuntime> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .max_blocking_threads(BLOCKING)
            .thread_name("waymark-api")
            .on_thread_start(lower_priority)
            .enable_all()
            .build()?;
        Ok(ApiRuntime {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for ApiRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Lowers the calling thread's CPU priority (Linux keeps a niceness per thread).
fn lower_priority() {
    // SAFETY: setpriority(2) on this thread's own id; it reads and writes no memory of ours.
    let done = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, NICE) };
    if done != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "API thread priority not lowered");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_threads_run_at_a_lower_priority_than_the_service() {
        let api = ApiRuntime::start().unwrap();
        let nice = api
            .handle()
            .block_on(api.handle().spawn(async {
                // SAFETY: getpriority(2) on this thread's own id.
                unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
            }))
            .unwrap();
        // SAFETY: as above, for the test's own thread.
        let here = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        assert_eq!(nice, NICE);
        assert!(here < NICE, "the test's own thread runs at {here}");
    }
}
