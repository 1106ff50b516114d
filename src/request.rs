//! The life of a suspend request: one request per host, seen from the process that made it
//! ([`Life`], its [`Job`]) and from every process on the host (the [`Record`] in
//! `run/virnodesuspend/`, whose files [`crate::host`] keeps). Both sides change together:
//! each transition below is one method, runs under the host's guard (which its caller
//! takes: this process's worker without waiting for it while it holds the node's state,
//! see `node::guarded`), and writes the record through [`Record::commit`], the one place
//! it is written.
//!
//! ```text
//!   Idle ◀────────────────────────────────────────────────────────────────────────┐
//!    │ accept (virNodeSuspend): the guard taken, a lock made and held, "pending"  │
//!    │ recorded, the alarm armed. Give up, if the alarm cannot be armed (or the   │
//!    │ value it holds recorded) or no worker thread made: the alarm disarmed, the │
//!    │ record back to the last outcome, Idle again, and virNodeSuspend fails.     │
//!    ▼                                                                            │
//!   Pending ── abort (any process, the owner alive): alarm disarmed, ─────────────┤
//!    │         "aborted"; the owner's worker finishes it "aborted" at its next    │
//!    │         look, without writing the record again                             │
//!    │ start (the worker, after the delay): "suspending" recorded for the host    │
//!    │ and taken by this process in one step, under the guard. A start that       │
//!    │ cannot be recorded finishes "failed" at once (its alarm disarmed), the     │
//!    │ backend never asked.                                                       │
//!    ▼                                                                            │
//!   Suspending                                                                    │
//!    │ the backend returns                                                        │
//!    ▼                                                                            │
//!   finish: "back" (alarm disarmed) or "failed" (see `failed`); the lock file ────┘
//!           removed and the lock released, under the guard
//!
//!   Pending or Suspending ── abandon (the next call of any process; the owner gone,
//!   its lock free or held only by its children) ──▶ Idle, "abandoned": from Pending the
//!   alarm is disarmed, from Suspending it stays (the host may be asleep, and only the
//!   alarm wakes it). A request whose end could not be recorded (the guard could not be
//!   taken) is left to this too.
//!
//!   fork(): the child's first call finds its parent's state and drops it (closing its
//!   copy of the lock, which stays the parent's); the child starts Idle, with no worker.
//! ```
//!
//! What a suspend that fails does is answered once, by [`failed`]: the alarm is disarmed
//! unless the host may still be on its way to sleep (or an abort already disarmed it), and
//! the failure is logged, unless the start could not be recorded (the backend never asked).
//!
//! What the types enforce:
//! - The request's lock is owned by the [`Job`], which [`Life`] owns while the request is
//!   pending or suspending: no descriptor of it lives anywhere else (the worker carries
//!   the request out from a [`SuspendOrder`], which holds none), so a forked child lets go
//!   of it by dropping its copy of the state ([`crate::host::HostLock`] releases only in
//!   the process that took it).
//! - The in-process "suspending" is the record's: [`Life::start`] writes the record and
//!   moves the job to `Suspending` under the same guard, or does neither.
//! - Only [`Life::finish`] makes a request in progress idle, so a waiter in this process
//!   needs no count of requests over: idle is over. (A forked child drops its parent's,
//!   before any thread of its own can wait.)
//! - A request is carried out by the backend that answered the capability query: the job
//!   keeps only its kind (in [`Accepted`]); the node finds the backend from its cached
//!   capabilities, whose mask is made from their answers, once.
//! - Every transition checks the phase it starts from and builds the record it writes from
//!   the request's own data; nothing else writes the record.
//!
//! Not enforced by a type: that the record's `Pending`/`Suspending` names the request
//! whose lock is held (the record is a file any version may have written; its lock and its
//! owner's process are looked at: [`crate::host::Liveness`]).

use std::mem;
use std::time::Duration;

