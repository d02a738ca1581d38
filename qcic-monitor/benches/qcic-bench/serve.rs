//! The `serve` child mode: the watcher on a generated configuration, and
//! [`Watcher`], the orchestrator's handle on one.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qcic_monitor::config::{
    Config, CurveConfig, DeclareConfig, EmailConfig, FarmConfig, FarmKey, GroupWait, JobConfig,
    MonitorConfig, NotifyConfig, PeerConfig, Route, UnknownJobs, WebhookConfig, ZmqConfig,
};
use qcic_monitor::schedule::Schedule;

use qcic_testkit::{ReservedPort, reserve_port, rss_kib};

use crate::harness::{Opts, SENTINELS, job_name};

/// The watcher, as the binary runs it, on a generated configuration.
pub(crate) fn serve(o: &Opts) {
    let jobs = o.num("jobs");
    let schedule = match (o.get("cron"), o.get("every_ms")) {
        (Some(pattern), _) => Schedule::cron(pattern, "UTC").unwrap(),
        (None, Some(ms)) => Schedule::Every(Duration::from_millis(ms.parse().unwrap())),
        (None, None) => Schedule::Every(Duration::from_secs(3600)),
    };
    let ms = |key: &str| Duration::from_millis(o.num(key) as u64);
    let farm = o.get("gossip").map(|gossip| {
        let gossip = gossip.parse().unwrap();
        FarmConfig {
            gossip,
            advertise: gossip,
            peers: vec![PeerConfig {
                id: o.get("peer_id").unwrap().to_owned(),
                gossip: o.get("peer_gossip").unwrap().to_owned(),
            }],
            gossip_interval: ms("gossip_ms"),
            peer_timeout: ms("peer_timeout_ms"),
            dead_after: ms("dead_after_ms"),
            isolation_jobs: 3,
            cluster: "qcic-bench".into(),
            // Sealed, as a farm in production runs.
            key: Some(FarmKey([0x5e; 32])),
        }
    });
    let mut list: Vec<JobConfig> = (0..jobs)
        .map(|i| JobConfig::new(&job_name(i), schedule.clone(), Duration::ZERO))
        .collect();
    for k in 0..SENTINELS {
        list.push(JobConfig::new(
            &format!("sentinel-{k}"),
            Schedule::Every(Duration::from_secs(3600)),
            Duration::ZERO,
        ));
    }
    let mut notify = vec![NotifyConfig::Zmq(ZmqConfig {
        publish: o.get("publish").unwrap().to_owned(),
        route: Route::named("pub"),
    })];
    if let Some(smtp) = o.get("smtp") {
        notify.push(NotifyConfig::Email(EmailConfig {
            smtp: smtp.to_owned(),
            from: "qcic@example.com".into(),
            to: vec!["ops@example.com".into()],
            username: None,
            password_env: None,
            password_file: None,
            subject_prefix: "[qcic]".into(),
            subject_template: None,
            body_template: None,
            body_template_file: None,
            subject: None,
            body: None,
            timeout: Duration::from_secs(30),
            // One email per notification, unless the figure measures digests.
            route: Route {
                group_wait: Some(match o.get("group_wait") {
                    Some(wait) => {
                        GroupWait::After(qcic_monitor::config::parse_duration(wait).unwrap())
                    }
                    None => GroupWait::Off,
                }),
                ..Route::named("mail")
            },
        }));
    }
    if let Some(url) = o.get("webhook") {
        notify.push(NotifyConfig::Webhook(WebhookConfig {
            url: url.to_owned(),
            headers: std::collections::BTreeMap::new(),
            timeout: Duration::from_secs(2),
            text: Default::default(),
            route: Route::named("hook"),
        }));
    }
    let curve = o.get("curve_secret").map(|z| CurveConfig {
        secret_key: z85::decode(z).unwrap().try_into().unwrap(),
        allowed_senders: None,
    });
    let config = Config {
        source: "qcic-bench".into(),
        path: None,
        monitor: MonitorConfig {
            id: o.get("id").unwrap_or("bench").into(),
            listen: vec![o.get("listen").unwrap().to_owned()],
            max_unknown_jobs: 1000,
            max_rate_per_sender: 0,
            max_connections: None,
            max_connections_per_address: 256,
            sender_ping: Duration::from_secs(60),
            max_clock_skew: Duration::from_secs(300),
            unknown_jobs: UnknownJobs::Count,
            curve,
            control: o.get("control").unwrap().into(),
            http: None,
            public_url: None,
            metrics_jobs: 10_000,
            run_duration_buckets: vec![1.0, 60.0, 3600.0],
            state: o.get("state").filter(|s| *s != "off").map(PathBuf::from),
            history: Some(qcic_monitor::config::defaults::HISTORY),
            history_runs: qcic_monitor::config::defaults::HISTORY_RUNS,
            farm,
            tokens: Vec::new(),
            metrics_public: false,
        },
        jobs: list,
        notify,
        // `declare=1`: jobs may declare themselves (the declaration figure).
        declare: o.get("declare").map(|_| DeclareConfig {
            allow: true,
            jobs: None,
            senders: None,
            max_jobs: usize::MAX,
            min_every: Duration::ZERO,
            notify: None,
            retire_after: Duration::from_secs(30 * 24 * 3600),
            curve: false,
            channels: Vec::new(),
            escalate: Vec::new(),
        }),
        maintenance: Vec::new(),
    };
    // As the binary logs (QCIC_LOG, default info; text, to stderr: a file here).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("QCIC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        term.recv().await;
    };
    runtime
        .block_on(qcic_monitor::run(config, shutdown, false))
        .unwrap();
}

