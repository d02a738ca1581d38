#[test]
fn a_url_in_an_error_shows_no_path_query_or_user() {
    assert_eq!(
        redacted_url("https://hooks.slack.com/services/T0/B0/SECRET?token=x"),
        "https://hooks.slack.com/…"
    );
    assert_eq!(redacted_url("ftp://user:pw@host:21"), "ftp://host:21/…");
    assert_eq!(redacted_url("https://host"), "https://host");
    assert!(!redacted_url("hooks.example.com/SECRET").contains("SECRET"));
}

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "test.toml")
}

#[test]
fn farm_keys_are_checked() {
    let base = "[monitor]\nid = \"a\"\nstate = \"off\"\n";
    let ok = parse(&format!(
        "{base}[farm]\ngossip = \"127.0.0.1:7790\"\n[[peer]]\nid = \"b\"\ngossip = \"10.0.0.6:7790\"\n"
    ))
    .unwrap();
    let farm = ok.monitor.farm.unwrap();
    assert_eq!(farm.advertise, farm.gossip);
    assert_eq!(farm.dead_after, farm.gossip_interval * 8);
    assert_eq!(farm.peers[0].id, "b");
    // Bound on every interface, reached at one.
    let any = parse(&format!(
        "{base}[farm]\ngossip = \"0.0.0.0:7790\"\nadvertise = \"10.0.0.5:7790\"\n[[peer]]\nid = \"b\"\ngossip = \"10.0.0.6:7790\"\n"
    ))
    .unwrap();
    assert_eq!(
        any.monitor.farm.unwrap().advertise.to_string(),
        "10.0.0.5:7790"
    );
    for (text, key, reason) in [
        (
            "[[peer]]\nid = \"b\"\ngossip = \"h:1\"\n",
            "peer",
            "need a [farm]",
        ),
        ("[farm]\ngossip = \"127.0.0.1:1\"\n", "peer", "at least one"),
        (
            "[farm]\ngossip = \"nowhere\"\n[[peer]]\nid = \"b\"\ngossip = \"h:1\"\n",
            "farm.gossip",
            "not an address",
        ),
        (
            "[farm]\ngossip = \"127.0.0.1:1\"\n[[peer]]\nid = \"a\"\ngossip = \"h:1\"\n",
            "peer[0].id",
            "own id",
        ),
        (
            "[farm]\ngossip = \"127.0.0.1:1\"\n[[peer]]\nid = \"b\"\ngossip = \"h:1\"\n[[peer]]\nid = \"b\"\ngossip = \"h:2\"\n",
            "peer[1].id",
            "twice",
        ),
        (
            "[farm]\ngossip = \"127.0.0.1:1\"\ngossip_interval = \"1s\"\ndead_after = \"2s\"\n[[peer]]\nid = \"b\"\ngossip = \"h:1\"\n",
            "farm.dead_after",
            "3 gossip intervals",
        ),
        (
            "[farm]\ngossip = \"127.0.0.1:1\"\n[[peer]]\nid = \"b\"\ngossip = \"h\"\n",
            "peer[0].gossip",
            "needs a port",
        ),
        (
            "[farm]\ngossip = \"0.0.0.0:7790\"\n[[peer]]\nid = \"b\"\ngossip = \"h:1\"\n",
            "farm.gossip",
            "set [farm] advertise",
        ),
    ] {
        let err = parse(&format!("{base}{text}")).unwrap_err();
        assert_eq!(
            (err.file.as_str(), err.key.as_str()),
            ("test.toml", key),
            "{err}"
        );
        assert!(err.reason.contains(reason), "{key}: {}", err.reason);
    }
}

