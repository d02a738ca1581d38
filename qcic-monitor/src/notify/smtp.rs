//! The email channel's SMTP transport: lettre's SMTP client over a TCP
//! connection of our own, with `TCP_NODELAY` set.
//!
//! Why not `AsyncSmtpTransport`: lettre writes the end-of-data marker
//! (`\r\n.\r\n`) in a write of its own after the message. With Nagle's
//! algorithm on, that small second write waits until the server acknowledges
//! the first, and the server delays that ACK (40 ms on Linux) because it has
//! nothing to answer yet: every email waited ~40 ms on loopback, a burst of
//! them through four lanes took seconds. lettre 0.11 has no way to set
//! `TCP_NODELAY` on the sockets it opens, but its connection type
//! ([`AsyncSmtpConnection::connect_with_transport`]) speaks SMTP over a
//! stream it is given. So this module opens the socket, sets `TCP_NODELAY`,
//! and does what lettre's transport did around it, in the same order with the
//! same errors: the connect (each resolved address in turn, `timeout` on each
//! connect), TLS as the URL asks (`smtps://`: TLS before the greeting, with
//! lettre's own TLS code; `?tls=required` / `?tls=opportunistic`: lettre's
//! STARTTLS), greeting and EHLO, AUTH (PLAIN or LOGIN), the email, and QUIT.
//! No SMTP is written here: every command and reply goes through lettre.
//!
//! One connection per email, dropped with the attempt (see the email
//! channel's `new` for why there is no pool).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use lettre::transport::smtp::{SMTP_PORT, SUBMISSION_PORT, SUBMISSIONS_PORT};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};

/// Why an email did not go: a failed connect, or anything lettre's client
/// reports (with its own classification: [`SmtpError::is_permanent`]).
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// The TCP connect failed or timed out (worded as lettre words it).
    #[error("Connection error: {0}")]
    Connect(io::Error),
    /// lettre's SMTP client: a reply, TLS, the network.
    #[error(transparent)]
    Smtp(#[from] lettre::transport::smtp::Error),
}

impl SmtpError {
    /// Sending the same email again will not help: a 5xx reply, or what
    /// lettre's client refuses itself (`tls=required` and a server without
    /// STARTTLS, no authentication mechanism in common, an address or
    /// text the server cannot take): a configuration to mend, not fifteen
    /// minutes of retries.
    pub fn is_permanent(&self) -> bool {
        match self {
            SmtpError::Connect(_) => false,
            SmtpError::Smtp(e) => e.is_permanent() || e.is_client(),
        }
    }
}

/// An SMTP server to send to, as `smtp://` / `smtps://` URLs name it.
pub struct SmtpTransport {
    /// As the URL writes it: resolved for the connect, and the name the
    /// server's certificate must carry.
    host: String,
    port: u16,
    tls: Tls,
    hello_name: ClientId,
    credentials: Option<Credentials>,
    /// For the TCP connect to each address (lettre's `timeout`).
    connect_timeout: Option<Duration>,
}