/// A `serve` child and what it needs.
pub(crate) struct Watcher {
    pub(crate) child: Child,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) listen: String,
    pub(crate) publish: String,
    pub(crate) control: PathBuf,
    pub(crate) ready_after: Duration,
    /// `listen`'s and `publish`'s ports, held until the child binds them
    /// (and, held on, from any other taker while it runs).
    _ports: [ReservedPort; 2],
}

#[derive(Default, Clone)]
pub(crate) struct WatcherSpec {
    pub(crate) jobs: usize,
    pub(crate) state: Option<PathBuf>,
    pub(crate) curve_secret: Option<String>,
    pub(crate) cron: Option<String>,
    pub(crate) smtp: Option<String>,
    pub(crate) webhook: Option<String>,
    /// Extra `key=value` options for `serve` (the farm figure's).
    pub(crate) extra: Vec<String>,
}

impl Watcher {
    pub(crate) fn start(spec: &WatcherSpec) -> Watcher {
        let dir = tempfile::tempdir().unwrap();
        let ports = [reserve_port(), reserve_port()];
        let (listen, publish) = (ports[0].endpoint(), ports[1].endpoint());
        let control = dir.path().join("control.sock");
        let mut args = vec![
            "serve".to_owned(),
            format!("jobs={}", spec.jobs),
            format!("listen={listen}"),
            format!("publish={publish}"),
            format!("control={}", control.display()),
            format!(
                "state={}",
                spec.state
                    .as_ref()
                    .map_or("off".into(), |p| p.display().to_string())
            ),
        ];
        if let Some(k) = &spec.curve_secret {
            args.push(format!("curve_secret={k}"));
        }
        if let Some(c) = &spec.cron {
            args.push(format!("cron={c}"));
        }
        if let Some(s) = &spec.smtp {
            args.push(format!("smtp={s}"));
        }
        if let Some(w) = &spec.webhook {
            args.push(format!("webhook={w}"));
        }
        args.extend(spec.extra.iter().cloned());
        let log = std::fs::File::create(dir.path().join("watcher.log")).unwrap();
        let started = Instant::now();
        let child = Command::new(std::env::current_exe().unwrap())
            .args(&args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut w = Watcher {
            child,
            dir,
            listen,
            publish,
            control,
            ready_after: Duration::ZERO,
            _ports: ports,
        };
        w.ready_after = w.wait_ready(started);
        w
    }

    /// Ready = the checker answers on the control socket: configuration
    /// built, state restored, sockets bound, deadlines armed.
    fn wait_ready(&mut self, started: Instant) -> Duration {
        let req = qcic_monitor::control::Request::Ping;
        loop {
            // `ping`, not `status`: its reply for a million jobs would be
            // large, and its memory would show in the memory figure.
            if std::os::unix::net::UnixStream::connect(&self.control).is_ok()
                && qcic_monitor::control::request(&self.control, &req)
                    .is_ok_and(|r| r.contains("\"alive\":true"))
            {
                return started.elapsed();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("watcher exited with {status}: {}", self.log());
            }
            assert!(started.elapsed() < Duration::from_secs(600), "never ready");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("watcher.log")).unwrap_or_default()
    }

    pub(crate) fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }

    /// SIGTERM and wait: the clean shutdown that saves everything.
    pub(crate) fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
