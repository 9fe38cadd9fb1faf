//! Pulse signing: hex HMAC-SHA256 over `body + "." + timestamp` (DESIGN.md, "Pulses and auth").
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub type HmacSha256 = Hmac<Sha256>;

/// Starts a MAC keyed with `secret_key`; HMAC accepts keys of any length.
pub fn begin(secret_key: &[u8]) -> HmacSha256 {
    match HmacSha256::new_from_slice(secret_key) {
        Ok(mac) => mac,
        // Unreachable: HMAC takes any key length. Fall back to an empty key rather than panic.
        Err(_) => <HmacSha256 as Mac>::new(&Default::default()),
    }
}

/// Writes the 32-byte signature of `body + "." + timestamp` into `out`.
pub fn sign_pulse(body: &[u8], timestamp: &[u8], secret_key: &[u8], out: &mut [u8; 32]) {
    let mut mac = begin(secret_key);
    mac.update(body);
    mac.update(b".");
    mac.update(timestamp);
    out.copy_from_slice(&mac.finalize().into_bytes());
}

/// Lowercase hex of `bytes` into `out` (twice as long).
pub fn to_hex(bytes: &[u8; 32], out: &mut [u8; 64]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 15) as usize];
    }
}