impl fmt::Debug for SmtpTransport {
    // Without the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tls = match &self.tls {
            Tls::None => "none",
            Tls::Opportunistic(_) => "opportunistic STARTTLS",
            Tls::Required(_) => "STARTTLS",
            Tls::Wrapper(_) => "implicit TLS",
        };
        f.debug_struct("SmtpTransport")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &tls)
            .field("hello_name", &self.hello_name)
            .field("credentials", &self.credentials.is_some())
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl SmtpTransport {
    /// From a URL, read as lettre's `AsyncSmtpTransport::from_url` reads it
    /// (the same schemes, `tls` values, default ports, EHLO name from the
    /// path, percent-encoded credentials, and the same error messages).
    pub fn from_url(url: &str) -> Result<SmtpTransport, String> {
        let connection = |e: &dyn fmt::Display| format!("Connection error: {e}");
        let parsed = reqwest::Url::parse(url).map_err(|e| connection(&e))?;
        let tls = parsed
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.to_string());
        let host = parsed
            .host_str()
            .ok_or_else(|| connection(&"smtp host undefined"))?
            .to_owned();
        let params = || TlsParameters::new(host.clone()).map_err(|e| e.to_string());
        let (port, tls) = match (parsed.scheme(), tls.as_deref()) {
            ("smtp", None) => (SMTP_PORT, Tls::None),
            ("smtp", Some("required")) => (SUBMISSION_PORT, Tls::Required(params()?)),
            ("smtp", Some("opportunistic")) => (SUBMISSION_PORT, Tls::Opportunistic(params()?)),
            ("smtps", _) => (SUBMISSIONS_PORT, Tls::Wrapper(params()?)),
            (scheme, tls) => {
                return Err(connection(&format!(
                    "Unknown scheme '{scheme}' or tls parameter '{tls:?}', note that a transport with TLS requires one of the TLS features"
                )));
            }
        };
        let hello_name = if parsed.path().len() > 1 {
            ClientId::Domain(parsed.path().trim_matches('/').to_owned())
        } else {
            ClientId::default()
        };
        let credentials = match parsed.password() {
            Some(password) => {
                let decode = |s: &str| percent_decode(s).map_err(|e| connection(&e));
                Some(Credentials::new(
                    decode(parsed.username())?,
                    decode(password)?,
                ))
            }
            None => None,
        };
        Ok(SmtpTransport {
            port: parsed.port().unwrap_or(port),
            host,
            tls,
            hello_name,
            credentials,
            // lettre's default.
            connect_timeout: Some(Duration::from_secs(60)),
        })
    }

    /// The limit on each TCP connect.
    #[must_use]
    pub fn timeout(mut self, timeout: Option<Duration>) -> SmtpTransport {
        self.connect_timeout = timeout;
        self
    }

    /// Log in with these (instead of any in the URL).
    #[must_use]
    pub fn credentials(mut self, credentials: Credentials) -> SmtpTransport {
        self.credentials = Some(credentials);
        self
    }

    /// Sends one email over a connection of its own, then QUIT (its answer
    /// or failure does not matter: the server has the email). Dropping the
    /// future (the attempt's deadline) drops the connection with it.
    pub async fn send(&self, email: lettre::Message) -> Result<Response, SmtpError> {
        let raw = email.formatted();
        let mut conn = self.connection().await?;
        let sent = conn.send(email.envelope(), &raw).await?;
        // What lettre's transport does after each email without its pool.
        conn.abort().await;
        Ok(sent)
    }

    /// A connection ready for an email: greeted, EHLO, TLS, AUTH.
    async fn connection(&self) -> Result<AsyncSmtpConnection, SmtpError> {
        let tcp = self.connect().await?;
        let mut conn = match &self.tls {
            Tls::Wrapper(params) => {
                let stream = ImplicitTls::handshake(tcp, params.clone()).await?;
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello_name)
                    .await?
            }
            _ => {
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello_name).await?
            }
        };
        match &self.tls {
            Tls::Opportunistic(params) if conn.can_starttls() => {
                conn.starttls(params.clone(), &self.hello_name).await?;
            }
            Tls::Required(params) => conn.starttls(params.clone(), &self.hello_name).await?,
            _ => {}
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(conn)
    }

    /// The TCP connection, with `TCP_NODELAY`: each address the host
    /// resolves to in turn, as lettre does.
    async fn connect(&self) -> Result<TcpStream, SmtpError> {
        // An IPv6 literal is written in brackets in a URL.
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        let addrs = tokio::net::lookup_host((host, self.port))
            .await
            .map_err(SmtpError::Connect)?;
        let mut last = None;
        for addr in addrs {
            let socket = match addr {
                SocketAddr::V4(_) => TcpSocket::new_v4(),
                SocketAddr::V6(_) => TcpSocket::new_v6(),
            }
            .map_err(SmtpError::Connect)?;
            let connected = match self.connect_timeout {
                Some(limit) => tokio::time::timeout(limit, socket.connect(addr))
                    .await
                    .unwrap_or_else(|_| {
                        Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "connection timed out",
                        ))
                    }),
                None => socket.connect(addr).await,
            };
            match connected {
                Ok(stream) => {
                    // The point of this module: each write goes out at
                    // once, so the end-of-data marker does not wait for
                    // the server's delayed ACK of the message before it.
                    stream.set_nodelay(true).map_err(SmtpError::Connect)?;
                    return Ok(stream);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(SmtpError::Connect(last.unwrap_or_else(|| {
            io::Error::other("could not resolve to any supported address")
        })))
    }
}

