//! Envoy's response flags, as access logs and the `response_flags` metric label show them.

use std::fmt;

/// A set of response flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResponseFlags(u32);

macro_rules! flags {
    ($($name:ident = $bit:expr, $short:literal, $doc:literal;)*) => {
        impl ResponseFlags {
            $(#[doc = $doc] pub const $name: ResponseFlags = ResponseFlags(1 << $bit);)*
            const ALL: &'static [(ResponseFlags, &'static str)] = &[$((ResponseFlags::$name, $short)),*];
        }
    };
}

flags! {
    NO_HEALTHY_UPSTREAM = 0, "UH", "No healthy upstream (503).";
    UPSTREAM_CONNECTION_FAILURE = 1, "UF", "Upstream connection failure (503).";
    UPSTREAM_OVERFLOW = 2, "UO", "Upstream overflow: circuit breaker open (503).";
    NO_ROUTE = 3, "NR", "No route (404).";
    UPSTREAM_RETRY_LIMIT_EXCEEDED = 4, "URX", "Retries or connect attempts exhausted.";
    NO_CLUSTER = 5, "NC", "Upstream cluster not found (503).";
    UPSTREAM_REQUEST_TIMEOUT = 6, "UT", "Upstream request timeout (504).";
    DELAY_INJECTED = 7, "DI", "Delayed by fault injection.";
    FAULT_INJECTED = 8, "FI", "Aborted by fault injection.";
    UPSTREAM_REMOTE_RESET = 9, "UR", "Upstream remote reset (503).";
    UPSTREAM_CONNECTION_TERMINATION = 10, "UC", "Upstream connection termination (503).";
    DOWNSTREAM_CONNECTION_TERMINATION = 11, "DC", "Downstream connection terminated.";
    LOCAL_RESET = 12, "LR", "Local reset (503).";
    DOWNSTREAM_PROTOCOL_ERROR = 13, "DPE", "Downstream HTTP protocol error.";
    UPSTREAM_PROTOCOL_ERROR = 14, "UPE", "Upstream HTTP protocol error.";
    RBAC_ACCESS_DENIED = 15, "RBAC", "Denied by an AuthorizationPolicy (403).";
    RATE_LIMITED = 16, "RL", "Refused by a local rate limit (429).";
    UNAUTHORIZED_EXTERNAL_SERVICE = 17, "UAEX", "Denied by an external authorization service (CUSTOM).";
}

impl ResponseFlags {
    /// No flags.
    pub const NONE: ResponseFlags = ResponseFlags(0);

    /// True when no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Parses Envoy's form (`UF,URX`, `-`); unknown names are skipped.
    pub fn parse(text: &str) -> ResponseFlags {
        let mut flags = ResponseFlags::NONE;
        for name in text.split(',').map(str::trim) {
            if let Some((flag, _)) = ResponseFlags::ALL.iter().find(|(_, s)| *s == name) {
                flags |= *flag;
            }
        }
        flags
    }

    /// True when every flag of `other` is set.
    pub fn contains(self, other: ResponseFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for ResponseFlags {
    type Output = ResponseFlags;
    fn bitor(self, rhs: Self) -> Self {
        ResponseFlags(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for ResponseFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl fmt::Display for ResponseFlags {
    /// Envoy's form: short names joined by commas, `-` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        let mut first = true;
        for (flag, short) in ResponseFlags::ALL {
            if self.contains(*flag) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(short)?;
                first = false;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_envoy() {
        assert_eq!(ResponseFlags::NONE.to_string(), "-");
        let f = ResponseFlags::UPSTREAM_CONNECTION_FAILURE
            | ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED;
        assert_eq!(f.to_string(), "UF,URX");
        assert_eq!(ResponseFlags::parse("UF,URX"), f);
        assert_eq!(ResponseFlags::parse("-"), ResponseFlags::NONE);
    }
}
