//! CURVE keys: decoding and making them, the environment variables that
//! carry them, and the settings a client's sockets are given.

use crate::error::Error;

/// Environment variable: the watchers' CURVE public key (Z85). Setting it
/// turns CURVE on for clients made by [`Client::new`] or
/// [`ClientBuilder::keys_from_env`].
///
/// [`Client::new`]: crate::Client::new
/// [`ClientBuilder::keys_from_env`]: crate::ClientBuilder::keys_from_env
pub const ENV_SERVER_KEY: &str = "QCIC_SERVER_KEY";
/// Environment variable: this sender's CURVE public key (Z85).
pub const ENV_CLIENT_PUBLIC_KEY: &str = "QCIC_CLIENT_PUBLIC_KEY";
/// Environment variable: this sender's CURVE secret key (Z85).
pub const ENV_CLIENT_SECRET_KEY: &str = "QCIC_CLIENT_SECRET_KEY";

/// The Z85 alphabet (ZeroMQ RFC 32).
const Z85: &[u8; 85] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// A 32-byte CURVE key from its 40 Z85 characters (surrounding blanks
/// ignored); `None` if it is anything else. libzmq's decoder does not check
/// the alphabet, so this does.
pub fn decode_curve_key(z85: &str) -> Option<[u8; 32]> {
    let z85 = z85.trim();
    if z85.len() != 40 || !z85.bytes().all(|b| Z85.contains(&b)) {
        return None;
    }
    // The z85 crate, not zmq::z85_decode: that one leaks its input copy.
    z85::decode(z85).ok()?.try_into().ok()
}

/// A fresh CURVE key pair (X25519, as libsodium's `crypto_box_keypair`).
/// Not `zmq::CurveKeyPair::new`: the zmq crate leaks its two key buffers.
pub fn new_curve_pair() -> Result<([u8; 32], [u8; 32]), Error> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)
        .map_err(|e| Error::Key(format!("no randomness for a key pair: {e}")))?;
    let public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(secret));
    Ok((*public.as_bytes(), secret))
}

fn curve_key(what: &str, z85: &str) -> Result<[u8; 32], Error> {
    decode_curve_key(z85)
        .ok_or_else(|| Error::Key(format!("{what} is not a CURVE key (40 Z85 characters)")))
}

/// An environment variable's value, if set and not blank.
fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|v: &String| !v.trim().is_empty())
}

/// [`ENV_SERVER_KEY`], if set and not blank.
pub(crate) fn server_key_from_env() -> Option<String> {
    var(ENV_SERVER_KEY)
}

/// [`ENV_CLIENT_PUBLIC_KEY`] and [`ENV_CLIENT_SECRET_KEY`], if both are set
/// and not blank.
pub(crate) fn client_keys_from_env() -> Option<(String, String)> {
    match (var(ENV_CLIENT_PUBLIC_KEY), var(ENV_CLIENT_SECRET_KEY)) {
        (Some(public), Some(secret)) => Some((public, secret)),
        _ => None,
    }
}

/// CURVE settings: the watchers' public key and this sender's key pair.
#[derive(Clone)]
pub(crate) struct Curve {
    server: [u8; 32],
    public: [u8; 32],
    secret: [u8; 32],
}

impl Curve {
    /// The CURVE settings for the keys given (Z85): `None` (no CURVE)
    /// without a server key; a fresh pair if the client keys are not given.
    pub(crate) fn resolve(
        server_key: Option<&str>,
        client_keys: Option<(&str, &str)>,
    ) -> Result<Option<Curve>, Error> {
        let Some(server_key) = server_key else {
            if client_keys.is_some() {
                return Err(Error::Key(
                    "client keys were given without the server key".into(),
                ));
            }
            return Ok(None);
        };
        if zmq::has("curve") != Some(true) {
            return Err(Error::Key(
                "this libzmq has no CURVE support; link one built with libsodium".into(),
            ));
        }
        let server = curve_key("the server key", server_key)?;
        let (public, secret) = match client_keys {
            Some((public, secret)) => (
                curve_key("the client public key", public)?,
                curve_key("the client secret key", secret)?,
            ),
            None => new_curve_pair()?,
        };
        Ok(Some(Curve {
            server,
            public,
            secret,
        }))
    }

    /// Makes `socket` a CURVE client of the watchers.
    pub(crate) fn apply(&self, socket: &zmq::Socket) -> zmq::Result<()> {
        socket.set_curve_serverkey(&self.server)?;
        socket.set_curve_publickey(&self.public)?;
        socket.set_curve_secretkey(&self.secret)
    }
}

impl std::fmt::Debug for Curve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret key.
        f.debug_struct("Curve")
            .field("server", &z85::encode(self.server))
            .field("public", &z85::encode(self.public))
            .finish_non_exhaustive()
    }
}
