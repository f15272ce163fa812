//! Endpoint selection for one cluster: Istio's load-balancing policies with Envoy's semantics.
//!
//! A [`Balancer`] is built once per configuration snapshot from the cluster's policy and its
//! endpoints, and precomputes whatever the policy needs (a weighted round-robin cycle, a hash
//! ring, a Maglev table). [`Balancer::pick`] then takes `&self`, never locks and never
//! allocates. The live state a pick depends on (outstanding requests, endpoints to avoid) and
//! its randomness come in through [`PickInput`], which keeps every pick deterministic in tests.
//!
//! Ring hash and Maglev place endpoints by their `ip:port` key exactly as Envoy does (same
//! xxHash64 keys, same sizing and fill), so weft and Envoy sidecars send a given request key
//! to the same endpoint, which matters while a mesh runs both.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::fmt::Write as _;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};

use weft_model::policy::{HashAlgorithm, LoadBalancer};
use xxhash_rust::xxh64::xxh64;

/// Envoy's default `maximum_ring_size`: bounds the ring's memory whatever the minimum asks.
const MAX_RING_SIZE: u64 = 8_388_608;
/// Envoy's largest documented Maglev table size (a prime): bounds the table's memory.
const MAX_MAGLEV_TABLE_SIZE: u64 = 5_000_011;
/// Longest precomputed weighted round-robin cycle; longer cycles are not worth the memory.
const MAX_SCHEDULE_LEN: u64 = 65_536;
/// Marks a Maglev slot not filled yet while the table is built.
const EMPTY_SLOT: u32 = u32::MAX;
/// SplitMix64's increment (2^64 / golden ratio).
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// An endpoint as the balancer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalancedEndpoint<'a> {
    /// `ip:port` (IPv6 as `[addr]:port`, as Envoy spells it): the stable identity for hash placement.
    pub key: &'a str,
    /// Relative weight; 0 counts as 1.
    pub weight: u32,
}

/// What one pick needs from the request and the live state.
#[derive(Clone, Copy)]
pub struct PickInput<'a> {
    /// The request's hash for consistent hashing; `None` (no key in the request) picks at random.
    pub hash: Option<u64>,
    /// A fresh random number for this pick.
    pub random: u64,
    /// Outstanding requests of endpoint `i` (for least request).
    pub active: &'a dyn Fn(usize) -> u64,
    /// Whether endpoint `i` must not be chosen; must answer the same way throughout one pick.
    pub excluded: &'a dyn Fn(usize) -> bool,
}

/// Chooses endpoints of one cluster. Built once per configuration snapshot; `pick` takes &self and never locks.
pub struct Balancer {
    weights: Weights,
    algorithm: Algorithm,
}

/// The per-policy state `pick` reads.
enum Algorithm {
    RoundRobin {
        cursor: AtomicUsize,
        schedule: Schedule,
    },
    LeastRequest,
    Random,
    Passthrough,
    RingHash(Ring),
    Maglev(Maglev),
}

/// How a round-robin turn number becomes an endpoint.
enum Schedule {
    /// Equal weights: the turn modulo the endpoint count.
    Uniform,
    /// Unequal weights: one precomputed cycle in which each endpoint's turns are spread out.
    Interleaved(Vec<u32>),
    /// Weights too large to precompute a cycle: the turn modulo the total weight, mapped
    /// through the running totals; proportions stay exact but turns come in runs.
    Cumulative,
}

