//! The command line: `--help`, the flags (lexopt), the subcommands, and how flags, the
//! config's `"gateway"` settings and the defaults combine into the `Args` the gateway runs
//! with. Reads the environment only for `MCP_GATEWAY_TOKEN`; starts nothing.

use std::path::PathBuf;
use std::time::Duration;

use crate::config;

/// The gateway's own token variable.
pub const TOKEN_VARIABLE: &str = "MCP_GATEWAY_TOKEN";

const USAGE: &str = "\
mcp-gateway: serve the tools of many MCP servers through one endpoint

USAGE:
    mcp-gateway [OPTIONS]
    mcp-gateway check [OPTIONS]          start every backend, report each, exit 1 if any failed
    mcp-gateway tools [--json] [OPTIONS] start every backend, print the exposed tools
    mcp-gateway builtin NAME [--timeout SECS]   serve a built-in server over stdio
    mcp-gateway --print-config-schema    print the JSON Schema of config.json
";

/// The options that are not settings (the command line's alone), as `--help` shows them.
const COMMAND_LINE: &[(&str, &str)] = &[
    ("--config FILE", "Backends to serve. [default: config.json]"),
    (
        "--stdio",
        "Serve one client over stdin/stdout instead of HTTP (for clients that start servers as child processes, like Claude Desktop).",
    ),
    (
        "--profile NAME",
        "With --stdio: serve the client the profile NAME of the config's gateway.profiles instead of the whole catalogue; with tools: print the tools that profile reaches.",
    ),
    (
        "--reload-interval SECS",
        "How often to look for changes to the config file; 0: only on SIGHUP. [default: 2]",
    ),
    (
        "--drain-timeout SECS",
        "On SIGTERM or Ctrl-C, first refuse new sessions (503, /readyz 503) and new requests in open ones (404), and let calls in flight finish for up to this long; a second signal stops at once. [default: 0, no drain]",
    ),
    (
        "--trusted-proxy IP",
        "Believe X-Forwarded-For/-Proto from this proxy in the log, and its X-Forwarded-Prefix in the legacy endpoint (repeatable).",
    ),
    (
        "--instance-id ID",
        "This instance's tag, the start of every session id it mints, for sticky routing behind a load balancer. [default: HOSTNAME-PORT]",
    ),
    (
        "--no-auth",
        "Serve a non-loopback --host without a token (not recommended).",
    ),
    (
        "--tls-cert FILE",
        "Serve HTTPS with this PEM certificate chain (with --tls-key; builds with --features tls).",
    ),
    ("--tls-key FILE", "The PEM private key for --tls-cert."),
    ("-h, --help", "Print this help."),
    ("-V, --version", "Print the version."),
];

/// `--help`: the usage, the command line's own options, and every setting from the
/// settings table (its flag, what it does, its config key and its default), so a setting
/// added to the table is in the help without another edit.
pub fn help() -> String {
    let mut out = String::from(USAGE);
    out.push_str("\nOPTIONS:\n");
    for (flag, text) in COMMAND_LINE {
        help_entry(&mut out, flag, text);
    }
    out.push_str(
        "\nSETTINGS (each also a key of the config file's \"gateway\" object; a flag given\nhere wins over the file, see docs/configuration.md):\n",
    );
    for s in config::settings::TABLE {
        let flag = match s.value {
            "" => s.flag.to_string(),
            value => format!("{} {value}", s.flag),
        };
        let mut text = s.help.to_string();
        if matches!(s.kind, config::settings::Kind::List { .. }) {
            text.push_str(" Repeat the flag for more.");
        }
        if s.key == "token" {
            text.push_str(&format!(" Also {TOKEN_VARIABLE}."));
        }
        text.push_str(&format!(" [key: {}]", s.key));
        match s.default {
            config::settings::Fallback::Num(n) => text.push_str(&format!(" [default: {n}]")),
            config::settings::Fallback::Text(t) => text.push_str(&format!(" [default: {t}]")),
            _ => {}
        }
        help_entry(&mut out, &flag, &text);
    }
    out.push_str(
        "\nClients connect to http://HOST:PORT/mcp (Streamable HTTP) or http://HOST:PORT/sse (HTTP+SSE).\n",
    );
    out
}

