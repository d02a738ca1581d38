//! `qcic-monitor init`: a commented starter configuration that passes
//! `check` as written, for a first watcher in five minutes.

/// What `init` was asked for.
#[derive(Debug, Clone, Default)]
pub struct Starter {
    /// `[monitor] id` (default: the host name).
    pub id: String,
    /// Alarms by email to this address, through `smtp`.
    pub email: Option<(String, String)>,
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
    format!(
        r#"# qcic-monitor configuration, written by `qcic-monitor init`.
# Check it with `qcic-monitor --config FILE check`; every key is in README.md.

[monitor]
id = {id:?}                          # names this watcher in every notification
listen = ["tcp://127.0.0.1:7700"]    # senders connect here; "tcp://0.0.0.0:7700" for other machines
# state = "/var/lib/qcic/{id}.db"    # default: $XDG_STATE_HOME/qcic/<id>.db

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
{email}"#,
        id = s.id,
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
}
