//! The agent's configuration from environment variables, as a value: `main`
//! prints the message of a bad one and exits 1. Pure: the environment, the
//! hostname and the pid are arguments. It reads `WAITSTATE_PUBLISH_KEY`,
//! `WAITSTATE_SECRET_KEY`, `WAITSTATE_BASE_URL`, `WAITSTATE_SITE_ID`,
//! `WAITSTATE_INSTANCE_ID`, `WAITSTATE_SAFE_MODE_STRATEGY`,
//! `WAITSTATE_SAFE_MODE_MAX_RPS`, `PORT` and `HOST`; nothing else.
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

pub const DEFAULT_PORT: u16 = 9000;
/// Loopback only by default; a DaemonSet that serves its node's pods sets `HOST=0.0.0.0`.
pub const DEFAULT_HOST: &str = "127.0.0.1";
const SAFE_MODE_STRATEGIES: [&str; 3] = ["open", "fixed_rps", "last_policy"];
/// The control plane refuses longer ids.
const MAX_ID_LENGTH: usize = 128;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentConfig {
    pub publish_key: String,
    pub secret_key: String,
    pub base_url: String,
    pub site_id: Option<String>,
    pub instance_id: String,
    pub safe_mode_strategy: Option<String>,
    pub safe_mode_max_rps: Option<u64>,
    pub port: u16,
    pub host: String,
}

/// The instance id when `WAITSTATE_INSTANCE_ID` is unset: the hostname (the
/// pod name, or the node name with `hostNetwork`) and the pid, which stay the
/// same across a container restart and differ between two agents on one
/// machine. Characters the control plane refuses become `-`; no usable
/// hostname → a random id.
pub fn default_instance_id(hostname: &str, pid: u32) -> String {
    let suffix = format!("-{}", pid);
    let mut host = String::with_capacity(hostname.len());
    let mut in_bad_run = false;
    for c in hostname.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') {
            host.push(c);
            in_bad_run = false;
        } else if !in_bad_run {
            host.push('-');
            in_bad_run = true;
        }
    }
    let host = host.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    let host: String = host.chars().take(MAX_ID_LENGTH - suffix.len()).collect();
    if host.is_empty() {
        random_uuid()
    } else {
        format!("{}{}", host, suffix)
    }
}