/// One option of `--help`: the flag in a column of 23, its text wrapped beside it (a
/// bracketed `[default: …]` or `[key: …]` kept on one line).
fn help_entry(out: &mut String, flag: &str, text: &str) {
    const COLUMN: usize = 27;
    const WIDTH: usize = 88;
    let mut line = format!("    {flag}");
    let mut first = true;
    let mut words: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match words.last_mut() {
            Some(open) if open.starts_with('[') && !open.ends_with(']') => {
                open.push(' ');
                open.push_str(word);
            }
            _ => words.push(word.to_string()),
        }
    }
    for word in &words {
        let room = if line.len() < COLUMN {
            COLUMN
        } else {
            line.len() + 1
        };
        if !first && room + word.len() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = " ".repeat(COLUMN);
            line.push_str(word);
            continue;
        }
        if first && line.len() + 1 > COLUMN {
            // A long flag: its text starts on the next line.
            out.push_str(&line);
            out.push('\n');
            line = " ".repeat(COLUMN);
        } else if line.len() < COLUMN {
            line.push_str(&" ".repeat(COLUMN - line.len()));
        } else {
            line.push(' ');
        }
        line.push_str(word);
        first = false;
    }
    out.push_str(&line);
    out.push('\n');
}

/// The command line as given. The settings a config file may also hold are in
/// `settings` (a flag not used has no entry, so the file's value applies).
pub struct Flags {
    pub settings: config::Settings,
    pub config: PathBuf,
    pub no_auth: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub stdio: bool,
    /// `--profile NAME` (with `--stdio`): the profile the one client sees.
    pub profile: Option<String>,
    pub reload_interval: u64,
    pub instance_id: Option<String>,
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub drain_timeout: u64,
    pub mode: Mode,
    pub json: bool,
}

impl Flags {
    /// `--no-prefix`.
    pub fn no_prefix(&self) -> bool {
        self.settings.flag("prefix") == Some(false)
    }
}

/// What the gateway runs with: the command line's own options, and the settings as the
/// flags, then the config's `"gateway"` object, then the table's defaults give them
/// (`setting()`). A setting is read where it is used, by its key: it is its row in the
/// settings table and its use, nothing in between.
pub struct Args {
    pub config: PathBuf,
    pub no_auth: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub stdio: bool,
    pub profile: Option<String>,
    /// Seconds between looks at the config file; None: only on SIGHUP.
    pub reload_interval: Option<Duration>,
    pub instance_id: Option<String>,
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Seconds a SIGTERM/Ctrl-C waits for calls in flight before stopping; 0: none.
    pub drain_timeout: u64,
    pub mode: Mode,
    pub json: bool,
    /// The settings the command line gave, and the config file's.
    flags: config::Settings,
    file: config::Settings,
}

impl Args {
    /// The settings: a flag, else the config file, else the table's default.
    pub fn setting(&self) -> config::Merged<'_> {
        config::Merged {
            flags: &self.flags,
            file: &self.file,
        }
    }
}

impl Flags {
    pub fn resolve(self, file: &config::Settings) -> Args {
        Args {
            config: self.config,
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            stdio: self.stdio,
            profile: self.profile,
            no_auth: self.no_auth,
            reload_interval: (self.reload_interval > 0)
                .then(|| Duration::from_secs(self.reload_interval)),
            instance_id: self.instance_id,
            drain_timeout: self.drain_timeout,
            trusted_proxies: self.trusted_proxies,
            mode: self.mode,
            json: self.json,
            flags: self.settings,
            file: file.clone(),
        }
    }
}

/// What the invocation is for: serving, or inspecting the config and backends.
#[derive(Clone, Copy, PartialEq)]
pub enum Mode {
    Serve,
    /// `check`: start every backend, report, exit non-zero if any failed.
    Check,
    /// `tools`: start every backend, print the exposed catalogue.
    Tools,
}

pub enum Command {
    Serve(Box<Flags>),
    Builtin(String, lexopt::Parser),
    Schema,
    Help,
    Version,
}

