//! `qcic-monitor init`: a commented starter configuration that passes
//! `check` as written, for a first watcher in five minutes.

/// What `init` was asked for.
#[derive(Debug, Clone, Default)]
pub struct Starter {
    /// `[monitor] id` (default: the host name).
    pub id: String,
    /// Alarms by email to this address, through `smtp`.
    pub email: Option<(String, String)>,
    /// For the packaged service: no fixed id (the host name at run time),
    /// state in `/var/lib/qcic`, the control socket in `/run/qcic`. The
    /// Debian package's `/etc/qcic/monitor.toml` is this text.
    pub system: bool,
}

/// The starter configuration's text.
pub fn starter(s: &Starter) -> String {
    let email = match &s.email {
        Some((to, smtp)) => format!(
            r#"
# Alarms by email (SMTP; add ?tls=required for STARTTLS, or use smtps://).
[[notify]]
kind = "email"
name = "ops-mail"
smtp = {smtp:?}
from = "qcic@{host}"
to = [{to:?}]
# username = "qcic"                  # and password_env / password_file
"#,
            host = s.id,
        ),
        None => r#"
# Alarms go to the log (stderr). Add channels, e.g. email:
# [[notify]]
# kind = "email"
# smtp = "smtp://mail.example.com:587?tls=required"
# from = "qcic@example.com"
# to = ["ops@example.com"]
"#
        .to_owned(),
    };
    let monitor = if s.system {
        r#"# The qcic-monitor service (systemd: qcic-monitor.service, user qcic).
# Check it with `qcic-monitor --config /etc/qcic/monitor.toml check`, then
# `systemctl enable --now qcic-monitor`; every key is in README.md. Secrets
# (SMTP passwords, tokens) go in /etc/qcic/monitor.env, never here.

[monitor]
# id = "watcher-a"                   # names this watcher in every notification; default: the host name
listen = ["tcp://127.0.0.1:7700"]    # senders connect here; "tcp://0.0.0.0:7700" for other machines
state = "/var/lib/qcic/monitor.db"   # the service's StateDirectory
control = "/run/qcic/monitor.sock"   # the service's RuntimeDirectory: `qcic-monitor --config /etc/qcic/monitor.toml status`
"#
        .to_owned()
    } else {
        format!(
            r#"# qcic-monitor configuration, written by `qcic-monitor init`.
# Check it with `qcic-monitor --config FILE check`; every key is in README.md.

[monitor]
id = {id:?}                          # names this watcher in every notification
listen = ["tcp://127.0.0.1:7700"]    # senders connect here; "tcp://0.0.0.0:7700" for other machines
# state = "/var/lib/qcic/{id}.db"    # default: $XDG_STATE_HOME/qcic/<id>.db
"#,
            id = s.id
        )
    };
    format!(
        r#"{monitor}
[http]
listen = "127.0.0.1:7780"            # the status page: http://127.0.0.1:7780/

# One job: a message is expected at least every 10 minutes (plus grace).
# Send one from a crontab line with `qcic run --job example -- your-command`.
[[job]]
name = "example"
every = "10m"
grace = "2m"
# cron = "30 2 * * *"                # or: runs at these times (then no every)
# max_runtime = "1h"                 # a run not ended within this is overrun
{email}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starter_passes_check_with_and_without_email() {
        for email in [
            None,
            Some((
                "ops@example.com".to_owned(),
                "smtp://127.0.0.1:2525".to_owned(),
            )),
        ] {
            let text = starter(&Starter {
                id: "host-1".into(),
                email,
                system: false,
            });
            let config = crate::config::Config::parse(&text, "init").unwrap();
            assert_eq!(config.monitor.id, "host-1");
            assert_eq!(config.jobs[0].name, "example");
            assert_eq!(
                config.notify.len(),
                usize::from(text.contains("\nkind = \"email\""))
            );
            assert!(config.monitor.http.is_some());
        }
    }

    /// The Debian package ships `init --system` as its conffile; a change
    /// to the starter must reach the package (`QCIC_BLESS=1` rewrites it).
    #[test]
    fn the_packaged_config_is_init_system_and_passes_check() {
        let text = starter(&Starter {
            id: String::new(),
            email: None,
            system: true,
        });
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/debian/monitor.toml");
        if std::env::var_os("QCIC_BLESS").is_some() {
            std::fs::write(path, &text).unwrap();
        }
        let shipped = std::fs::read_to_string(path).unwrap();
        assert_eq!(
            shipped, text,
            "{path} differs from `qcic-monitor init --system`: QCIC_BLESS=1 cargo test -p qcic-monitor --lib starter"
        );
        let config = crate::config::Config::parse(&text, "monitor.toml").unwrap();
        assert_eq!(
            config.monitor.state.as_deref(),
            Some(std::path::Path::new("/var/lib/qcic/monitor.db"))
        );
    }
}
