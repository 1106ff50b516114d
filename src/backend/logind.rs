//! The systemd-logind backend: `CanSuspend`, `CanHibernate`, `CanHybridSleep` answer, and
//! `Suspend`, `Hibernate`, `HybridSleep` carry out (org.freedesktop.login1(5)).
//!
//! As in libvirt, logind is available only when the system bus is there and the service is
//! both activatable and running. Each use opens a private connection (libvirt's own
//! connection in the same process is never touched) and nothing on it waits without a
//! deadline: not the authentication, not `Hello`, not a call. A bus that stops answering
//! fails the request; it never blocks it. The messages of one use are sent at once and
//! their replies collected together: one round trip.
//!
//! The D-Bus client is the library's own ([`super::bus`]): a process that maps the library and
//! never asks logind maps no D-Bus client library.

use std::time::{Duration, Instant};

use super::bus::{BusError, Call, Connection, Message};
use super::{since_boot, Backend, Probe, Support, SuspendFailure, Unsupported};
use crate::config::BackendKind;
use crate::error::{Error, ErrorCode, Result, DOMAIN_DBUS};
use crate::target::Target;

const SERVICE: &str = "org.freedesktop.login1";
const OBJECT: &str = "/org/freedesktop/login1";
const MANAGER: &str = "org.freedesktop.login1.Manager";

/// Where the system bus is when `DBUS_SYSTEM_BUS_ADDRESS` does not say (libdbus's and
/// sd-bus's default).
const SYSTEM_BUS: &str = "unix:path=/run/dbus/system_bus_socket";

/// The longest any exchange with the bus may take (GDBus, which libvirt uses, waits 25 s).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

const SUSPEND: &str = "virNodeSuspend";

pub struct Logind {
    /// The system bus's address (`DBUS_SYSTEM_BUS_ADDRESS`); `None`: [`SYSTEM_BUS`].
    bus_address: Option<String>,
    /// The longest any one exchange with the bus may take.
    call_timeout: Duration,
}

/// An error reply, as libvirt 9.0 reports one: VIR_ERR_DBUS_SERVICE in the D-Bus domain,
/// with GLib's text for a remote error ("GDBus.Error:NAME: MESSAGE").
///
/// A failure of the exchange itself is said in GLib's words, as libvirt shows them ("error
/// from service: Timeout was reached").
fn reply_error(e: &BusError) -> Error {
    let text = match e {
        BusError::Local(what) => what.clone(),
        BusError::Named { name, message } => format!("GDBus.Error:{name}: {message}"),
    };
    Error::new(ErrorCode::DbusService, "virGDBusCallMethod", text).in_domain(DOMAIN_DBUS)
}

/// A failure of the bus itself while a request is carried out (no libvirt counterpart:
/// libvirt never asks logind to sleep), said with what was being done.
fn bus_error(what: &str, e: &BusError) -> Error {
    let detail = match e {
        BusError::Local(what) => what.clone(),
        BusError::Named { name, message } if message.is_empty() => name.clone(),
        BusError::Named { name, message } => format!("{name}: {message}"),
    };
    Error::new(ErrorCode::DbusService, SUSPEND, format!("{what}: {detail}")).in_domain(DOMAIN_DBUS)
}

/// A call to the bus itself.
fn bus_call(method: &'static str) -> Call {
    Call::new(
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus",
        method,
    )
}

/// A call to logind that never starts it: where logind is not running, the bus answers
/// with an error instead of activating it (libvirt starts nothing either).
fn logind_call(method: &'static str) -> Call {
    Call::new(SERVICE, OBJECT, MANAGER, method).without_auto_start()
}

/// The value a reply carries (read by `read`), or the error it is, as libvirt reports it.
fn reply_value<T>(
    message: &Message,
    read: impl FnOnce(&Message) -> std::result::Result<T, BusError>,
) -> Result<T> {
    message
        .as_result()
        .and_then(|()| read(message))
        .map_err(|e| reply_error(&e))
}

/// The names in a reply to `ListActivatableNames` or `ListNames` include logind's.
fn lists_logind(reply: &Message) -> Result<bool> {
    let names = reply_value(reply, Message::read_strings)?;
    Ok(names.iter().any(|name| name == SERVICE))
}