/// A version-4 UUID from the standard library's randomly keyed hasher (no
/// dependency for one id per process start).
fn random_uuid() -> String {
    let word = |salt: u64| {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    };
    let (a, b) = (word(1), word(2));
    let (a, b) = ((a & !0xf000) | 0x4000, (b & !(0xc << 60)) | (0x8 << 60));
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// Reads the agent's configuration. Unset and blank variables mean the
/// default. The client checks its own options again when it starts (ids, URL).
pub fn read_config(env: &dyn Fn(&str) -> Option<String>, hostname: &str, pid: u32) -> Result<AgentConfig, String> {
    let value = |name: &str| env(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let publish_key = value("WAITSTATE_PUBLISH_KEY");
    let secret_key = value("WAITSTATE_SECRET_KEY");
    let (publish_key, secret_key) = match (publish_key, secret_key) {
        (Some(p), Some(s)) => (p, s),
        (p, _) => {
            let missing = match p {
                None if value("WAITSTATE_SECRET_KEY").is_none() => "WAITSTATE_PUBLISH_KEY and WAITSTATE_SECRET_KEY",
                None => "WAITSTATE_PUBLISH_KEY",
                Some(_) => "WAITSTATE_SECRET_KEY",
            };
            return Err(format!("{} must be set (the key pair from your WaitState dashboard)", missing));
        }
    };
    // There is no default control plane: the keys go only where the operator says.
    let base_url = value("WAITSTATE_BASE_URL")
        .ok_or("WAITSTATE_BASE_URL must be set (your control plane, e.g. http://127.0.0.1:8787 for `npm start`)")?;

    let strategy = value("WAITSTATE_SAFE_MODE_STRATEGY");
    if let Some(s) = &strategy {
        if !SAFE_MODE_STRATEGIES.contains(&s.as_str()) {
            return Err(format!(
                "WAITSTATE_SAFE_MODE_STRATEGY must be one of {}, got {}",
                SAFE_MODE_STRATEGIES.join(", "),
                serde_json::Value::String(s.clone())
            ));
        }
    }
    let rps = match value("WAITSTATE_SAFE_MODE_MAX_RPS") {
        None => None,
        // Whole calls per second: the client counts them in a token bucket of whole tokens.
        Some(text) => match text.parse::<u64>() {
            Ok(x) => Some(x),
            _ => {
                return Err(format!(
                    "WAITSTATE_SAFE_MODE_MAX_RPS must be a whole number >= 0, got {}",
                    serde_json::Value::String(text)
                ))
            }
        },
    };
    let port = match value("PORT") {
        None => DEFAULT_PORT,
        Some(text) => text
            .parse::<u16>()
            .map_err(|_| format!("PORT must be an integer from 0 to 65535, got {}", serde_json::Value::String(text)))?,
    };
    Ok(AgentConfig {
        publish_key,
        secret_key,
        base_url,
        site_id: value("WAITSTATE_SITE_ID"),
        instance_id: value("WAITSTATE_INSTANCE_ID").unwrap_or_else(|| default_instance_id(hostname, pid)),
        safe_mode_strategy: strategy,
        safe_mode_max_rps: rps,
        port,
        host: value("HOST").unwrap_or_else(|| DEFAULT_HOST.to_string()),
    })
}

/// The machine's hostname without a system call: the kernel's (Linux), else `HOSTNAME`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)]) -> Result<AgentConfig, String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        read_config(&|name| map.get(name).cloned(), "node-a", 1)
    }

    const KEYS: [(&str, &str); 3] = [
        ("WAITSTATE_PUBLISH_KEY", "pk_live_1"),
        ("WAITSTATE_SECRET_KEY", "sk_live_1"),
        ("WAITSTATE_BASE_URL", "http://cp.internal:8787"),
    ];

    #[test]
    fn defaults_port_9000_on_loopback_and_the_instance_id_from_hostname_and_pid() {
        assert_eq!(
            read(&KEYS),
            Ok(AgentConfig {
                publish_key: "pk_live_1".into(),
                secret_key: "sk_live_1".into(),
                base_url: "http://cp.internal:8787".into(),
                site_id: None,
                instance_id: "node-a-1".into(),
                safe_mode_strategy: None,
                safe_mode_max_rps: None,
                port: 9000,
                host: "127.0.0.1".into(),
            })
        );
    }

    #[test]
    fn reads_every_variable() {
        let mut vars = KEYS.to_vec();
        vars.extend([
            ("WAITSTATE_SITE_ID", "site-prod"),
            ("WAITSTATE_INSTANCE_ID", " agent-7 "),
            ("WAITSTATE_SAFE_MODE_STRATEGY", "fixed_rps"),
            ("WAITSTATE_SAFE_MODE_MAX_RPS", "25"),
            ("PORT", "0"),
            ("HOST", "0.0.0.0"),
        ]);
        let config = read(&vars).unwrap();
        assert_eq!(config.site_id.as_deref(), Some("site-prod"));
        assert_eq!(config.instance_id, "agent-7");
        assert_eq!(config.safe_mode_strategy.as_deref(), Some("fixed_rps"));
        assert_eq!(config.safe_mode_max_rps, Some(25));
        assert_eq!((config.port, config.host.as_str()), (0, "0.0.0.0"));
    }

    #[test]
    fn a_bad_or_missing_variable_is_named() {
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = KEYS.to_vec();
            vars.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
            vars.extend(extra.iter().filter(|(_, v)| *v != "<unset>"));
            read(&vars).unwrap_err()
        };
        let cases: [(Vec<(&str, &str)>, &str); 9] = [
            (vec![], "WAITSTATE_PUBLISH_KEY and WAITSTATE_SECRET_KEY must be set"),
            (vec![("WAITSTATE_PUBLISH_KEY", "pk")], "WAITSTATE_SECRET_KEY must be set"),
            (vec![("WAITSTATE_SECRET_KEY", "sk")], "WAITSTATE_PUBLISH_KEY must be set"),
            (
                vec![("WAITSTATE_PUBLISH_KEY", "pk"), ("WAITSTATE_SECRET_KEY", "sk")],
                "WAITSTATE_BASE_URL must be set",
            ),
            (
                KEYS.iter().copied().chain([("WAITSTATE_SAFE_MODE_STRATEGY", "closed")]).collect(),
                "WAITSTATE_SAFE_MODE_STRATEGY must be one of open, fixed_rps, last_policy, got \"closed\"",
            ),
            (
                KEYS.iter().copied().chain([("WAITSTATE_SAFE_MODE_MAX_RPS", "fast")]).collect(),
                "WAITSTATE_SAFE_MODE_MAX_RPS must be a whole number >= 0",
            ),
            (
                KEYS.iter().copied().chain([("WAITSTATE_SAFE_MODE_MAX_RPS", "-1")]).collect(),
                "WAITSTATE_SAFE_MODE_MAX_RPS must be",
            ),
            (
                KEYS.iter().copied().chain([("PORT", "70000")]).collect(),
                "PORT must be an integer from 0 to 65535, got \"70000\"",
            ),
            (
                KEYS.iter().copied().chain([("WAITSTATE_BASE_URL", " ")]).collect(),
                "WAITSTATE_BASE_URL must be set",
            ),
        ];
        for (vars, message) in cases.iter() {
            let got = read(vars).unwrap_err();
            assert!(got.starts_with(message), "{:?} → {:?}", vars, got);
        }
        assert!(with(&[("PORT", "http")]).starts_with("PORT must be"));
    }

    #[test]
    fn default_instance_ids_are_ids_the_control_plane_accepts() {
        assert_eq!(default_instance_id("web-7f9c", 1), "web-7f9c-1");
        assert_eq!(default_instance_id("My Laptop (2)", 4242), "My-Laptop-2--4242");
        assert_eq!(default_instance_id("_under", 1), "under-1");
        assert_eq!(default_instance_id(&"h".repeat(200), 12345), format!("{}-12345", "h".repeat(122)));
        let random = default_instance_id("---", 1);
        assert_eq!(random.len(), 36);
        assert!(random.chars().all(|c| c.is_ascii_hexdigit() || c == '-'), "{}", random);
        assert_ne!(random, default_instance_id("---", 1));
    }
}
