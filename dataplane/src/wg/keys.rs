//! WireGuard key types: the Curve25519 private and public keys and the
//! optional preshared key, in the standard base64 form `wg genkey`,
//! `wg pubkey` and `wg genpsk` print (44 characters, one `=` of padding).
//!
//! Secrets are zeroized on drop, their `Debug` output is redacted and they
//! have no `Display`. [`KeyError`] messages never include key material, not
//! even the offending character of a bad base64 string.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand_core::CryptoRngCore;
use x25519_dalek::{SharedSecret, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of every WireGuard key in bytes.
pub const KEY_LEN: usize = 32;
/// Length of a key in standard base64.
pub const KEY_BASE64_LEN: usize = 44;

/// Why a key could not be parsed or loaded. The text names the problem and,
/// for files, the path and mode, but never any part of the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The string is not valid standard base64.
    BadBase64,
    /// The string is valid base64 of the wrong length (`wg` keys are 44
    /// base64 characters encoding 32 bytes).
    WrongLength {
        /// Number of base64 characters seen (after trimming whitespace).
        chars: usize,
    },
    /// The key file could not be opened or read.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        kind: std::io::ErrorKind,
    },
    /// The key file is readable, writable or executable by group or others.
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits (`st_mode & 0o7777`).
        mode: u32,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::BadBase64 => f.write_str("key is not valid base64"),
            KeyError::WrongLength { chars } => write!(
                f,
                "key has the wrong length: expected {KEY_BASE64_LEN} base64 characters \
                 ({KEY_LEN} bytes), got {chars}"
            ),
            KeyError::Unreadable { path, kind } => {
                write!(f, "cannot read key file {}: {kind}", path.display())
            }
            KeyError::InsecurePermissions { path, mode } => write!(
                f,
                "refusing key file {}: mode {mode:04o} grants access to group or others; \
                 run `chmod 600 {}`",
                path.display(),
                path.display()
            ),
        }
    }
}

impl std::error::Error for KeyError {}

/// Decodes a 44-character standard base64 key. The decoded bytes only ever
/// live in zeroizing buffers.
fn decode_key(s: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let s = s.trim();
    if s.len() != KEY_BASE64_LEN {
        // Still report bad base64 first when the characters are wrong, so a
        // truncated paste and a garbled one read differently.
        if !s
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'=')
        {
            return Err(KeyError::BadBase64);
        }
        return Err(KeyError::WrongLength { chars: s.len() });
    }
    let mut buf = Zeroizing::new([0u8; KEY_LEN + 3]);
    let n = STANDARD
        .decode_slice(s.as_bytes(), &mut buf[..])
        .map_err(|_| KeyError::BadBase64)?;
    if n != KEY_LEN {
        return Err(KeyError::WrongLength { chars: s.len() });
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(&buf[..KEY_LEN]);
    Ok(key)
}

/// Opens a file that holds secrets (a key file, or a wg-quick file with a
/// PrivateKey), refusing one that group or others can access (as `wg`
/// warns and `wg-quick` refuses). The permission check is done on the open
/// file, so the file checked is the file read.
pub fn open_secret_file(path: &Path) -> Result<std::fs::File, KeyError> {
    let unreadable = |e: std::io::Error| KeyError::Unreadable {
        path: path.to_path_buf(),
        kind: e.kind(),
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mode = file.metadata().map_err(unreadable)?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(file)
}

/// Reads a key file (see [`open_secret_file`]).
fn read_key_file(path: &Path) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let unreadable = |e: std::io::Error| KeyError::Unreadable {
        path: path.to_path_buf(),
        kind: e.kind(),
    };
    let mut file = open_secret_file(path)?;
    // A key file is 44 characters and a newline; read a little more so an
    // over-long file is reported as the wrong length, not silently cut.
    let mut buf = Zeroizing::new([0u8; 128]);
    let mut len = 0;
    loop {
        let n = file.read(&mut buf[len..]).map_err(unreadable)?;
        if n == 0 || len + n == buf.len() {
            len += n;
            break;
        }
        len += n;
    }
    let text = std::str::from_utf8(&buf[..len]).map_err(|_| KeyError::BadBase64)?;
    decode_key(text)
}

/// Our Curve25519 private key.
#[derive(Clone)]
pub struct PrivateKey(StaticSecret);

