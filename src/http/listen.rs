//! The HTTP side of start-up: binding the listener (TLS when asked), the URL to show
//! people, and the token clients must send: given, generated for a network address, or
//! none on loopback (and a loud warning for `--no-auth`).

use crate::cli::{Args, Failure};

#[derive(Debug, PartialEq)]
enum Auth {
    Given(String),
    Generated(String),
    Open { warn: bool },
}

/// Loopback needs no token unless one is given; any other address gets one, generated if
/// need be, unless the user opts out (and is warned on every start).
fn auth_decision(loopback: bool, token: Option<String>, no_auth: bool) -> Auth {
    match (token, loopback, no_auth) {
        (Some(t), _, _) => Auth::Given(t),
        (None, true, _) => Auth::Open { warn: false },
        (None, false, true) => Auth::Open { warn: true },
        (None, false, false) => Auth::Generated(super::new_secret()),
    }
}

/// `host:port`, with an IPv6 address in brackets.
fn listen_addr(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The HTTP side of start-up: the listener, the URL to show, and the token it requires.
pub struct Listening {
    pub listener: super::server::Listener,
    pub addr: std::net::SocketAddr,
    pub client_url: String,
    pub token: Option<String>,
}

pub fn listen(args: &Args) -> Result<Listening, Failure> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        (None, None) => None,
        _ => {
            return Err(Failure::Usage(
                "--tls-cert and --tls-key go together".into(),
            ));
        }
    };
    let setting = args.setting();
    let host = setting.text("host").unwrap_or_default();
    let port = u16::try_from(setting.num("port").unwrap_or_default()).unwrap_or_default();
    let listener =
        super::server::Listener::bind(&listen_addr(&host, port), tls).map_err(Failure::Runtime)?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::Runtime(format!("the listener has no address: {e}")))?;
    let mut client_url = client_url(addr);
    if tls.is_some() {
        client_url = client_url.replacen("http://", "https://", 1);
    }
    // --token, then MCP_GATEWAY_TOKEN, then the config's "gateway" settings.
    let given = setting.text("token");
    let token = match auth_decision(addr.ip().is_loopback(), given, args.no_auth) {
        Auth::Given(t) => Some(t),
        Auth::Generated(t) => {
            // Printed here only, never logged.
            println!("A token was generated; clients must send 'Authorization: Bearer {t}'");
            Some(t)
        }
        Auth::Open { warn } => {
            if warn {
                log::warn!(
                    "SERVING {addr} WITHOUT AUTHENTICATION (--no-auth): anyone who can reach it can use every backend, including any shell"
                );
            }
            None
        }
    };
    Ok(Listening {
        listener,
        addr,
        client_url,
        token,
    })
}

/// The base URL to show people: a wildcard address is not one a client can connect to.
fn client_url(addr: std::net::SocketAddr) -> String {
    let host = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    format!("http://{host}:{}", addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_url_is_one_a_client_can_use() {
        let url = |a: &str| client_url(a.parse().unwrap());
        assert_eq!(url("0.0.0.0:9000"), "http://127.0.0.1:9000");
        assert_eq!(url("[::]:9000"), "http://[::1]:9000");
        assert_eq!(url("127.0.0.1:1234"), "http://127.0.0.1:1234");
        assert_eq!(url("[::1]:80"), "http://[::1]:80");
        assert_eq!(url("192.168.1.5:9000"), "http://192.168.1.5:9000");
    }

    #[test]
    fn a_network_address_is_never_served_without_a_token_unless_asked() {
        assert_eq!(auth_decision(true, None, false), Auth::Open { warn: false });
        assert_eq!(
            auth_decision(true, Some("t".into()), false),
            Auth::Given("t".into())
        );
        assert_eq!(
            auth_decision(false, Some("t".into()), true),
            Auth::Given("t".into())
        );
        assert_eq!(auth_decision(false, None, true), Auth::Open { warn: true });
        assert!(matches!(auth_decision(false, None, false), Auth::Generated(t) if t.len() == 32));
    }

    #[test]
    fn ipv6_hosts_are_bracketed_for_binding() {
        assert_eq!(listen_addr("::1", 9000), "[::1]:9000");
        assert_eq!(listen_addr("[::1]", 9000), "[::1]:9000");
        assert_eq!(listen_addr("127.0.0.1", 0), "127.0.0.1:0");
        assert_eq!(listen_addr("localhost", 9000), "localhost:9000");
    }
}