use crate::backend::SuspendFailure;
use crate::config::{BackendKind, Config};
use crate::error::{Error, ErrorCode, Result};
use crate::host::{Guard, HostLock, HostRequest, Owner};
use crate::libvirt::{self, LogPriority};
use crate::rtc::Rtc;
use crate::target::Target;

const SUSPEND: &str = "virNodeSuspend";

/// An accepted request, as the record tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub owner: Owner,
    pub target: Target,
    pub backend: BackendKind,
    /// The alarm armed for it: the `wakealarm` file, relative to the root, and the value
    /// it holds once armed.
    pub wakealarm: String,
    pub wake_at: u64,
    /// When it was accepted, in seconds since the epoch (the system clock).
    pub accepted_at: u64,
    /// The name of its lock file.
    pub lock: String,
}

/// The phase of the host's request, as the record tells it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Phase {
    #[default]
    Idle,
    /// Accepted, the alarm armed; the suspend has not started.
    Pending(Accepted),
    /// The backend has been asked to suspend the host.
    Suspending(Accepted),
}

impl Phase {
    /// The request in progress, if the record holds one.
    pub fn accepted(&self) -> Option<&Accepted> {
        match self {
            Phase::Idle => None,
            Phase::Pending(accepted) | Phase::Suspending(accepted) => Some(accepted),
        }
    }
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The backend reported the host back from its sleep.
    Back,
    Failed,
    /// Cancelled before the suspend started.
    Aborted,
    /// Its process ended before the request did.
    Abandoned,
}

impl Ending {
    pub const ALL: [Ending; 4] = [
        Ending::Back,
        Ending::Failed,
        Ending::Aborted,
        Ending::Abandoned,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Ending::Back => "back",
            Ending::Failed => "failed",
            Ending::Aborted => "aborted",
            Ending::Abandoned => "abandoned",
        }
    }

    /// How a request whose suspend returned `result` ended.
    fn of(result: &Result<()>) -> Ending {
        match result {
            Ok(()) => Ending::Back,
            Err(e) if e.code == ErrorCode::OperationAborted => Ending::Aborted,
            Err(_) => Ending::Failed,
        }
    }
}

/// The last request that ended, as every process on the host can read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    /// The request: its lock file's name, which no other request of this boot has.
    pub request: String,
    pub ending: Ending,
    pub target: Target,
    /// Why it did not end with the host back; `None` when it did.
    pub error: Option<RecordedError>,
}

impl Ended {
    /// The outcome as `virNodeSuspendWait` returns it.
    pub fn result(self) -> Result<()> {
        match self.error {
            None => Ok(()),
            Some(error) => Err(error.to_error("virNodeSuspendWait")),
        }
    }

    /// How `accepted` ended.
    fn of(accepted: &Accepted, ending: Ending, error: Option<RecordedError>) -> Ended {
        Ended {
            request: accepted.lock.clone(),
            ending,
            target: accepted.target,
            error,
        }
    }
}

/// An error as the record keeps it: enough for a process that waited for another's
/// request to report it as the owner did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedError {
    pub code: ErrorCode,
    /// A `virErrorDomain`.
    pub domain: i32,
    pub message: String,
}

impl From<&Error> for RecordedError {
    fn from(error: &Error) -> RecordedError {
        RecordedError {
            code: error.code,
            domain: error.domain,
            message: error.message.clone(),
        }
    }
}

impl RecordedError {
    /// The error again, as raised by `function` of the process that reads it.
    pub fn to_error(&self, function: &'static str) -> Error {
        Error::recorded(self.code, self.domain, function, self.message.clone())
    }
}

/// The record: the host's request now, and how the last one ended. Its text is
/// [`crate::host`]'s.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub phase: Phase,
    pub last: Option<Ended>,
}

impl Record {
    /// Writes the record for the whole host, under `guard`: the one place it is written.
    fn commit(self, guard: &Guard) -> Result<Record> {
        guard.write(&self)?;
        Ok(self)
    }

