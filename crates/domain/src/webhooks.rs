//! Webhook rules (issue 19), pure: which endpoint URLs are acceptable (and
//! the SSRF guard's idea of a private address), the retry schedule of a
//! failed delivery, a delivery's status, and how a nurse is named to a
//! resident in a text message.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::error::DomainError;

/// The order steps a resident is told of by text or WeChat message.
pub const NOTIFIED_STEPS: [&str; 4] = ["assigned", "en_route", "arrived", "completed"];

/// Longest endpoint URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// An attempt got a 2xx answer.
    Delivered,
    /// Every attempt failed; waits for a replay.
    Dead,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "dead" => Some(Self::Dead),
            _ => None,
        }
    }
}

/// How failed deliveries are retried: exponential back-off from `base`,
/// doubling per failed attempt, capped at `cap`, with "equal jitter" (half
/// the delay fixed, half random) so endpoints that failed together do not
/// come back together; after `max_attempts` attempts the delivery is dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base: Duration::from_secs(5),
            cap: Duration::from_secs(3600),
        }
    }
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    RetryIn(Duration),
    Dead,
}

impl RetryPolicy {
    /// The delay before attempt `attempts + 1` without jitter: `base ×
    /// 2^(attempts-1)`, at most `cap` (`attempts` ≥ 1 have failed).
    pub fn ceiling(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(32);
        self.base
            .checked_mul(1u32 << doublings.min(31))
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// After `attempts` failed attempts (the one just made included): retry
    /// after a delay between half the ceiling and the ceiling (`jitter` in
    /// `[0, 1)` picks where), or dead when no attempt is left.
    pub fn after_failure(&self, attempts: u32, jitter: f64) -> AfterFailure {
        if attempts >= self.max_attempts {
            return AfterFailure::Dead;
        }
        let ceiling = self.ceiling(attempts);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        AfterFailure::RetryIn(ceiling.mul_f64(0.5 + 0.5 * jitter))
    }
}

/// Checks an endpoint URL: `https://` (or `http://` when `allow_http`), at
/// most [`MAX_URL_LEN`] characters, no user or password, no whitespace or
/// control characters, a host; and unless `allow_private`, a host that is
/// not `localhost` nor a private, loopback, link-local or otherwise
/// non-public IP literal (names are checked again when resolved).
/// Returns the host.
pub fn check_url(raw: &str, allow_http: bool, allow_private: bool) -> Result<String, DomainError> {
    let bad = |reason: &str| DomainError::InvalidField {
        field: "url".to_owned(),
        code: "invalid_url",
        reason: reason.to_owned(),
    };
    if raw.trim().is_empty() {
        return Err(DomainError::Required { field: "url" });
    }
    if raw.chars().count() > MAX_URL_LEN {
        return Err(DomainError::TooLong {
            field: "url",
            max: MAX_URL_LEN,
        });
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("must not contain spaces or control characters"));
    }
    let lower = raw.to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &raw["https://".len()..]
    } else if lower.starts_with("http://") {
        if !allow_http {
            return Err(bad("must be an https:// URL"));
        }
        &raw["http://".len()..]
    } else {
        return Err(bad("must be an https:// URL"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(bad("must not carry a user name or password"));
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default().to_owned()
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if let Some(p) = port
            && p.parse::<u16>().map_or(true, |p| p == 0)
        {
            return Err(bad("has an invalid port"));
        }
        host.to_ascii_lowercase()
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    if !allow_private {
        let refused = || DomainError::InvalidField {
            field: "url".to_owned(),
            code: "private_address",
            reason:
                "must be a public address (private, loopback and link-local targets are refused)"
                    .to_owned(),
        };
        if host == "localhost" || host.ends_with(".localhost") {
            return Err(refused());
        }
        if let Ok(ip) = host.parse::<IpAddr>()
            && !is_public(ip)
        {
            return Err(refused());
        }
    }
    Ok(host)
}

/// Whether `ip` is a public unicast address: not loopback, private,
/// link-local, carrier-grade NAT, unspecified, broadcast, documentation,
/// benchmarking, multicast or reserved; IPv6 also not unique-local, and an
/// IPv4-mapped one is judged as its IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link local
        || first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
}

/// How a text message to a resident names the nurse: the family name (the
/// first character) and 护士, e.g. 王护士 — never the full name.
pub fn courtesy_name(full_name: &str) -> String {
    match full_name.trim().chars().next() {
        Some(c) => format!("{c}护士"),
        None => "护士".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: DomainError) -> &'static str {
        e.code()
    }

    #[test]
    fn https_public_urls_pass_and_the_host_comes_back() {
        assert_eq!(
            check_url("https://hooks.example.org:8443/yixin?x=1", false, false).unwrap(),
            "hooks.example.org"
        );
        assert_eq!(
            check_url("https://[2400:3200::1]/h", false, false).unwrap(),
            "2400:3200::1"
        );
    }

    #[test]
    fn plain_http_only_when_allowed() {
        assert_eq!(
            code(check_url("http://hooks.example.org/", false, false).unwrap_err()),
            "invalid_url"
        );
        assert!(check_url("http://hooks.example.org/", true, false).is_ok());
        assert_eq!(
            code(check_url("ftp://hooks.example.org/", true, true).unwrap_err()),
            "invalid_url"
        );
    }

    #[test]
    fn credentials_spaces_bad_ports_and_long_urls_are_refused() {
        for bad in [
            "https://user:pw@hooks.example.org/",
            "https://hooks.example.org/a b",
            "https://hooks.example.org:99999/",
            "https://hooks.example.org:0/",
            "https:///path",
        ] {
            assert_eq!(
                code(check_url(bad, true, true).unwrap_err()),
                "invalid_url",
                "{bad}"
            );
        }
        let long = format!("https://h.example.org/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(code(check_url(&long, true, true).unwrap_err()), "too_long");
        assert_eq!(code(check_url("  ", true, true).unwrap_err()), "required");
    }

    #[test]
    fn private_targets_are_refused_unless_allowed() {
        for private in [
            "https://localhost/",
            "https://api.localhost/",
            "https://127.0.0.1/",
            "https://10.1.2.3/",
            "https://172.16.0.1/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
        ] {
            assert_eq!(
                code(check_url(private, false, false).unwrap_err()),
                "private_address",
                "{private}"
            );
            assert!(check_url(private, false, true).is_ok(), "{private}");
        }
        assert!(is_public("8.8.8.8".parse().unwrap()));
        assert!(!is_public("198.18.0.1".parse().unwrap()));
    }

    #[test]
    fn the_back_off_doubles_from_base_to_the_cap_then_dies() {
        let p = RetryPolicy::default();
        let ceilings: Vec<u64> = (1..=8).map(|a| p.ceiling(a).as_secs()).collect();
        assert_eq!(ceilings, [5, 10, 20, 40, 80, 160, 320, 640]);
        assert_eq!(p.ceiling(20), Duration::from_secs(3600));
        assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(3600));
        // Equal jitter: between half the ceiling and the ceiling.
        assert_eq!(
            p.after_failure(3, 0.0),
            AfterFailure::RetryIn(Duration::from_secs(10))
        );
        assert_eq!(
            p.after_failure(3, 1.0),
            AfterFailure::RetryIn(Duration::from_secs(20))
        );
        assert_eq!(
            p.after_failure(3, f64::NAN),
            AfterFailure::RetryIn(Duration::from_secs(10))
        );
        assert_eq!(
            p.after_failure(7, 0.5),
            AfterFailure::RetryIn(Duration::from_secs(240))
        );
        assert_eq!(p.after_failure(8, 0.5), AfterFailure::Dead);
        assert_eq!(p.after_failure(9, 0.5), AfterFailure::Dead);
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Dead,
        ] {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(DeliveryStatus::parse("lost"), None);
    }

    #[test]
    fn a_text_names_the_nurse_by_family_name_only() {
        assert_eq!(courtesy_name("王小红"), "王护士");
        assert_eq!(courtesy_name(" 李 "), "李护士");
        assert_eq!(courtesy_name(""), "护士");
    }
}
