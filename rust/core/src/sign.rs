//! Pulse signing: hex HMAC-SHA256 over `body + "." + timestamp` (docs/protocol.md#signing-a-pulse).
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

/// A streaming pulse signature: feed the message in pieces, then take the hex.
pub struct Signer(HmacSha256);

impl Signer {
    pub fn new(secret_key: &[u8]) -> Self {
        Signer(begin(secret_key))
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The 64 lowercase hex characters of the MAC.
    pub fn finish_hex(self, out: &mut [u8; 64]) {
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&self.0.finalize().into_bytes());
        to_hex(&digest, out);
    }
}

/// Lowercase hex of `bytes` into `out` (twice as long).
pub fn to_hex(bytes: &[u8; 32], out: &mut [u8; 64]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 15) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;

    fn hex(body: &[u8], ts: &[u8], key: &[u8]) -> String {
        let mut d = [0u8; 32];
        sign_pulse(body, ts, key, &mut d);
        let mut h = [0u8; 64];
        to_hex(&d, &mut h);
        String::from_utf8(h.to_vec()).unwrap()
    }

    #[test]
    fn rfc4231_case_2() {
        // RFC 4231 test case 2: HMAC-SHA256 keyed "Jefe".
        let mut mac = begin(b"Jefe");
        mac.update(b"what do ya want for nothing?");
        let mut d = [0u8; 32];
        d.copy_from_slice(&mac.finalize().into_bytes());
        let mut h = [0u8; 64];
        to_hex(&d, &mut h);
        assert_eq!(&h[..], &b"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"[..]);
    }

    #[test]
    fn signs_body_dot_timestamp_with_long_keys_too() {
        let mut mac = begin(b"k");
        mac.update(b"{}.1740000060000");
        let mut d = [0u8; 32];
        d.copy_from_slice(&mac.finalize().into_bytes());
        let mut h = [0u8; 64];
        to_hex(&d, &mut h);
        assert_eq!(hex(b"{}", b"1740000060000", b"k").as_bytes(), &h[..]);
        let long_key = [7u8; 200]; // longer than the block: hashed first
        assert_ne!(hex(b"{}", b"1", &long_key), hex(b"{}", b"1", &long_key[..199]));
    }
}
