//! The API token `weft apply`, `get` and `delete` send, found as kubectl finds its
//! credentials: `WEFT_TOKEN`, else the kubeconfig (`KUBECONFIG`, else the one `weft up`
//! writes in its default state directory) whose cluster is the server being called.
//! `weft up` and `weft demo`, which create the token, hand it over in-process.

use std::path::PathBuf;
use std::sync::OnceLock;

use weft_api::source::{Node, NodeValue, parse_documents};

static HANDED_OVER: OnceLock<(String, String)> = OnceLock::new();

/// Makes `token` the one sent to `server` for the rest of this process (`weft up` and
/// `weft demo`, which write it).
pub fn hand_over(server: &str, token: &str) {
    let _ = HANDED_OVER.set((authority(server).to_string(), token.to_string()));
}

/// The token handed over in this process, for the weft commands it runs.
pub fn handed_over() -> Option<&'static str> {
    HANDED_OVER.get().map(|(_, t)| t.as_str())
}

/// The token to send to `server` (`host:port`), if any.
pub fn token_for(server: &str) -> Option<String> {
    let wanted = authority(server);
    if let Some((s, t)) = HANDED_OVER.get() {
        if s == wanted {
            return Some(t.clone());
        }
    }
    if let Ok(t) = std::env::var("WEFT_TOKEN") {
        if !t.trim().is_empty() {
            return Some(t.trim().to_string());
        }
    }
    kubeconfigs()
        .into_iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .find_map(|text| token_in(&text, wanted))
}

/// `host:port` of a server given with or without a scheme and a trailing slash.
fn authority(server: &str) -> &str {
    server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
}

fn kubeconfigs() -> Vec<PathBuf> {
    match std::env::var_os("KUBECONFIG") {
        Some(list) if !list.is_empty() => std::env::split_paths(&list).collect(),
        _ => vec![super::cmd::kubeconfig::path(std::path::Path::new(
            super::cmd::kubeconfig::DEFAULT_STATE_DIR,
        ))],
    }
}

fn items(node: &Node) -> &[Node] {
    match &node.value {
        NodeValue::Seq(items) => items,
        _ => &[],
    }
}

fn named<'a>(list: Option<&'a Node>, name: &str) -> Option<&'a Node> {
    list.map(items)?
        .iter()
        .find(|n| n.get("name").and_then(Node::as_str) == Some(name))
}

/// The token of the user of a context whose cluster's server is `wanted` (the current
/// context first).
fn token_in(kubeconfig: &str, wanted: &str) -> Option<String> {
    let docs = parse_documents(kubeconfig).ok()?;
    let config = docs.first()?;
    let current = config.get("current-context").and_then(Node::as_str);
    let mut contexts: Vec<&Node> = config.get("contexts").map(items)?.iter().collect();
    contexts.sort_by_key(|c| c.get("name").and_then(Node::as_str) != current);
    contexts.into_iter().find_map(|c| {
        let context = c.get("context")?;
        let cluster = named(
            config.get("clusters"),
            context.get("cluster").and_then(Node::as_str)?,
        )?;
        let server = cluster
            .get("cluster")?
            .get("server")
            .and_then(Node::as_str)?;
        if authority(server) != wanted {
            return None;
        }
        let user = named(
            config.get("users"),
            context.get("user").and_then(Node::as_str)?,
        )?;
        user.get("user")?
            .get("token")
            .and_then(Node::as_str)
            .map(str::to_string)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_token_of_the_context_whose_cluster_is_the_server() {
        let config = super::super::cmd::kubeconfig::render(
            "127.0.0.1:25014",
            "0123456789abcdef0123",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        );
        assert_eq!(
            super::token_in(&config, "127.0.0.1:25014").as_deref(),
            Some("0123456789abcdef0123")
        );
        assert_eq!(super::token_in(&config, "127.0.0.1:15014"), None);
        assert_eq!(super::authority("https://127.0.0.1:1/"), "127.0.0.1:1");
    }
}
