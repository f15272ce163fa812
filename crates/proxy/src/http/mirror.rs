//! Request mirroring: a copy goes to another cluster, fire and forget. The copy's
//! authority gets Envoy's `-shadow` suffix; its answer is read and dropped, and it
//! can neither slow nor fail the main request.

use std::time::Duration;

use weft_model::route::RetryPolicy;

use super::body::Buffered;
use super::forward::{self, Outgoing, Payload, SendPolicy};
use crate::snapshot::Snapshot;

/// How long a mirrored request may take before it is abandoned.
const MIRROR_TIMEOUT: Duration = Duration::from_secs(10);

/// The shadow authority: `host-shadow[:port]`.
pub fn shadow_authority(authority: &str) -> String {
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{host}-shadow:{port}")
        }
        _ => format!("{authority}-shadow"),
    }
}

/// Sends a copy of the request to `cluster` in the background.
pub fn spawn(
    snapshot: &Snapshot,
    cluster: &str,
    out: &Outgoing,
    body: Buffered,
    http2: bool,
    identity: Option<crate::identity::IdentityCell>,
) {
    let Some(runtime) = snapshot.cluster(cluster).cloned() else {
        tracing::debug!(cluster, "mirror cluster not found; copy dropped");
        return;
    };
    let mut copy = out.clone();
    copy.authority = shadow_authority(&out.authority);
    let http2 = runtime.http2().unwrap_or(http2);
    tokio::spawn(async move {
        let policy = SendPolicy {
            retry: &RetryPolicy::disabled(),
            deadline: Some(tokio::time::Instant::now() + MIRROR_TIMEOUT),
            http2,
            hash: None,
            identity: identity.as_ref(),
        };
        match forward::send(&runtime, &copy, Payload::Replayable(body), policy).await {
            Ok(up) => {
                use http_body_util::BodyExt;
                if up.response.into_body().collect().await.is_ok() {
                    // Read to the end: the connection can serve the next mirrored request.
                    if let Some(c) = up.checkout {
                        c.release();
                    }
                }
            }
            Err(f) => tracing::debug!(flags = %f.flags(), "mirrored request failed: {f}"),
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn shadow_suffix_goes_before_the_port() {
        assert_eq!(
            super::shadow_authority("reviews:8080"),
            "reviews-shadow:8080"
        );
        assert_eq!(super::shadow_authority("reviews"), "reviews-shadow");
    }
}