    /// abort: cancels the pending request this record holds (its owner alive), for process
    /// `by`: its alarm is disarmed (if it still holds the request's value) and the record
    /// tells it aborted; returns the record written. Too late once it is suspending;
    /// nothing to abort when idle.
    pub fn abort(self, guard: &Guard, config: &Config, by: i32) -> Result<Record> {
        const ABORT: &str = "virNodeSuspendAbort";
        let accepted = match self.phase {
            Phase::Idle => return Err(nothing_to_abort()),
            Phase::Suspending(_) => {
                return Err(Error::new(
                    ErrorCode::OperationInvalid,
                    ABORT,
                    "the suspend has already started, it can no longer be aborted",
                ))
            }
            Phase::Pending(accepted) => accepted,
        };
        disarm_recorded_alarm(config, &accepted)?;
        let error = RecordedError::from(&aborted_by(Some(by)));
        Record {
            phase: Phase::Idle,
            last: Some(Ended::of(&accepted, Ending::Aborted, Some(error))),
        }
        .commit(guard)
    }

    /// abandon: settles a request whose process ended before the request did (its lock was
    /// free); returns the record written, idle with the outcome "abandoned".
    ///
    /// Pending, its alarm is disarmed (if it still holds the request's value): the suspend
    /// never started. Suspending, the alarm stays: the host may be on its way to sleep
    /// (logind may still carry out a request its caller did not live to see end), and only
    /// the alarm would wake it.
    pub fn abandon(self, guard: &Guard, config: &Config) -> Record {
        let (accepted, started) = match self.phase {
            Phase::Idle => return self,
            Phase::Pending(accepted) => (accepted, false),
            Phase::Suspending(accepted) => (accepted, true),
        };
        let pid = accepted.owner.pid;
        let error = match started {
            true => format!(
                "process {pid} ended after the suspend started; its wake-up alarm was left armed"
            ),
            false => match disarm_recorded_alarm(config, &accepted) {
                Ok(()) => format!("process {pid} ended before the suspend started"),
                Err(e) => format!(
                    "process {pid} ended before the suspend started; its wake-up alarm could not be disarmed: {e}"
                ),
            },
        };
        libvirt::log(
            LogPriority::Warn,
            c"virNodeSuspend",
            &format!("Abandoned suspend request: {error}"),
        );
        let settled = Record {
            phase: Phase::Idle,
            last: Some(Ended::of(
                &accepted,
                Ending::Abandoned,
                Some(RecordedError {
                    code: ErrorCode::OperationFailed,
                    domain: crate::error::DOMAIN_NONE,
                    message: error,
                }),
            )),
        };
        let settled = settled.clone().commit(guard).unwrap_or(settled);
        guard.remove_lock(&accepted);
        settled
    }
}

/// What this process sees of its own suspend request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Idle,
    Pending(Target),
    Suspending(Target),
}

/// What became of this process's last request once the host was back, or the suspend
/// failed: the error whole, as the owner's `virNodeSuspendWait` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub target: Target,
    pub backend: BackendKind,
    pub result: Result<()>,
}

/// An accepted request of this process: what the record says of it, and what carrying it
/// out needs.
pub struct Job {
    accepted: Accepted,
    /// How the request before it ended, kept in the record while this one is in progress.
    previous: Option<Ended>,
    /// The clock whose alarm was armed for this request.
    rtc: Rtc,
    /// When the suspend starts, on the boot clock.
    pub starts_at: Duration,
    /// How long the backend may take before the request is given up (time asleep counts).
    give_up_after: Duration,
    /// Held for the life of the request: while it is, no other request is accepted.
    _lock: HostLock,
}

