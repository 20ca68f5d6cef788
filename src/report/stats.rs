//! The numbers behind the summary, per statistics epoch: per endpoint, how many exchanges,
//! how often the candidate (raw) and the secondary (noise) differed from the primary, per
//! field; per leg, latency (a fixed-bucket histogram) and errors; up to five samples per
//! (endpoint, field). Everything is bounded: `--max-endpoints` endpoints (then `other`),
//! 256 fields per endpoint and 10 000 in all (then `other fields`), short sample values.
//!
//! Also the two decision rules, as plain functions: Diffy's thresholds and a one-sided
//! significance test (Fisher's exact, with the two-proportion z for scale), and Holm's
//! correction over the tests.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use super::compare::{
    abbreviate, error_kind, is_outcome_field, Analysis, Comparison, Difference, Differences,
    STATUS_OR_ERROR,
};
use super::endpoint;
use super::{ExchangeRecord, LegOutcome};

/// Samples kept per (endpoint, field), as Diffy keeps.
pub const SAMPLES_PER_FIELD: usize = 5;
/// Distinct fields counted per endpoint; the rest count under `OTHER_FIELDS`.
pub const MAX_FIELDS_PER_ENDPOINT: usize = 256;
/// Distinct fields counted over all endpoints of an epoch.
pub const MAX_FIELDS: usize = 10_000;
/// Names kept past those bounds for fields that differ beyond noise (per endpoint, and of
/// `MAX_FIELDS` per epoch): once noise in hundreds of fields has taken every name, a real
/// change still gets one of its own. Counted under `OTHER_FIELDS` with the noise, it would
/// read as noise.
const RESERVED_PER_ENDPOINT: usize = 64;
const RESERVED_FIELDS: usize = 1_000;
/// The field that counts the fields beyond the bounds.
pub const OTHER_FIELDS: &str = "other fields";

// ---------------------------------------------------------------------------------------------
// Percentages and thresholds.

/// A percentage from the command line, kept exactly in units of 0.0001 % (so `0.03` is 300
/// and `Config` stays `Eq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Percent(u32);

impl Percent {
    const SCALE: u32 = 10_000;

    /// `whole` percent.
    pub const fn whole(whole: u32) -> Percent {
        Percent(whole * Self::SCALE)
    }

    /// `ten_thousandths` of a percent (`Percent::ten_thousandths(300)` is 0.03 %).
    pub const fn ten_thousandths(ten_thousandths: u32) -> Percent {
        Percent(ten_thousandths)
    }

    /// `20`, `0.03`, `99.9`: between 0 and 100, at most four decimals.
    pub fn parse(text: &str) -> Option<Percent> {
        let text = text.strip_suffix('%').unwrap_or(text);
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        if (whole.is_empty() && fraction.is_empty())
            || fraction.len() > 4
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
            || whole.len() > 3
        {
            return None;
        }
        let whole: u32 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let mut units = whole * Self::SCALE;
        for (i, digit) in fraction.bytes().enumerate() {
            units += u32::from(digit - b'0') * 10u32.pow(3 - i as u32);
        }
        (units <= 100 * Self::SCALE).then_some(Percent(units))
    }

    /// As a percentage, `20.0`.
    pub fn percent(self) -> f64 {
        f64::from(self.0) / f64::from(Self::SCALE)
    }

    /// As a fraction of one, `0.2`.
    pub fn fraction(self) -> f64 {
        self.percent() / 100.0
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / Self::SCALE;
        let mut fraction = self.0 % Self::SCALE;
        if fraction == 0 {
            return write!(f, "{whole}%");
        }
        let mut digits = 4;
        while fraction % 10 == 0 {
            fraction /= 10;
            digits -= 1;
        }
        write!(f, "{whole}.{fraction:0digits$}%")
    }
}

/// When a field counts as a regression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Diffy's relative threshold: `|raw − noise| / (raw + noise)` must exceed it (20 %).
    pub relative: Percent,
    /// Diffy's absolute threshold: `|raw − noise| / total` must exceed it (0.03 %).
    pub absolute: Percent,
    /// The significance tests' confidence (99 %).
    pub confidence: Percent,
    /// Fewer compared exchanges than this on an endpoint: too few to decide (30).
    pub min_samples: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            relative: Percent::whole(20),
            absolute: Percent::ten_thousandths(300),
            confidence: Percent::whole(99),
            min_samples: 30,
        }
    }
}

/// Diffy's noise filter for one field (peers.md §2.5), exactly: strict comparisons.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiffyRule {
    /// `|raw − noise| / (raw + noise) × 100`.
    pub relative: f64,
    /// `|raw − noise| / total × 100`.
    pub absolute: f64,
    /// `raw > noise`, relative > its threshold and absolute > its threshold.
    pub flagged: bool,
}

/// Diffy's rule for a field that differed `raw` times between candidate and primary out of
/// `n_raw` exchanges, and `noise` times between secondary and primary out of `n_noise` (a
/// header or body field is counted only over the exchanges whose contents were compared,
/// fewer for a leg that failed more often). In Diffy both are out of the same total; here the
/// counts become rates, cross-multiplied so that equal totals give Diffy's numbers exactly:
/// `raw × n_noise` against `noise × n_raw`.
pub fn diffy_over(
    raw: u64,
    n_raw: u64,
    noise: u64,
    n_noise: u64,
    thresholds: &Thresholds,
) -> DiffyRule {
    // No exchange to count over is a rate of 0 (0 of 1): a candidate that differs where the
    // secondary was never compared is flagged, and then undecided for too few samples.
    let (n_raw, n_noise) = (n_raw.max(1), n_noise.max(1));
    let (a, b) = (
        u128::from(raw) * u128::from(n_noise),
        u128::from(noise) * u128::from(n_raw),
    );
    let (gap, sum, total) = (
        a.abs_diff(b),
        a + b,
        u128::from(n_raw) * u128::from(n_noise),
    );
    let relative = if sum == 0 {
        0.0
    } else {
        gap as f64 / sum as f64 * 100.0
    };
    let absolute = if total == 0 {
        0.0
    } else {
        gap as f64 / total as f64 * 100.0
    };
    // The flag in integers: `gap / n × 100 > units / SCALE` ⇔ `gap × 100 × SCALE > units × n`,
    // so that 3 in 10 000 is exactly 0.03 % and not a rounding error above it.
    let above = |threshold: Percent, n: u128| {
        gap.saturating_mul(100 * u128::from(Percent::SCALE))
            > u128::from(threshold.0).saturating_mul(n)
    };
    DiffyRule {
        relative,
        absolute,
        flagged: a > b && above(thresholds.relative, sum) && above(thresholds.absolute, total),
    }
}

