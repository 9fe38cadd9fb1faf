//! Request signatures (docs/protocol.md, "Signing a pulse" and "The JWT
//! exchange"): lowercase hex HMAC-SHA256 with the secret key, over the exact
//! body bytes, a dot and the timestamp header's value; the key exchange
//! prefixes `"POST\n/v1/auth/token\n"` so neither request replays as the other.
use waitstate_core::sign::Signer;

/// What the key exchange's signed string starts with.
pub const TOKEN_EXCHANGE_PREFIX: &str = "POST\n/v1/auth/token\n";

fn sign(prefix: &[u8], body: &[u8], timestamp: &str, secret_key: &str) -> String {
    let mut signer = Signer::new(secret_key.as_bytes());
    signer.update(prefix);
    signer.update(body);
    signer.update(b".");
    signer.update(timestamp.as_bytes());
    let mut hex = [0u8; 64];
    signer.finish_hex(&mut hex);
    hex.iter().map(|b| *b as char).collect()
}

/// `x-waitstate-signature` of a pulse.
///
/// ```
/// let sig = waitstate::signing::pulse_signature("{}", "1740000060000", "k");
/// assert_eq!(sig.len(), 64);
/// ```
pub fn pulse_signature(body: &str, timestamp: &str, secret_key: &str) -> String {
    sign(b"", body.as_bytes(), timestamp, secret_key)
}

/// `x-waitstate-signature` of `POST /v1/auth/token` (the SDKs send an empty body).
pub fn token_exchange_signature(body: &str, timestamp: &str, secret_key: &str) -> String {
    sign(TOKEN_EXCHANGE_PREFIX.as_bytes(), body.as_bytes(), timestamp, secret_key)
}