/// What [`Job::accept`] needs besides the guard: the request as it will be recorded, and
/// how to carry it out.
pub struct Acceptance {
    pub accepted: Accepted,
    pub previous: Option<Ended>,
    pub rtc: Rtc,
    pub lock: HostLock,
    pub starts_at: Duration,
    pub give_up_after: Duration,
    /// The duration asked for, which the clock checks the alarm against.
    pub duration: u64,
}

impl Job {
    /// accept: records the request pending and arms its alarm; on any failure, gives it up.
    pub fn accept(guard: &Guard, acceptance: Acceptance) -> Result<Job> {
        let Acceptance {
            accepted,
            previous,
            rtc,
            lock,
            starts_at,
            give_up_after,
            duration,
        } = acceptance;
        let mut job = Job {
            accepted,
            previous,
            rtc,
            starts_at,
            give_up_after,
            _lock: lock,
        };
        // Recorded before the alarm is armed: should this process die in between, whoever
        // settles the request finds the alarm not holding its value, and leaves it.
        if let Err(error) = job.record(Phase::Pending).commit(guard) {
            guard.remove_lock(&job.accepted);
            return Err(error);
        }
        let wake_at = job.accepted.wake_at;
        if let Err(error) = job.rtc.arm(wake_at, duration) {
            return Err(job.give_up(guard, error));
        }
        // Some clocks hold the wake-up rounded (to the minute, say): the request owns the
        // value the clock holds.
        match job.rtc.alarm() {
            Ok(Some(held)) if held != wake_at => {
                job.accepted.wake_at = held;
                if let Err(error) = job.record(Phase::Pending).commit(guard) {
                    return Err(job.give_up(guard, error));
                }
            }
            _ => {}
        }
        Ok(job)
    }

    /// give up: a request recorded, whose alarm may be armed, is dropped for `error`: the
    /// alarm would only wake a host that is already awake, and the record goes back to how
    /// the request before it ended.
    pub fn give_up(self, guard: &Guard, error: Error) -> Error {
        let _ = self.rtc.disarm_if_at(self.accepted.wake_at);
        let _ = Record {
            phase: Phase::Idle,
            last: self.previous.clone(),
        }
        .commit(guard);
        guard.remove_lock(&self.accepted);
        error
    }

    pub fn target(&self) -> Target {
        self.accepted.target
    }

    /// Whether the record no longer holds this request: another process aborted it (read
    /// without the guard, as a hint; the worker decides under the guard).
    pub fn aborted_elsewhere(&self, host: &HostRequest) -> bool {
        host.read()
            .is_ok_and(|record| record.phase != Phase::Pending(self.accepted.clone()))
    }

    /// The record with this request in `phase`.
    fn record(&self, phase: fn(Accepted) -> Phase) -> Record {
        Record {
            phase: phase(self.accepted.clone()),
            last: self.previous.clone(),
        }
    }

    /// What the worker needs to carry the request out without the node's state.
    fn suspend_order(&self) -> SuspendOrder {
        SuspendOrder {
            target: self.accepted.target,
            rtc: self.rtc.clone(),
            wake_at: self.accepted.wake_at,
            give_up_after: self.give_up_after,
        }
    }
}

/// The request as the worker carries it out, outside the node's lock.
pub struct SuspendOrder {
    pub target: Target,
    rtc: Rtc,
    wake_at: u64,
    pub give_up_after: Duration,
}

impl SuspendOrder {
    /// The request's end once the backend has returned `suspended`: the alarm disarmed
    /// after the host is back (an early wake-up leaves it pending), or the failure.
    pub fn returned(&self, suspended: std::result::Result<(), SuspendFailure>) -> Result<()> {
        match suspended {
            Ok(()) => match self.rtc.disarm_if_at(self.wake_at) {
                Ok(_) => Ok(()),
                Err(error) => Err(failed(&self.rtc, self.wake_at, Failure::NotDisarmed(error))),
            },
            Err(failure) => Err(failed(&self.rtc, self.wake_at, Failure::Backend(failure))),
        }
    }
}

