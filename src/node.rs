//! The node: what it can do (the capability cache), and the thread that carries out this
//! process's requests. A request's life, failures included, is [`crate::request`]'s; this
//! module takes the calls in libvirt's order and hands each step to it.
//!
//! One worker thread carries requests out. It starts with the first accepted request (not
//! one per request: creating a thread was most of the cost of `virNodeSuspend`), sleeps on
//! a condition variable in between, and ends when the last handle to the node is dropped.
//!
//! fork(): a child inherits the state but not the worker thread. The first call in the
//! child sees that the state was its parent's ([`Requests::forked`]): a request in progress
//! there is the parent's (the child drops its copy, closing its copy of the host lock
//! without releasing it), and the child's own requests get a worker of their own. As for
//! any multithreaded library, a fork while another thread is inside the library (holding
//! its lock) leaves the child unable to call it: POSIX allows only async-signal-safe calls
//! in such a child. The worker holds that lock for a few file operations at a time, and
//! never while it waits for another process ([`guarded`]).

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use nix::unistd::getpid;
use once_cell::sync::OnceCell;

use crate::backend::kernel::Kernel;
use crate::backend::logind::{self, Logind};
use crate::backend::pm_utils::PmUtils;
use crate::backend::{since_boot, Backend, Probe, Support, Unsupported};
use crate::config::{BackendKind, Config};
use crate::error::{Error, ErrorCode, Result};
use crate::host::{self, already_in_progress, Guard, HostRequest, Liveness, Owner, Waited};
use crate::libvirt::{self, LogPriority};
use crate::request::{
    nothing_to_abort, Acceptance, Accepted, Job, Life, Outcome, Phase, Record, Request,
};
use crate::rtc::Rtc;
use crate::target::Target;

const SUSPEND: &str = "virNodeSuspend";

/// How often, during the delay, the worker looks whether another process aborted its
/// request (it reads the record): an abort from this process wakes it at once.
const ABORT_LOOK_INTERVAL: Duration = Duration::from_millis(250);

const WAIT: &str = "virNodeSuspendWait";

/// After the alarm, the time a host may take to come back (resuming from hibernation reads
/// the whole image) before a backend that is waiting for it gives up.
const RESUME_MARGIN: Duration = Duration::from_secs(300);

/// How one target is supported, and by which backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub target: Target,
    /// The backend that answered: the first available one. `None` when none was
    /// available, which libvirt reports as unsupported.
    pub backend: Option<BackendKind>,
    pub support: Support,
}

impl fmt::Display for Answer {
    /// As logged: "Suspend-to-Disk: unsupported (kernel): /sys/power/state does not list 'disk'".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.target.libvirt_name();
        match (&self.support, self.backend.map(BackendKind::name)) {
            (Support::Yes, Some(backend)) => write!(f, "{name}: supported ({backend})"),
            (Support::No(why), Some(backend)) => {
                write!(f, "{name}: unsupported ({backend}): {why}")
            }
            (Support::No(why), None) => {
                write!(f, "{name}: unsupported, no backend is available: {why}")
            }
            (Support::Yes, None) => write!(f, "{name}: supported"),
        }
    }
}

/// The answers for all targets, from one successful capability query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    pub answers: Vec<Answer>,
    /// `virNodeSuspendGetTargetMask`'s value: `Target::bit` of each supported target. Made
    /// from `answers` when they are, and kept: the cached mask is read on every call.
    mask: u32,
    /// The index of the backend that answered, which carries out every request.
    answerer: Option<usize>,
}

impl Capabilities {
    /// The capabilities `answers` tell, from the backend at `answerer`.
    fn of(answers: Vec<Answer>, answerer: Option<usize>) -> Capabilities {
        let mask = answers
            .iter()
            .filter(|answer| answer.support == Support::Yes)
            .fold(0, |mask, answer| mask | answer.target.bit());
        Capabilities {
            answers,
            mask,
            answerer,
        }
    }

    pub fn mask(&self) -> u32 {
        self.mask
    }

    /// The backend that answered (it answers every target), or `None` when none was available.
    pub fn backend(&self) -> Option<BackendKind> {
        self.answers.first().and_then(|answer| answer.backend)
    }

    /// The index of the backend that suspends to `target`, if it is supported.
    fn suspender(&self, target: Target) -> Option<usize> {
        self.answerer.filter(|_| self.mask & target.bit() != 0)
    }

    /// Asks the backends in order until one is available; that one answers every target.
    fn query(backends: &[Box<dyn Backend>]) -> Result<Capabilities> {
        let mut unavailable = Vec::new();
        for (index, backend) in backends.iter().enumerate() {
            match backend.probe()? {
                Probe::Unavailable(why) => {
                    unavailable.push(format!("{}: {why}", backend.kind().name()))
                }
                Probe::Answers(supports) => {
                    let answers = Target::ALL
                        .into_iter()
                        .zip(supports)
                        .map(|(target, support)| Answer {
                            target,
                            backend: Some(backend.kind()),
                            support,
                        })
                        .collect();
                    return Ok(Capabilities::of(answers, Some(index)));
                }
            }
        }
        // As libvirt: when nothing can answer, nothing is supported.
        let why = match unavailable.is_empty() {
            true => "no backend is configured".to_owned(),
            false => unavailable.join("; "),
        };
        let answers = Target::ALL
            .map(|target| Answer {
                target,
                backend: None,
                support: Support::No(Unsupported::NoBackend(why.clone())),
            })
            .to_vec();
        Ok(Capabilities::of(answers, None))
    }
}

struct Requests {
    life: Life,
    /// Whether the worker thread runs (it ends once no handle is left and no request is
    /// pending).
    worker_running: bool,
    /// The pid of the process this state belongs to: a child forked from it finds another
    /// pid here.
    pid: libc::pid_t,
    /// That process as requests record their owner, read once (its start time is in
    /// /proc) by its first request that could read it.
    owner: OnceCell<Owner>,
}

impl Requests {
    /// Makes the state inherited from a parent process this child's: the parent's request
    /// is not carried out here (its worker is in the parent), so it is dropped, closing the
    /// child's copy of its lock without releasing the parent's lock (released when the
    /// parent ends the request or dies); a wait in the child does not wait on its own copy.
    #[cold]
    fn forked(&mut self) {
        // The parent's request and outcome are the parent's.
        self.life = Life::Idle { last: None };
        self.worker_running = false;
        self.pid = getpid().as_raw();
        self.owner = OnceCell::new();
    }
}

struct Inner {
    config: Config,
    host: HostRequest,
    backends: Vec<Box<dyn Backend>>,
    capabilities: OnceCell<Capabilities>,
    /// The clock whose alarm wakes the host: found at the first request that finds one,
    /// then kept, as the capabilities are (a host's wake-capable RTC does not come and go
    /// while a daemon runs). Listing `sys/class/rtc` was a sixth of `virNodeSuspend`'s
    /// system calls (`scripts/bench`).
    rtc: OnceCell<Rtc>,
    requests: Mutex<Requests>,
    /// Notified on every change of `requests` or `handles`: a request posted or over, the
    /// last handle gone.
    changed: Condvar,
    /// How many [`NodeSuspend`] handles there are: the worker ends when none is left.
    handles: AtomicUsize,
}

impl Inner {
    fn requests(&self) -> MutexGuard<'_, Requests> {
        // Every update of the request state is a single assignment, so the state is
        // consistent even if a holder panicked.
        let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        if requests.pid != getpid().as_raw() {
            requests.forked();
        }
        requests
    }

    /// The backend that carries out this process's requests: the one that answered.
    fn answerer(&self) -> &dyn Backend {
        let index = self
            .capabilities
            .get()
            .and_then(|capabilities| capabilities.answerer)
            .expect("a request is accepted only once a backend has answered");
        &*self.backends[index]
    }

    fn wait<'a>(&self, requests: MutexGuard<'a, Requests>) -> MutexGuard<'a, Requests> {
        self.changed
            .wait(requests)
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Suspends this host, as libvirt's `virNodeSuspend*` do. Its clones share one node; the
/// last one dropped lets the worker end.
pub struct NodeSuspend {
    inner: Arc<Inner>,
}