impl Balancer {
    /// Builds the balancer for `policy` over `endpoints`, precomputing its schedule, ring or table.
    pub fn new(policy: &LoadBalancer, endpoints: &[BalancedEndpoint<'_>]) -> Balancer {
        let weights = Weights::new(endpoints);
        let algorithm = match policy {
            LoadBalancer::RoundRobin => Algorithm::RoundRobin {
                cursor: AtomicUsize::new(random_start()),
                schedule: Schedule::new(&weights),
            },
            LoadBalancer::LeastRequest => Algorithm::LeastRequest,
            LoadBalancer::Random => Algorithm::Random,
            LoadBalancer::Passthrough => Algorithm::Passthrough,
            LoadBalancer::ConsistentHash {
                algorithm: HashAlgorithm::RingHash { minimum_ring_size },
                ..
            } => Algorithm::RingHash(Ring::build(&weights, endpoints, *minimum_ring_size)),
            LoadBalancer::ConsistentHash {
                algorithm: HashAlgorithm::Maglev { table_size },
                ..
            } => Algorithm::Maglev(Maglev::build(&weights, endpoints, *table_size)),
        };
        Balancer { weights, algorithm }
    }

    /// Index of the chosen endpoint, or None when every endpoint is excluded / there are none / PASSTHROUGH.
    pub fn pick(&self, input: &PickInput<'_>) -> Option<usize> {
        if self.is_empty() {
            return None;
        }
        match &self.algorithm {
            Algorithm::RoundRobin { cursor, schedule } => self.round_robin(cursor, schedule, input),
            Algorithm::LeastRequest => self.least_request(input),
            Algorithm::Random => self.random(input),
            Algorithm::Passthrough => None,
            Algorithm::RingHash(ring) => match input.hash {
                Some(hash) if !ring.owners.is_empty() => {
                    self.walk(&ring.owners, ring.position(hash), input)
                }
                _ => self.random(input),
            },
            Algorithm::Maglev(maglev) => match input.hash {
                Some(hash) if !maglev.table.is_empty() => {
                    let slot = (hash % maglev.table.len() as u64) as usize;
                    self.walk(&maglev.table, slot, input)
                }
                _ => self.random(input),
            },
        }
    }

    /// Number of endpoints the balancer chooses among.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// Whether there is no endpoint to choose.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn round_robin(
        &self,
        cursor: &AtomicUsize,
        schedule: &Schedule,
        input: &PickInput<'_>,
    ) -> Option<usize> {
        let n = self.len();
        // Relaxed suffices: the cursor only spreads turns, it orders no other memory.
        let turn = cursor.fetch_add(1, Ordering::Relaxed);
        let scheduled = match schedule {
            Schedule::Uniform => turn % n,
            Schedule::Interleaved(cycle) => cycle[turn % cycle.len()] as usize,
            Schedule::Cumulative => self.weights.locate(turn as u64 % self.weights.total),
        };
        // An excluded endpoint's turn passes to the next allowed one in index order. Advancing
        // the shared cursor instead could race with other picks and skip allowed endpoints;
        // this walk is bounded by n and always finds one if any is allowed.
        (0..n)
            .map(|step| (scheduled + step) % n)
            .find(|&i| !(input.excluded)(i))
    }

    fn least_request(&self, input: &PickInput<'_>) -> Option<usize> {
        let excluded = input.excluded;
        let [r1, r2, r3, r4] = draws(input.random);
        let mut first = self.weights.draw(r1);
        if excluded(first) {
            first = self.weights.draw_where(r3, excluded)?;
        }
        if self.len() == 1 {
            return Some(first);
        }
        // Drawing the second candidate from the others keeps the two distinct, so a loaded
        // endpoint is never compared with itself and always loses to a less loaded one.
        let mut second = self.weights.draw_except(r2, first);
        if excluded(second) {
            match self.weights.draw_where(r4, |i| i == first || excluded(i)) {
                Some(other) => second = other,
                None => return Some(first),
            }
        }
        // Envoy compares outstanding requests divided by weight; cross-multiplying compares
        // the same ratios without division or rounding, and with equal weights it reduces to
        // comparing outstanding requests.
        let load = |i: usize| u128::from((input.active)(i));
        let first_load = load(first) * u128::from(self.weights.get(second));
        let second_load = load(second) * u128::from(self.weights.get(first));
        // Ties go to the first candidate, drawn by weight, so an idle cluster splits by weight.
        Some(if second_load < first_load {
            second
        } else {
            first
        })
    }

    fn random(&self, input: &PickInput<'_>) -> Option<usize> {
        let [r1, r2, ..] = draws(input.random);
        let drawn = self.weights.draw(r1);
        if !(input.excluded)(drawn) {
            return Some(drawn);
        }
        // Redrawing among allowed endpoints, rather than stepping to a neighbour, keeps the
        // pick exactly weighted: P(i) = w_i/T + (excluded weight/T)·(w_i/allowed) = w_i/allowed.
        self.weights.draw_where(r2, input.excluded)
    }