/// Why a request did not end with the host back.
enum Failure {
    /// The record no longer held it when the suspend was to start: aborted by another
    /// process, which disarmed the alarm (a later request may own the same value now).
    Aborted(Error),
    /// Its start could not be recorded: the backend was never asked.
    NotStarted(Error),
    /// The backend failed.
    Backend(SuspendFailure),
    /// The host is back, but its alarm could not be disarmed.
    NotDisarmed(Error),
}

/// What happens when a suspend fails, whatever failed: the alarm is disarmed (if it still
/// holds the request's value: it would wake a host that never slept) unless the host may
/// still be on its way to sleep, where only the alarm will wake it, or an abort has
/// disarmed it already; the failure is logged. Returns the request's error.
fn failed(rtc: &Rtc, wake_at: u64, failure: Failure) -> Error {
    match failure {
        Failure::Aborted(error) => {
            libvirt::log(
                LogPriority::Warn,
                c"virNodeSuspendHelper",
                &format!("Suspend request not carried out: {error}"),
            );
            error
        }
        Failure::NotStarted(error) => {
            let _ = rtc.disarm_if_at(wake_at);
            error
        }
        Failure::Backend(failure) => {
            if !failure.may_still_sleep {
                let _ = rtc.disarm_if_at(wake_at);
            }
            log_failed_suspend(&failure.error);
            failure.error
        }
        Failure::NotDisarmed(error) => {
            log_failed_suspend(&error);
            error
        }
    }
}

/// The warning in libvirt's log of a request that failed once the backend was asked.
fn log_failed_suspend(error: &Error) {
    libvirt::log(
        LogPriority::Warn,
        c"virNodeSuspendHelper",
        &format!("Failed to suspend the host: {error}"),
    );
}

/// This process's request.
pub enum Life {
    Idle {
        last: Option<Outcome>,
    },
    /// Accepted; the worker starts it at `Job::starts_at`.
    Pending(Box<Job>),
    /// Recorded suspending: the worker is carrying it out.
    Suspending(Box<Job>),
}

impl Life {
    /// What this process sees of it.
    pub fn request(&self) -> Request {
        match self {
            Life::Idle { .. } => Request::Idle,
            Life::Pending(job) => Request::Pending(job.target()),
            Life::Suspending(job) => Request::Suspending(job.target()),
        }
    }

    /// start: the pending request is recorded suspending, for the host and this process
    /// in one step under `guard` (the host's guard, or why it could not be taken); or,
    /// when another process aborted it first (the record no longer holds it) or the start
    /// could not be recorded, the failure, and the request stays pending for
    /// [`Life::finish`]. Under the guard, an abort from another process comes either
    /// before (then the record tells it) or after (then it is too late).
    pub fn start(&mut self, guard: Result<Guard>) -> Result<SuspendOrder> {
        let Life::Pending(job) = self else {
            unreachable!("only a pending request starts")
        };
        let not_started =
            |error| failed(&job.rtc, job.accepted.wake_at, Failure::NotStarted(error));
        let guard = guard.map_err(not_started)?;
        let record = guard.read().map_err(not_started)?;
        if record.phase != Phase::Pending(job.accepted.clone()) {
            let abort = match record.last {
                Some(Ended {
                    ending: Ending::Aborted,
                    error: Some(error),
                    ..
                }) => error.to_error(SUSPEND),
                _ => aborted_by(None),
            };
            return Err(failed(
                &job.rtc,
                job.accepted.wake_at,
                Failure::Aborted(abort),
            ));
        }
        // Recorded before the backend is asked: should this process die from here on, the
        // host may be asleep, and whoever settles the request must leave the alarm armed.
        job.record(Phase::Suspending)
            .commit(&guard)
            .map_err(not_started)?;
        let order = job.suspend_order();
        let Life::Pending(job) = mem::replace(self, Life::Idle { last: None }) else {
            unreachable!("the request was pending")
        };
        *self = Life::Suspending(job);
        Ok(order)
    }

