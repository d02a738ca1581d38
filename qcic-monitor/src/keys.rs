//! CURVE key files, the ZeroMQ way (Z85): `qcic-monitor keygen` writes a
//! pair; the configuration reads public keys and secret-key files here.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Writes `PREFIX.key` (public and secret key, created with mode 0600) and
/// `PREFIX.pub` (public key only). Refuses to overwrite. Returns what to
/// tell the user: the public key and how to use the pair.
pub fn keygen(prefix: &Path) -> Result<String, String> {
    if zmq::has("curve") != Some(true) {
        return Err("this build's libzmq has no CURVE support".into());
    }
    let (public, secret) =
        qcic_sdk::new_curve_pair().map_err(|e| format!("cannot make a key pair: {e}"))?;
    let public = z85::encode(public);
    let secret = z85::encode(secret);
    let key_path = with_ext(prefix, ".key");
    let pub_path = with_ext(prefix, ".pub");
    for path in [&key_path, &pub_path] {
        if path.exists() {
            return Err(format!("{} exists; not overwriting a key", path.display()));
        }
    }
    write_new(
        &key_path,
        0o600,
        &format!(
            "# qcic CURVE key pair (Z85). Keep this file private.\npublic-key = \"{public}\"\nsecret-key = \"{secret}\"\n"
        ),
    )?;
    write_new(
        &pub_path,
        0o644,
        &format!("# qcic CURVE public key (Z85).\npublic-key = \"{public}\"\n"),
    )?;
    Ok(format!(
        "wrote {} (mode 0600) and {}\npublic key: {public}\n\
         For a watcher:  [curve] secret_key_file = \"{}\"\n\
         For a sender of this pair:  QCIC_CLIENT_PUBLIC_KEY='{public}' QCIC_CLIENT_SECRET_KEY=<secret-key from the .key file>\n\
         For senders of this watcher:  QCIC_SERVER_KEY='{public}'\n",
        key_path.display(),
        pub_path.display(),
        key_path.display(),
    ))
}

/// Writes `PREFIX.key` (mode 0600): a new farm key, the secret every
/// watcher of one farm shares to seal its gossip (`[farm] key_file`).
pub fn farm_keygen(prefix: &Path) -> Result<String, String> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| format!("no system randomness: {e}"))?;
    let path = with_ext(prefix, ".key");
    if path.exists() {
        return Err(format!("{} exists; not overwriting a key", path.display()));
    }
    write_new(
        &path,
        0o600,
        &format!(
            "# qcic farm key (Z85): every watcher of the farm has this same file. Keep it private.\nfarm-key = \"{}\"\n",
            z85::encode(key)
        ),
    )?;
    Ok(format!(
        "wrote {} (mode 0600)\nCopy it to every watcher of the farm and set [farm] key_file = \"{}\"\n",
        path.display(),
        path.display()
    ))
}

/// `PREFIX` + `ext`, whatever dots the prefix has.
fn with_ext(prefix: &Path, ext: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(ext);
    PathBuf::from(name)
}

fn write_new(path: &Path, mode: u32, text: &str) -> Result<(), String> {
    // create_new + mode: the secret never exists with wider permissions.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Checks a Z85 CURVE key; returns it trimmed.
pub fn public_key(z85: &str) -> Result<String, String> {
    let z85 = z85.trim();
    match qcic_sdk::decode_curve_key(z85) {
        Some(_) => Ok(z85.to_owned()),
        None => Err(format!(
            "{z85:?} is not a CURVE key (40 Z85 characters, as written by `qcic-monitor keygen`)"
        )),
    }
}

/// The public keys in a file, one Z85 key a line (blank lines and `#`
/// comments skipped); an error names the file and line.
pub fn read_public_keys_file(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        keys.push(public_key(line).map_err(|r| format!("{} line {}: {r}", path.display(), n + 1))?);
    }
    Ok(keys)
}

/// Reads a key file written by `qcic-monitor keygen`: TOML with
/// `public-key` and/or `secret-key`.
pub fn read_key_file(path: &Path, which: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| format!("{} is not a qcic key file: {}", path.display(), e.message()))?;
    table
        .get(which)
        .and_then(toml::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("{} has no {which}", path.display()))
}
