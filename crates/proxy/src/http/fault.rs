//! Fault injection: whether this request is delayed or aborted, per the route's shares.

use std::time::Duration;

use weft_model::route::{AbortStatus, Fault, MILLION};

/// What the fault filter does to one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Injected {
    /// Sleep this long first.
    pub delay: Option<Duration>,
    /// Then answer with this instead of forwarding.
    pub abort: Option<AbortStatus>,
}

/// Rolls the dice for `fault` with `roll(MILLION)` returning a uniform value in `0..MILLION`.
pub fn decide(fault: &Fault, mut roll: impl FnMut(u32) -> u32) -> Injected {
    let mut hit = |per_million: u32| per_million > 0 && roll(MILLION) < per_million;
    Injected {
        delay: fault
            .delay
            .as_ref()
            .filter(|d| hit(d.per_million))
            .map(|d| d.delay),
        abort: fault
            .abort
            .as_ref()
            .filter(|a| hit(a.per_million))
            .map(|a| a.status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_model::route::{AbortFault, DelayFault};

    #[test]
    fn shares_are_per_million() {
        let fault = Fault {
            delay: Some(DelayFault {
                delay: Duration::from_millis(5),
                per_million: 500_000,
            }),
            abort: Some(AbortFault {
                status: AbortStatus::Http(500),
                per_million: MILLION,
            }),
        };
        let low = decide(&fault, |_| 0);
        assert_eq!(low.delay, Some(Duration::from_millis(5)));
        assert_eq!(low.abort, Some(AbortStatus::Http(500)));
        let high = decide(&fault, |m| m - 1);
        assert_eq!(high.delay, None, "999999 is not below 500000");
        assert_eq!(
            high.abort,
            Some(AbortStatus::Http(500)),
            "100 % always aborts"
        );
        let zero = Fault {
            delay: None,
            abort: Some(AbortFault {
                status: AbortStatus::Http(500),
                per_million: 0,
            }),
        };
        assert_eq!(decide(&zero, |_| 0).abort, None, "0 % never aborts");
    }
}