impl Clone for NodeSuspend {
    fn clone(&self) -> NodeSuspend {
        self.inner.handles.fetch_add(1, Ordering::Relaxed);
        NodeSuspend {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl Drop for NodeSuspend {
    fn drop(&mut self) {
        if self.inner.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Under the mutex, so that a worker between its look and its wait does not
            // miss it.
            let _requests = self.inner.requests();
            self.inner.changed.notify_all();
        }
    }
}

impl NodeSuspend {
    /// A node using the backends available for `config`.
    pub fn new(config: Config) -> NodeSuspend {
        let backends = config
            .backends
            .iter()
            .map(|kind| -> Box<dyn Backend> {
                match kind {
                    BackendKind::Logind => {
                        Box::new(Logind::new(config.system_bus.clone(), logind::CALL_TIMEOUT))
                    }
                    BackendKind::PmUtils => Box::new(PmUtils::new(config.path.clone())),
                    BackendKind::Kernel => Box::new(Kernel::new(&config.root)),
                }
            })
            .collect();
        NodeSuspend::with_backends(config, backends)
    }

    pub fn with_backends(config: Config, backends: Vec<Box<dyn Backend>>) -> NodeSuspend {
        NodeSuspend {
            inner: Arc::new(Inner {
                host: HostRequest::new(&config.root),
                config,
                backends,
                capabilities: OnceCell::new(),
                rtc: OnceCell::new(),
                requests: Mutex::new(Requests {
                    life: Life::Idle { last: None },
                    worker_running: false,
                    pid: getpid().as_raw(),
                    owner: OnceCell::new(),
                }),
                changed: Condvar::new(),
                handles: AtomicUsize::new(1),
            }),
        }
    }

    /// Settles the host's request if its process is gone ([`Record::abandon`]). Every
    /// process does this at its first call, so a daemon restarted after a crash clears the
    /// request it left with its first capability query. Nothing is done (and no error
    /// reported) where this process may not take the host's lock: an unprivileged caller
    /// can still ask what the host supports.
    pub fn settle_abandoned(&self) {
        let _ = self.inner.host.settle_abandoned(|guard, record| {
            record.abandon(guard, &self.inner.config);
        });
    }

    /// The capability answers: queried once, kept only when the query succeeded (a failed
    /// query is tried again on the next call), then read without a lock.
    pub fn capabilities(&self) -> Result<&Capabilities> {
        match self.inner.capabilities.get() {
            Some(capabilities) => Ok(capabilities),
            None => self.query_capabilities(),
        }
    }

    /// Out of line, so that the cached path stays a few instructions.
    #[cold]
    #[inline(never)]
    fn query_capabilities(&self) -> Result<&Capabilities> {
        self.inner.capabilities.get_or_try_init(|| {
            let capabilities = Capabilities::query(&self.inner.backends)?;
            for answer in &capabilities.answers {
                libvirt::log(
                    LogPriority::Info,
                    c"virNodeSuspendGetTargetMask",
                    &answer.to_string(),
                );
            }
            Ok(capabilities)
        })
    }

    /// The mask, if the capability query has already succeeded.
    pub fn cached_target_mask(&self) -> Option<u32> {
        self.inner.capabilities.get().map(Capabilities::mask)
    }

    pub fn target_mask(&self) -> Result<u32> {
        self.capabilities().map(Capabilities::mask)
    }

    pub fn request_state(&self) -> Request {
        self.inner.requests().life.request()
    }

    /// Waits until this process's request in progress, if any, is over; then the outcome
    /// of the last request, or `None` when none was carried out by this process. Only
    /// [`Life::finish`] makes a request in progress idle, so idle found after waiting is
    /// the end of the one in progress when the wait began (or of a later one, never of
    /// none).
    pub fn wait_until_over(&self) -> Option<Outcome> {
        let mut requests = self.inner.requests();
        loop {
            if let Life::Idle { last } = &requests.life {
                return last.clone();
            }
            requests = self.inner.wait(requests);
        }
    }

    /// `virNodeSuspendWait`: waits for the host's request in progress, whichever process
    /// made it, and tells how it ended. With none in progress: how this process's last
    /// request ended, or if it made none, the host's last; with none at all, an error.
    pub fn wait(&self) -> Result<()> {
        if self.request_state() != Request::Idle {
            return self.own_outcome();
        }
        let record = self.inner.host.read()?;
        match record.phase.accepted() {
            Some(accepted) => self.wait_for_host_request(accepted),
            None => match self.wait_until_over() {
                Some(outcome) => outcome.result,
                None => match record.last {
                    Some(last) => last.result(),
                    None => Err(Error::new(
                        ErrorCode::OperationInvalid,
                        WAIT,
                        "no suspend request was made",
                    )),
                },
            },
        }
    }

    /// The outcome of this process's request in progress, once it is over.
    fn own_outcome(&self) -> Result<()> {
        self.wait_until_over()
            .expect("a request in progress ends with an outcome")
            .result
    }

    /// Waits for `accepted`, a request of another process, and tells how it ended: the
    /// outcome recorded for it and never another request's. A request whose owner died is
    /// settled as abandoned on the way, or where this process may not (an unprivileged
    /// caller), reported as such.
    fn wait_for_host_request(&self, accepted: &Accepted) -> Result<()> {
        loop {
            let record = match self.inner.host.wait_for(accepted)? {
                Waited::Over(record) => record,
                Waited::OwnerGone => {
                    let guard = match self.inner.host.guard() {
                        Ok(guard) => guard,
                        Err(error) if host::is_not_permitted(&error) => {
                            return Err(abandoned_unsettled(accepted))
                        }
                        Err(error) => return Err(error),
                    };
                    let record = guard.read()?;
                    match record.phase.accepted() == Some(accepted) {
                        true if guard.liveness(&record)? == Liveness::Gone => {
                            record.abandon(&guard, &self.inner.config)
                        }
                        // Its owner was between two steps: not gone after all.
                        true => continue,
                        false => record,
                    }
                }
            };
            return match record.last {
                Some(last) if last.request == accepted.lock => last.result(),
                _ => Err(Error::new(
                    ErrorCode::OperationFailed,
                    WAIT,
                    format!(
                        "the suspend request of process {} is over, but a later request has replaced its outcome",
                        accepted.owner.pid
                    ),
                )),
            };
        }
    }

    /// `virNodeSuspendGetInfo`: the host's request and how the last one ended, from the
    /// record. A request whose process seems gone is looked at first (settled if its lock
    /// is free), so a long-running caller does not see it pending for good.
    pub fn info(&self) -> Result<Record> {
        // As every call but the cached mask, it makes a forked child's inherited state its
        // own first (letting go of its parent's lock: Requests::forked).
        drop(self.inner.requests());
        let record = self.inner.host.read()?;
        match record.phase.accepted() {
            Some(accepted) if !accepted.owner.may_be_alive() => {
                self.settle_abandoned();
                self.inner.host.read()
            }
            _ => Ok(record),
        }
    }

    /// `virNodeSuspendAbort`: cancels the host's pending request, whichever process made
    /// it ([`Record::abort`]). Once it returns, the alarm is disarmed (if it still held the
    /// request's value) and the record tells the request aborted; the owner's worker finds
    /// that before it would start the suspend, and its `virNodeSuspendWait` fails with
    /// "operation aborted".
    pub fn abort(&self) -> Result<()> {
        drop(self.inner.requests()); // see info
        if self.inner.host.read()?.phase == Phase::Idle {
            return Err(nothing_to_abort());
        }
        let guard = self.inner.host.guard()?;
        let record = guard.read()?;
        match guard.liveness(&record)? {
            Liveness::Idle => return Err(nothing_to_abort()),
            Liveness::Gone => {
                // Nothing left to abort: the request is settled as abandoned.
                record.abandon(&guard, &self.inner.config);
                return Err(nothing_to_abort());
            }
            Liveness::Owned => {}
        }
        record.abort(&guard, &self.inner.config, getpid().as_raw())?;
        drop(guard);
        // The owner may be this process: its worker need not wait for its next look. (Under
        // the mutex, so that a worker between its look and its wait does not miss it.)
        let _requests = self.inner.requests();
        self.inner.changed.notify_all();
        Ok(())
    }

    /// `virNodeSuspend` once its flags are checked: checks the request in libvirt's order,
    /// takes the host's lock, records the request, arms the wake alarm, and leaves the
    /// suspend to the worker thread, which starts it after the configured delay.
    pub fn suspend(&self, raw_target: u32, duration: u64) -> Result<()> {
        let capabilities = self.capabilities()?;

        // libvirt's "in progress" check, where libvirt has it: this process's request,
        // then any other process's (the host's record, under its guard). A caller that
        // may not take part in the host's request (not root) still has its arguments
        // checked first, as libvirt does before its rtcwake fails.
        let mut requests = self.inner.requests();
        loop {
            let job = match &requests.life {
                Life::Idle { .. } => break,
                Life::Pending(job) => job,
                Life::Suspending(_) => return Err(already_in_progress()),
            };
            if !job.aborted_elsewhere(&self.inner.host) {
                return Err(already_in_progress());
            }
            // Aborted by another process: over for the host already, and over here once
            // the worker has seen it, which it does as soon as it is woken.
            self.inner.changed.notify_all();
            requests = self.inner.wait(requests);
        }
        let (guard, previous) = match self.inner.host.guard() {
            Ok(guard) => {
                let record = guard.read()?;
                let previous = match guard.liveness(&record)? {
                    Liveness::Owned => return Err(already_in_progress()),
                    Liveness::Gone => record.abandon(&guard, &self.inner.config).last,
                    Liveness::Idle => record.last,
                };
                (Ok(guard), previous)
            }
            Err(error) if host::is_not_permitted(&error) => (Err(error), None),
            Err(error) => return Err(error),
        };

        let target = Target::from_raw(raw_target)
            .ok_or_else(|| Error::new(ErrorCode::InvalidArg, SUSPEND, "Invalid suspend target"))?;
        let backend = capabilities.suspender(target).ok_or_else(|| {
            Error::new(
                ErrorCode::ArgumentUnsupported,
                SUSPEND,
                target.libvirt_name(),
            )
        })?;
        let min_duration = self.inner.config.min_duration_secs();
        if duration < min_duration {
            return Err(Error::new(
                ErrorCode::InvalidArg,
                "virNodeSuspendSetNodeWakeup",
                format!("Suspend duration is too short, must be at least {min_duration} seconds"),
            ));
        }
        let guard = guard?;
        let rtc = self
            .inner
            .rtc
            .get_or_try_init(|| Rtc::find(&self.inner.config.root))?
            .clone();
        let wake_at = rtc.wake_time(duration)?;

        let owner = *requests.owner.get_or_try_init(Owner::this_process)?;
        let (lock, lock_name) = guard.new_lock(&owner)?;
        let job = Job::accept(
            &guard,
            Acceptance {
                accepted: Accepted {
                    owner,
                    target,
                    backend: self.inner.backends[backend].kind(),
                    wakealarm: rtc.wakealarm_name(),
                    wake_at,
                    accepted_at: host::now_epoch(),
                    lock: lock_name,
                },
                previous,
                rtc,
                lock,
                starts_at: since_boot() + self.inner.config.delay,
                give_up_after: Duration::from_secs(duration) + RESUME_MARGIN,
                duration,
            },
        )?;
        if !requests.worker_running {
            let inner = Arc::clone(&self.inner);
            let spawned = thread::Builder::new()
                .name("node-suspend".to_owned())
                .spawn(move || work(&inner));
            if spawned.is_err() {
                let error = Error::new(
                    ErrorCode::InternalError,
                    SUSPEND,
                    "Failed to create thread to suspend the host",
                );
                return Err(job.give_up(&guard, error));
            }
        }
        requests.worker_running = true;
        requests.life = Life::Pending(Box::new(job));
        drop(requests);
        drop(guard);
        self.inner.changed.notify_all();
        Ok(())
    }
}

/// The error of a wait for a request whose process ended before it did, where the waiter
/// may not settle it (only root may change the host's record).
#[cold]
fn abandoned_unsettled(accepted: &Accepted) -> Error {
    Error::new(
        ErrorCode::OperationFailed,
        WAIT,
        format!(
            "process {} ended before its suspend request was over; the request is abandoned, but only root can settle it",
            accepted.owner.pid
        ),
    )
}

/// The worker: carries out each request posted, until the node is dropped.
fn work(inner: &Inner) {
    loop {
        let mut requests = inner.requests();
        loop {
            match &requests.life {
                Life::Pending(job) => {
                    let now = since_boot();
                    if now >= job.starts_at || job.aborted_elsewhere(&inner.host) {
                        break;
                    }
                    let delay = (job.starts_at - now).min(ABORT_LOOK_INTERVAL);
                    requests = inner
                        .changed
                        .wait_timeout(requests, delay)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                _ if inner.handles.load(Ordering::Acquire) == 0 => {
                    requests.worker_running = false;
                    drop(requests);
                    return;
                }
                _ => requests = inner.wait(requests),
            }
        }
        let backend = inner.answerer();
        // Whatever happens on the way, the request ends: a panic outside the backend (while
        // disarming or logging) must not leave it in progress for good.
        let unexpected = |_| Err(failed_unexpectedly(backend.kind()));
        let guard;
        (requests, guard) = guarded(inner, requests);
        let started = panic::catch_unwind(AssertUnwindSafe(|| requests.life.start(guard)))
            .unwrap_or_else(unexpected);
        let result = match started {
            Ok(order) => {
                drop(requests);
                let suspended = panic::catch_unwind(AssertUnwindSafe(|| {
                    backend.suspend(order.target, order.give_up_after)
                }))
                .unwrap_or_else(|_| Err(failed_unexpectedly(backend.kind()).into()));
                let result = panic::catch_unwind(AssertUnwindSafe(|| order.returned(suspended)))
                    .unwrap_or_else(|_| Err(failed_unexpectedly(backend.kind())));
                requests = inner.requests();
                result
            }
            Err(error) => Err(error),
        };
        let guard;
        (requests, guard) = guarded(inner, requests);
        requests.life.finish(guard, backend.kind(), result);
        drop(requests);
        inner.changed.notify_all();
    }
}

/// The host's guard for a step of this process's request, taken with `requests` held
/// (the order of every caller: the node's state, then the guard). While another process
/// holds the guard, the worker waits for it with the state let go, then takes both again:
/// it never holds the state while it waits, which would hold up every call of this
/// process (`virNodeSuspendGetInfo` among them, which never waits for the guard) and leave
/// a child forked meanwhile with the state locked for good.
fn guarded<'a>(
    inner: &'a Inner,
    mut requests: MutexGuard<'a, Requests>,
) -> (MutexGuard<'a, Requests>, Result<Guard<'a>>) {
    loop {
        match inner.host.guard_now() {
            Ok(Some(guard)) => return (requests, Ok(guard)),
            Ok(None) => {}
            Err(error) => return (requests, Err(error)),
        }
        drop(requests);
        // Waited for holding nothing else, and let go at once.
        drop(inner.host.guard());
        requests = inner.requests();
    }
}

#[cold]
fn failed_unexpectedly(backend: BackendKind) -> Error {
    Error::new(
        ErrorCode::InternalError,
        SUSPEND,
        format!("the {} backend failed unexpectedly", backend.name()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::SuspendFailure;
    use crate::host::HostRequest;
    use crate::request::tests::{left_behind, NOW};
    use crate::request::{Ended, Ending, RecordedError};
    use crate::testing::{as_nobody, rerun_as_nobody, FakeRoot, NOBODYS_ROOT};
    use std::path::Path;
    use std::sync::Barrier;
    use std::time::Instant;

    /// The fake host (tests/fake-host/): mem, disk and hybrid, its clock at [`NOW`].
    fn host() -> FakeRoot {
        FakeRoot::host()
    }

    fn node(root: &FakeRoot, delay_secs: u64) -> NodeSuspend {
        // The kernel backend only: these tests never depend on this machine's bus or PATH.
        NodeSuspend::new(Config {
            root: root.path().to_owned(),
            delay: Duration::from_secs(delay_secs),
            backends: vec![BackendKind::Kernel],
            ..Config::default()
        })
    }

    /// A node on `root`, with no delay, asking `backends` in this order.
    fn node_with(root: &FakeRoot, backends: Vec<Box<dyn Backend>>) -> NodeSuspend {
        let config = Config {
            root: root.path().to_owned(),
            delay: Duration::ZERO,
            ..Config::default()
        };
        NodeSuspend::with_backends(config, backends)
    }

    fn wait_idle(node: &NodeSuspend) -> Outcome {
        node.wait_until_over().expect("an outcome is recorded")
    }

    /// Aborts the node's pending request and waits for its worker to record that, before
    /// the test's fake root goes (a worker still pending would find its record gone and
    /// make the directory again to record the end).
    fn end_pending(node: &NodeSuspend) {
        node.abort().unwrap();
        wait_idle(node);
    }

    fn error(node: &NodeSuspend, target: u32, duration: u64) -> (ErrorCode, String) {
        let e = node.suspend(target, duration).unwrap_err();
        (e.code, e.message.clone())
    }

    #[test]
    fn mask_for_mem_disk_and_hybrid_host() {
        let root = host();
        let node = node(&root, 0);
        assert_eq!(node.target_mask().unwrap(), 0b111);
        assert_eq!(
            node.capabilities().unwrap().backend(),
            Some(BackendKind::Kernel)
        );
    }

    #[test]
    fn mask_is_zero_when_no_backend_is_available() {
        let root = FakeRoot::new();
        let node = node(&root, 0);
        assert_eq!(node.target_mask().unwrap(), 0);
        assert_eq!(node.capabilities().unwrap().backend(), None);
    }

    #[test]
    fn failed_capability_query_is_not_cached() {
        let root = FakeRoot::new();
        std::fs::create_dir_all(root.path().join("sys/power/state")).unwrap();
        let node = node(&root, 0);
        assert_eq!(node.target_mask().unwrap_err().code, ErrorCode::SystemError);
        std::fs::remove_dir(root.path().join("sys/power/state")).unwrap();
        let _root = root.state("mem disk");
        assert_eq!(node.target_mask().unwrap(), 0b001);
    }

    #[test]
    fn successful_capability_query_is_cached() {
        let root = host();
        let node = node(&root, 0);
        assert_eq!(node.target_mask().unwrap(), 0b111);
        std::fs::remove_file(root.path().join("sys/power/state")).unwrap();
        assert_eq!(node.target_mask().unwrap(), 0b111);
    }

    #[test]
    fn failed_capability_query_fails_the_request() {
        let root = FakeRoot::new();
        std::fs::create_dir_all(root.path().join("sys/power/state")).unwrap();
        assert_eq!(error(&node(&root, 0), 0, 60).0, ErrorCode::SystemError);
    }

    #[test]
    fn unknown_target_is_reported_before_short_duration() {
        assert_eq!(
            error(&node(&host(), 0), 3, 1),
            (
                ErrorCode::InvalidArg,
                "invalid argument: Invalid suspend target".into()
            )
        );
    }

    #[test]
    fn unsupported_target_is_reported_before_short_duration() {
        let root = FakeRoot::new().state("mem disk").rtc(0, NOW);
        let node = node(&root, 0);
        for (target, name) in [(1, "Suspend-to-Disk"), (2, "Hybrid-Suspend")] {
            assert_eq!(
                error(&node, target, 1),
                (
                    ErrorCode::ArgumentUnsupported,
                    format!("argument unsupported: {name}")
                )
            );
        }
    }

    #[test]
    fn short_duration_is_refused() {
        let e = node(&host(), 0).suspend(0, 59).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArg);
        assert_eq!(
            e.message,
            "invalid argument: Suspend duration is too short, must be at least 60 seconds"
        );
        assert_eq!(e.function, "virNodeSuspendSetNodeWakeup");
    }

    #[test]
    fn longer_delay_raises_the_minimum_duration() {
        let root = host();
        let node = node(&root, 30);
        let e = node.suspend(0, 79).unwrap_err();
        assert_eq!(
            e.message,
            "invalid argument: Suspend duration is too short, must be at least 80 seconds"
        );
        node.suspend(0, 80).unwrap();
        end_pending(&node);
    }

    #[test]
    fn too_long_duration_changes_nothing() {
        let root = host();
        let node = node(&root, 0);
        for duration in [10_000_000_000, u64::MAX] {
            assert_eq!(error(&node, 0, duration).0, ErrorCode::InvalidArg);
        }
        assert_eq!(root.read("sys/class/rtc/rtc0/wakealarm"), "");
        assert_eq!(root.read("sys/power/state"), "freeze mem disk");
        assert_eq!(node.request_state(), Request::Idle);
    }

    #[test]
    fn suspend_to_ram_arms_alarm_writes_mem_and_accepts_the_next_request() {
        let root = host();
        let node = node(&root, 0);
        node.suspend(0, 60).unwrap();
        let outcome = wait_idle(&node);
        assert_eq!(outcome.result, Ok(()));
        assert_eq!(
            (outcome.target, outcome.backend),
            (Target::Mem, BackendKind::Kernel)
        );
        assert_eq!(root.read("sys/power/state"), "mem");
        // The alarm was set to NOW + 61, then disarmed once the host was back.
        assert_eq!(root.read("sys/class/rtc/rtc0/wakealarm"), "0");
        node.suspend(0, 60).unwrap();
        wait_idle(&node);
    }

    #[test]
    fn alarm_holds_call_time_plus_duration_while_pending() {
        let root = host();
        let node = node(&root, 1);
        node.suspend(1, 3600).unwrap();
        assert_eq!(node.request_state(), Request::Pending(Target::Disk));
        assert_eq!(
            root.read("sys/class/rtc/rtc0/wakealarm"),
            (NOW + 3600 + 1).to_string()
        );
        let outcome = wait_idle(&node);
        assert_eq!(outcome.result, Ok(()));
        assert_eq!(
            root.read("sys/power/disk"),
            "[platform] shutdown reboot suspend"
        );
        assert_eq!(root.read("sys/power/state"), "disk");
    }

    #[test]
    fn hybrid_writes_suspend_mode_and_disk() {
        let root = host();
        let node = node(&root, 0);
        node.suspend(2, 60).unwrap();
        assert_eq!(wait_idle(&node).result, Ok(()));
        // "suspend" was selected for the sleep, and the administrator's mode again after.
        assert_eq!(root.read("sys/power/disk"), "platform");
        assert_eq!(root.read("sys/power/state"), "disk");
    }

    /// libvirt's refusal of a request while one is in progress, which comes before the
    /// target and the duration are checked.
    fn assert_refused_as_in_progress(node: &NodeSuspend) {
        assert_eq!(
            error(node, 0, 60),
            (
                ErrorCode::OperationInvalid,
                "Requested operation is not valid: Suspend operation already in progress".into()
            )
        );
        assert_eq!(error(node, 7, 1).0, ErrorCode::OperationInvalid);
    }

    #[test]
    fn second_request_while_pending_is_refused() {
        let root = host();
        let node = node(&root, 1);
        node.suspend(0, 60).unwrap();
        assert_refused_as_in_progress(&node);
        wait_idle(&node);
    }

    #[test]
    fn racing_threads_get_exactly_one_success() {
        let root = host();
        let node = node(&root, 1);
        node.target_mask().unwrap();
        let start = Arc::new(Barrier::new(32));
        let results: Vec<_> = (0..32)
            .map(|_| {
                let (node, start) = (node.clone(), Arc::clone(&start));
                thread::spawn(move || {
                    start.wait();
                    node.suspend(0, 60).map_err(|e| (e.code, e.message.clone()))
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
        let in_progress = Err((
            ErrorCode::OperationInvalid,
            "Requested operation is not valid: Suspend operation already in progress".into(),
        ));
        assert_eq!(results.iter().filter(|r| **r == in_progress).count(), 31);
        wait_idle(&node);
    }

    #[test]
    fn no_rtc_fails_without_leaving_the_request_in_progress() {
        let root = FakeRoot::new().state("mem");
        let node = node(&root, 0);
        assert_eq!(error(&node, 0, 60).0, ErrorCode::OperationUnsupported);
        assert_eq!(node.request_state(), Request::Idle);
    }

    #[test]
    fn failing_alarm_write_fails_without_leaving_the_request_in_progress() {
        let root = host();
        root.link("sys/class/rtc/rtc0/wakealarm", "/dev/full");
        let node = node(&root, 0);
        let e = node.suspend(0, 60).unwrap_err();
        assert_eq!(e.code, ErrorCode::SystemError);
        assert!(
            e.message.ends_with("No space left on device"),
            "{}",
            e.message
        );
        assert_eq!(e.int1, libc::ENOSPC);
        assert_eq!(node.request_state(), Request::Idle);
    }

    #[test]
    fn alarm_the_kernel_refuses_fails_without_leaving_the_request_in_progress() {
        let root = host();
        root.link(
            "sys/class/rtc/rtc0/wakealarm",
            crate::rtc::tests::REFUSES_LARGE_VALUES,
        );
        let node = node(&root, 0);
        assert_eq!(error(&node, 0, 60).0, ErrorCode::InvalidArg);
        assert_eq!(node.request_state(), Request::Idle);
        root.link("sys/class/rtc/rtc0/wakealarm", "/dev/null");
        node.suspend(0, 60).unwrap();
        wait_idle(&node);
    }

    #[test]
    fn failing_suspend_write_is_recorded_and_disarms_the_alarm() {
        let root = host();
        let node = node(&root, 0);
        node.target_mask().unwrap();
        root.link("sys/power/state", "/dev/full");
        node.suspend(0, 60).unwrap();
        let outcome = wait_idle(&node);
        let e = outcome.result.unwrap_err();
        assert_eq!(e.int1, libc::ENOSPC);
        assert!(
            e.message.starts_with("Unable to write 'mem' to '"),
            "{}",
            e.message
        );
        assert_eq!(root.read("sys/class/rtc/rtc0/wakealarm"), "0");
        // The next request is accepted (and fails the same way, asynchronously).
        node.suspend(0, 60).unwrap();
        wait_idle(&node);
    }

    struct Panicking;
    impl Backend for Panicking {
        fn kind(&self) -> BackendKind {
            BackendKind::Kernel
        }
        fn probe(&self) -> Result<Probe> {
            Ok(Probe::Answers([Support::Yes, Support::Yes, Support::Yes]))
        }
        fn suspend(&self, _: Target, _: Duration) -> std::result::Result<(), SuspendFailure> {
            panic!("injected")
        }
    }

    #[test]
    fn panicking_backend_is_a_recorded_failure() {
        let root = host();
        let node = node_with(&root, vec![Box::new(Panicking)]);
        node.suspend(0, 60).unwrap();
        let outcome = wait_idle(&node);
        assert_eq!(outcome.result.unwrap_err().code, ErrorCode::InternalError);
        assert_eq!(root.read("sys/class/rtc/rtc0/wakealarm"), "0");
    }

    struct Unavailable;
    impl Backend for Unavailable {
        fn kind(&self) -> BackendKind {
            BackendKind::Logind
        }
        fn probe(&self) -> Result<Probe> {
            Ok(Probe::Unavailable("not here".into()))
        }
        fn suspend(&self, _: Target, _: Duration) -> std::result::Result<(), SuspendFailure> {
            unreachable!("an unavailable backend is never asked to suspend")
        }
    }

    #[test]
    fn first_available_backend_answers_and_suspends() {
        let root = host();
        let node = node_with(
            &root,
            vec![Box::new(Unavailable), Box::new(Kernel::new(root.path()))],
        );
        let caps = node.capabilities().unwrap();
        assert!(caps
            .answers
            .iter()
            .all(|a| a.backend == Some(BackendKind::Kernel)));
        node.suspend(0, 60).unwrap();
        assert_eq!(wait_idle(&node).backend, BackendKind::Kernel);
    }

    /// Blocks in `suspend` until the test lets it return, as a host that is asleep.
    struct Sleeping(Mutex<std::sync::mpsc::Receiver<()>>);
    impl Backend for Sleeping {
        fn kind(&self) -> BackendKind {
            BackendKind::Kernel
        }
        fn probe(&self) -> Result<Probe> {
            Ok(Probe::Answers([Support::Yes, Support::Yes, Support::Yes]))
        }
        fn suspend(&self, _: Target, _: Duration) -> std::result::Result<(), SuspendFailure> {
            self.0.lock().unwrap().recv().unwrap();
            Ok(())
        }
    }

    fn sleeping_node(root: &FakeRoot) -> (NodeSuspend, std::sync::mpsc::Sender<()>) {
        let (wake, asleep) = std::sync::mpsc::channel();
        (
            node_with(root, vec![Box::new(Sleeping(Mutex::new(asleep)))]),
            wake,
        )
    }

    #[test]
    fn with_no_delay_the_request_is_in_progress_until_the_host_is_back() {
        let root = host();
        let (node, wake) = sleeping_node(&root);
        node.suspend(0, 60).unwrap();
        assert_ne!(node.request_state(), Request::Idle);
        assert_eq!(
            root.read("sys/class/rtc/rtc0/wakealarm"),
            (NOW + 61).to_string()
        );
        assert_eq!(error(&node, 0, 60).0, ErrorCode::OperationInvalid);
        wake.send(()).unwrap();
        assert_eq!(wait_idle(&node).result, Ok(()));
        assert_eq!(root.read("sys/class/rtc/rtc0/wakealarm"), "0");
        node.suspend(0, 60).unwrap();
        wake.send(()).unwrap();
        wait_idle(&node);
    }

    #[test]
    fn worker_ends_when_the_last_handle_is_dropped() {
        let root = host();
        let node = node(&root, 0);
        node.suspend(0, 60).unwrap();
        wait_idle(&node);
        let inner = Arc::downgrade(&node.inner);
        let clone = node.clone();
        drop(node);
        assert!(inner.upgrade().is_some(), "a clone still holds the node");
        drop(clone);
        let deadline = Instant::now() + Duration::from_secs(30);
        while inner.upgrade().is_some() {
            assert!(Instant::now() < deadline, "the worker still holds the node");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn failing_pm_utils_helper_is_recorded_disarms_and_frees_the_request() {
        use std::os::unix::fs::PermissionsExt;
        let root = host();
        let bin = root.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for (name, body) in [("pm-is-supported", "exit 0"), ("pm-suspend", "exit 1")] {
            std::fs::write(bin.join(name), format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        let pm_utils = crate::backend::pm_utils::PmUtils::new(Some(bin.into_os_string()));
        let node = node_with(&root, vec![Box::new(pm_utils)]);
        for _ in 0..2 {
            node.suspend(0, 60).unwrap();
            let outcome = wait_idle(&node);
            assert_eq!(outcome.backend, BackendKind::PmUtils);
            assert_eq!(
                outcome.result.unwrap_err().message,
                "operation failed: pm-suspend exited with status 1"
            );
            assert_eq!(root.read("sys/class/rtc/rtc0/wakealarm"), "0");
        }
    }

    #[test]
    fn an_available_backends_no_is_final() {
        use std::os::unix::fs::PermissionsExt;
        // pm-utils can only hibernate; the kernel, asked next, would allow mem too.
        let root = host();
        let bin = root.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for (name, body) in [
            ("pm-is-supported", "[ \"$1\" = --hibernate ]"),
            ("pm-hibernate", "exit 0"),
        ] {
            std::fs::write(bin.join(name), format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        let pm_utils = crate::backend::pm_utils::PmUtils::new(Some(bin.into_os_string()));
        let kernel = Kernel::new(root.path());
        let node = node_with(&root, vec![Box::new(pm_utils), Box::new(kernel)]);
        assert_eq!(node.target_mask(), Ok(1 << Target::Disk as u32));
        assert_eq!(error(&node, 0, 60).0, ErrorCode::ArgumentUnsupported);
        node.suspend(1, 60).unwrap();
        let outcome = wait_idle(&node);
        assert_eq!(
            (outcome.backend, outcome.result),
            (BackendKind::PmUtils, Ok(()))
        );
        assert_eq!(root.read("sys/class/rtc/rtc0/wakealarm"), "0");
        assert_eq!(
            root.read("sys/power/state"),
            "freeze mem disk",
            "the kernel was not used"
        );
    }

    /// The host's request record, as another process reads it.
    fn record(root: &FakeRoot) -> Record {
        HostRequest::new(root.path()).read().unwrap()
    }

    #[test]
    fn pending_request_is_recorded_for_the_whole_host() {
        let root = host();
        let node = node(&root, 3600);
        node.suspend(2, 3650).unwrap();
        let Phase::Pending(accepted) = record(&root).phase else {
            panic!("not pending: {:?}", record(&root))
        };
        assert_eq!(accepted.owner, Owner::this_process().unwrap());
        assert_eq!(
            (accepted.target, accepted.backend),
            (Target::Hybrid, BackendKind::Kernel)
        );
        assert_eq!(accepted.wakealarm, "sys/class/rtc/rtc0/wakealarm");
        assert_eq!(accepted.wake_at, NOW + 3651);
        assert!(accepted.accepted_at.abs_diff(host::now_epoch()) < 600);
        end_pending(&node);
    }

    #[test]
    fn request_of_another_process_is_refused_until_it_is_over() {
        let root = host();
        let (first, wake) = sleeping_node(&root);
        // Another node on the same root takes the lock through a file description of its
        // own, as another process does.
        let second = node(&root, 0);
        first.suspend(0, 60).unwrap();
        assert_refused_as_in_progress(&second);
        wake.send(()).unwrap();
        assert_eq!(wait_idle(&first).result, Ok(()));
        let ended = record(&root);
        assert_eq!(ended.phase, Phase::Idle);
        let request = ended.last.as_ref().unwrap().request.clone();
        assert!(request.starts_with(&format!("lock.{}.", std::process::id())));
        assert_eq!(
            ended.last,
            Some(Ended {
                request,
                ending: Ending::Back,
                target: Target::Mem,
                error: None
            })
        );
        second.suspend(0, 60).unwrap();
        assert_eq!(wait_idle(&second).result, Ok(()));
    }

    #[test]
    fn failed_request_leaves_an_alarm_someone_else_set_alone() {
        let root = host();
        let (node, wake) = sleeping_node(&root);
        node.suspend(0, 60).unwrap();
        // An administrator's rtcwake while the request is in progress.
        std::fs::write(
            root.path().join("sys/class/rtc/rtc0/wakealarm"),
            "1900000000",
        )
        .unwrap();
        wake.send(()).unwrap();
        wait_idle(&node);
        assert_eq!(root.read("sys/class/rtc/rtc0/wakealarm"), "1900000000");
    }

    #[test]
    fn pending_request_of_a_process_that_died_is_abandoned_and_its_alarm_disarmed() {
        let root = host();
        left_behind(&root, Phase::Pending);
        let node = node(&root, 0);
        node.settle_abandoned();
        assert_eq!(root.read("sys/class/rtc/rtc0/wakealarm"), "0");
        assert_eq!(
            record(&root),
            Record {
                phase: Phase::Idle,
                last: Some(Ended {
                    request: "lock.4000000.1.0".into(),
                    ending: Ending::Abandoned,
                    target: Target::Mem,
                    error: Some(RecordedError {
                        code: ErrorCode::OperationFailed,
                        domain: 0,
                        message: "process 4000000 ended before the suspend started".into()
                    }),
                }),
            }
        );
        node.suspend(0, 60).unwrap();
        assert_eq!(wait_idle(&node).result, Ok(()));
    }

    #[test]
    fn abandoned_request_found_by_the_next_request_is_settled_first() {
        let root = host();
        left_behind(&root, Phase::Pending);
        let node = node(&root, 3600);
        node.suspend(1, 3650).unwrap();
        let after = record(&root);
        assert!(matches!(after.phase, Phase::Pending(_)));
        assert_eq!(after.last.unwrap().ending, Ending::Abandoned);
        end_pending(&node);
    }

    // As request.rs's tests of Record::abandon, but found and settled as every process's
    // first call does (the lock looked at, under a guard taken without waiting).
    #[test]
    fn abandoned_request_that_had_started_keeps_its_alarm() {
        let root = host();
        left_behind(&root, Phase::Suspending);
        node(&root, 0).settle_abandoned();
        assert_eq!(
            root.read("sys/class/rtc/rtc0/wakealarm"),
            (NOW + 61).to_string()
        );
        let last = record(&root).last.unwrap();
        assert_eq!(last.ending, Ending::Abandoned);
        assert_eq!(
            last.error.unwrap().message,
            "process 4000000 ended after the suspend started; its wake-up alarm was left armed"
        );
    }

    #[test]
    fn abandoned_request_leaves_an_alarm_someone_else_set_alone() {
        let root = host();
        left_behind(&root, Phase::Pending);
        std::fs::write(
            root.path().join("sys/class/rtc/rtc0/wakealarm"),
            "1900000000",
        )
        .unwrap();
        node(&root, 0).settle_abandoned();
        assert_eq!(root.read("sys/class/rtc/rtc0/wakealarm"), "1900000000");
        assert_eq!(record(&root).last.unwrap().ending, Ending::Abandoned);
    }

    #[test]
    fn host_that_never_had_a_request_is_left_untouched() {
        let root = host();
        node(&root, 0).settle_abandoned();
        assert!(!root.path().join("run/virnodesuspend").exists());
    }

    #[test]
    fn abort_from_another_process_cancels_a_pending_request() {
        let root = host();
        let owner = node(&root, 3600);
        owner.suspend(0, 3650).unwrap();
        let other = node(&root, 0);
        other.abort().unwrap();
        // In effect when abort returns: alarm disarmed, the record idle and aborted.
        assert_eq!(root.read("sys/class/rtc/rtc0/wakealarm"), "0");
        let aborted = other.info().unwrap();
        assert_eq!(aborted.phase, Phase::Idle);
        let last = aborted.last.unwrap();
        assert_eq!((last.ending, last.target), (Ending::Aborted, Target::Mem));
        // The owner's wait returns once its worker has looked (a fraction of a second).
        let e = owner.wait().unwrap_err();
        assert_eq!(e.code, ErrorCode::OperationAborted);
        assert_eq!(
            e.message,
            format!(
                "operation aborted: the suspend request was aborted by process {}",
                std::process::id()
            )
        );
        assert_eq!(root.read("sys/power/state"), "freeze mem disk");
        other.suspend(0, 60).unwrap();
        assert_eq!(other.wait(), Ok(()));
    }

    #[test]
    fn request_accepted_after_an_abort_is_not_undone_by_the_aborted_owner() {
        let root = host();
        let owner = node(&root, 3600);
        owner.suspend(0, 3650).unwrap();
        let other = node(&root, 3600);
        other.abort().unwrap();
        // Accepted before the aborted owner's worker has looked at the record.
        other.suspend(1, 3650).unwrap();
        // Its own request's outcome (`wait` would wait for the host's request in progress,
        // the new one, once the owner's worker has seen the abort).
        assert_eq!(
            owner.wait_until_over().unwrap().result.unwrap_err().code,
            ErrorCode::OperationAborted
        );
        let Phase::Pending(accepted) = record(&root).phase else {
            panic!("the new request is gone: {:?}", record(&root))
        };
        assert_eq!(accepted.target, Target::Disk);
        other.abort().unwrap();
    }

    #[test]
    fn after_an_abort_the_owners_process_may_ask_again_at_once() {
        let root = host();
        let owner = node(&root, 3600);
        owner.suspend(0, 3650).unwrap();
        node(&root, 0).abort().unwrap();
        // Before its worker has had its look at the record.
        owner.suspend(1, 3650).unwrap();
        assert_eq!(owner.request_state(), Request::Pending(Target::Disk));
        owner.abort().unwrap();
    }

    #[test]
    fn garbled_record_lets_no_second_request_in_while_a_lock_is_held() {
        let root = host();
        let (owner, wake) = sleeping_node(&root);
        owner.suspend(0, 60).unwrap();
        // Suspending: the owner's worker is in the backend, and no longer reads the record.
        while !matches!(record(&root).phase, Phase::Suspending(_)) {
            thread::sleep(Duration::from_millis(5));
        }
        std::fs::write(
            root.path().join("run/virnodesuspend/request"),
            "state=pending\nversion=99\n",
        )
        .unwrap();
        assert_eq!(error(&node(&root, 0), 0, 60).0, ErrorCode::OperationInvalid);
        wake.send(()).unwrap();
        owner.wait_until_over();
    }

    #[test]
    fn last_outcome_this_version_cannot_read_leaves_the_request_readable() {
        let root = host();
        let owner = node(&root, 3600);
        owner.suspend(0, 3650).unwrap();
        let path = root.path().join("run/virnodesuspend/request");
        let text = std::fs::read_to_string(&path).unwrap();
        // Replaced whole, as the library writes it: the owner's worker reads it meanwhile.
        let new = path.with_extension("new");
        std::fs::write(&new, text + "last_outcome=vanished\nlast_target=mem\n").unwrap();
        std::fs::rename(&new, &path).unwrap();
        let info = node(&root, 0).info().unwrap();
        assert!(matches!(info.phase, Phase::Pending(_)), "{info:?}");
        assert_eq!(info.last, None);
        owner.abort().unwrap();
    }

    #[test]
    fn abort_from_the_owners_process_cancels_at_once() {
        let root = host();
        let node = node(&root, 3600);
        node.suspend(1, 3650).unwrap();
        node.abort().unwrap();
        assert_eq!(node.wait().unwrap_err().code, ErrorCode::OperationAborted);
        assert_eq!(root.read("sys/power/state"), "freeze mem disk");
    }

    #[test]
    fn nothing_to_abort_and_too_late_to_abort_are_invalid() {
        let root = host();
        let (node, wake) = sleeping_node(&root);
        let e = node.abort().unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                ErrorCode::OperationInvalid,
                "Requested operation is not valid: no suspend request is in progress"
            )
        );
        node.suspend(0, 60).unwrap();
        while !matches!(record(&root).phase, Phase::Suspending(_)) {
            thread::sleep(Duration::from_millis(5));
        }
        let e = node.abort().unwrap_err();
        assert_eq!(
            e.message,
            "Requested operation is not valid: the suspend has already started, it can no longer be aborted"
        );
        assert_eq!(
            root.read("sys/class/rtc/rtc0/wakealarm"),
            (NOW + 61).to_string()
        );
        wake.send(()).unwrap();
        assert_eq!(node.wait(), Ok(()));
    }

    #[test]
    fn abort_of_a_request_whose_process_died_settles_it() {
        let root = host();
        left_behind(&root, Phase::Pending);
        let e = node(&root, 0).abort().unwrap_err();
        assert_eq!(e.code, ErrorCode::OperationInvalid);
        assert_eq!(record(&root).last.unwrap().ending, Ending::Abandoned);
        assert_eq!(root.read("sys/class/rtc/rtc0/wakealarm"), "0");
    }

    #[test]
    fn another_process_waits_for_the_request_and_gets_its_outcome() {
        let root = host();
        let (owner, wake) = sleeping_node(&root);
        owner.suspend(0, 60).unwrap();
        let other = node(&root, 0);
        let waiter = thread::spawn(move || other.wait());
        wake.send(()).unwrap();
        assert_eq!(waiter.join().unwrap(), Ok(()));
        // A failed request's error reaches the other process with its code.
        let root = host();
        let owner = node(&root, 0);
        owner.target_mask().unwrap();
        root.link("sys/power/state", "/dev/full");
        owner.suspend(0, 60).unwrap();
        owner.wait_until_over();
        let e = node(&root, 0).wait().unwrap_err();
        assert_eq!(e.code, ErrorCode::SystemError);
        assert!(
            e.message.ends_with("No space left on device"),
            "{}",
            e.message
        );
    }

    /// Waits (30 s at most) until `done`.
    fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "never: {what}");
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Calls `wait` of a node of its own on `root` (as another process would), on a thread
    /// that is asleep in it when this returns; its answer comes through the receiver.
    fn waiting(root: &FakeRoot) -> std::sync::mpsc::Receiver<Result<()>> {
        let other = node(root, 0);
        let (answer, answered) = std::sync::mpsc::channel();
        let (tid, told) = std::sync::mpsc::channel();
        thread::spawn(move || {
            tid.send(nix::unistd::gettid()).unwrap();
            let _ = answer.send(other.wait());
        });
        let stat = format!("/proc/self/task/{}/stat", told.recv().unwrap());
        until("the waiter sleeps", || {
            std::fs::read_to_string(&stat)
                .is_ok_and(|stat| stat.rsplit_once(") ").unwrap().1.starts_with('S'))
        });
        answered
    }

    /// A line of /proc/locks (`N: [->] FLOCK ADVISORY WRITE PID MAJ:MIN:INODE START END`).
    struct ProcLock {
        /// `->`: queued behind the lock of the line before, not held.
        waiting: bool,
        pid: String,
        inode: u64,
    }

    fn proc_locks() -> Vec<ProcLock> {
        std::fs::read_to_string("/proc/locks")
            .unwrap()
            .lines()
            .filter_map(|line| {
                let waiting = line.contains(" -> ");
                let fields: Vec<&str> = line.split_whitespace().filter(|f| *f != "->").collect();
                Some(ProcLock {
                    waiting,
                    pid: fields.get(4)?.to_string(),
                    inode: fields.get(5)?.rsplit(':').next()?.parse().ok()?,
                })
            })
            .collect()
    }

    /// Whether /proc/locks shows process `pid` holding or waiting for a lock.
    fn has_a_lock(pid: u32) -> bool {
        proc_locks().iter().any(|lock| lock.pid == pid.to_string())
    }

    #[test]
    fn another_user_cannot_hold_up_a_wait_for_the_request() {
        let root = host();
        let owner = node(&root, 3600);
        owner.suspend(0, 3650).unwrap();
        let lock = record(&root).phase.accepted().unwrap().lock.clone();
        // Nobody's exclusive flock on the request's lock, queued behind the owner's.
        let mut flock = as_nobody(Path::new("/usr/bin/flock"))
            .arg("--exclusive")
            .arg(root.path().join("run/virnodesuspend").join(lock))
            .args(["sleep", "60"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        until("nobody's flock has failed or is queued", || {
            flock.try_wait().unwrap().is_some() || has_a_lock(flock.id())
        });
        let answered = waiting(&root);
        owner.abort().unwrap();
        let answer = answered.recv_timeout(Duration::from_secs(10));
        let _ = flock.kill();
        let status = flock.wait().unwrap();
        let e = answer
            .expect("the wait is over when the request is")
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::OperationAborted);
        // It could not even open the lock.
        assert_eq!(status.code(), Some(66), "flock(1)'s EX_NOINPUT");
    }

    #[test]
    fn another_user_cannot_get_requests_refused_nor_leave_lock_files() {
        let root = host();
        let node = node(&root, 3600);
        let dir = root.path().join("run/virnodesuspend");
        drop(HostRequest::new(root.path()).guard().unwrap());
        // Nobody takes each request's lock it can, as soon as the file is made.
        const TAKE_EVERY_LOCK: &str = r#"
import ctypes, fcntl, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
directory = sys.argv[1].encode()
made = libc.inotify_init()
assert made >= 0 and libc.inotify_add_watch(made, directory, 0x100) >= 0  # IN_CREATE
held = []
print("taking", flush=True)
while True:
    events = os.read(made, 65536)
    while events:
        length = struct.unpack_from("iIII", events)[3]
        name, events = events[16 : 16 + length].rstrip(b"\0"), events[16 + length :]
        try:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = held[-50:] + [fd]
        except OSError:
            pass
"#;
        let mut taker = as_nobody(Path::new("/usr/bin/python3"))
            .args(["-c", TAKE_EVERY_LOCK])
            .arg(&dir)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut taking = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(taker.stdout.take().unwrap()),
            &mut taking,
        )
        .unwrap();
        let refused = (0..40)
            .filter(|_| match node.suspend(0, 3650) {
                Ok(()) => {
                    end_pending(&node);
                    false
                }
                Err(_) => true,
            })
            .count();
        let _ = taker.kill();
        let _ = taker.wait();
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().into_string().ok())
            .filter(|name| name.starts_with("lock."))
            .collect();
        assert_eq!((taking.as_str(), refused, left), ("taking\n", 0, vec![]));
    }

    /// The record of a process that died with its request pending, after a request that
    /// ended with the host back.
    fn left_behind_after_one_back(root: &FakeRoot) {
        left_behind(root, Phase::Pending);
        let host = HostRequest::new(root.path());
        let guard = host.guard().unwrap();
        let mut record = guard.read().unwrap();
        record.last = Some(Ended {
            request: "lock.4000000.1.7".into(),
            ending: Ending::Back,
            target: Target::Mem,
            error: None,
        });
        guard.write(&record).unwrap();
    }

    #[test]
    fn wait_for_a_request_whose_process_died_tells_it_abandoned_not_the_one_before() {
        let root = host();
        left_behind_after_one_back(&root);
        // Another process is changing the record.
        let host = HostRequest::new(root.path());
        let busy = host.guard().unwrap();
        let answered = waiting(&root);
        assert!(
            answered.recv_timeout(Duration::from_secs(1)).is_err(),
            "told before the request could be settled"
        );
        drop(busy);
        let e = answered
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                ErrorCode::OperationFailed,
                "process 4000000 ended before the suspend started"
            )
        );
        assert_eq!(record(&root).last.unwrap().ending, Ending::Abandoned);
        assert_eq!(root.read("sys/class/rtc/rtc0/wakealarm"), "0");
    }

    #[test]
    fn wait_of_another_user_for_a_request_whose_process_died_tells_it_abandoned() {
        let root = host();
        left_behind_after_one_back(&root);
        let before = record(&root);
        rerun_as_nobody("node::tests::nobodys_wait_for_an_abandoned_request", &root);
        // Only root may settle it.
        assert_eq!(record(&root), before);
    }

    #[test]
    #[ignore = "run as nobody by wait_of_another_user_for_a_request_whose_process_died_tells_it_abandoned"]
    fn nobodys_wait_for_an_abandoned_request() {
        let root = std::env::var_os(NOBODYS_ROOT).unwrap();
        let node = NodeSuspend::new(Config {
            root: root.into(),
            backends: vec![BackendKind::Kernel],
            ..Config::default()
        });
        let e = node.wait().unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                ErrorCode::OperationFailed,
                "operation failed: process 4000000 ended before its suspend request was over; the request is abandoned, but only root can settle it"
            )
        );
    }

    #[test]
    fn wait_with_no_request_ever_has_nothing_to_tell() {
        let e = node(&host(), 0).wait().unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str(), e.function),
            (
                ErrorCode::OperationInvalid,
                "Requested operation is not valid: no suspend request was made",
                "virNodeSuspendWait"
            )
        );
    }

    #[test]
    fn info_tells_a_request_of_another_process_and_needs_no_capability_query() {
        let root = host();
        let owner = node(&root, 3600);
        owner.suspend(0, 3650).unwrap();
        std::fs::remove_file(root.path().join("sys/power/state")).unwrap();
        let info = node(&root, 0).info().unwrap();
        let Phase::Pending(accepted) = info.phase else {
            panic!("{info:?}")
        };
        assert_eq!(accepted.owner.pid, std::process::id() as i32);
        assert_eq!(accepted.wake_at, NOW + 3651);
        owner.abort().unwrap();
    }

    #[test]
    fn info_settles_a_request_whose_process_is_gone() {
        let root = host();
        left_behind(&root, Phase::Pending);
        let info = node(&root, 0).info().unwrap();
        assert_eq!(info.phase, Phase::Idle);
        assert_eq!(info.last.unwrap().ending, Ending::Abandoned);
    }

    /// The node's state and record as `looker` sees them, from another thread, within
    /// `within` (`None` when it did not answer by then).
    fn looked_at(looker: &NodeSuspend, within: Duration) -> Option<(Request, Result<Phase>)> {
        let looker = looker.clone();
        let (answer, answered) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let _ = answer.send((looker.request_state(), looker.info().map(|r| r.phase)));
        });
        answered.recv_timeout(within).ok()
    }

    /// What `node` answers (its state, and the host's record through `info`) while another
    /// process holds `root`'s guard and its worker is queued for it, once the guard is let go.
    fn answered_while_the_guard_is_held(
        root: &FakeRoot,
        node: &NodeSuspend,
        guard: Guard,
    ) -> (Request, Result<Phase>) {
        use std::os::unix::fs::MetadataExt;
        let inode = std::fs::metadata(root.path().join("run/virnodesuspend/guard"))
            .unwrap()
            .ino();
        until("the worker waits for the guard", || {
            proc_locks()
                .iter()
                .any(|lock| lock.waiting && lock.inode == inode)
        });
        let seen = looked_at(node, Duration::from_secs(5));
        drop(guard);
        seen.expect("an answer while the worker waits for the guard")
    }

    #[test]
    fn guard_held_by_another_process_when_the_request_starts_holds_up_no_call() {
        let root = host();
        let node = node(&root, 1);
        node.suspend(0, 60).unwrap();
        // Another process's guard (a file description of its own), taken before the delay
        // is over and held past it: the worker waits for it to start the request.
        let other = HostRequest::new(root.path());
        let (state, phase) = answered_while_the_guard_is_held(&root, &node, other.guard().unwrap());
        assert_eq!(state, Request::Pending(Target::Mem));
        assert!(matches!(phase, Ok(Phase::Pending(_))), "{phase:?}");
        assert_eq!(wait_idle(&node).result, Ok(()));
        assert_eq!(record(&root).last.unwrap().ending, Ending::Back);
    }

    #[test]
    fn guard_held_by_another_process_when_the_request_ends_holds_up_no_call() {
        let root = host();
        let (node, wake) = sleeping_node(&root);
        node.suspend(0, 60).unwrap();
        until("the request is suspending", || {
            matches!(record(&root).phase, Phase::Suspending(_))
        });
        let other = HostRequest::new(root.path());
        let guard = other.guard().unwrap();
        // The host is back: the worker waits for the guard to record it.
        wake.send(()).unwrap();
        let (state, phase) = answered_while_the_guard_is_held(&root, &node, guard);
        assert_eq!(state, Request::Suspending(Target::Mem));
        assert!(matches!(phase, Ok(Phase::Suspending(_))), "{phase:?}");
        assert_eq!(wait_idle(&node).result, Ok(()));
        assert_eq!(record(&root).last.unwrap().ending, Ending::Back);
        assert_eq!(root.read("sys/class/rtc/rtc0/wakealarm"), "0");
    }
    mod through_logind {
        use super::*;
        use crate::backend::logind::Logind;
        use crate::testing::PrivateBus;

        fn node(root: &FakeRoot, bus: &PrivateBus) -> NodeSuspend {
            let logind = Logind::new(Some(bus.address.clone()), Duration::from_millis(500));
            node_with(
                root,
                vec![Box::new(logind), Box::new(Kernel::new(root.path()))],
            )
        }

        /// Runs one request to its end; the outcome, and the alarm file after it.
        fn outcome(root: &FakeRoot, node: &NodeSuspend) -> (Result<()>, String) {
            node.suspend(0, 60).unwrap();
            let outcome = wait_idle(node);
            assert_eq!(outcome.backend, BackendKind::Logind);
            (outcome.result, root.read("sys/class/rtc/rtc0/wakealarm"))
        }

        #[test]
        fn logind_answers_before_the_kernel_and_carries_out() {
            let root = host();
            let bus = PrivateBus::start(
                r#"{"CanSuspend": "yes", "CanHibernate": "no", "asleep_ms": 50}"#,
            );
            let node = node(&root, &bus);
            // The kernel would allow disk: logind's "no" is final.
            assert_eq!(node.target_mask().unwrap(), 0b001);
            assert_eq!(outcome(&root, &node), (Ok(()), "0".to_owned()));
            assert_eq!(
                root.read("sys/power/state"),
                "freeze mem disk",
                "the kernel was not used"
            );
            assert!(bus
                .calls()
                .ends_with("Suspend False\nPrepareForSleep True\nPrepareForSleep False\n"));
        }

        #[test]
        fn refusal_is_recorded_disarms_and_frees_the_request() {
            let root = host();
            let bus = PrivateBus::start(r#"{"CanSuspend": "yes", "Suspend": "error"}"#);
            let node = node(&root, &bus);
            let (result, alarm) = outcome(&root, &node);
            assert_eq!(result.unwrap_err().code, ErrorCode::DbusService);
            assert_eq!(alarm, "0");
            assert!(
                outcome(&root, &node).0.is_err(),
                "the next request is accepted"
            );
        }

        #[test]
        fn silence_is_recorded_disarms_and_frees_the_request() {
            let root = host();
            let bus = PrivateBus::start(r#"{"CanSuspend": "yes", "Suspend": "hang"}"#);
            let node = node(&root, &bus);
            let (result, alarm) = outcome(&root, &node);
            assert!(result.unwrap_err().message.ends_with("Timeout was reached"));
            assert_eq!(alarm, "0");
        }

        #[test]
        fn bus_gone_once_logind_said_the_host_sleeps_keeps_the_alarm() {
            let root = host();
            let mut bus = PrivateBus::start(r#"{"CanSuspend": "yes", "asleep_ms": 600000}"#);
            let node = node(&root, &bus);
            node.suspend(0, 60).unwrap();
            bus.wait_for_call("PrepareForSleep True");
            bus.stop();
            let outcome = wait_idle(&node);
            assert!(outcome.result.is_err());
            // The host may still be on its way to sleep: only the alarm would wake it.
            assert_eq!(
                root.read("sys/class/rtc/rtc0/wakealarm"),
                (NOW + 61).to_string()
            );
        }

        #[test]
        fn bus_gone_between_query_and_suspend_is_recorded_and_frees_the_request() {
            let root = host();
            let mut bus = PrivateBus::start(r#"{"CanSuspend": "yes"}"#);
            let node = node(&root, &bus);
            assert_eq!(node.target_mask().unwrap(), 0b001);
            bus.stop();
            let (result, alarm) = outcome(&root, &node);
            let error = result.unwrap_err();
            assert!(
                error
                    .message
                    .starts_with("error from service: Cannot reach the system bus"),
                "{}",
                error.message
            );
            assert_eq!(alarm, "0");
            assert!(
                outcome(&root, &node).0.is_err(),
                "the next request is accepted"
            );
        }
    }
}
