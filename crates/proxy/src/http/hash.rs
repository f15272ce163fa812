//! The consistent-hash key of a request (DestinationRule `consistentHash`): header,
//! source IP, query parameter or cookie, as the cluster's policy names it.

use std::net::SocketAddr;

use http::Request;
use weft_model::policy::{HashKey, LoadBalancer};

use crate::snapshot::ClusterRuntime;

/// The consistent-hash key of a request, when the cluster hashes.
pub fn request_hash<B>(
    cluster: &ClusterRuntime,
    req: &Request<B>,
    peer: Option<SocketAddr>,
) -> Option<u64> {
    let LoadBalancer::ConsistentHash { key, .. } = &cluster.model.policy.load_balancer else {
        return None;
    };
    let h = |b: &[u8]| Some(crate::balancer::hash_key(b));
    match key {
        HashKey::Header(name) => req
            .headers()
            .get(name.as_str())
            .and_then(|v| h(v.as_bytes())),
        HashKey::SourceIp => peer.and_then(|p| h(p.ip().to_string().as_bytes())),
        HashKey::QueryParameter(name) => req
            .uri()
            .query()
            .and_then(|q| {
                q.split('&').find_map(|pair| {
                    pair.split_once('=')
                        .filter(|(k, _)| k == name)
                        .map(|(_, v)| v)
                })
            })
            .and_then(|v| h(v.as_bytes())),
        HashKey::Cookie { name, .. } => req
            .headers()
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| {
                c.trim()
                    .split_once('=')
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v.to_string())
            })
            .and_then(|v| h(v.as_bytes())),
    }
}
