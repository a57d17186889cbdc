//! Choosing the TCP port a managed server listens on.

use std::net::{Ipv4Addr, TcpListener};

use super::Error;

/// The system cluster's customary port: never picked automatically, even when it looks free,
/// because a distribution's server may start there later.
const DEFAULT_PG_PORT: u16 = 5432;
const ATTEMPTS: usize = 20;

/// The port to start on: `requested` if given (it must be free), else `remembered` from the
/// previous run if still free, else a fresh free port.
///
/// A port found free can still be taken before the server binds it; the server then fails to
/// start with "could not bind" in its log, which [`super::Error::StartFailed`] shows.
pub(crate) fn choose(requested: Option<u16>, remembered: Option<u16>) -> Result<u16, Error> {
    match requested.filter(|&p| p != 0) {
        Some(port) if is_free(port) => Ok(port),
        Some(port) => Err(Error::PortInUse { port }),
        None => match remembered.filter(|&p| p != DEFAULT_PG_PORT && is_free(p)) {
            Some(port) => Ok(port),
            None => pick_free(),
        },
    }
}

/// Asks the kernel for an unused port (bind to port 0), releases it, and checks it again.
fn pick_free() -> Result<u16, Error> {
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()) {
            Ok(addr) if addr.port() != DEFAULT_PG_PORT && is_free(addr.port()) => {
                return Ok(addr.port());
            }
            Ok(_) => {}
            Err(e) => last_error = Some(e),
        }
    }
    Err(Error::NoFreePort { source: last_error })
}

fn is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choose_refuses_a_requested_port_that_is_taken() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = taken.local_addr().expect("addr").port();
        assert!(matches!(choose(Some(port), None), Err(Error::PortInUse { port: p }) if p == port));
    }

    #[test]
    fn choose_skips_a_remembered_port_that_is_taken() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = taken.local_addr().expect("addr").port();
        let chosen = choose(None, Some(port)).expect("a free port");
        assert_ne!(chosen, port);
        assert_ne!(chosen, DEFAULT_PG_PORT);
    }
}
