//! The systemd-logind backend: `CanSuspend`, `CanHibernate`, `CanHybridSleep` answer, and
//! `Suspend`, `Hibernate`, `HybridSleep` carry out (org.freedesktop.login1(5)).
//!
//! As in libvirt, logind is available only when the system bus is there and the service is
//! both activatable and running. Each use opens a private connection (libvirt's own
//! connection in the same process is never touched), and every call has a timeout: a bus
//! that stops answering fails the request, it never blocks it.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use dbus::blocking::{Connection, Proxy};
use dbus::channel::Channel;
use dbus::message::MatchRule;
use dbus::Message;

use super::{since_boot, Backend, Probe, Support};
use crate::error::{Error, ErrorCode, Result, DOMAIN_DBUS};
use crate::target::Target;

const SERVICE: &str = "org.freedesktop.login1";
const OBJECT: &str = "/org/freedesktop/login1";
const MANAGER: &str = "org.freedesktop.login1.Manager";

const SUSPEND: &str = "virNodeSuspend";

pub struct Logind {
    /// The bus to use instead of the system bus (tests; libdbus itself honours
    /// `DBUS_SYSTEM_BUS_ADDRESS` for the system bus).
    bus_address: Option<String>,
    /// The longest any one D-Bus call may take.
    call_timeout: Duration,
}

/// An error reply, as libvirt 9.0 reports one: VIR_ERR_DBUS_SERVICE in the D-Bus domain,
/// with GLib's text for a remote error ("GDBus.Error:NAME: MESSAGE").
fn reply_error(e: &dbus::Error) -> Error {
    let name = e.name().unwrap_or("org.freedesktop.DBus.Error.Failed");
    let message = e.message().unwrap_or("");
    Error::new(
        ErrorCode::DbusService,
        "virGDBusCallMethod",
        format!("GDBus.Error:{name}: {message}"),
    )
    .in_domain(DOMAIN_DBUS)
}

/// A failure of the bus itself while a request is carried out (no libvirt counterpart:
/// libvirt never asks logind to sleep), said with what was being done.
fn bus_error(what: &str, e: &dbus::Error) -> Error {
    let detail = match (e.name(), e.message()) {
        (Some(name), Some(message)) => format!("{name}: {message}"),
        (Some(name), None) => name.to_owned(),
        (None, message) => message.unwrap_or("unknown error").to_owned(),
    };
    Error::new(ErrorCode::DbusService, SUSPEND, format!("{what}: {detail}")).in_domain(DOMAIN_DBUS)
}

impl Logind {
    pub fn new(bus_address: Option<String>, call_timeout: Duration) -> Logind {
        Logind {
            bus_address,
            call_timeout,
        }
    }

    /// A private connection: libvirt's own connection in the same process is never touched.
    fn connect(&self) -> std::result::Result<Connection, dbus::Error> {
        match &self.bus_address {
            None => Connection::new_system(),
            Some(address) => {
                let mut channel = Channel::open_private(address)?;
                channel.register()?;
                Ok(Connection::from(channel))
            }
        }
    }

    fn manager<'a>(&self, connection: &'a Connection) -> Proxy<'a, &'a Connection> {
        connection.with_proxy(SERVICE, OBJECT, self.call_timeout)
    }

    /// Sends all `calls` at once and collects their replies (errors included), in the
    /// order of the calls: one round trip for all, within one call timeout.
    fn call_all(
        &self,
        connection: &Connection,
        calls: Vec<Message>,
    ) -> std::result::Result<Vec<Message>, dbus::Error> {
        let channel = connection.channel();
        let lost = || {
            dbus::Error::new_custom(
                "org.freedesktop.DBus.Error.Disconnected",
                "the bus connection was lost",
            )
        };
        let serials = calls
            .into_iter()
            .map(|call| channel.send(call).map_err(|()| lost()))
            .collect::<std::result::Result<Vec<u32>, _>>()?;
        let mut replies: Vec<Option<Message>> = serials.iter().map(|_| None).collect();
        let deadline = Instant::now() + self.call_timeout;
        while replies.iter().any(Option::is_none) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Err(dbus::Error::new_custom(
                    "org.freedesktop.DBus.Error.NoReply",
                    "no reply within the timeout",
                ));
            };
            channel.read_write(Some(left)).map_err(|()| lost())?;
            while let Some(message) = channel.pop_message() {
                let serial = message.get_reply_serial();
                if let Some(slot) = serials.iter().position(|s| Some(*s) == serial) {
                    replies[slot] = Some(message);
                }
            }
        }
        Ok(replies.into_iter().flatten().collect())
    }
}