    /// finish: the request in progress ends with `result`. The record tells how (unless it
    /// no longer holds the request: aborted by another process, it already tells that, and
    /// may hold a newer request by now), then the lock file is removed and the lock
    /// released, all under `guard` (the host's guard, or why it could not be taken):
    /// whoever takes the guard next finds the lock free and the record idle.
    pub fn finish(&mut self, guard: Result<Guard>, backend: BackendKind, result: Result<()>) {
        let job = match mem::replace(self, Life::Idle { last: None }) {
            Life::Pending(job) | Life::Suspending(job) => job,
            Life::Idle { .. } => unreachable!("only a request in progress finishes"),
        };
        let ended = Record {
            phase: Phase::Idle,
            last: Some(Ended::of(
                &job.accepted,
                Ending::of(&result),
                result.as_ref().err().map(RecordedError::from),
            )),
        };
        let written = match &guard {
            Ok(guard) => {
                let written = match guard.read() {
                    Ok(now) if now.phase.accepted() == Some(&job.accepted) => {
                        ended.commit(guard).map(drop)
                    }
                    Ok(_) => Ok(()),
                    Err(error) => Err(error),
                };
                guard.remove_lock(&job.accepted);
                written
            }
            Err(error) => Err(error.clone()),
        };
        if let Err(error) = written {
            libvirt::log(
                LogPriority::Warn,
                c"virNodeSuspendHelper",
                &format!("Failed to record the end of the suspend request: {error}"),
            );
        }
        let target = job.target();
        drop(job);
        drop(guard);
        *self = Life::Idle {
            last: Some(Outcome {
                target,
                backend,
                result,
            }),
        };
    }
}

/// "no suspend request is in progress", for `virNodeSuspendAbort`.
#[cold]
pub fn nothing_to_abort() -> Error {
    Error::new(
        ErrorCode::OperationInvalid,
        "virNodeSuspendAbort",
        "no suspend request is in progress",
    )
}

/// The error of a request that was aborted, by process `by` when known.
#[cold]
fn aborted_by(by: Option<i32>) -> Error {
    let info = match by {
        Some(pid) => format!("the suspend request was aborted by process {pid}"),
        None => "the suspend request was aborted".to_owned(),
    };
    Error::new(ErrorCode::OperationAborted, SUSPEND, info)
}