    /// The owner of `slots[start]` or, if excluded, of the next slot whose owner is allowed.
    fn walk(&self, slots: &[u32], start: usize, input: &PickInput<'_>) -> Option<usize> {
        let excluded = input.excluded;
        let owner = slots[start] as usize;
        if !excluded(owner) {
            return Some(owner);
        }
        // Checking the endpoints first spares an all-excluded cluster a walk over the whole
        // table (millions of slots); otherwise the walk stops at the next allowed owner.
        if (0..self.len()).all(excluded) {
            return None;
        }
        let next = slots[start + 1..]
            .iter()
            .chain(&slots[..start])
            .map(|&o| o as usize)
            .find(|&o| !excluded(o));
        // An allowed endpoint may own no slot at all (a Maglev table smaller than the endpoint
        // set, a ring capped below one entry each): then any allowed endpoint will do.
        next.or_else(|| self.random(input))
    }
}

impl fmt::Debug for Balancer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Tables run to millions of slots: show their shape, not their contents.
        let (algorithm, slots) = match &self.algorithm {
            Algorithm::RoundRobin { .. } => ("round_robin", 0),
            Algorithm::LeastRequest => ("least_request", 0),
            Algorithm::Random => ("random", 0),
            Algorithm::Passthrough => ("passthrough", 0),
            Algorithm::RingHash(ring) => ("ring_hash", ring.owners.len()),
            Algorithm::Maglev(maglev) => ("maglev", maglev.table.len()),
        };
        f.debug_struct("Balancer")
            .field("algorithm", &algorithm)
            .field("endpoints", &self.len())
            .field("slots", &slots)
            .finish()
    }
}

/// Stable 64-bit hash of a request key (header value, cookie, source IP, query parameter): xxHash64 seed 0, like Envoy.
pub fn hash_key(bytes: &[u8]) -> u64 {
    xxh64(bytes, 0)
}

/// Endpoint weights reduced by their common divisor, with running totals for weighted draws.
struct Weights {
    /// Reduced weight of each endpoint, all at least 1.
    each: Vec<u32>,
    /// `ends[i]` is the sum of `each[..=i]`: endpoint i owns draws `ends[i] - each[i] .. ends[i]`.
    ends: Vec<u64>,
    /// Sum of all reduced weights.
    total: u64,
}