/// Sends `calls` at once, the first being `Hello`, and collects their replies by
/// `deadline`. Any other message that comes meanwhile is handed to `on_other`. A reply
/// slot stays `None` when the exchange failed first; the failure is returned beside the
/// replies.
fn exchange(
    channel: &mut Connection,
    calls: &[Call],
    deadline: Instant,
    mut on_other: impl FnMut(Message),
) -> (Vec<Option<Message>>, Option<BusError>) {
    let serials: Vec<u32> = calls.iter().map(|call| channel.send(call)).collect();
    let mut replies: Vec<Option<Message>> = serials.iter().map(|_| None).collect();
    while replies.iter().any(Option::is_none) {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return (replies, Some(BusError::timed_out()));
        };
        if let Err(e) = channel.read_write(left) {
            return (replies, Some(e));
        }
        while let Some(message) = channel.pop_message() {
            match serials.iter().position(|s| Some(*s) == message.reply_to()) {
                Some(slot) => replies[slot] = Some(message),
                None => on_other(message),
            }
        }
    }
    (replies, None)
}

impl Logind {
    pub fn new(bus_address: Option<String>, call_timeout: Duration) -> Logind {
        Logind {
            bus_address,
            call_timeout,
        }
    }

    /// A connection of its own to the system bus, not yet authenticated: that happens as
    /// the first exchange runs.
    fn open(&self) -> std::result::Result<Connection, BusError> {
        Connection::open(self.bus_address.as_deref().unwrap_or(SYSTEM_BUS))
    }
}

impl Backend for Logind {
    fn kind(&self) -> BackendKind {
        BackendKind::Logind
    }

    fn probe(&self) -> Result<Probe> {
        let no_bus = |e: &BusError| Probe::Unavailable(format!("no system bus: {}", e.message()));
        let mut channel = match self.open() {
            Ok(channel) => channel,
            Err(e) => return Ok(no_bus(&e)),
        };
        // libvirt's two checks (logind is activatable, and running) and the three
        // questions, in one round trip: the answers are read only where the checks passed.
        let methods = ["CanSuspend", "CanHibernate", "CanHybridSleep"];
        let calls = ["Hello", "ListActivatableNames", "ListNames"]
            .map(bus_call)
            .into_iter()
            .chain(methods.map(logind_call))
            .collect::<Vec<_>>();
        let (mut replies, failure) = exchange(
            &mut channel,
            &calls,
            Instant::now() + self.call_timeout,
            drop,
        );
        match (failure, replies.first_mut().and_then(Option::as_mut)) {
            // No bus to talk to: unavailable, as for libvirt when it cannot get the bus.
            (Some(e), None) => return Ok(no_bus(&e)),
            (Some(e), Some(_)) => return Err(reply_error(&e)),
            (None, Some(hello)) => {
                if let Err(e) = hello.as_result() {
                    return Ok(no_bus(&e));
                }
            }
            (None, None) => unreachable!("every reply is there when the exchange succeeded"),
        }
        let replies: Vec<Message> = replies.into_iter().flatten().collect();
        if !lists_logind(&replies[1])? {
            return Ok(Probe::Unavailable(format!("{SERVICE} is not activatable")));
        }
        if !lists_logind(&replies[2])? {
            return Ok(Probe::Unavailable(format!("{SERVICE} is not running")));
        }
        Probe::from_each(|target| {
            let method = methods[target as usize];
            let answer = reply_value(&replies[3 + target as usize], Message::read_string)?;
            // "challenge": allowed after authentication, which libvirt counts as supported.
            Ok(match answer.as_str() {
                "yes" | "challenge" => Support::Yes,
                _ => Support::No(Unsupported::Logind { method, answer }),
            })
        })
    }