impl PrivateKey {
    /// Wraps raw key bytes (clamping happens inside the DH, as in `wg`).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let mut bytes = bytes;
        let key = PrivateKey(StaticSecret::from(bytes));
        bytes.zeroize();
        key
    }

    /// Parses the base64 form `wg genkey` prints.
    pub fn from_base64(s: &str) -> Result<Self, KeyError> {
        decode_key(s).map(|k| Self::from_bytes(*k))
    }

    /// Loads a base64 key file (a trailing newline is fine). Refuses a file
    /// whose mode grants any permission to group or others.
    pub fn load_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        read_key_file(path.as_ref()).map(|k| Self::from_bytes(*k))
    }

    /// A fresh random key, like `wg genkey`.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill_bytes(&mut bytes[..]);
        Self::from_bytes(*bytes)
    }

    /// The matching public key, like `wg pubkey`.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(x25519_dalek::PublicKey::from(&self.0).to_bytes())
    }

    /// The base64 form, for writing a key file. Wrapped so it is zeroized.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_bytes()))
    }

    /// `DH(self, public)`.
    pub(crate) fn diffie_hellman(&self, public: &PublicKey) -> SharedSecret {
        self.0
            .diffie_hellman(&x25519_dalek::PublicKey::from(public.0))
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

/// A Curve25519 public key. Not secret: `Debug` and `Display` show the
/// base64 form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; KEY_LEN]);

impl PublicKey {
    /// Parses the base64 form `wg pubkey` prints.
    pub fn from_base64(s: &str) -> Result<Self, KeyError> {
        decode_key(s).map(|k| PublicKey(*k))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&STANDARD.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::from_base64(s)
    }
}

impl From<[u8; KEY_LEN]> for PublicKey {
    fn from(bytes: [u8; KEY_LEN]) -> Self {
        PublicKey(bytes)
    }
}

/// The optional symmetric key mixed into the handshake (`wg genpsk`).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PresharedKey([u8; KEY_LEN]);

impl PresharedKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        PresharedKey(bytes)
    }

    /// Parses the base64 form `wg genpsk` prints.
    pub fn from_base64(s: &str) -> Result<Self, KeyError> {
        decode_key(s).map(|k| PresharedKey(*k))
    }

    /// Loads a base64 key file, with the same permission rule as
    /// [`PrivateKey::load_file`].
    pub fn load_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        read_key_file(path.as_ref()).map(|k| PresharedKey(*k))
    }

    /// A fresh random key, like `wg genpsk`.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut key = PresharedKey([0; KEY_LEN]);
        rng.fill_bytes(&mut key.0);
        key
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresharedKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed secret, as `wg genkey` would print it, and its public key
    /// computed independently with x25519-dalek's raw function.
    fn fixture() -> ([u8; 32], String, String) {
        let secret: [u8; 32] =
            core::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
        let public = x25519_dalek::x25519(secret, x25519_dalek::X25519_BASEPOINT_BYTES);
        (secret, STANDARD.encode(secret), STANDARD.encode(public))
    }

    fn temp_file(name: &str, contents: &str, mode: u32) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wg-keys-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn private_key_round_trips_and_derives_wg_pubkey() {
        let (secret, secret_b64, public_b64) = fixture();
        let private = PrivateKey::from_base64(&secret_b64).unwrap();
        assert_eq!(private.to_base64().as_str(), secret_b64);
        assert_eq!(private.public_key().to_string(), public_b64);
        assert_eq!(
            PrivateKey::from_bytes(secret).public_key(),
            private.public_key()
        );

        let public: PublicKey = public_b64.parse().unwrap();
        assert_eq!(public, private.public_key());
        assert_eq!(public.to_string(), public_b64);
        assert_eq!(format!("{public:?}"), format!("PublicKey({public_b64})"));
    }

    #[test]
    fn generated_keys_differ_and_round_trip() {
        let mut rng = rand_core::OsRng;
        let a = PrivateKey::generate(&mut rng);
        let b = PrivateKey::generate(&mut rng);
        assert_ne!(a.public_key(), b.public_key());
        let again = PrivateKey::from_base64(&a.to_base64()).unwrap();
        assert_eq!(again.public_key(), a.public_key());
    }

    #[test]
    fn bad_inputs_are_rejected_with_the_right_error() {
        let (_, secret_b64, _) = fixture();
        assert_eq!(
            PublicKey::from_base64(&secret_b64[..43]),
            Err(KeyError::WrongLength { chars: 43 })
        );
        assert_eq!(
            PublicKey::from_base64(&format!("{secret_b64}AAAA")),
            Err(KeyError::WrongLength { chars: 48 })
        );
        assert_eq!(
            PublicKey::from_base64(""),
            Err(KeyError::WrongLength { chars: 0 })
        );
        let mut garbled = secret_b64.clone();
        garbled.replace_range(3..4, "-");
        assert_eq!(PublicKey::from_base64(&garbled), Err(KeyError::BadBase64));
        assert_eq!(
            PublicKey::from_base64(&"!".repeat(44)),
            Err(KeyError::BadBase64)
        );
        // 44 characters without padding decode to 33 bytes.
        assert!(PublicKey::from_base64(&"A".repeat(44)).is_err());
        assert!(PresharedKey::from_base64("not a key").is_err());
        assert!(PrivateKey::from_base64(&secret_b64[..40]).is_err());
        // Surrounding whitespace, as in a pasted config value, is fine.
        assert!(PrivateKey::from_base64(&format!("  {secret_b64}\n")).is_ok());
    }

    #[test]
    fn errors_never_contain_key_material() {
        let (_, secret_b64, _) = fixture();
        let mut garbled = secret_b64.clone();
        garbled.replace_range(10..11, "*");
        for input in [&secret_b64[..43], &garbled[..]] {
            let text = PrivateKey::from_base64(input).unwrap_err().to_string();
            assert!(!text.contains(&secret_b64[..8]), "{text}");
            assert!(!text.contains('*'), "{text}");
        }
    }

    #[test]
    fn debug_output_is_redacted() {
        let (_, secret_b64, _) = fixture();
        let private = PrivateKey::from_base64(&secret_b64).unwrap();
        let psk = PresharedKey::from_base64(&secret_b64).unwrap();
        for text in [
            format!("{private:?}"),
            format!("{psk:?}"),
            format!("{:#?}", private),
        ] {
            assert!(!text.contains(&secret_b64), "{text}");
            assert!(!text.contains(&secret_b64[..10]), "{text}");
            assert!(text.contains("<redacted>"));
        }
        assert_eq!(format!("{private:?}"), "PrivateKey(<redacted>)");
    }

    #[test]
    fn key_file_with_owner_only_mode_loads() {
        let (_, secret_b64, public_b64) = fixture();
        let path = temp_file("ok.key", &format!("{secret_b64}\n"), 0o600);
        let key = PrivateKey::load_file(&path).unwrap();
        assert_eq!(key.public_key().to_string(), public_b64);
        let path = temp_file("ok.psk", &secret_b64, 0o400);
        assert_eq!(
            PresharedKey::load_file(&path).unwrap().as_bytes(),
            &fixture().0
        );
    }

    #[test]
    fn key_file_readable_by_others_is_refused() {
        let (_, secret_b64, _) = fixture();
        let path = temp_file("open.key", &format!("{secret_b64}\n"), 0o644);
        let err = PrivateKey::load_file(&path).unwrap_err();
        assert_eq!(
            err,
            KeyError::InsecurePermissions {
                path: path.clone(),
                mode: 0o644
            }
        );
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("0644"), "{text}");
        assert!(text.contains("chmod 600"), "{text}");
        assert!(!text.contains(&secret_b64[..8]), "{text}");

        for mode in [0o640, 0o604, 0o610, 0o601] {
            let path = temp_file("mode.key", &secret_b64, mode);
            assert!(
                matches!(
                    PrivateKey::load_file(&path),
                    Err(KeyError::InsecurePermissions { mode: m, .. }) if m == mode
                ),
                "mode {mode:o}"
            );
        }
    }

    #[test]
    fn missing_or_malformed_key_file_is_reported() {
        let dir = std::env::temp_dir().join(format!("wg-keys-test-{}", std::process::id()));
        let missing = dir.join("does-not-exist.key");
        let err = PrivateKey::load_file(&missing).unwrap_err();
        assert_eq!(
            err,
            KeyError::Unreadable {
                path: missing.clone(),
                kind: std::io::ErrorKind::NotFound
            }
        );
        assert!(err.to_string().contains("does-not-exist.key"));

        let path = temp_file("long.key", &"A".repeat(200), 0o600);
        assert!(matches!(
            PrivateKey::load_file(&path),
            Err(KeyError::WrongLength { .. })
        ));
    }
}