// lettre's network stream: the only public way to its TLS code (it runs
// rustls with the root certificates and settings `TlsParameters` built).
// Deprecated in 0.11 ("not meant to be made public") but there through
// 0.11, which Cargo.toml pins; lettre's own transport uses it the same way.
#[allow(deprecated)]
type LettreStream = lettre::transport::smtp::client::AsyncNetworkStream;

/// Implicit TLS (`smtps://`) over our socket: lettre's TLS stream (which
/// speaks the `futures-io` traits) handed back to lettre's SMTP client as a
/// tokio stream.
#[derive(Debug)]
struct ImplicitTls(LettreStream);

impl ImplicitTls {
    /// The TLS handshake, before the server's greeting.
    #[allow(deprecated)]
    async fn handshake(tcp: TcpStream, params: TlsParameters) -> Result<ImplicitTls, SmtpError> {
        let mut stream = LettreStream::use_existing_tokio1(Box::new(tcp));
        stream.upgrade_tls(params).await?;
        Ok(ImplicitTls(stream))
    }
}

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }
}

impl AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let read =
            futures_io::AsyncRead::poll_read(Pin::new(&mut self.0), cx, buf.initialize_unfilled());
        let n = ready!(read)?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        futures_io::AsyncWrite::poll_write(Pin::new(&mut self.0), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_flush(Pin::new(&mut self.0), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_close(Pin::new(&mut self.0), cx)
    }
}