/// A one-sided test: does the candidate differ more often than the noise?
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProportionTest {
    /// The two-proportion z statistic (pooled standard error), for scale: how many standard
    /// errors the candidate's rate is above the secondary's.
    pub z: f64,
    /// Fisher's exact one-sided p-value: the chance of the candidate differing this often
    /// or more, given how often both legs differed, if it differs no more often than the
    /// secondary. Exact where the normal approximation behind `z` is not: with unequal
    /// counts and rare differences (a slow candidate compared in 35 exchanges, 1 difference
    /// against none in 3 000) the approximation read p = 1e-20 where the chance is 0.0115,
    /// and at 30 against 300 it read half the chance, failing identical candidates.
    pub p_value: f64,
    /// `p_value` adjusted for the other fields tested beside it (`holm_adjust`); the test's
    /// own p-value until then.
    pub p_adjusted: f64,
    /// `p_adjusted < 1 − confidence`.
    pub significant: bool,
}

/// Whether p-value `p` is below level `alpha`, as the exact value would be. The p-values here
/// carry a relative error near 1e-13 (ln Γ, exp, 1 − a sum), so one exactly at the level
/// (1 in 30 against none in 30 is 0.5) read just below it: significant at `--confidence 50`,
/// and a FAIL (hunt 82). The margin is far wider than that error and far narrower than any
/// difference between two p-values that matters.
pub fn below_level(p: f64, alpha: f64) -> bool {
    p < alpha * (1.0 - 1e-9)
}

/// Tests `raw / n_raw > noise / n_noise`.
pub fn proportion_test(
    raw: u64,
    n_raw: u64,
    noise: u64,
    n_noise: u64,
    confidence: Percent,
) -> ProportionTest {
    if n_raw == 0 || n_noise == 0 {
        return ProportionTest {
            z: 0.0,
            p_value: 1.0,
            p_adjusted: 1.0,
            significant: false,
        };
    }
    let (n1, n2) = (n_raw as f64, n_noise as f64);
    let (p1, p2) = (raw as f64 / n1, noise as f64 / n2);
    let pooled = (raw + noise) as f64 / (n1 + n2);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    // se is 0 only when both proportions are 0 or both are 1: no difference at all.
    let z = if se > 0.0 { (p1 - p2) / se } else { 0.0 };
    let p_value = fisher_upper_tail(raw, n_raw, raw + noise, n_raw + n_noise);
    ProportionTest {
        z,
        p_value,
        p_adjusted: p_value,
        significant: below_level(p_value, 1.0 - confidence.fraction()),
    }
}

/// The smallest p-value Fisher's test could give a field with these margins, whatever the
/// counts: P(X = its most), the candidate differing in every exchange it could. At or above
/// `1 − confidence` the field could not be significant even alone (a timestamp that changes
/// on every response of both legs has 1), and is left out of the family `holm_adjust`
/// corrects over (Tarone): it could never be rejected, so counting it only costs the others
/// evidence.
pub fn least_p_value(n_raw: u64, n_noise: u64, differences: u64) -> f64 {
    if n_raw == 0 || n_noise == 0 {
        return 1.0;
    }
    let total = n_raw + n_noise;
    let differences = differences.min(total);
    fisher_upper_tail(differences.min(n_raw), n_raw, differences, total)
}

/// Fisher's exact one-sided test: P(X ≥ `raw`) for X hypergeometric, `draws` taken from
/// `total` of which `successes` succeed (the candidate's exchanges among both legs', the
/// differences among both legs'). Summed from `raw` outwards while the terms count; from
/// the other side, as 1 − P(X < raw), when `raw` is below the mode, where the terms grow.
fn fisher_upper_tail(raw: u64, draws: u64, successes: u64, total: u64) -> f64 {
    let (lo, hi) = (
        successes.saturating_sub(total - draws),
        successes.min(draws),
    );
    if raw <= lo {
        return 1.0;
    }
    if raw > hi {
        return 0.0;
    }
    let failures = total - successes;
    let ln_choose = |n: u64, k: u64| {
        ln_gamma(n as f64 + 1.0) - ln_gamma(k as f64 + 1.0) - ln_gamma((n - k) as f64 + 1.0)
    };
    let pmf = |k: u64| {
        (ln_choose(successes, k) + ln_choose(failures, draws - k) - ln_choose(total, draws)).exp()
    };
    let (s, f, d) = (successes as f64, failures as f64, draws as f64);
    let mode = ((d + 1.0) * (s + 1.0) / (total as f64 + 2.0)).floor() as u64;
    if raw > mode {
        // Falling from `raw` up.
        let (mut k, mut term) = (raw, pmf(raw));
        let mut sum = term;
        while k < hi && term > sum * 1e-17 {
            let kf = k as f64;
            term *= (s - kf) * (d - kf) / ((kf + 1.0) * (f - d + kf + 1.0));
            sum += term;
            k += 1;
        }
        sum.min(1.0)
    } else {
        // Falling from `raw − 1` down.
        let (mut k, mut term) = (raw - 1, pmf(raw - 1));
        let mut sum = term;
        while k > lo && term > sum * 1e-17 {
            let kf = k as f64;
            term *= kf * (f - d + kf) / ((s - kf + 1.0) * (d - kf + 1.0));
            sum += term;
            k -= 1;
        }
        (1.0 - sum).clamp(0.0, 1.0)
    }
}

/// ln Γ(x) for x > 0: Stirling's series from 10 up (relative error below 1e-15 there),
/// brought down by Γ(x + 1) = x Γ(x).
fn ln_gamma(x: f64) -> f64 {
    let (mut x, mut shift) = (x, 0.0);
    while x < 10.0 {
        shift -= x.ln();
        x += 1.0;
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    shift + (x - 0.5) * x.ln() - x
        + 0.5 * (2.0 * std::f64::consts::PI).ln()
        + inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 / 1680.0)))
}

/// Holm's step-down correction over a family of tests: each `p_adjusted` becomes the least
/// family-wise level at which Holm's procedure rejects its hypothesis, and `significant`
/// says whether that is below `1 − confidence`.
///
/// Without it, every field of every endpoint is tested at `1 − confidence` alone, and a
/// candidate identical to the primary fails whenever one of hundreds of sometimes-noisy
/// fields differs more often on it by chance (320 such fields: 97 % of the time). With it,
/// the chance that any field of an identical candidate reads as significant is at most
/// `1 − confidence`, whatever the dependence between the fields.
pub fn holm_adjust(tests: &mut [&mut ProportionTest], confidence: Percent) {
    let m = tests.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| tests[a].p_value.total_cmp(&tests[b].p_value));
    // The k-th smallest p-value is rejected at level α when it and every smaller one are
    // below α / (m − k): the adjusted value is the running maximum of (m − k) × p.
    let mut running = 0.0_f64;
    for (k, &i) in order.iter().enumerate() {
        let test = &mut *tests[i];
        running = running.max(((m - k) as f64 * test.p_value).min(1.0));
        test.p_adjusted = running;
        test.significant = below_level(running, 1.0 - confidence.fraction());
    }
}