    /// Asks logind to sleep, then waits for `PrepareForSleep(false)` after
    /// `PrepareForSleep(true)`: logind's word that the host went to sleep and is back.
    /// Only logind's signals count: any client of the bus can send one.
    fn suspend(
        &self,
        target: Target,
        give_up_after: Duration,
    ) -> std::result::Result<(), SuspendFailure> {
        let method = match target {
            Target::Mem => "Suspend",
            Target::Disk => "Hibernate",
            Target::Hybrid => "HybridSleep",
        };
        let mut channel = self
            .open()
            .map_err(|e| bus_error("Cannot reach the system bus", &e))?;
        let rule = format!(
            "type='signal',sender='{SERVICE}',path='{OBJECT}',interface='{MANAGER}',member='PrepareForSleep'"
        );
        // Listening comes before asking, and the owner of logind's name is learnt before
        // logind can signal: the bus handles one connection's messages in order.
        let calls = [
            bus_call("Hello"),
            bus_call("AddMatch").with_str(&rule),
            bus_call("GetNameOwner").with_str(SERVICE),
            // Not interactive: no authentication prompt.
            logind_call(method).with_bool(false),
        ];
        let mut signals = Vec::new();
        let (replies, failure) = exchange(
            &mut channel,
            &calls,
            Instant::now() + self.call_timeout,
            |m| signals.push(m),
        );
        if let Some(e) = failure {
            return Err(bus_error(&format!("No answer to {method}"), &e).into());
        }
        let replies: Vec<Message> = replies.into_iter().flatten().collect();
        for (message, what) in replies.iter().zip(["Hello", "AddMatch", "GetNameOwner"]) {
            message.as_result().map_err(|e| bus_error(what, &e))?;
        }
        replies[3].as_result().map_err(|e| reply_error(&e))?;
        let owner = replies[2]
            .read_string()
            .map_err(|e| bus_error("GetNameOwner", &e))?;

        let mut watch = SleepWatch {
            owner,
            asleep: false,
        };
        let deadline = since_boot() + give_up_after;
        loop {
            if signals.drain(..).any(|signal| watch.is_back(&signal)) {
                return Ok(());
            }
            if since_boot() >= deadline {
                let late = format!(
                    "logind did not report the host back within {} s of {method}",
                    give_up_after.as_secs()
                );
                return Err(watch.failure(Error::new(ErrorCode::OperationFailed, SUSPEND, late)));
            }
            if let Err(e) = channel.read_write(Duration::from_millis(200)) {
                let lost = bus_error("Lost the system bus while asleep", &e);
                return Err(watch.failure(lost));
            }
            signals.extend(std::iter::from_fn(|| channel.pop_message()));
        }
    }
}

/// Follows logind's `PrepareForSleep` signals for one request.
struct SleepWatch {
    /// logind's unique name on the bus: signals from anyone else are ignored.
    owner: String,
    /// logind said the host is going to sleep.
    asleep: bool,
}

impl SleepWatch {
    /// Whether `message` is logind saying the host is back from this sleep.
    fn is_back(&mut self, message: &Message) -> bool {
        let from_logind = message.is_signal(&self.owner, "PrepareForSleep");
        match message.read_bool() {
            Ok(true) if from_logind => self.asleep = true,
            Ok(false) if from_logind => return self.asleep,
            _ => {}
        }
        false
    }

    /// A failure of this request: once logind has said the host is going to sleep, it may
    /// still sleep, and the wake alarm must stay.
    fn failure(&self, error: Error) -> SuspendFailure {
        SuspendFailure {
            error,
            may_still_sleep: self.asleep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Daemon, PrivateBus};
    use std::thread;

    /// Short, so that the fault tests end quickly.
    const CALL_TIMEOUT: Duration = Duration::from_millis(500);
    const LATER: Duration = Duration::from_secs(30);

    fn logind(bus: &PrivateBus) -> Logind {
        Logind::new(Some(bus.address.clone()), CALL_TIMEOUT)
    }

    fn answers(daemon: Daemon, config: &str) -> Probe {
        let bus = PrivateBus::start_on(daemon, config);
        logind(&bus).probe().unwrap()
    }

    #[test]
    fn unavailable_without_a_bus() {
        let logind = Logind::new(Some("unix:path=/nonexistent/bus".into()), CALL_TIMEOUT);
        assert!(
            matches!(logind.probe(), Ok(Probe::Unavailable(why)) if why.starts_with("no system bus"))
        );
    }

    /// A socket that accepts connections and never says a word.
    fn silent_bus() -> (
        crate::testing::FakeRoot,
        std::os::unix::net::UnixListener,
        String,
    ) {
        let dir = crate::testing::FakeRoot::new();
        let socket = dir.path().join("silent");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let address = format!("unix:path={}", socket.display());
        (dir, listener, address)
    }

    #[test]
    fn silent_bus_is_unavailable_within_the_timeout() {
        let (_dir, _listener, address) = silent_bus();
        let began = Instant::now();
        let probe = Logind::new(Some(address), CALL_TIMEOUT).probe().unwrap();
        assert!(matches!(probe, Probe::Unavailable(why) if why.starts_with("no system bus")));
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{:?}",
            began.elapsed()
        );
    }