impl Weights {
    fn new(endpoints: &[BalancedEndpoint<'_>]) -> Weights {
        let raw = endpoints.iter().map(|e| e.weight.max(1));
        // Dividing by the common divisor changes no proportion, but it keeps round-robin
        // cycles short and turns equal weights into all ones, which the O(1) paths rely on.
        let divisor = raw.clone().fold(0, gcd).max(1);
        let each: Vec<u32> = raw.map(|w| w / divisor).collect();
        let mut total = 0u64;
        let ends: Vec<u64> = each
            .iter()
            .map(|&w| {
                total += u64::from(w);
                total
            })
            .collect();
        Weights { each, ends, total }
    }

    fn len(&self) -> usize {
        self.each.len()
    }

    fn get(&self, i: usize) -> u64 {
        u64::from(self.each[i])
    }

    /// All weights equal (hence all 1 after reduction): a draw is its own index.
    fn is_uniform(&self) -> bool {
        self.total == self.each.len() as u64
    }

    /// The endpoint owning draw `x` (below `total`), in O(log n).
    fn locate(&self, x: u64) -> usize {
        if self.is_uniform() {
            x as usize
        } else {
            self.ends.partition_point(|&end| end <= x)
        }
    }

    /// A weighted draw over all endpoints; needs at least one.
    fn draw(&self, r: u64) -> usize {
        self.locate(r % self.total)
    }

    /// A weighted draw over every endpoint but `a`; needs at least two.
    fn draw_except(&self, r: u64, a: usize) -> usize {
        let wa = self.get(a);
        let mut x = r % (self.total - wa);
        // Draws at or past a's range shift over it, so the others keep exact proportions.
        if x >= self.ends[a] - wa {
            x += wa;
        }
        self.locate(x)
    }

    /// An exactly weighted draw over the endpoints `skip` rejects not, in O(n); None if it rejects all.
    fn draw_where(&self, r: u64, skip: impl Fn(usize) -> bool) -> Option<usize> {
        let allowed: u64 = (0..self.len())
            .filter(|&i| !skip(i))
            .map(|i| self.get(i))
            .sum();
        if allowed == 0 {
            return None;
        }
        let mut x = r % allowed;
        for i in (0..self.len()).filter(|&i| !skip(i)) {
            let w = self.get(i);
            if x < w {
                return Some(i);
            }
            x -= w;
        }
        None
    }
}

impl Schedule {
    fn new(weights: &Weights) -> Schedule {
        if weights.is_uniform() {
            Schedule::Uniform
        } else if weights.total <= MAX_SCHEDULE_LEN {
            Schedule::Interleaved(interleave(&weights.each))
        } else {
            Schedule::Cumulative
        }
    }
}

/// One weighted round-robin cycle: endpoint i takes w_i turns, its k-th due at (k + ½)/w_i of
/// the cycle, so heavy endpoints' turns are spread between the light ones' instead of bunched.
fn interleave(weights: &[u32]) -> Vec<u32> {
    let mut turns: Vec<(u32, u32)> = weights
        .iter()
        .enumerate()
        .flat_map(|(i, &w)| (0..w).map(move |k| (k, i as u32)))
        .collect();
    turns.sort_unstable_by(|&(ka, a), &(kb, b)| {
        // (ka + ½)/w_a against (kb + ½)/w_b, cross-multiplied to stay exact in integers.
        let due_a = (2 * u128::from(ka) + 1) * u128::from(weights[b as usize]);
        let due_b = (2 * u128::from(kb) + 1) * u128::from(weights[a as usize]);
        due_a.cmp(&due_b).then(a.cmp(&b))
    });
    turns.into_iter().map(|(_, i)| i).collect()
}

/// Envoy's ring hash: entries sorted by hash, each owned by an endpoint.
struct Ring {
    /// Entry hashes, ascending.
    hashes: Vec<u64>,
    /// Endpoint index of each entry.
    owners: Vec<u32>,
}

impl Ring {
    fn build(
        weights: &Weights,
        endpoints: &[BalancedEndpoint<'_>],
        minimum_ring_size: u64,
    ) -> Ring {
        if endpoints.is_empty() {
            return Ring {
                hashes: Vec::new(),
                owners: Vec::new(),
            };
        }
        // Envoy's sizing, in f64 as Envoy computes it so the rings agree: scale so the lightest
        // endpoint gets a whole number of entries and the ring at least the minimum, capped.
        let total = weights.total as f64;
        let lightest = weights.each.iter().copied().min().unwrap_or(1);
        let min_share = f64::from(lightest) / total;
        let minimum = minimum_ring_size.clamp(1, MAX_RING_SIZE) as f64;
        let scale = ((min_share * minimum).ceil() / min_share).min(MAX_RING_SIZE as f64);

        let mut entries: Vec<(u64, u32)> =
            Vec::with_capacity(scale.ceil() as usize + endpoints.len());
        let mut hash_input = String::new();
        // Running sums across endpoints, as in Envoy, hand out fractional entry counts fairly.
        let (mut placed, mut target) = (0.0f64, 0.0f64);
        for index in key_order(endpoints) {
            target += scale * (weights.get(index) as f64 / total);
            let mut i = 0u64;
            while placed < target {
                hash_input.clear();
                // Writing to a String cannot fail.
                let _ = write!(hash_input, "{}_{}", endpoints[index].key, i);
                entries.push((xxh64(hash_input.as_bytes(), 0), index as u32));
                i += 1;
                placed += 1.0;
            }
        }
        entries.sort_unstable();
        let (hashes, owners) = entries.into_iter().unzip();
        Ring { hashes, owners }
    }

    /// Index of the first entry whose hash is at least `hash`, wrapping past the last to the first.
    fn position(&self, hash: u64) -> usize {
        let p = self.hashes.partition_point(|&h| h < hash);
        if p == self.hashes.len() { 0 } else { p }
    }
}

/// A Maglev lookup table: slot `hash % size` names the endpoint.
struct Maglev {
    table: Vec<u32>,
}

impl Maglev {
    fn build(weights: &Weights, endpoints: &[BalancedEndpoint<'_>], table_size: u64) -> Maglev {
        let size = maglev_table_size(table_size);
        if endpoints.is_empty() {
            // Nothing could ever fill a slot.
            return Maglev { table: Vec::new() };
        }
        /// One endpoint's progress through its permutation of the slots.
        struct Fill {
            index: u32,
            position: u64,
            skip: u64,
            weight: u64,
            target: u64,
        }
        // Envoy fills in key order: the table depends on fill order, and sorting makes it the
        // same whatever order the endpoints were discovered in.
        let mut fills: Vec<Fill> = key_order(endpoints)
            .into_iter()
            .map(|index| {
                let key = endpoints[index].key.as_bytes();
                Fill {
                    index: index as u32,
                    position: xxh64(key, 0) % size,
                    skip: xxh64(key, 1) % (size - 1) + 1,
                    weight: weights.get(index),
                    target: 0,
                }
            })
            .collect();
        let heaviest = fills.iter().map(|f| f.weight).max().unwrap_or(1);
        let mut table = vec![EMPTY_SLOT; size as usize];
        let mut filled = 0u64;
        // Envoy's weighted fill: in round r an endpoint takes its next free slot only if
        // r·weight has reached its target, which grows by the heaviest weight per slot taken;
        // the heaviest takes a slot every round (so the fill ends), one of a third its weight
        // every third round, so slot counts follow weights.
        let mut round = 1u64;
        while filled < size {
            for fill in &mut fills {
                if filled == size {
                    break;
                }
                if round * fill.weight < fill.target {
                    continue;
                }
                fill.target += heaviest;
                // A prime size makes every skip coprime with it, so the probe visits every slot.
                while table[fill.position as usize] != EMPTY_SLOT {
                    fill.position = (fill.position + fill.skip) % size;
                }
                table[fill.position as usize] = fill.index;
                fill.position = (fill.position + fill.skip) % size;
                filled += 1;
            }
            round += 1;
        }
        Maglev { table }
    }
}

/// The table size actually used: Maglev needs a prime, so a non-prime request is rounded up
/// to the next prime (Envoy rejects it instead); at least 2 so that a skip exists, at most Envoy's cap.
fn maglev_table_size(requested: u64) -> u64 {
    next_prime(requested.clamp(2, MAX_MAGLEV_TABLE_SIZE))
}

fn next_prime(n: u64) -> u64 {
    (n..).find(|&c| is_prime(c)).unwrap_or(n)
}

/// Trial division: table sizes are at most a few million, so this costs microseconds.
fn is_prime(n: u64) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n % 2 == 0 {
        return false;
    }
    let mut d = 3;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

/// Endpoint indices ordered by key (then index, for duplicate keys), for order-independent builds.
fn key_order(endpoints: &[BalancedEndpoint<'_>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..endpoints.len()).collect();
    order.sort_by(|&a, &b| endpoints[a].key.cmp(endpoints[b].key).then(a.cmp(&b)));
    order
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A random round-robin starting point, so sidecars built from the same snapshot at the same
/// moment do not all send their first requests to the first endpoint. `RandomState` is seeded
/// from the OS, which is all the randomness this needs.
fn random_start() -> usize {
    RandomState::new().hash_one(0u8) as usize
}

/// Four well-mixed values from one random number (SplitMix64 steps), so a pick's draws are
/// independent even if the caller's random numbers are sequential.
fn draws(random: u64) -> [u64; 4] {
    let mut state = random;
    std::array::from_fn(|_| {
        state = state.wrapping_add(GOLDEN_GAMMA);
        mix(state)
    })
}

/// SplitMix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests;
