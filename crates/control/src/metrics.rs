//! The control plane's own metrics, in the Prometheus text format on `/metrics`:
//! connected proxies, pushes, push errors, NACKs, resources, and how long a change takes
//! from being accepted to being ACKed by a proxy (convergence).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the convergence histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Counters and the convergence histogram.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Proxies with an open stream.
    pub connected: AtomicU64,
    /// Responses pushed.
    pub pushes: AtomicU64,
    /// Pushes that could not be sent.
    pub push_errors: AtomicU64,
    /// NACKs received.
    pub nacks: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Metrics {
    /// Records one convergence: from a change being accepted to a proxy's ACK of it.
    pub fn observe_convergence(&self, took: Duration) {
        let secs = took.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// The text exposition, with `resources` giving the stored count per kind.
    pub fn render(&self, resources: &[(String, usize)]) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP weft_control_connected_proxies Proxies with an open configuration stream."
        );
        let _ = writeln!(out, "# TYPE weft_control_connected_proxies gauge");
        let _ = writeln!(
            out,
            "weft_control_connected_proxies {}",
            load(&self.connected)
        );
        for (name, help, value) in [
            (
                "weft_control_pushes_total",
                "Configuration responses pushed to proxies.",
                load(&self.pushes),
            ),
            (
                "weft_control_push_errors_total",
                "Pushes that could not be sent.",
                load(&self.push_errors),
            ),
            (
                "weft_control_nacks_total",
                "Configurations proxies refused.",
                load(&self.nacks),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP weft_control_resources Resources stored, by kind.\n# TYPE weft_control_resources gauge"
        );
        for (kind, n) in resources {
            let _ = writeln!(out, "weft_control_resources{{kind=\"{kind}\"}} {n}");
        }
        let name = "weft_control_convergence_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from a change being accepted to a proxy ACKing it.\n# TYPE {name} histogram"
        );
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", load(bucket));
        }
        let count = load(&self.count);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", load(&self.sum_micros) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::default();
        m.observe_convergence(Duration::from_millis(30));
        m.observe_convergence(Duration::from_millis(700));
        let text = m.render(&[("VirtualService".into(), 2)]);
        assert!(
            text.contains("weft_control_convergence_seconds_bucket{le=\"0.05\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("weft_control_convergence_seconds_bucket{le=\"1\"} 2"),
            "{text}"
        );
        assert!(text.contains("weft_control_convergence_seconds_count 2"));
        assert!(text.contains("weft_control_resources{kind=\"VirtualService\"} 2"));
    }
}