    #[test]
    fn silent_bus_fails_the_suspend_within_the_timeout() {
        let (_dir, _listener, address) = silent_bus();
        let began = Instant::now();
        let failure = Logind::new(Some(address), CALL_TIMEOUT)
            .suspend(Target::Mem, LATER)
            .unwrap_err();
        assert!(!failure.may_still_sleep);
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{:?}",
            began.elapsed()
        );
    }

    /// The tests against a real bus, run against each daemon a host may have.
    macro_rules! against_a_real_bus {
        () => {
            #[test]
            fn yes_and_challenge_mean_supported() {
                let probe = answers(
                    DAEMON,
                    r#"{"CanSuspend": "yes", "CanHibernate": "challenge", "CanHybridSleep": "no"}"#,
                );
                let no = Support::No(Unsupported::Logind {
                    method: "CanHybridSleep",
                    answer: "no".into(),
                });
                assert_eq!(probe, Probe::Answers([Support::Yes, Support::Yes, no]));
            }

            #[test]
            fn asking_logind_maps_no_dbus_library() {
                let bus = PrivateBus::start_on(DAEMON, r#"{"CanSuspend": "yes"}"#);
                logind(&bus).probe().unwrap();
                let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
                assert!(!maps.contains("libdbus"), "{maps}");
            }

            #[test]
            fn only_logind_can_say_the_host_is_back() {
                let bus = PrivateBus::start_on(DAEMON, r#"{"asleep_ms": 1500}"#);
                let logind = logind(&bus);
                let began = Instant::now();
                let sleeper = thread::spawn(move || logind.suspend(Target::Mem, LATER));
                bus.wait_for_call("PrepareForSleep True");
                // Any client of the bus may send the signal: it must not end the wait.
                let spoofed = std::process::Command::new("dbus-send")
                    .arg(format!("--bus={}", bus.address))
                    .args([
                        "--type=signal",
                        OBJECT,
                        "org.freedesktop.login1.Manager.PrepareForSleep",
                        "boolean:false",
                    ])
                    .status()
                    .unwrap();
                assert!(spoofed.success());
                sleeper.join().unwrap().unwrap();
                assert!(
                    began.elapsed() >= Duration::from_millis(1500),
                    "{:?}",
                    began.elapsed()
                );
            }

            #[test]
            fn unavailable_unless_activatable() {
                let probe = answers(DAEMON, r#"{"CanSuspend": "yes", "activatable": false}"#);
                assert_eq!(
                    probe,
                    Probe::Unavailable("org.freedesktop.login1 is not activatable".into())
                );
            }

            #[test]
            fn unavailable_unless_running() {
                let probe = answers(DAEMON, r#"{"running": false}"#);
                assert_eq!(
                    probe,
                    Probe::Unavailable("org.freedesktop.login1 is not running".into())
                );
            }

            #[test]
            fn suspend_lasts_until_logind_reports_the_host_back() {
                let bus = PrivateBus::start_on(DAEMON, r#"{"Hibernate": "ok", "asleep_ms": 400}"#);
                let began = Instant::now();
                logind(&bus).suspend(Target::Disk, LATER).unwrap();
                assert!(began.elapsed() >= Duration::from_millis(400));
                assert_eq!(
                    bus.calls(),
                    "Hibernate False\nPrepareForSleep True\nPrepareForSleep False\n"
                );
            }

            #[test]
            fn sleep_signalled_before_the_reply_as_logind_does_is_followed() {
                let bus = PrivateBus::start_on(DAEMON, r#"{"Suspend": "signal first", "asleep_ms": 300}"#);
                let began = Instant::now();
                logind(&bus).suspend(Target::Mem, LATER).unwrap();
                assert!(began.elapsed() >= Duration::from_millis(300));
                assert_eq!(
                    bus.calls(),
                    "Suspend False\nPrepareForSleep True\nPrepareForSleep False\n"
                );
            }

            #[test]
            fn each_target_calls_its_method_non_interactively() {
                let bus = PrivateBus::start_on(DAEMON, r#"{"asleep_ms": 10}"#);
                for target in Target::ALL {
                    logind(&bus).suspend(target, LATER).unwrap();
                }
                let methods: Vec<String> = bus
                    .calls()
                    .lines()
                    .filter(|l| !l.starts_with("Prepare"))
                    .map(String::from)
                    .collect();
                assert_eq!(
                    methods,
                    ["Suspend False", "Hibernate False", "HybridSleep False"]
                );
            }

            #[test]
            fn refused_suspend_is_a_failure() {
                let bus = PrivateBus::start_on(DAEMON, r#"{"Suspend": "error"}"#);
                let failure = logind(&bus).suspend(Target::Mem, LATER).unwrap_err();
                assert!(!failure.may_still_sleep);
                let e = failure.error;
                assert_eq!(e.code, ErrorCode::DbusService);
                assert_eq!(
                    e.message,
                    "error from service: GDBus.Error:org.freedesktop.login1.SleepVerbNotSupported: Suspend is refused by the stand-in"
                );
                assert_eq!(e.domain, DOMAIN_DBUS);
            }

            #[test]
            fn logind_that_never_answers_times_out() {
                let bus = PrivateBus::start_on(DAEMON, r#"{"Suspend": "hang"}"#);
                let began = Instant::now();
                let failure = logind(&bus).suspend(Target::Mem, LATER).unwrap_err();
                assert!(!failure.may_still_sleep);
                let e = failure.error;
                assert_eq!(e.code, ErrorCode::DbusService);
                assert!(
                    e.message == "error from service: No answer to Suspend: Timeout was reached",
                    "{}",
                    e.message
                );
                assert!(
                    began.elapsed() < Duration::from_secs(20),
                    "{:?}",
                    began.elapsed()
                );
            }

            #[test]
            fn host_never_reported_back_is_given_up_at_the_bound() {
                let bus = PrivateBus::start_on(DAEMON, r#"{"asleep_ms": 600000}"#);
                let failure = logind(&bus)
                    .suspend(Target::Mem, Duration::from_secs(1))
                    .unwrap_err();
                // logind said the host was going to sleep: the alarm must stay.
                assert!(failure.may_still_sleep);
                let e = failure.error;
                assert_eq!(
                    e.message,
                    "operation failed: logind did not report the host back within 1 s of Suspend"
                );
            }

            #[test]
            fn bus_that_goes_away_while_asleep_is_a_failure() {
                let mut bus = PrivateBus::start_on(DAEMON, r#"{"asleep_ms": 600000}"#);
                let logind = logind(&bus);
                let sleeper = thread::spawn(move || logind.suspend(Target::Mem, LATER));
                bus.wait_for_call("PrepareForSleep True");
                bus.stop();
                let failure = sleeper.join().unwrap().unwrap_err();
                assert!(failure.may_still_sleep);
                let e = failure.error;
                assert_eq!(e.code, ErrorCode::DbusService);
                assert!(
                    e.message
                        .starts_with("error from service: Lost the system bus while asleep"),
                    "{}",
                    e.message
                );
            }
        };
    }

    mod dbus_daemon {
        use super::*;
        const DAEMON: Daemon = Daemon::DbusDaemon;
        against_a_real_bus!();
    }

    mod dbus_broker {
        use super::*;
        const DAEMON: Daemon = Daemon::DbusBroker;
        against_a_real_bus!();
    }

    /// A bus that sends what the specification forbids, or more than any client should
    /// hold, fails the capability query by its deadline (and one second), costing the
    /// process under [`MEMORY_BOUND`]. Each test fails, rather than hangs, where the
    /// client spins or reads for ever.
    mod hostile {
        use super::*;
        use crate::backend::bus::forge;
        use crate::testing::{alone, bounded, HostileBus};
        use std::sync::atomic::AtomicBool;

        /// Long enough for a debug build to read megabytes, short enough to wait for.
        const DEADLINE: Duration = Duration::from_secs(2);
        /// What a hostile bus may cost the process at most.
        const MEMORY_BOUND: u64 = 50 << 20;
        /// What a burst is.
        const BURST: usize = 8 << 20;
        /// The size of the nested values: megabytes of them.
        const NESTED: usize = 4 << 20;

        /// A test that runs in a process of its own ([`alone`]): what the bus costs is
        /// measured on the whole process.
        macro_rules! alone_test {
            ($(#[$doc:meta])* fn $name:ident() $body:block) => {
                $(#[$doc])*
                #[test]
                fn $name() {
                    if alone(concat!(module_path!(), "::", stringify!($name))) $body
                }
            };
        }

        /// The capability query against `bus`, which must have answered by the deadline
        /// and one second, at a cost under the bound.
        fn probe(bus: &HostileBus) -> Result<Probe> {
            let logind = Logind::new(Some(bus.address.clone()), DEADLINE);
            let began = Instant::now();
            let (answer, rose) = bounded(DEADLINE + Duration::from_secs(1), move || logind.probe());
            let took = began.elapsed();
            // For the record of each run (cargo test -- --nocapture).
            eprintln!("took {took:?}, resident memory rose {} kB", rose >> 10);
            let answer = answer.unwrap_or_else(|| {
                panic!(
                    "no answer after {took:?}; resident memory rose {} MB",
                    rose >> 20
                )
            });
            assert!(
                rose < MEMORY_BOUND,
                "resident memory rose {} MB",
                rose >> 20
            );
            answer
        }

        /// A bus that sends `bytes`, then holds the connection open.
        fn sending(bytes: Vec<u8>) -> HostileBus {
            HostileBus::start(move |stream, over: &AtomicBool| {
                HostileBus::send(stream, over, &bytes);
                HostileBus::hold(over);
            })
        }

        /// Signals numbered from `first`, `size` bytes of them at least.
        fn signals(first: u32, size: usize) -> Vec<u8> {
            let mut bytes = vec![];
            let mut serial = first;
            while bytes.len() < size {
                bytes.extend(forge::signal(serial));
                serial += 1;
            }
            bytes
        }

        fn unavailable(why: &str) -> Probe {
            Probe::Unavailable(format!("no system bus: {why}"))
        }

        const NOT_DBUS: &str = "The bus sent what is not a D-Bus message";

        alone_test! {
            fn an_array_of_empty_structures_fails_the_query_at_once() {
                let bus = sending(forge::empty_structures());
                assert_eq!(probe(&bus).unwrap(), unavailable(NOT_DBUS));
            }
        }

        alone_test! {
            fn a_burst_of_8_mib_is_read_by_the_deadline() {
                let bus = sending(signals(1, BURST));
                assert_eq!(probe(&bus).unwrap(), unavailable("Timeout was reached"));
            }
        }

        alone_test! {
            fn a_bus_that_never_stops_writing_is_left_at_the_deadline() {
                let batch = signals(1, 64 << 10);
                let bus = HostileBus::start(
                    move |stream, over: &AtomicBool| {
                        while HostileBus::send(stream, over, &batch) {}
                    },
                );
                assert_eq!(probe(&bus).unwrap(), unavailable("Timeout was reached"));
            }
        }

        alone_test! {
            /// 29 arrays and 32 structures in a header field: 64 containers with the field's
            /// array, structure and variant, the most there may be. Taken, and in time linear
            /// in their size: the error reply to `Hello` after them is read.
            fn nesting_at_the_limit_is_read_in_linear_time() {
                let nested = forge::signal_with(1, vec![forge::nested_field(29, 32, NESTED)]);
                let bus = sending([nested, forge::error_reply(2, 1)].concat());
                let failure = probe(&bus).unwrap_err();
                assert!(
                    failure.message.ends_with("Timeout was reached"),
                    "{}",
                    failure.message
                );
            }
        }

        alone_test! {
            /// One array more than the limit: refused.
            fn nesting_past_the_limit_fails_the_query() {
                let nested = forge::signal_with(1, vec![forge::nested_field(30, 32, NESTED)]);
                let bus = sending([nested, forge::error_reply(2, 1)].concat());
                assert_eq!(probe(&bus).unwrap(), unavailable(NOT_DBUS));
            }
        }
    }
}