/// Disarms the alarm the record says `accepted` armed, if it still holds its value (an
/// alarm file no clock has is none of the library's: left alone).
fn disarm_recorded_alarm(config: &Config, accepted: &Accepted) -> Result<()> {
    match Rtc::with_wakealarm(&config.root, &accepted.wakealarm) {
        Some(rtc) => rtc.disarm_if_at(accepted.wake_at).map(drop),
        None => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testing::FakeRoot;

    /// The fake RTC's time.
    pub(crate) const NOW: u64 = 1_800_000_000;

    /// The record a process that died with its request `phase` left: its lock is free.
    pub(crate) fn left_behind(root: &FakeRoot, phase: fn(Accepted) -> Phase) {
        let host = HostRequest::new(root.path());
        let guard = host.guard().unwrap();
        let accepted = Accepted {
            owner: Owner {
                pid: 4_000_000,
                start_time: 1,
                ..Owner::this_process().unwrap()
            },
            target: Target::Mem,
            backend: BackendKind::Kernel,
            wakealarm: "sys/class/rtc/rtc0/wakealarm".into(),
            wake_at: NOW + 61,
            accepted_at: NOW,
            // Its lock file is left, and free: its process died.
            lock: "lock.4000000.1.0".into(),
        };
        std::fs::write(root.path().join("run/virnodesuspend/lock.4000000.1.0"), "").unwrap();
        guard
            .write(&Record {
                phase: phase(accepted),
                last: None,
            })
            .unwrap();
        std::fs::write(
            root.path().join("sys/class/rtc/rtc0/wakealarm"),
            (NOW + 61).to_string(),
        )
        .unwrap();
    }

    /// A host with a clock, and the record `phase` left by a process that died.
    fn left_behind_on_a_host(phase: fn(Accepted) -> Phase) -> (FakeRoot, Config) {
        let root = FakeRoot::new().rtc(0, NOW);
        left_behind(&root, phase);
        let config = Config {
            root: root.path().to_owned(),
            ..Config::default()
        };
        (root, config)
    }

    /// The host's record under `root`, passed through `change` under the guard.
    fn changed<T>(root: &FakeRoot, change: impl FnOnce(&Guard, Record) -> T) -> T {
        let host = HostRequest::new(root.path());
        let guard = host.guard().unwrap();
        let record = guard.read().unwrap();
        change(&guard, record)
    }

    fn record(root: &FakeRoot) -> Record {
        HostRequest::new(root.path()).read().unwrap()
    }

    #[test]
    fn abandoned_request_that_had_started_keeps_its_alarm() {
        let (root, config) = left_behind_on_a_host(Phase::Suspending);
        let settled = changed(&root, |guard, record| record.abandon(guard, &config));
        assert_eq!(
            root.read("sys/class/rtc/rtc0/wakealarm"),
            (NOW + 61).to_string()
        );
        assert_eq!(settled, record(&root));
        let last = settled.last.unwrap();
        assert_eq!(last.ending, Ending::Abandoned);
        assert_eq!(
            last.error.unwrap().message,
            "process 4000000 ended after the suspend started; its wake-up alarm was left armed"
        );
        assert!(!root
            .path()
            .join("run/virnodesuspend/lock.4000000.1.0")
            .exists());
    }

    #[test]
    fn abandoned_request_leaves_an_alarm_someone_else_set_alone() {
        let (root, config) = left_behind_on_a_host(Phase::Pending);
        std::fs::write(
            root.path().join("sys/class/rtc/rtc0/wakealarm"),
            "1900000000",
        )
        .unwrap();
        changed(&root, |guard, record| record.abandon(guard, &config));
        assert_eq!(root.read("sys/class/rtc/rtc0/wakealarm"), "1900000000");
        assert_eq!(record(&root).last.unwrap().ending, Ending::Abandoned);
    }

    #[test]
    fn only_a_pending_request_is_aborted() {
        let (root, config) = left_behind_on_a_host(Phase::Suspending);
        let e = changed(&root, |guard, record| record.abort(guard, &config, 1)).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                ErrorCode::OperationInvalid,
                "Requested operation is not valid: the suspend has already started, it can no longer be aborted"
            )
        );
        let e =
            Record::default().abort(&HostRequest::new(root.path()).guard().unwrap(), &config, 1);
        assert_eq!(e, Err(nothing_to_abort()));
        let (root, config) = left_behind_on_a_host(Phase::Pending);
        let aborted = changed(&root, |guard, record| record.abort(guard, &config, 1)).unwrap();
        assert_eq!(root.read("sys/class/rtc/rtc0/wakealarm"), "0");
        assert_eq!(aborted, record(&root));
        let last = aborted.last.unwrap();
        assert_eq!(
            (last.ending, last.error.unwrap().message.as_str()),
            (
                Ending::Aborted,
                "operation aborted: the suspend request was aborted by process 1"
            )
        );
    }

    #[test]
    fn ending_tells_a_suspend_that_returned() {
        assert_eq!(Ending::of(&Ok(())), Ending::Back);
        assert_eq!(Ending::of(&Err(aborted_by(None))), Ending::Aborted);
        assert_eq!(
            Ending::of(&Err(Error::new(ErrorCode::OperationFailed, SUSPEND, "no"))),
            Ending::Failed
        );
    }
}