// ---------------------------------------------------------------------------------------------
// Latency.

/// Latencies in microseconds in log-linear buckets (16 per power of two, so a quantile is
/// within about 3 % of the truth), from 1 µs to about 12 days: 608 counters, whatever the
/// traffic, allocated on the first sample.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Histogram {
    const SUB_BITS: u32 = 4;
    const SUB: u64 = 1 << Self::SUB_BITS;
    const MAX_EXP: u32 = 40;
    const BUCKETS: usize =
        (Self::SUB + (Self::MAX_EXP - Self::SUB_BITS + 1) as u64 * Self::SUB) as usize;

    pub fn record(&mut self, elapsed: Duration) {
        if self.counts.is_empty() {
            self.counts = vec![0; Self::BUCKETS];
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.counts[Self::index(micros)] += 1;
        self.total += 1;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0.5, 0.99), the middle of its bucket; `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Duration::from_micros(Self::middle(index)));
            }
        }
        None
    }

    fn index(micros: u64) -> usize {
        let v = micros.min((1 << (Self::MAX_EXP + 1)) - 1);
        if v < Self::SUB {
            return v as usize;
        }
        let exp = 63 - v.leading_zeros();
        let sub = (v >> (exp - Self::SUB_BITS)) - Self::SUB;
        (Self::SUB + u64::from(exp - Self::SUB_BITS) * Self::SUB + sub) as usize
    }

    fn middle(index: usize) -> u64 {
        let index = index as u64;
        if index < Self::SUB {
            return index;
        }
        let k = index - Self::SUB;
        let shift = k / Self::SUB;
        let low = (Self::SUB + k % Self::SUB) << shift;
        low + (1u64 << shift) / 2
    }
}

// ---------------------------------------------------------------------------------------------
// Counters.

/// One example of a field's difference, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub id: u64,
    /// `GET /users/7 HTTP/1.1`.
    pub request: String,
    pub primary: String,
    pub candidate: String,
    /// The secondary differed in the same field in this exchange.
    pub masked: bool,
}

/// How often one field differed, on one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldStats {
    pub name: String,
    /// Exchanges where the candidate differed from the primary in this field.
    pub raw: u64,
    /// Exchanges where the secondary did.
    pub noise: u64,
    /// Exchanges where both did (the candidate's difference was masked as noise).
    pub masked: u64,
    pub samples: Vec<Sample>,
}

/// One more of `kind` in a short list of counts by kind.
fn count_kind(counts: &mut Vec<(&'static str, u64)>, kind: &'static str) {
    match counts.iter_mut().find(|(k, _)| *k == kind) {
        Some((_, n)) => *n += 1,
        None => counts.push((kind, 1)),
    }
}

/// One leg's numbers on one endpoint.
#[derive(Debug, Clone, Default)]
pub struct LegStats {
    pub latency: Histogram,
    /// Failures by kind (`timeout`, `refused` ...), in the order first seen.
    pub errors: Vec<(&'static str, u64)>,
    pub skipped: u64,
    /// Skips by why (`method`, `sampling`, `saturated`), in the order first seen: a
    /// shadow not sent by design reads otherwise than one that could not keep up.
    pub skipped_why: Vec<(&'static str, u64)>,
}

impl LegStats {
    pub fn error_count(&self) -> u64 {
        self.errors.iter().map(|(_, n)| n).sum()
    }
}

/// Everything counted for one endpoint.
#[derive(Debug, Clone)]
pub struct EndpointStats {
    pub name: String,
    pub requests: u64,
    /// Exchanges where the candidate was compared (neither it nor the primary skipped).
    pub raw_compared: u64,
    /// Exchanges where the secondary was compared.
    pub noise_compared: u64,
    /// Exchanges where the candidate's header fields and body were compared (it answered
    /// with the primary's status): what its header and body fields are counted over.
    pub raw_contents: u64,
    /// The same for the secondary: a secondary that failed or answered another status says
    /// nothing of the noise in a body, so it must not count as one without noise.
    pub noise_contents: u64,
    /// Exchanges where both shadows' header fields and bodies were compared: what the
    /// secondary's header and body fields are counted over, so that its noise is measured
    /// where the candidate's differences are. A candidate answering 200 where the primary's
    /// and the secondary's 304s have no body would otherwise differ in a timestamp twice as
    /// often as the secondary over its own exchanges, and the noise read as a regression.
    /// (The candidate's count over all of its own: a change it makes only where the
    /// secondary failed is still seen.)
    pub both_contents: u64,
    /// Exchanges where the candidate differed in at least one field.
    pub raw_differs: u64,
    /// ... in at least one field the secondary did not differ in (after masking).
    pub raw_beyond_noise: u64,
    /// Exchanges where the secondary differed in at least one field.
    pub noise_differs: u64,
    /// Candidate fields masked as noise, in all.
    pub masked: u64,
    /// Exchanges with a body compared only by hash (beyond the compare cap).
    pub hashed: u64,
    /// Exchanges whose header fields and bodies were not compared because a body was cut
    /// short for the capture budget (`Comparison::squeezed`).
    pub squeezed: u64,
    /// primary, secondary, candidate.
    pub legs: [LegStats; 3],
    pub fields: Vec<FieldStats>,
    index: HashMap<String, usize>,
    /// Hashes of the fields the secondary has differed in here, named or not, at most
    /// `MAX_NOISY`: a field that was ever noise takes no name kept for real changes (it is
    /// beyond noise in an exchange only because the secondary happened not to change it).
    noisy: HashSet<u64>,
    /// The fields holding a name kept for real changes, by index, until the secondary is
    /// seen differing in them: kept past `MAX_FIELDS_PER_ENDPOINT` (`Kept::endpoint`), or
    /// among the epoch's last `RESERVED_FIELDS` (`Kept::epoch`).
    reserved: HashMap<usize, Kept>,
    /// Kept names given back: a field took one in an endpoint's first exchanges, before the
    /// secondary had happened to change it, and then proved to be noise. Each lets one more
    /// real change have a name; at most `MAX_NOISY`, as each is a field first seen noisy.
    given_back: usize,
}

/// Which reserves a field's kept name came from.
#[derive(Debug, Clone, Copy)]
struct Kept {
    endpoint: bool,
    epoch: bool,
}

/// Noisy field names remembered per endpoint (8 bytes each).
const MAX_NOISY: usize = 1024;

fn name_hash(name: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(name)
}

impl EndpointStats {
    fn new(name: String) -> EndpointStats {
        EndpointStats {
            name,
            requests: 0,
            raw_compared: 0,
            noise_compared: 0,
            raw_contents: 0,
            noise_contents: 0,
            both_contents: 0,
            raw_differs: 0,
            raw_beyond_noise: 0,
            noise_differs: 0,
            masked: 0,
            hashed: 0,
            squeezed: 0,
            legs: Default::default(),
            fields: Vec::new(),
            index: HashMap::new(),
            noisy: HashSet::new(),
            reserved: HashMap::new(),
            given_back: 0,
        }
    }

    /// The exchanges `field` could differ in, for the candidate and the secondary: all
    /// compared ones for a status or an error; for a header or body field, those where the
    /// candidate's contents were compared, and those where both legs' were.
    pub fn compared_for(&self, field: &FieldStats) -> (u64, u64) {
        if is_outcome_field(&field.name) {
            (self.raw_compared, self.noise_compared)
        } else {
            (self.raw_contents, self.both_contents)
        }
    }

    /// The secondary differed in `name`: it is noise here, and gives back the name kept for
    /// real changes it may hold. True when that name was one of the epoch's reserve, which
    /// the epoch then has again.
    fn seen_noisy(&mut self, name: &str) -> bool {
        if !self.noisy.insert(name_hash(name)) || self.reserved.is_empty() {
            return false;
        }
        let kept = self
            .index
            .get(name)
            .and_then(|index| self.reserved.remove(index));
        let Some(kept) = kept else {
            return false;
        };
        if kept.endpoint {
            self.given_back += 1;
        }
        kept.epoch
    }

    /// The counters of `name`, created if the bounds allow, else those of `OTHER_FIELDS`.
    /// A field that differs `beyond_noise` may take a reserved name.
    fn field(
        &mut self,
        name: &str,
        fields_left: &mut usize,
        beyond_noise: bool,
    ) -> &mut FieldStats {
        let index = match self.index.get(name) {
            Some(&index) => index,
            None => {
                let real = beyond_noise && !self.noisy.contains(&name_hash(name));
                let (endpoint_bound, reserved) = if real {
                    (
                        MAX_FIELDS_PER_ENDPOINT + RESERVED_PER_ENDPOINT + self.given_back,
                        0,
                    )
                } else {
                    (MAX_FIELDS_PER_ENDPOINT, RESERVED_FIELDS)
                };
                // A status or an error always has its name: there are a dozen kinds at most,
                // and each is counted over every exchange, not over the contents compared
                // as `other fields` is.
                let name = if is_outcome_field(name) {
                    *fields_left = fields_left.saturating_sub(1);
                    name
                } else if self.fields.len() < endpoint_bound && *fields_left > reserved {
                    let kept = Kept {
                        endpoint: self.fields.len() >= MAX_FIELDS_PER_ENDPOINT,
                        epoch: *fields_left <= RESERVED_FIELDS,
                    };
                    *fields_left -= 1;
                    if kept.endpoint || kept.epoch {
                        self.reserved.insert(self.fields.len(), kept);
                    }
                    name
                } else {
                    OTHER_FIELDS
                };
                match self.index.get(name) {
                    Some(&index) => index,
                    None => {
                        self.fields.push(FieldStats {
                            name: name.to_string(),
                            raw: 0,
                            noise: 0,
                            masked: 0,
                            samples: Vec::new(),
                        });
                        self.index.insert(name.to_string(), self.fields.len() - 1);
                        self.fields.len() - 1
                    }
                }
            }
        };
        &mut self.fields[index]
    }
}

/// One statistics epoch: the exchanges that ran on one version of the targets.
#[derive(Debug, Clone)]
pub struct Epoch {
    /// The targets generation (0 at start-up, +1 per reload).
    pub number: u64,
    pub exchanges: u64,
    /// Exchanges of an earlier epoch that finished after it had been reported.
    pub late: u64,
    /// Exchanges of this epoch dropped before the reporting thread saw them (it was behind,
    /// or they were abandoned at shutdown), as taken from the backlog so far.
    pub not_compared: u64,
    pub endpoints: Vec<EndpointStats>,
    index: HashMap<String, usize>,
    max_endpoints: usize,
    fields_left: usize,
    /// Names of the epoch's reserve given back by fields that proved to be noise, at most
    /// `RESERVED_FIELDS`: the epoch's names stay bounded at `MAX_FIELDS` + that.
    given_back: usize,
}

impl Epoch {
    /// An empty epoch.
    pub fn new(number: u64, max_endpoints: usize) -> Epoch {
        Epoch {
            number,
            exchanges: 0,
            late: 0,
            not_compared: 0,
            endpoints: Vec::new(),
            index: HashMap::new(),
            max_endpoints,
            fields_left: MAX_FIELDS,
            given_back: 0,
        }
    }

    /// Counts one compared exchange under `endpoint`; false when the epoch has
    /// `--max-endpoints` already and counted it under `other`.
    pub fn record(&mut self, endpoint: &str, record: &ExchangeRecord, analysis: &Analysis) -> bool {
        self.exchanges += 1;
        let index = self.endpoint_index(endpoint);
        let apart = self.endpoints[index].name == endpoint;
        let fields_left = &mut self.fields_left;
        let epoch_given_back = &mut self.given_back;
        let stats = &mut self.endpoints[index];
        stats.requests += 1;
        for (leg, outcome) in stats.legs.iter_mut().zip(&record.legs) {
            match outcome {
                LegOutcome::Response { elapsed, .. } => leg.latency.record(*elapsed),
                LegOutcome::Failed { error, .. } => count_kind(&mut leg.errors, error_kind(error)),
                LegOutcome::Skipped(why) => {
                    leg.skipped += 1;
                    count_kind(&mut leg.skipped_why, why);
                }
            }
        }
        if analysis.raw.hashed() || analysis.noise.hashed() {
            stats.hashed += 1;
        }
        if analysis.raw.squeezed() || analysis.noise.squeezed() {
            stats.squeezed += 1;
        }
        // What the secondary differs in first: the candidate's fields are judged by it.
        if let Some(noise) = analysis.noise.differences() {
            for difference in noise.iter() {
                if stats.noisy.len() >= MAX_NOISY {
                    break;
                }
                if stats.seen_noisy(&difference.field) && *epoch_given_back < RESERVED_FIELDS {
                    *epoch_given_back += 1;
                    *fields_left += 1;
                }
            }
        }
        // The candidate's fields before the secondary's: when an endpoint's table of field
        // names fills up, they have the names, and the noise goes under `other fields`.
        if let Some(differences) = counted(&analysis.raw) {
            stats.raw_compared += 1;
            stats.raw_contents += u64::from(analysis.raw.contents_compared());
            if !differences.is_empty() {
                stats.raw_differs += 1;
            }
            let noise_more = analysis.noise.differences().is_some_and(|noise| noise.more);
            if differences.iter().any(|d| !d.masked) || (differences.more && !noise_more) {
                stats.raw_beyond_noise += 1;
            }
            let mut other_counted = false;
            if differences.more {
                // Fields past the most one comparison keeps: not named, but not lost either.
                let field = stats.field(OTHER_FIELDS, fields_left, false);
                field.raw += 1;
                if noise_more {
                    field.masked += 1;
                }
                other_counted = true;
            }
            // Those beyond noise first, for the same reason. A status or an error also counts
            // under `STATUS_OR_ERROR` (an exchange has one at most).
            let (real, noisy) = (
                differences.iter().filter(|d| !d.masked),
                differences.iter().filter(|d| d.masked),
            );
            let outcome = differences.iter().find(|d| is_outcome_field(&d.field));
            let outcome = outcome.map(|d| Difference {
                field: STATUS_OR_ERROR.to_string(),
                ..d.clone()
            });
            for difference in real.chain(noisy).chain(outcome.as_ref()) {
                if difference.masked && difference.field != STATUS_OR_ERROR {
                    stats.masked += 1;
                }
                let field = stats.field(&difference.field, fields_left, !difference.masked);
                if field.name == OTHER_FIELDS {
                    if other_counted {
                        continue;
                    }
                    other_counted = true;
                }
                field.raw += 1;
                if difference.masked {
                    field.masked += 1;
                }
                if field.samples.len() < SAMPLES_PER_FIELD && !difference.counted_only {
                    let request = format!(
                        "{} {} {}",
                        record.method,
                        record.target,
                        record.version.as_str()
                    );
                    field.samples.push(Sample {
                        id: record.id,
                        request: abbreviate::text(request.as_bytes()),
                        primary: difference.primary.clone(),
                        candidate: difference.other.clone(),
                        masked: difference.masked,
                    });
                }
            }
        }
        // The secondary's header and body fields count where the candidate's were compared
        // too (`both_contents`).
        let paired = analysis.raw.contents_compared() && analysis.noise.contents_compared();
        stats.both_contents += u64::from(paired);
        if let Some(differences) = counted(&analysis.noise) {
            stats.noise_compared += 1;
            stats.noise_contents += u64::from(analysis.noise.contents_compared());
            if !differences.is_empty() {
                stats.noise_differs += 1;
            }
            if differences.iter().any(|d| is_outcome_field(&d.field)) {
                stats.field(STATUS_OR_ERROR, fields_left, false).noise += 1;
            }
            // `other fields` stands for many: counted once per exchange, like any field.
            let mut other_counted = false;
            let counted = |d: &&Difference| paired || is_outcome_field(&d.field);
            for difference in differences.iter().filter(counted) {
                let field = stats.field(&difference.field, fields_left, false);
                if field.name == OTHER_FIELDS {
                    if other_counted {
                        continue;
                    }
                    other_counted = true;
                }
                field.noise += 1;
            }
            if differences.more && paired && !other_counted {
                stats.field(OTHER_FIELDS, fields_left, false).noise += 1;
            }
        }
        apart
    }

    fn endpoint_index(&mut self, name: &str) -> usize {
        if let Some(&index) = self.index.get(name) {
            return index;
        }
        let name = if self.endpoints.len() < self.max_endpoints {
            name
        } else {
            endpoint::OTHER
        };
        if let Some(&index) = self.index.get(name) {
            return index;
        }
        self.endpoints.push(EndpointStats::new(name.to_string()));
        self.index
            .insert(name.to_string(), self.endpoints.len() - 1);
        self.endpoints.len() - 1
    }
}

/// A comparison's differences, as the rates count them: one whose contents the capture
/// budget left out says only that the statuses agreed, and is not counted as compared (it
/// would read as an exchange that was the same).
fn counted(comparison: &Comparison) -> Option<&Differences> {
    comparison.differences().filter(|_| !comparison.squeezed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::LegError;
    use crate::http::Version;
    use crate::report::compare::{Analysis, Rules};

    /// Diffy's own form: both counts out of the same `total` exchanges.
    fn diffy(raw: u64, noise: u64, total: u64, thresholds: &Thresholds) -> DiffyRule {
        diffy_over(raw, total, noise, total, thresholds)
    }

    #[test]
    fn diffy_worked_examples() {
        let t = Thresholds::default();
        // (raw, noise, total, flagged): peers.md §2.5.
        let rows: &[(u64, u64, u64, bool)] = &[
            // A timestamp: always different, the secondary nearly always too.
            (1000, 990, 1000, false),
            // A price the candidate broke.
            (50, 0, 1000, true),
            // One difference in 10 000: below the absolute threshold (0.01 % < 0.03 %).
            (1, 0, 10_000, false),
            // Candidate less noisy than the secondary: never shown.
            (0, 50, 1000, false),
            (40, 50, 1000, false),
            // Diffy's flaw the significance test answers: one request in a hundred flips it.
            (1, 0, 100, true),
            // Strict comparisons: exactly at a threshold is not above it.
            (3, 2, 1000, false),
            (3, 0, 10_000, false),
            (4, 0, 10_000, true),
        ];
        for &(raw, noise, total, flagged) in rows {
            let rule = diffy(raw, noise, total, &t);
            assert_eq!(
                rule.flagged, flagged,
                "raw {raw} noise {noise} total {total}: {rule:?}"
            );
        }
        let rule = diffy(1000, 990, 1000, &t);
        assert!((rule.relative - 10.0 / 1990.0 * 100.0).abs() < 1e-9);
        assert!((rule.absolute - 1.0).abs() < 1e-9);
        let rule = diffy(50, 0, 1000, &t);
        assert_eq!((rule.relative, rule.absolute), (100.0, 5.0));
        // Thresholds are configurable.
        let loose = Thresholds {
            relative: Percent::whole(0),
            absolute: Percent::whole(0),
            ..t
        };
        assert!(diffy(1000, 990, 1000, &loose).flagged);
        assert!(diffy(1, 0, 10_000, &loose).flagged);
    }

    /// Counts out of different totals are compared as rates.
    #[test]
    fn diffys_rule_over_different_totals() {
        let t = Thresholds::default();
        // A timestamp the candidate always changes, and the secondary on each of the 50
        // exchanges whose bodies it could be compared in (it failed on the other 50): noise.
        let rule = diffy_over(100, 100, 50, 50, &t);
        assert!(!rule.flagged, "{rule:?}");
        assert_eq!((rule.relative, rule.absolute), (0.0, 0.0));
        // Counted over all 100, the same secondary would seem to differ half as often.
        assert!(diffy(100, 50, 100, &t).flagged);
        // A real change still shows: 50 % against 10 %.
        let rule = diffy_over(50, 100, 5, 50, &t);
        assert!(rule.flagged, "{rule:?}");
        assert!((rule.absolute - 40.0).abs() < 1e-9);
        assert!((rule.relative - 40.0 / 60.0 * 100.0).abs() < 1e-9);
        // The secondary never compared: no noise seen, so the candidate's change is flagged
        // (and, with too few samples, undecided rather than passed).
        assert!(diffy_over(100, 100, 0, 0, &t).flagged);
        assert!(!diffy_over(0, 0, 0, 0, &t).flagged);
    }

    #[test]
    fn z_test() {
        let c99 = Percent::whole(99);
        // (raw, n_raw, noise, n_noise, significant at 99 %)
        let rows: &[(u64, u64, u64, u64, bool)] = &[
            (50, 1000, 0, 1000, true),
            (1, 10_000, 0, 10_000, false),
            (1, 100, 0, 100, false),
            (0, 1000, 50, 1000, false),
            (500, 1000, 500, 1000, false),
            (1000, 1000, 1000, 1000, false),
            (0, 1000, 0, 1000, false),
            (30, 30, 0, 30, true),
            (5, 100, 0, 100, false),
            (10, 100, 0, 100, true),
            (0, 0, 0, 0, false),
        ];
        for &(raw, n1, noise, n2, significant) in rows {
            let test = proportion_test(raw, n1, noise, n2, c99);
            assert_eq!(
                test.significant, significant,
                "{raw}/{n1} vs {noise}/{n2}: {test:?}"
            );
        }
        // 10 vs 0 out of 100: z = 3.24.
        let test = proportion_test(10, 100, 0, 100, c99);
        assert!((test.z - 3.244).abs() < 0.01, "{test:?}");
        // A lower confidence accepts weaker evidence.
        assert!(proportion_test(5, 100, 0, 100, Percent::whole(95)).significant);
        // A p-value exactly at the level is not below it: 1 in 30 against none in 30 is
        // 30/60 = 0.5, computed a hair under (hunt 82), and so is the least p-value of a
        // field that differed once in 60 (left out of Holm's family at 50 %).
        let c50 = Percent::whole(50);
        let test = proportion_test(1, 30, 0, 30, c50);
        assert!((test.p_value - 0.5).abs() < 1e-9, "{test:?}");
        assert!(!test.significant, "{test:?}");
        assert!(!below_level(least_p_value(30, 30, 1), 0.5));
        let mut holm = proportion_test(1, 30, 0, 30, c50);
        holm_adjust(&mut [&mut holm], c50);
        assert!(!holm.significant, "{holm:?}");
        assert!(below_level(0.499, 0.5) && !below_level(0.5, 0.5));
    }

    #[test]
    fn percents_parse_exactly() {
        let rows: &[(&str, Option<u32>, &str)] = &[
            ("20", Some(200_000), "20%"),
            ("0.03", Some(300), "0.03%"),
            ("99", Some(990_000), "99%"),
            ("99.9", Some(999_000), "99.9%"),
            ("99.99%", Some(999_900), "99.99%"),
            ("100", Some(1_000_000), "100%"),
            ("0", Some(0), "0%"),
            (".5", Some(5000), "0.5%"),
            ("0.0001", Some(1), "0.0001%"),
        ];
        for &(text, units, shown) in rows {
            let parsed = Percent::parse(text);
            assert_eq!(parsed.map(|p| p.0), units, "{text}");
            assert_eq!(parsed.unwrap().to_string(), shown);
        }
        for bad in [
            "", ".", "-1", "100.01", "1e2", "0.00001", "abc", "1000", " 5",
        ] {
            assert_eq!(Percent::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Percent::parse("20").unwrap().fraction(), 0.2);
    }

    #[test]
    fn the_p_value_is_fishers_exact_one() {
        for (x, expected) in [
            (1.0, 0.0),
            (0.5, 0.572_364_942_924_700_1),
            (101.0, 363.739_375_555_563_47),
            (1e6, 12_815_504.569_147_61),
        ] {
            let got = ln_gamma(x);
            assert!(
                (got - expected).abs() <= 1e-12 * expected.abs().max(1.0),
                "{x}: {got}"
            );
        }
        // Fisher's tea: 3 of the 4 cups picked right, of 8 with 4 milk-first: 17/70.
        assert!((fisher_upper_tail(3, 4, 4, 8) - 17.0 / 70.0).abs() < 1e-12);
        assert_eq!(fisher_upper_tail(0, 4, 4, 8), 1.0);
        assert!((fisher_upper_tail(1, 4, 4, 8) - 69.0 / 70.0).abs() < 1e-12);
        let c99 = Percent::whole(99);
        // (raw, n_raw, noise, n_noise, exact p-value, summed in rationals). The first two
        // are where the normal approximation failed identical candidates: one difference in
        // 35 exchanges against none in 3 000 read p = 1e-20; 10 in 30 against 48 in 300
        // read 0.0087, a regression at 99 %.
        let rows: &[(u64, u64, u64, u64, f64)] = &[
            (1, 35, 0, 3000, 35.0 / 3035.0),
            (10, 30, 48, 300, 0.021_881_035_945_796_52),
            (22, 300, 8, 300, 0.006_807_741_237_535_062),
            (1, 100, 0, 100, 0.5),
        ];
        for &(raw, n1, noise, n2, exact) in rows {
            let test = proportion_test(raw, n1, noise, n2, c99);
            assert!(
                (test.p_value - exact).abs() < 1e-9 * exact.max(1e-300) + 1e-15,
                "{raw}/{n1} vs {noise}/{n2}: {test:?}"
            );
            assert_eq!(test.significant, exact < 0.01);
        }
    }

    #[test]
    fn holm_adjusts_over_the_family() {
        let test = |p: f64| ProportionTest {
            z: 0.0,
            p_value: p,
            p_adjusted: p,
            significant: true,
        };
        // Sorted: 0.005 × 4, 0.01 × 3, 0.03 × 2, then 0.04 × 1 below the running maximum.
        let mut tests = [test(0.01), test(0.04), test(0.03), test(0.005)];
        let mut family: Vec<&mut ProportionTest> = tests.iter_mut().collect();
        holm_adjust(&mut family, Percent::whole(95));
        let adjusted: Vec<f64> = tests.iter().map(|t| t.p_adjusted).collect();
        for (got, want) in adjusted.iter().zip([0.03, 0.06, 0.06, 0.02]) {
            assert!((got - want).abs() < 1e-12, "{adjusted:?}");
        }
        let significant: Vec<bool> = tests.iter().map(|t| t.significant).collect();
        assert_eq!(significant, [true, false, false, true]);
        // Never above 1; a family of one is the test alone.
        let mut tests = [test(0.5), test(0.6)];
        holm_adjust(
            &mut tests.iter_mut().collect::<Vec<_>>(),
            Percent::whole(99),
        );
        assert_eq!((tests[0].p_adjusted, tests[1].p_adjusted), (1.0, 1.0));
        let mut one = [test(0.004)];
        holm_adjust(&mut one.iter_mut().collect::<Vec<_>>(), Percent::whole(99));
        assert_eq!(one[0].p_adjusted, 0.004);
        assert!(one[0].significant);
    }

    #[test]
    fn histogram_quantiles_are_close_and_memory_is_fixed() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for micros in 1..=10_000u64 {
            h.record(Duration::from_micros(micros));
        }
        for (q, exact) in [(0.5, 5000.0), (0.99, 9900.0), (1.0, 10_000.0)] {
            let got = h.quantile(q).unwrap().as_micros() as f64;
            assert!((got - exact).abs() / exact < 0.04, "q{q}: {got} vs {exact}");
        }
        for micros in [0u64, 1, 15, 16, 17, 31, 32, 1_000_000, u64::MAX / 2] {
            let index = Histogram::index(micros);
            assert!(index < Histogram::BUCKETS, "{micros}");
            let middle = Histogram::middle(index);
            if micros < 1 << 40 {
                assert!(
                    middle.abs_diff(micros) as f64 <= (micros as f64 * 0.04).max(1.0),
                    "{micros}: {middle}"
                );
            }
        }
        h.record(Duration::from_secs(1_000_000_000));
        assert_eq!(h.counts.len(), Histogram::BUCKETS);
        assert_eq!(h.count(), 10_001);
    }

    fn ok(body: &str) -> LegOutcome {
        let fields = b"Content-Type: application/json\r\n";
        LegOutcome::ok_for_test(body, fields, Duration::from_millis(2))
    }

    fn record(id: u64, legs: [LegOutcome; 3]) -> ExchangeRecord {
        ExchangeRecord {
            id,
            method: "GET".to_string(),
            target: format!("/users/{id}"),
            version: Version::Http11,
            host: None,
            request_body_bytes: 0,
            epoch: 0,
            client_left: false,
            upstreams: [None; 3],
            legs,
        }
    }

    /// A regression beside many noisy fields is kept (a comparison keeps 256 fields), and the
    /// fields beyond that count once per exchange under `other fields`, never dropped.
    #[test]
    fn fields_beyond_a_comparisons_bound_are_counted_not_lost() {
        let rules = Rules::new(&[], &[], 1 << 20);
        let epoch_of = |n: u64, legs: &dyn Fn(u64) -> [LegOutcome; 3]| {
            let mut epoch = Epoch::new(0, 1000);
            for id in 1..=n {
                let record = record(id, legs(id));
                epoch.record("GET /x", &record, &Analysis::of(&record, &rules));
            }
            epoch
        };
        let object = |noise: u64, total: u64, fields: usize| {
            let members: Vec<String> = (0..fields)
                .map(|k| format!(r#""updated_at_{k:03}":{noise}"#))
                .collect();
            format!(r#"{{"g":{{{}}},"zz_total":{total}}}"#, members.join(","))
        };
        let epoch = epoch_of(4, &|id| {
            // 70 noisy timestamps in both shadows, and a real change in the candidate.
            [
                ok(&object(id, 1, 70)),
                ok(&object(id + 100, 1, 70)),
                ok(&object(id + 200, 2, 70)),
            ]
        });
        let stats = &epoch.endpoints[0];
        let total = stats.fields.iter().find(|f| f.name == "body zz_total");
        assert_eq!(total.map(|f| (f.raw, f.noise)), Some((4, 0)));
        assert_eq!(stats.raw_beyond_noise, 4);
        // 300 differing fields: the first named, the rest once per exchange under `other
        // fields`.
        let epoch = epoch_of(4, &|_| {
            [
                ok(&object(1, 1, 300)),
                ok(&object(1, 1, 300)),
                ok(&object(2, 1, 300)),
            ]
        });
        let stats = &epoch.endpoints[0];
        assert!(
            (256..=257).contains(&stats.fields.len()),
            "{}",
            stats.fields.len()
        );
        let other = stats.fields.iter().find(|f| f.name == OTHER_FIELDS);
        assert_eq!(other.map(|f| (f.raw, f.noise)), Some((4, 0)));
        assert_eq!(stats.raw_beyond_noise, 4);
        // Noise in more fields than the candidate's comparison keeps does not push a real
        // change out either: the secondary's fields are kept apart from the rest.
        let epoch = epoch_of(4, &|id| {
            let changed = object(id + 200, 1, 300).replace("\"zz_total\":1", "\"zz_total\":\"1\"");
            [
                ok(&object(id, 1, 300)),
                ok(&object(id + 100, 1, 300)),
                ok(&changed),
            ]
        });
        let stats = &epoch.endpoints[0];
        let total = stats.fields.iter().find(|f| f.name == "body zz_total type");
        assert_eq!(total.map(|f| (f.raw, f.noise)), Some((4, 0)));
        assert_eq!(stats.raw_beyond_noise, 4);
        let other = stats.fields.iter().find(|f| f.name == OTHER_FIELDS);
        assert!(other.map_or(true, |f| f.raw == f.masked), "{other:?}");
        // Noise in more fields than even the secondary's comparison describes, and no
        // change: the secondary's fields past those are still named, and the candidate's are
        // noise too.
        let epoch = epoch_of(4, &|id| {
            [
                ok(&object(id, 1, 1000)),
                ok(&object(id + 100, 1, 1000)),
                ok(&object(id + 200, 1, 1000)),
            ]
        });
        let stats = &epoch.endpoints[0];
        assert_eq!(stats.raw_beyond_noise, 0);
        let beyond: Vec<_> = stats.fields.iter().filter(|f| f.raw > f.noise).collect();
        assert!(beyond.is_empty(), "{beyond:?}");
        // Noise took every name on the first exchange; a real change from the second on
        // still gets its own, not `other fields` beside the noise.
        let epoch = epoch_of(8, &|id| {
            let total = if id == 1 { 1 } else { 2 };
            [
                ok(&object(id, 1, 300)),
                ok(&object(id + 100, 1, 300)),
                ok(&object(id + 200, total, 300)),
            ]
        });
        let stats = &epoch.endpoints[0];
        let total = stats.fields.iter().find(|f| f.name == "body zz_total");
        assert_eq!(total.map(|f| (f.raw, f.noise)), Some((7, 0)));
        // A field the secondary changes half the time and the candidate always, past 256
        // masked fields: each of the candidate's counts, masked or not.
        let epoch = epoch_of(8, &|id| {
            let secondary_total = if id % 2 == 0 { 2 } else { 1 };
            [
                ok(&object(id, 1, 300)),
                ok(&object(id + 100, secondary_total, 300)),
                ok(&object(id + 200, 3, 300)),
            ]
        });
        let stats = &epoch.endpoints[0];
        let total = stats.fields.iter().find(|f| f.name == "body zz_total");
        assert_eq!(total.map(|f| (f.raw, f.noise)), Some((8, 4)));
        // Past the 512 fields the secondary's comparison describes, a field it changes only
        // some of the time still counts each time: an identical candidate changing it as
        // often is noise.
        let epoch = epoch_of(8, &|id| {
            let secondary_total = if id % 2 == 0 { 2 } else { 1 };
            let candidate_total = if id % 4 < 2 { 3 } else { 1 };
            [
                ok(&object(id, 1, 600)),
                ok(&object(id + 100, secondary_total, 600)),
                ok(&object(id + 200, candidate_total, 600)),
            ]
        });
        let stats = &epoch.endpoints[0];
        let total = stats.fields.iter().find(|f| f.name == "body zz_total");
        assert_eq!(total.map(|f| (f.raw, f.noise)), Some((4, 4)));
    }

    #[test]
    fn epoch_counts_fields_masks_errors_and_samples() {
        let rules = Rules::new(&[], &[], 1024);
        let mut epoch = Epoch::new(0, 1000);
        for id in 1..=8u64 {
            let legs = [
                ok(&format!(r#"{{"ts":{id},"email":"a"}}"#)),
                ok(&format!(r#"{{"ts":{},"email":"a"}}"#, id + 100)),
                if id == 8 {
                    LegOutcome::Failed {
                        error: LegError::ConnectionRefused,
                        elapsed: Duration::ZERO,
                    }
                } else {
                    ok(&format!(r#"{{"ts":{},"email":"b"}}"#, id + 200))
                },
            ];
            let record = record(id, legs);
            epoch.record("GET /users/{id}", &record, &Analysis::of(&record, &rules));
        }
        assert_eq!(epoch.exchanges, 8);
        let stats = &epoch.endpoints[0];
        assert_eq!(stats.name, "GET /users/{id}");
        assert_eq!(
            (stats.requests, stats.raw_compared, stats.noise_compared),
            (8, 8, 8)
        );
        assert_eq!(
            (
                stats.raw_differs,
                stats.raw_beyond_noise,
                stats.noise_differs
            ),
            (8, 8, 8)
        );
        assert_eq!(stats.masked, 7);
        let field = |name: &str| stats.fields.iter().find(|f| f.name == name).unwrap();
        assert_eq!(
            (
                field("body ts").raw,
                field("body ts").noise,
                field("body ts").masked
            ),
            // Exchange 8's secondary differs in `ts` too, but the failed candidate's contents
            // were not compared: header and body fields count where both legs' were.
            (7, 7, 7)
        );
        assert_eq!((field("body email").raw, field("body email").noise), (7, 0));
        assert_eq!(field("error:refused").raw, 1);
        assert_eq!(field("body email").samples.len(), SAMPLES_PER_FIELD);
        let sample = &field("body email").samples[0];
        assert_eq!(
            (
                sample.id,
                sample.request.as_str(),
                sample.primary.as_str(),
                sample.candidate.as_str()
            ),
            (1, "GET /users/1 HTTP/1.1", "\"a\"", "\"b\"")
        );
        assert_eq!(stats.legs[2].errors, vec![("refused", 1)]);
        assert_eq!(stats.legs[2].latency.count(), 7);
        assert_eq!(stats.legs[0].latency.count(), 8);
    }

    #[test]
    fn endpoints_and_fields_are_bounded() {
        let rules = Rules::new(&[], &[], 1024);
        let mut epoch = Epoch::new(0, 3);
        for id in 0..10u64 {
            let body = format!(r#"{{"f{id}":1}}"#);
            let record = record(id, [ok("{}"), ok("{}"), ok(&body)]);
            epoch.record(
                &format!("GET /e{id}"),
                &record,
                &Analysis::of(&record, &rules),
            );
        }
        let names: Vec<&str> = epoch.endpoints.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["GET /e0", "GET /e1", "GET /e2", "other"]);
        assert_eq!(epoch.endpoints[3].requests, 7);

        let mut stats = EndpointStats::new("x".into());
        let mut left = MAX_FIELDS;
        for i in 0..MAX_FIELDS_PER_ENDPOINT + 10 {
            stats.field(&format!("body f{i}"), &mut left, false).raw += 1;
        }
        assert_eq!(stats.fields.len(), MAX_FIELDS_PER_ENDPOINT + 1);
        assert_eq!(stats.fields.last().unwrap().name, OTHER_FIELDS);
        assert_eq!(stats.fields.last().unwrap().raw, 10);
        // A field beyond noise still gets a name of its own, up to the reserve.
        for i in 0..RESERVED_PER_ENDPOINT + 10 {
            stats.field(&format!("body real{i}"), &mut left, true).raw += 1;
        }
        let named = MAX_FIELDS_PER_ENDPOINT + 1 + RESERVED_PER_ENDPOINT - 1;
        assert_eq!(stats.fields.len(), named);
        assert_eq!(stats.fields[MAX_FIELDS_PER_ENDPOINT + 1].name, "body real0");
        // A field the secondary has differed in is noise, and takes no kept name.
        let mut noisy = EndpointStats::new("z".into());
        let mut plenty = MAX_FIELDS;
        for i in 0..MAX_FIELDS_PER_ENDPOINT {
            noisy.field(&format!("body f{i}"), &mut plenty, false);
        }
        noisy.noisy.insert(name_hash("body flaky"));
        assert_eq!(
            noisy.field("body flaky", &mut plenty, true).name,
            OTHER_FIELDS
        );
        assert_eq!(
            noisy.field("body real", &mut plenty, true).name,
            "body real"
        );
        // A kept name taken before the secondary was seen changing its field is given back
        // once it is: the next real change has one (and a field past the reserve does not
        // give back what it never held).
        stats.seen_noisy("body real0");
        stats.seen_noisy("body real70");
        assert_eq!(stats.given_back, 1);
        stats.seen_noisy("body real0");
        assert_eq!(stats.given_back, 1);
        assert_eq!(stats.field("body late", &mut left, true).name, "body late");
        assert_eq!(
            stats.field("body later", &mut left, true).name,
            OTHER_FIELDS
        );
        // Statuses and errors are named however full the table is.
        let before = stats.fields.len();
        stats.field("error:reset", &mut left, false).noise += 1;
        stats.field(STATUS_OR_ERROR, &mut left, false).noise += 1;
        assert_eq!(stats.fields.len(), before + 2);
        // The epoch's bound keeps a reserve the same way.
        let mut stats = EndpointStats::new("y".into());
        let mut left = RESERVED_FIELDS + 2;
        for i in 0..5 {
            stats.field(&format!("body f{i}"), &mut left, false);
        }
        assert_eq!(stats.fields.len(), 3);
        stats.field("body real", &mut left, true);
        assert_eq!(stats.fields.len(), 4);
        // A name of the epoch's reserve goes back to the epoch (`Epoch::record` counts it
        // in again) when its field proves to be noise; one of the endpoint's alone does not.
        assert!(stats.seen_noisy("body real"));
        assert!(!stats.seen_noisy("body real"));
        assert_eq!(stats.given_back, 0);
    }
}