pub fn parse_args() -> Result<Command, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Flags {
        settings: config::Settings::default(),
        config: "config.json".into(),
        no_auth: false,
        tls_cert: None,
        tls_key: None,
        stdio: false,
        profile: None,
        reload_interval: 2,
        instance_id: None,
        drain_timeout: 0,
        trusted_proxies: Vec::new(),
        mode: Mode::Serve,
        json: false,
    };
    if let Some(token) = std::env::var(TOKEN_VARIABLE).ok().filter(|t| !t.is_empty()) {
        args.settings.set("token", config::Val::Text(token));
    }
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        // The settings' flags, as the settings table says.
        if let Long(name) = &arg
            && let Some(setting) = config::settings::by_flag(&format!("--{name}"))
        {
            let value = match setting.kind {
                config::Kind::Bool { flag_sets, .. } => config::Val::Bool(flag_sets),
                kind => {
                    let text = parser.value()?.to_string_lossy().into_owned();
                    kind.read_text(&text)
                        .map_err(|e| format!("{}: {e}", setting.flag))?
                }
            };
            args.settings.set(setting.key, value);
            continue;
        }
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            Long("print-config-schema") => return Ok(Command::Schema),
            Long("config") => args.config = parser.value()?.into(),
            Long("no-auth") => args.no_auth = true,
            Long("stdio") => args.stdio = true,
            Long("profile") => args.profile = Some(parser.value()?.string()?),
            Long("reload-interval") => {
                args.reload_interval = number(
                    &mut parser,
                    "--reload-interval",
                    "a whole number of seconds (0: only on SIGHUP)",
                )?
            }
            Long("drain-timeout") => {
                args.drain_timeout = number(
                    &mut parser,
                    "--drain-timeout",
                    "a whole number of seconds (0: no drain)",
                )?
            }
            Long("trusted-proxy") => args.trusted_proxies.push(number(
                &mut parser,
                "--trusted-proxy",
                "an IP address like 10.0.0.1 or ::1",
            )?),
            Long("instance-id") => {
                let id = parser.value()?.string()?;
                check_instance_id(&id)?;
                args.instance_id = Some(id);
            }
            Long("tls-cert") => args.tls_cert = Some(parser.value()?.into()),
            Long("tls-key") => args.tls_key = Some(parser.value()?.into()),
            Value(v) if v == "check" && args.mode == Mode::Serve => args.mode = Mode::Check,
            Value(v) if v == "tools" && args.mode == Mode::Serve => args.mode = Mode::Tools,
            Long("json") => args.json = true,
            Value(v) if v == "builtin" => {
                let name = parser.value()?.string()?;
                return Ok(Command::Builtin(name, parser));
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Command::Serve(Box::new(args)))
}

/// An instance tag: 1 to 32 letters, digits and '-', so session ids stay plain ASCII and a
/// balancer can cut the tag at the first '.'.
fn check_instance_id(id: &str) -> Result<(), lexopt::Error> {
    if id.is_empty() || id.len() > 32 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(format!(
            "--instance-id '{id}': use 1 to 32 letters, digits and '-' (it starts every session id)"
        )
        .into());
    }
    Ok(())
}

/// The default instance tag: the host name (letters, digits and '-' only, at most 24) and
/// the port, so two instances on one host differ too.
pub fn default_instance_id(port: u16) -> String {
    let host = host_name().unwrap_or_default();
    let mut tag: String = host
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(24)
        .collect();
    if tag.trim_matches('-').is_empty() {
        tag = "gateway".into();
    }
    format!("{tag}-{port}")
}

fn host_name() -> Option<String> {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: gethostname writes at most buf.len() bytes into the buffer given.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc != 0 {
            return None;
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let name = String::from_utf8_lossy(&buf[..end]);
        // The short name: "web-1.example.com" -> "web-1".
        Some(name.split('.').next().unwrap_or("").to_string())
    }
    #[cfg(windows)]
    return std::env::var("COMPUTERNAME").ok();
    #[cfg(not(any(unix, windows)))]
    None
}

/// The value of `flag` as a number (or address), or an error saying what the flag takes.
fn number<T: std::str::FromStr>(
    parser: &mut lexopt::Parser,
    flag: &str,
    what: &str,
) -> Result<T, lexopt::Error> {
    let value = parser.value()?;
    let text = value.to_string_lossy();
    text.trim()
        .parse()
        .map_err(|_| format!("{flag}: expected {what}, got '{text}'").into())
}

/// Why `serve` gave up.
pub enum Failure {
    /// Bad command line or config: exit status 2.
    Usage(String),
    /// Anything else: exit status 1.
    Runtime(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_names_every_settings_flag_with_the_tables_default() {
        for setting in config::settings::TABLE {
            let help = help();
            let at = help
                .find(&format!("    {} ", setting.flag))
                .or_else(|| help.find(&format!("    {}\n", setting.flag)))
                .unwrap_or_else(|| panic!("{} is not in the help", setting.flag));
            let rest = &help[at + 4..];
            let entry = &rest[..rest.find("\n    -").unwrap_or(rest.len())];
            if matches!(setting.kind, config::settings::Kind::List { .. }) {
                let words = entry.split_whitespace().collect::<Vec<_>>().join(" ");
                assert!(words.contains("Repeat the flag for more."), "{entry}");
            }
            let default = match setting.default {
                config::settings::Fallback::Num(n) => n.to_string(),
                config::settings::Fallback::Text(t) => t.to_string(),
                _ => continue,
            };
            assert!(
                entry.contains(&format!("[default: {default}")),
                "{}: [default: {default}] in {entry:?}",
                setting.flag
            );
        }
    }

    #[test]
    fn instance_ids_are_tags_a_balancer_can_cut() {
        assert!(check_instance_id("gw-a").is_ok());
        for bad in ["", "a.b", "a b", "x".repeat(33).as_str(), "ü"] {
            assert!(check_instance_id(bad).is_err(), "{bad:?}");
        }
        let id = default_instance_id(9000);
        assert!(id.ends_with("-9000"), "{id}");
        assert!(check_instance_id(&id).is_ok(), "{id}");
    }
}
