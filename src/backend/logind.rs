//! The systemd-logind backend: `CanSuspend`, `CanHibernate`, `CanHybridSleep` answer, and
//! `Suspend`, `Hibernate`, `HybridSleep` carry out (org.freedesktop.login1(5)).
//!
//! As in libvirt, logind is available only when the system bus is there and the service is
//! both activatable and running. Each use opens a private connection (libvirt's own
//! connection in the same process is never touched), and every call has a timeout: a bus
//! that stops answering fails the request, it never blocks it.

use std::sync::mpsc;
use std::time::Duration;

use dbus::blocking::{Connection, Proxy};
use dbus::message::MatchRule;

use super::{since_boot, Backend, Probe, Support};
use crate::error::{Error, ErrorCode, Result};
use crate::target::Target;

const SERVICE: &str = "org.freedesktop.login1";
const OBJECT: &str = "/org/freedesktop/login1";
const MANAGER: &str = "org.freedesktop.login1.Manager";

const PROBE: &str = "virNodeSuspendGetTargetMask";
const SUSPEND: &str = "virNodeSuspend";

pub struct Logind {
    /// The longest any one D-Bus call may take.
    call_timeout: Duration,
}

/// A D-Bus failure as libvirt reports one (VIR_ERR_DBUS_SERVICE).
fn bus_error(function: &'static str, what: &str, e: &dbus::Error) -> Error {
    let detail = match (e.name(), e.message()) {
        (Some(name), Some(message)) => format!("{name}: {message}"),
        (Some(name), None) => name.to_owned(),
        (None, message) => message.unwrap_or("unknown error").to_owned(),
    };
    Error::new(
        ErrorCode::DbusService,
        function,
        format!("{what}: {detail}"),
    )
}

impl Logind {
    pub fn new(call_timeout: Duration) -> Logind {
        Logind { call_timeout }
    }

    fn manager<'a>(&self, connection: &'a Connection) -> Proxy<'a, &'a Connection> {
        connection.with_proxy(SERVICE, OBJECT, self.call_timeout)
    }

    /// Whether the bus lists logind among the names of `listing` (`ListActivatableNames`
    /// or `ListNames`).
    fn bus_lists(&self, connection: &Connection, listing: &str) -> Result<bool> {
        let bus = connection.with_proxy(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            self.call_timeout,
        );
        let (names,): (Vec<String>,) = bus
            .method_call("org.freedesktop.DBus", listing, ())
            .map_err(|e| bus_error(PROBE, listing, &e))?;
        Ok(names.iter().any(|name| name == SERVICE))
    }
}

impl Backend for Logind {
    fn name(&self) -> &'static str {
        "logind"
    }

    fn probe(&self) -> Result<Probe> {
        let connection = match Connection::new_system() {
            Ok(connection) => connection,
            Err(e) => {
                return Ok(Probe::Unavailable(format!(
                    "no system bus: {}",
                    e.message().unwrap_or("")
                )))
            }
        };
        if !self.bus_lists(&connection, "ListActivatableNames")? {
            return Ok(Probe::Unavailable(format!("{SERVICE} is not activatable")));
        }
        if !self.bus_lists(&connection, "ListNames")? {
            return Ok(Probe::Unavailable(format!("{SERVICE} is not running")));
        }
        let manager = self.manager(&connection);
        let mut answers = Vec::with_capacity(Target::ALL.len());
        for target in Target::ALL {
            let method = match target {
                Target::Mem => "CanSuspend",
                Target::Disk => "CanHibernate",
                Target::Hybrid => "CanHybridSleep",
            };
            let (answer,): (String,) = manager
                .method_call(MANAGER, method, ())
                .map_err(|e| bus_error(PROBE, method, &e))?;
            // "challenge": allowed after authentication, which libvirt counts as supported.
            answers.push(match answer.as_str() {
                "yes" | "challenge" => Support::Yes,
                _ => Support::No(format!("logind answers '{answer}' to {method}")),
            });
        }
        let [mem, disk, hybrid]: [Support; 3] = answers.try_into().expect("one per target");
        Ok(Probe::Answers([mem, disk, hybrid]))
    }

    /// Asks logind to sleep, then waits for `PrepareForSleep(false)`: logind's word that the
    /// host is back.
    fn suspend(&self, target: Target, give_up_after: Duration) -> Result<()> {
        let method = match target {
            Target::Mem => "Suspend",
            Target::Disk => "Hibernate",
            Target::Hybrid => "HybridSleep",
        };
        let connection = Connection::new_system()
            .map_err(|e| bus_error(SUSPEND, "Cannot reach the system bus", &e))?;
        let (back_tx, back) = mpsc::channel();
        // Listen before asking, so that no signal can come in between.
        let rule = MatchRule::new_signal(MANAGER, "PrepareForSleep").with_path(OBJECT);
        connection
            .add_match(rule, move |(going_to_sleep,): (bool,), _, _| {
                let _ = back_tx.send(!going_to_sleep);
                true
            })
            .map_err(|e| bus_error(SUSPEND, "Cannot listen for PrepareForSleep", &e))?;
        // false: not interactive, no authentication prompt.
        self.manager(&connection)
            .method_call::<(), _, _, _>(MANAGER, method, (false,))
            .map_err(|e| bus_error(SUSPEND, method, &e))?;

        let deadline = since_boot() + give_up_after;
        while since_boot() < deadline {
            connection
                .process(Duration::from_millis(200))
                .map_err(|e| bus_error(SUSPEND, "Lost the system bus while asleep", &e))?;
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