/// `%XX` decoded (other `%` kept as written), then UTF-8: what lettre does
/// to a URL's user name and password.
fn percent_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if let (b'%', Some(Some(hi)), Some(Some(lo))) = (
            bytes[i],
            bytes.get(i + 1).copied().map(hex),
            bytes.get(i + 2).copied().map(hex),
        ) {
            // Two hex digits: at most 255.
            out.push(u8::try_from(hi * 16 + lo).unwrap_or_default());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lettre::transport::smtp::client::Certificate;
    use lettre::{AsyncSmtpTransport, Tokio1Executor};
    use qcic_testkit::{ReservedPort, Smtp, python, reserve_port};
    use std::process::{Child, Command, Stdio};

    #[test]
    fn smtp_urls_read_as_lettre_reads_them() {
        let plain = SmtpTransport::from_url("smtp://127.0.0.1").unwrap();
        assert_eq!(plain.port, 25);
        assert!(matches!(plain.tls, Tls::None));
        assert_eq!(plain.hello_name, ClientId::default());
        assert!(plain.credentials.is_none());
        let starttls = SmtpTransport::from_url("smtp://mail.example.com?tls=required").unwrap();
        assert_eq!(starttls.port, 587);
        assert!(matches!(&starttls.tls, Tls::Required(p) if p.domain() == "mail.example.com"));
        let maybe = SmtpTransport::from_url("smtp://h:2525?tls=opportunistic").unwrap();
        assert_eq!(maybe.port, 2525);
        assert!(matches!(maybe.tls, Tls::Opportunistic(_)));
        let implicit = SmtpTransport::from_url("smtps://u:p%40ss%20w@h/qcic.example").unwrap();
        assert_eq!(implicit.port, 465);
        assert!(matches!(implicit.tls, Tls::Wrapper(_)));
        assert_eq!(implicit.hello_name, ClientId::Domain("qcic.example".into()));
        assert_eq!(
            implicit.credentials,
            Some(Credentials::new("u".into(), "p@ss w".into()))
        );
        // Never in the debug output.
        assert!(!format!("{implicit:?}").contains("p@ss"));
        // Refused as lettre refuses them, in the same words.
        for bad in [
            "smtp://h?tls=always",
            "imap://h",
            "smtp:/no-host",
            "not a url",
            "smtps://u:%ff@h",
        ] {
            let ours = SmtpTransport::from_url(bad).unwrap_err();
            let lettres = AsyncSmtpTransport::<Tokio1Executor>::from_url(bad)
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert_eq!(ours, lettres, "{bad}");
        }
    }

    #[tokio::test]
    async fn smtp_sockets_have_nodelay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let transport = SmtpTransport::from_url(&format!("smtp://127.0.0.1:{port}")).unwrap();
        let stream = transport.connect().await.unwrap();
        assert!(stream.nodelay().unwrap());
    }

    #[tokio::test]
    async fn smtp_connect_refused_is_temporary_and_worded_as_lettre() {
        // Held, nobody listening: refused.
        let held = reserve_port();
        let url = format!("smtp://127.0.0.1:{}", held.port());
        let ours = SmtpTransport::from_url(&url)
            .unwrap()
            .send(email())
            .await
            .unwrap_err();
        assert!(!ours.is_permanent());
        let lettres = lettre::AsyncTransport::send(
            &AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
                .unwrap()
                .build(),
            email(),
        )
        .await
        .unwrap_err();
        assert_eq!(ours.to_string(), lettres.to_string());
    }

    fn email() -> lettre::Message {
        lettre::Message::builder()
            .from("qcic@example.com".parse().unwrap())
            .to("ops@example.com".parse().unwrap())
            .subject("smtp test")
            .body("hello".to_owned())
            .unwrap()
    }

    #[tokio::test]
    async fn smtp_plain_delivers() {
        let smtp = Smtp::start();
        let transport = SmtpTransport::from_url(&smtp.url()).unwrap();
        transport.send(email()).await.unwrap();
        transport.send(email()).await.unwrap();
        let mails = tokio::task::spawn_blocking(move || smtp.wait_for(2))
            .await
            .unwrap();
        assert!(mails[0].contains("Subject: smtp test"), "{mails:?}");
    }

    /// aiosmtpd with a fresh self-signed certificate for 127.0.0.1, its
    /// TLS mode given by `tls_args` (`{cert}`/`{key}` replaced).
    struct TlsServer {
        child: Child,
        port: u16,
        cert: Vec<u8>,
        maildir: tempfile::TempDir,
        _dir: tempfile::TempDir,
        _held: ReservedPort,
    }

    impl TlsServer {
        fn start(tls_args: &[&str]) -> TlsServer {
            let dir = tempfile::tempdir().unwrap();
            let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            let made = Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
                .args(["-subj", "/CN=qcic-test"])
                .args(["-addext", "subjectAltName=IP:127.0.0.1"])
                .args(["-addext", "basicConstraints=critical,CA:FALSE"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .stderr(Stdio::null())
                .status()
                .expect("openssl (the command) makes the test certificate");
            assert!(made.success());
            let maildir = tempfile::tempdir().unwrap();
            for sub in ["cur", "new", "tmp"] {
                std::fs::create_dir(maildir.path().join(sub)).unwrap();
            }
            // Held until aiosmtpd binds it (with SO_REUSEADDR).
            let held = reserve_port();
            let port = held.port();
            let args = tls_args.iter().map(|a| match *a {
                "{cert}" => cert.to_str().unwrap().to_owned(),
                "{key}" => key.to_str().unwrap().to_owned(),
                a => a.to_owned(),
            });
            let child = Command::new(python())
                .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
                .args(args)
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(maildir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("aiosmtpd (scripts/setup.sh installs it)");
            let up = qcic_testkit::wait_until(qcic_testkit::WAIT, || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
            assert!(up, "aiosmtpd did not start");
            TlsServer {
                child,
                port,
                cert: std::fs::read(&cert).unwrap(),
                maildir,
                _dir: dir,
                _held: held,
            }
        }

        /// TLS parameters trusting only the test certificate.
        fn params(&self) -> TlsParameters {
            TlsParameters::builder("127.0.0.1".into())
                .add_root_certificate(Certificate::from_pem(&self.cert).unwrap())
                .build()
                .unwrap()
        }

        fn emails(&self) -> usize {
            std::fs::read_dir(self.maildir.path().join("new"))
                .unwrap()
                .count()
        }
    }

    impl Drop for TlsServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[tokio::test]
    async fn smtp_starttls_delivers_and_checks_the_certificate() {
        // aiosmtpd refuses MAIL before STARTTLS.
        let server = TlsServer::start(&["--tlscert", "{cert}", "--tlskey", "{key}"]);
        let url = format!("smtp://127.0.0.1:{}?tls=required", server.port);
        let untrusted = SmtpTransport::from_url(&url).unwrap();
        let refused = untrusted.send(email()).await.unwrap_err();
        assert!(!refused.is_permanent(), "{refused}");
        let mut transport = SmtpTransport::from_url(&url).unwrap();
        transport.tls = Tls::Required(server.params());
        transport.send(email()).await.unwrap();
        assert_eq!(server.emails(), 1);
    }

    #[tokio::test]
    async fn smtps_implicit_tls_delivers_and_checks_the_certificate() {
        let server = TlsServer::start(&["--smtpscert", "{cert}", "--smtpskey", "{key}"]);
        let url = format!("smtps://127.0.0.1:{}", server.port);
        let untrusted = SmtpTransport::from_url(&url).unwrap();
        let refused = untrusted.send(email()).await.unwrap_err();
        assert!(!refused.is_permanent(), "{refused}");
        let mut transport = SmtpTransport::from_url(&url).unwrap();
        transport.tls = Tls::Wrapper(server.params());
        transport.send(email()).await.unwrap();
        transport.send(email()).await.unwrap();
        assert_eq!(server.emails(), 2);
    }

    /// aiosmtpd insisting on AUTH (without TLS, for the test): user
    /// "qcic", password "p@ss word".
    const AUTH_SERVER: &str = r#"
import asyncio, sys
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

def check(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"qcic", b"p@ss word")
    return AuthResult(success=ok, handled=False)  # aiosmtpd answers 235 or 535

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Mailbox(sys.argv[2]), authenticator=check,
                     auth_required=True, auth_require_tls=False),
        "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()

asyncio.run(main())
"#;

    #[tokio::test]
    async fn smtp_auth_logs_in_and_a_wrong_password_is_permanent() {
        let maildir = tempfile::tempdir().unwrap();
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir(maildir.path().join(sub)).unwrap();
        }
        let held = reserve_port();
        let port = held.port();
        let mut child = Command::new(python())
            .args(["-c", AUTH_SERVER, &port.to_string()])
            .arg(maildir.path())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let up = qcic_testkit::wait_until(qcic_testkit::WAIT, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let url = format!("smtp://127.0.0.1:{port}");
        let results = if up {
            let given = SmtpTransport::from_url(&url)
                .unwrap()
                .credentials(Credentials::new("qcic".into(), "p@ss word".into()))
                .send(email())
                .await;
            let in_url =
                SmtpTransport::from_url(&format!("smtp://qcic:p%40ss%20word@127.0.0.1:{port}"))
                    .unwrap()
                    .send(email())
                    .await;
            let wrong = SmtpTransport::from_url(&url)
                .unwrap()
                .credentials(Credentials::new("qcic".into(), "nope".into()))
                .send(email())
                .await;
            let none = SmtpTransport::from_url(&url).unwrap().send(email()).await;
            Some((given, in_url, wrong, none))
        } else {
            None
        };
        let _ = child.kill();
        let _ = child.wait();
        drop(held);
        let (given, in_url, wrong, none) = results.expect("the AUTH server did not start");
        given.unwrap();
        in_url.unwrap();
        let wrong = wrong.unwrap_err();
        assert!(wrong.is_permanent(), "{wrong}");
        assert!(wrong.to_string().contains("535"), "{wrong}");
        let none = none.unwrap_err();
        assert!(none.is_permanent(), "{none}");
        let count = std::fs::read_dir(maildir.path().join("new"))
            .unwrap()
            .count();
        assert_eq!(count, 2);
    }
}