#[test]
fn the_farm_key_is_read_and_checked_and_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let key_text = "farm-key = \"+MBOt!Fypf4F{geHp:-ksGu!]Wq4N3:<Pgtp=oZ6\"\n";
    let good = dir.path().join("farm.key");
    std::fs::write(&good, key_text).unwrap();
    let short = dir.path().join("short.key");
    std::fs::write(&short, "farm-key = \"HelloWorld\"\n").unwrap();
    let open = dir.path().join("open.key");
    std::fs::write(&open, key_text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for (path, mode) in [(&good, 0o640), (&short, 0o600), (&open, 0o644)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let farm = |extra: &str| {
        format!(
            "[monitor]\nid = \"a\"\nstate = \"off\"\n[farm]\ngossip = \"127.0.0.1:7790\"\n{extra}[[peer]]\nid = \"b\"\ngossip = \"10.0.0.6:7790\"\n"
        )
    };
    let sealed = parse(&farm(&format!("key_file = \"{}\"\n", good.display()))).unwrap();
    let key = sealed.monitor.farm.unwrap().key.unwrap();
    assert_eq!(
        z85::encode(key.0),
        "+MBOt!Fypf4F{geHp:-ksGu!]Wq4N3:<Pgtp=oZ6"
    );
    assert_eq!(format!("{key:?}"), "FarmKey(..)");
    assert!(
        parse(&farm(""))
            .unwrap()
            .monitor
            .farm
            .unwrap()
            .key
            .is_none()
    );
    for (extra, key, reason) in [
        (
            format!("key_file = \"{}\"\n", dir.path().join("none.key").display()),
            "farm.key_file",
            "cannot read",
        ),
        (
            format!("key_file = \"{}\"\n", short.display()),
            "farm.key_file",
            "not 32 bytes",
        ),
        (
            format!("key_file = \"{}\"\n", open.display()),
            "farm.key_file",
            "open to every user (mode 644)",
        ),
        (
            "key_env = \"QCIC_TEST_NO_SUCH_FARM_KEY\"\n".to_owned(),
            "farm.key_env",
            "not set",
        ),
        (
            format!("key_file = \"{}\"\nkey_env = \"X\"\n", good.display()),
            "farm.key_env",
            "not both",
        ),
    ] {
        let err = parse(&farm(&extra)).unwrap_err();
        assert_eq!(err.key, key, "{err}");
        assert!(err.reason.contains(reason), "{key}: {}", err.reason);
        assert!(!err.reason.contains("HelloWorld"), "{}", err.reason);
    }
}

#[test]
fn the_issue_example_parses() {
    let config = parse(
        r#"
        [monitor]
        id = "watcher-a"
        listen = ["tcp://127.0.0.1:7700"]

        [[job]]
        name = "nightly-etl"
        every = "10s"
        grace = "5s"
        max_runtime = "1m"

        [[notify]]
        kind = "email"
        smtp = "smtp://127.0.0.1:2525"
        from = "qcic@example.com"
        to = ["ops@example.com"]

        [[notify]]
        kind = "zmq"
        publish = "tcp://127.0.0.1:7701"
        "#,
    )
    .unwrap();
    assert_eq!(config.monitor.id, "watcher-a");
    assert!(matches!(config.jobs[0].schedule, Schedule::Every(d) if d == Duration::from_secs(10)));
    assert_eq!(config.jobs[0].grace, Duration::from_secs(5));
    assert_eq!(config.jobs[0].max_runtime, Some(Duration::from_secs(60)));
    assert_eq!(config.notify.len(), 2);
}

#[test]
fn the_embedded_default_parses() {
    let config = Config::embedded().unwrap();
    assert!(!config.jobs.is_empty());
}

#[test]
fn errors_name_file_key_and_reason() {
    let err = parse("[[job]]\nname = \"a\"\nevery = \"10 parsecs\"\n").unwrap_err();
    assert_eq!(err.file, "test.toml");
    assert_eq!(err.key, "job[0].every");
    assert!(err.reason.contains("10 parsecs"), "{err}");
    assert!(err.reason.contains("line 3"), "{err}");

    let err = parse("[[job]]\nname = \"a\"\nevery = \"1s\"\ngrase = \"1s\"\n").unwrap_err();
    assert!(err.reason.contains("grase"), "{err}");

    let err = parse("[[job]]\nname = \"a b\"\nevery = \"1s\"\n").unwrap_err();
    assert_eq!(err.key, "job[0].name");

    let err =
        parse("[[job]]\nname = \"a\"\nevery = \"1s\"\n[[job]]\nname = \"a\"\nevery = \"2s\"\n")
            .unwrap_err();
    assert_eq!(err.key, "job[1].name");
    assert!(err.reason.contains("twice"));

    let err = parse(
        "[[notify]]\nkind = \"email\"\nsmtp = \"smtp://x\"\nfrom = \"nope\"\nto = [\"a@b.c\"]\n",
    )
    .unwrap_err();
    assert_eq!(err.key, "notify[0].from");

    let err = parse("[[notify]]\nkind = \"pigeon\"\n").unwrap_err();
    assert!(err.key.starts_with("notify[0]"), "{err}");
    assert!(err.reason.contains("pigeon"), "{err}");

    let err = parse("[monitor]\nlisten = [\"7700\"]\n").unwrap_err();
    assert_eq!(err.key, "monitor.listen[0]");

    let err = parse("[monitor\n").unwrap_err();
    assert_eq!(err.key, "(syntax)");
    assert!(err.to_string().starts_with("test.toml: "));
}

#[test]
fn a_broken_template_is_refused_with_its_channel_file_and_line() {
    let base = "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[notify]]\nname = \"ops\"\nkind = \"slack\"\nurl = \"https://h/s\"\n";
    let err = Config::parse(
        &format!("{base}template = \"ok\\n{{{{ job | nosuch }}}}\"\n"),
        "t.toml",
    )
    .unwrap_err();
    assert_eq!(err.key, "notify[0].template", "{err}");
    assert!(err.reason.contains("channel \"ops\""), "{err}");
    assert!(err.reason.contains("line 2"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("slack.json");
    std::fs::write(&file, "{\n  \"text\": {{ jbo }}\n}\n").unwrap();
    let err = Config::parse(
        &format!("{base}template_file = \"{}\"\n", file.display()),
        "t.toml",
    )
    .unwrap_err();
    assert_eq!(err.key, "notify[0].template_file", "{err}");
    assert!(
        err.reason.contains(&format!("{} line 2", file.display())),
        "{err}"
    );
    assert!(err.reason.contains("the names: event, job"), "{err}");

    for (keys, key, says) in [
        (
            "template = \"x\"\ntemplate_file = \"y\"\n",
            "notify[0].template_file",
            "not both",
        ),
        (
            "template_file = \"/nonexistent/t\"\n",
            "notify[0].template_file",
            "cannot read",
        ),
        (
            "template_format = \"yaml\"\ntemplate = \"x\"\n",
            "notify[0].template_format",
            "not a template format",
        ),
        (
            "template_format = \"json\"\ntemplate = \"{{ job }}: x\"\n",
            "notify[0].template",
            "no JSON",
        ),
        (
            "template_format = \"text\"\n",
            "notify[0].template_format",
            "no template",
        ),
        (
            "template_format = \"json\"\ntemplate = \"{{ text }}\"\n",
            "notify[0].template",
            "not a JSON object",
        ),
        (
            "group_max = 50\ngroup_wait = \"off\"\n",
            "notify[0].group_max",
            "set group_wait",
        ),
    ] {
        let err = Config::parse(&format!("{base}{keys}"), "t.toml").unwrap_err();
        assert_eq!(err.key, key, "{keys}: {err}");
        assert!(err.reason.contains(says), "{keys}: {err}");
    }
    // A misspelt key is still refused beside the flattened ones.
    let err = Config::parse(&format!("{base}templat = \"x\"\n"), "t.toml").unwrap_err();
    assert!(err.to_string().contains("templat"), "{err}");
}

#[test]
fn an_smtp_url_is_read_at_check_and_its_password_never_shown() {
    let base = "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[notify]]\nkind = \"email\"\nfrom = \"q@example.com\"\nto = [\"a@example.com\"]\n";
    for url in [
        "smtp://user:S3cretPW@127.0.0.1:2525?tls=yes",
        "SMTP://user:S3cretPW@127.0.0.1:2525",
    ] {
        let err = Config::parse(&format!("{base}smtp = \"{url}\"\n"), "t.toml").unwrap_err();
        assert_eq!(err.key, "notify[0].smtp", "{err}");
        assert!(!err.to_string().contains("S3cret"), "{err}");
    }
    assert!(
        Config::parse(
            &format!("{base}smtp = \"smtp://u:p@127.0.0.1:2525?tls=required\"\n"),
            "t.toml"
        )
        .is_ok()
    );
}

#[test]
fn an_alertmanager_channel_is_checked_with_its_key_named() {
    let base = "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[notify]]\nkind = \"alertmanager\"\n";
    for (keys, key, reason) in [
        ("url = []\n", "notify[0].url", "at least one"),
        (
            "url = [\"http://a:9093\", \"am:9093\"]\n",
            "notify[0].url[1]",
            "http(s) URL",
        ),
        (
            "url = \"http://a:9093\"\nlabels = { \"team-name\" = \"x\" }\n",
            "notify[0].labels.team-name",
            "label name",
        ),
        (
            "url = \"http://a:9093\"\nlabels = { job = \"x\" }\n",
            "notify[0].labels.job",
            "sets this label itself",
        ),
        (
            "url = \"http://a:9093\"\nresend = \"100ms\"\n",
            "notify[0].resend",
            "at least 1s",
        ),
        (
            "url = \"http://a:9093\"\nusername = \"u\"\n",
            "notify[0].password",
            "go together",
        ),
    ] {
        let err = Config::parse(&format!("{base}{keys}"), "t.toml").unwrap_err();
        assert_eq!(err.key, key, "{err}");
        assert!(err.to_string().contains(reason), "{err}");
    }
    let ok = Config::parse(&format!("{base}url = \"http://a:9093\"\n"), "t.toml").unwrap();
    match &ok.notify[0] {
        NotifyConfig::Alertmanager(am) => assert_eq!(am.url, ["http://a:9093"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_pagerduty_channel_is_checked_with_its_key_named() {
    let base = "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[notify]]\nkind = \"pagerduty\"\n";
    for (keys, key, reason) in [
        (
            "routing_key = \"\"\n",
            "notify[0].routing_key",
            "routing key",
        ),
        (
            "routing_key = \"k\"\nurl = \"ftp://x\"\n",
            "notify[0].url",
            "http",
        ),
        (
            "routing_key = \"k\"\nseverity = { down = \"fatal\" }\n",
            "notify[0].severity.down",
            "not a PagerDuty severity",
        ),
        (
            "routing_key = \"k\"\nseverity = { sideways = \"info\" }\n",
            "notify[0].severity.sideways",
            "not an event",
        ),
    ] {
        let err = Config::parse(&format!("{base}{keys}"), "t.toml").unwrap_err();
        assert_eq!(err.key, key, "{err}");
        assert!(err.reason.contains(reason), "{err}");
    }
    assert!(Config::parse(&format!("{base}routing_key = \"env:X\"\n"), "t.toml").is_ok());
}

#[test]
fn an_ntfy_channel_is_checked_with_its_key_named() {
    let base = "[[job]]\nname = \"etl\"\nevery = \"1h\"\n\n[[notify]]\nkind = \"ntfy\"\n";
    for (keys, key, reason) in [
        (
            "url = \"ntfy.sh/topic\"\n",
            "notify[0].url",
            "topic's http(s) URL",
        ),
        (
            "url = \"https://ntfy.sh/t\"\npriority = { down = \"loud\" }\n",
            "notify[0].priority.down",
            "not an ntfy priority",
        ),
        (
            "url = \"https://ntfy.sh/t\"\ntags = { sideways = [\"x\"] }\n",
            "notify[0].tags.sideways",
            "not an event",
        ),
        (
            "url = \"https://ntfy.sh/t\"\ntags = { down = [\"a,b\"] }\n",
            "notify[0].tags.down",
            "without commas",
        ),
    ] {
        let err = Config::parse(&format!("{base}{keys}"), "t.toml").unwrap_err();
        assert_eq!(err.key, key, "{err}");
        assert!(err.reason.contains(reason), "{err}");
    }
    assert!(
        Config::parse(
            &format!("{base}url = \"https://ntfy.sh/t\"\npriority = {{ late = \"5\" }}\n"),
            "t.toml"
        )
        .is_ok()
    );
}

#[test]
fn noise_control_keys_are_checked_with_their_key_named() {
    let base = "[monitor]\nid = \"a\"\nstate = \"off\"\n\
        [[notify]]\nkind = \"command\"\nname = \"pager\"\ncommand = [\"true\"]\n\
        [[job]]\nname = \"db\"\nevery = \"1m\"\n";
    let ok = parse(&format!(
        "{base}[[job]]\nname = \"etl\"\nevery = \"1h\"\ndepends_on = [\"db\"]\n\
         escalate = [{{ after = \"15m\", notify = [\"pager\"] }}]\n\
         [[job]]\nname = \"load\"\nafter = \"etl\"\nstart_within = \"10m\"\n\
         [[maintenance]]\nname = \"sunday\"\ncron = \"0 3 * * 0\"\ntimezone = \"Europe/London\"\nduration = \"2h\"\njobs = [\"db*\"]\n"
    ))
    .unwrap();
    assert_eq!(ok.jobs[1].depends_on, ["db"]);
    assert_eq!(ok.jobs[1].escalate[0].notify, ["pager"]);
    assert!(ok.jobs[2].chained_only());
    assert_eq!(ok.jobs[2].schedule_text(), "after etl");
    assert!(ok.maintenance[0].covers("db-host") && !ok.maintenance[0].covers("etl"));
    for (extra, key, reason) in [
        (
            "[[job]]\nname = \"x\"\nevery = \"1m\"\ndepends_on = [\"nope\"]\n",
            "job[1].depends_on[0]",
            "no [[job]] is named \"nope\"",
        ),
        (
            "[[job]]\nname = \"x\"\nevery = \"1m\"\ndepends_on = [\"x\"]\n",
            "job[1].depends_on[0]",
            "names the job itself",
        ),
        (
            "[[job]]\nname = \"x\"\nevery = \"1m\"\ndepends_on = [\"y\"]\n[[job]]\nname = \"y\"\nevery = \"1m\"\ndepends_on = [\"x\"]\n",
            "job[1].depends_on",
            "makes a cycle: x -> y -> x",
        ),
        (
            "[[job]]\nname = \"x\"\nafter = \"db\"\n",
            "job[1].after",
            "needs start_within",
        ),
        (
            "[[job]]\nname = \"x\"\nafter = \"nope\"\nstart_within = \"1m\"\n",
            "job[1].after",
            "no [[job]] is named",
        ),
        (
            "[[job]]\nname = \"x\"\nafter = \"x\"\nstart_within = \"1m\"\n",
            "job[1].after",
            "names the job itself",
        ),
        ("[[job]]\nname = \"x\"\n", "job[1]", "(or after = "),
        (
            "[[job]]\nname = \"x\"\nevery = \"1m\"\nescalate = [{ after = \"1m\", notify = [\"pagr\"] }]\n",
            "job[1].escalate[0].notify[0]",
            "no [[notify]] channel is named \"pagr\"",
        ),
        (
            "[[job]]\nname = \"x\"\nevery = \"1m\"\nescalate = [{ after = \"1h\", notify = [\"pager\"] }, { after = \"1m\", notify = [\"pager\"] }]\n",
            "job[1].escalate[1].after",
            "later than the step before",
        ),
        (
            "[[maintenance]]\nname = \"m\"\ncron = \"nope\"\nduration = \"1h\"\n",
            "maintenance[0].cron",
            "not a cron pattern",
        ),
        (
            "[[maintenance]]\nname = \"m\"\ncron = \"0 3 * * *\"\ntimezone = \"Mars/Olympus\"\nduration = \"1h\"\n",
            "maintenance[0].timezone",
            "IANA",
        ),
        (
            "[[maintenance]]\nname = \"m\"\ncron = \"0 3 * * *\"\nduration = \"0s\"\n",
            "maintenance[0].duration",
            "longer than 0s",
        ),
        (
            "[[maintenance]]\nname = \"m\"\ncron = \"0 * * * *\"\nduration = \"2h\"\n",
            "maintenance[0].duration",
            "would overlap",
        ),
        (
            "[[maintenance]]\nname = \"m\"\ncron = \"0 3 * * *\"\nduration = \"1h\"\njobs = [\"[\"]\n",
            "maintenance[0].jobs[0]",
            "not a name pattern",
        ),
        (
            "[http]\ntokens = [{ name = \"ops\", token_env = \"QCIC_TEST_NO_SUCH_VAR\", scope = \"write\" }]\n",
            "http.tokens[0].token_env",
            "is not set",
        ),
        (
            "[http]\ntokens = [{ name = \"ops\", token_env = \"HOME\", scope = \"admin\" }]\n",
            "http.tokens[0].scope",
            "\"read\" or \"write\"",
        ),
        (
            "[http]\ntokens = [{ name = \"ops\", scope = \"read\" }]\n",
            "http.tokens[0].token_file",
            "exactly one",
        ),
        (
            "[http]\ntokens = [{ name = \"ops\", token_file = \"/nonexistent/t\", scope = \"read\" }]\n",
            "http.tokens[0].token_file",
            "/nonexistent/t",
        ),
    ] {
        // [monitor] keys must come before the tables.
        let text = if extra.starts_with("[http]") {
            format!(
                "[monitor]\nid = \"a\"\nstate = \"off\"\n{extra}[[job]]\nname = \"db\"\nevery = \"1m\"\n[[job]]\nname = \"db2\"\nevery = \"1m\"\n"
            )
        } else {
            format!("{base}{extra}")
        };
        let err = parse(&text).unwrap_err();
        assert!(err.key.starts_with(key) || err.key == key, "{extra}: {err}");
        assert!(err.reason.contains(reason), "{extra}: {err}");
    }
}