/// A call to the bus itself.
fn bus_call(method: &str) -> Message {
    Message::new_method_call(
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus",
        method,
    )
    .expect("valid names")
}

/// A call to logind that never starts it: where logind is not running, the bus answers
/// with an error instead of activating it (libvirt starts nothing either).
fn logind_call(method: &str) -> Message {
    let mut call = Message::new_method_call(SERVICE, OBJECT, MANAGER, method).expect("valid names");
    call.set_auto_start(false);
    call
}

/// The names in a reply to `ListActivatableNames` or `ListNames` include logind's.
fn lists_logind(reply: &mut Message) -> Result<bool> {
    let names: Vec<String> = reply
        .as_result()
        .and_then(|reply| reply.read1().map_err(dbus::Error::from))
        .map_err(|e| reply_error(&e))?;
    Ok(names.iter().any(|name| name == SERVICE))
}

impl Backend for Logind {
    fn name(&self) -> &'static str {
        "logind"
    }

    fn probe(&self) -> Result<Probe> {
        let connection = match self.connect() {
            Ok(connection) => connection,
            Err(e) => {
                return Ok(Probe::Unavailable(format!(
                    "no system bus: {}",
                    e.message().unwrap_or("")
                )))
            }
        };
        // Both of libvirt's checks (logind is activatable, and running) and the three
        // questions, in one round trip: the answers are read only where the checks passed.
        let methods = ["CanSuspend", "CanHibernate", "CanHybridSleep"];
        let calls = [bus_call("ListActivatableNames"), bus_call("ListNames")]
            .into_iter()
            .chain(methods.map(logind_call))
            .collect();
        let mut replies = self
            .call_all(&connection, calls)
            .map_err(|e| reply_error(&e))?;
        if !lists_logind(&mut replies[0])? {
            return Ok(Probe::Unavailable(format!("{SERVICE} is not activatable")));
        }
        if !lists_logind(&mut replies[1])? {
            return Ok(Probe::Unavailable(format!("{SERVICE} is not running")));
        }
        let mut answers = methods.into_iter().zip(&mut replies[2..]);
        Probe::from_each(|_| {
            let (method, reply) = answers.next().expect("one reply per target");
            let answer: String = reply
                .as_result()
                .and_then(|reply| reply.read1().map_err(dbus::Error::from))
                .map_err(|e| reply_error(&e))?;
            // "challenge": allowed after authentication, which libvirt counts as supported.
            Ok(match answer.as_str() {
                "yes" | "challenge" => Support::Yes,
                _ => Support::No(format!("logind answers '{answer}' to {method}")),
            })
        })
    }

    /// Asks logind to sleep, then waits for `PrepareForSleep(false)`: logind's word that the
    /// host is back.
    fn suspend(&self, target: Target, give_up_after: Duration) -> Result<()> {
        let method = match target {
            Target::Mem => "Suspend",
            Target::Disk => "Hibernate",
            Target::Hybrid => "HybridSleep",
        };
        let connection = self
            .connect()
            .map_err(|e| bus_error("Cannot reach the system bus", &e))?;
        let (back_tx, back) = mpsc::channel();
        // Listen before asking, so that no signal can come in between.
        let rule = MatchRule::new_signal(MANAGER, "PrepareForSleep").with_path(OBJECT);
        connection
            .add_match(rule, move |(going_to_sleep,): (bool,), _, _| {
                let _ = back_tx.send(!going_to_sleep);
                true
            })
            .map_err(|e| bus_error("Cannot listen for PrepareForSleep", &e))?;
        // false: not interactive, no authentication prompt.
        self.manager(&connection)
            .method_call::<(), _, _, _>(MANAGER, method, (false,))
            .map_err(|e| reply_error(&e))?;

        let deadline = since_boot() + give_up_after;
        while since_boot() < deadline {
            connection
                .process(Duration::from_millis(200))
                .map_err(|e| bus_error("Lost the system bus while asleep", &e))?;
            if back.try_iter().any(|is_back| is_back) {
                return Ok(());
            }
        }
        Err(Error::new(
            ErrorCode::OperationFailed,
            SUSPEND,
            format!(
                "logind did not report the host back within {} s of {method}",
                give_up_after.as_secs()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::PrivateBus;
    use std::thread;

    /// Short, so that the fault tests end quickly.
    const CALL_TIMEOUT: Duration = Duration::from_millis(500);
    const LATER: Duration = Duration::from_secs(30);

    fn logind(bus: &PrivateBus) -> Logind {
        Logind::new(Some(bus.address.clone()), CALL_TIMEOUT)
    }

    fn answers(config: &str) -> Probe {
        let bus = PrivateBus::start(config);
        logind(&bus).probe().unwrap()
    }

    #[test]
    fn yes_and_challenge_mean_supported() {
        let probe = answers(
            r#"{"CanSuspend": "yes", "CanHibernate": "challenge", "CanHybridSleep": "no"}"#,
        );
        let no = Support::No("logind answers 'no' to CanHybridSleep".into());
        assert_eq!(probe, Probe::Answers([Support::Yes, Support::Yes, no]));
    }

    #[test]
    fn unavailable_without_a_bus() {
        let logind = Logind::new(Some("unix:path=/nonexistent/bus".into()), CALL_TIMEOUT);
        assert!(
            matches!(logind.probe(), Ok(Probe::Unavailable(why)) if why.starts_with("no system bus"))
        );
    }

    #[test]
    fn unavailable_unless_activatable() {
        let probe = answers(r#"{"CanSuspend": "yes", "activatable": false}"#);
        assert_eq!(
            probe,
            Probe::Unavailable("org.freedesktop.login1 is not activatable".into())
        );
    }

    #[test]
    fn unavailable_unless_running() {
        let probe = answers(r#"{"running": false}"#);
        assert_eq!(
            probe,
            Probe::Unavailable("org.freedesktop.login1 is not running".into())
        );
    }

    #[test]
    fn suspend_lasts_until_logind_reports_the_host_back() {
        let bus = PrivateBus::start(r#"{"Hibernate": "ok", "asleep_ms": 400}"#);
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
        let bus = PrivateBus::start(r#"{"Suspend": "signal first", "asleep_ms": 300}"#);
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
        let bus = PrivateBus::start(r#"{"asleep_ms": 10}"#);
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
        let bus = PrivateBus::start(r#"{"Suspend": "error"}"#);
        let e = logind(&bus).suspend(Target::Mem, LATER).unwrap_err();
        assert_eq!(e.code, ErrorCode::DbusService);
        assert_eq!(
            e.message,
            "error from service: GDBus.Error:org.freedesktop.login1.SleepVerbNotSupported: Suspend is refused by the stand-in"
        );
        assert_eq!(e.domain, DOMAIN_DBUS);
    }

    #[test]
    fn logind_that_never_answers_times_out() {
        let bus = PrivateBus::start(r#"{"Suspend": "hang"}"#);
        let began = Instant::now();
        let e = logind(&bus).suspend(Target::Mem, LATER).unwrap_err();
        assert_eq!(e.code, ErrorCode::DbusService);
        assert!(
            e.message.contains("org.freedesktop.DBus.Error.NoReply"),
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
        let bus = PrivateBus::start(r#"{"asleep_ms": 600000}"#);
        let e = logind(&bus)
            .suspend(Target::Mem, Duration::from_secs(1))
            .unwrap_err();
        assert_eq!(
            e.message,
            "operation failed: logind did not report the host back within 1 s of Suspend"
        );
    }

    #[test]
    fn bus_that_goes_away_while_asleep_is_a_failure() {
        let mut bus = PrivateBus::start(r#"{"asleep_ms": 600000}"#);
        let logind = logind(&bus);
        let sleeper = thread::spawn(move || logind.suspend(Target::Mem, LATER));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !bus.calls().contains("PrepareForSleep True") {
            assert!(
                !sleeper.is_finished() && Instant::now() < deadline,
                "never went to sleep"
            );
            thread::sleep(Duration::from_millis(10));
        }
        bus.stop();
        let e = sleeper.join().unwrap().unwrap_err();
        assert_eq!(e.code, ErrorCode::DbusService);
        assert!(
            e.message
                .starts_with("error from service: Lost the system bus while asleep"),
            "{}",
            e.message
        );
    }
}
