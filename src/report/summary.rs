//! The summary of a statistics epoch and its verdict: which fields are regressions, which
//! endpoints regress, whether the candidate passes. Written as text on stdout (on SIGUSR1,
//! before a reload's new epoch, at shutdown) and as JSON (`--report FILE`, `--format json`).
//!
//! A field is a **regression** when both rules agree on an endpoint with enough samples:
//! the significance test (Fisher's exact, corrected by Holm's method over the epoch's fields)
//! says the candidate differs more often than the secondary (it is not chance), and Diffy's
//! thresholds say the gap is large enough to matter (it is not a rounding of
//! a timestamp that both differ in nearly always). With fewer samples than `min_samples` the
//! endpoint is undecided and says so; it neither fails nor passes the candidate.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

use super::compare::{is_outcome_field, listed_name, STATUS_OR_ERROR};
use super::stats::{
    below_level, diffy_over, holm_adjust, least_p_value, proportion_test, DiffyRule, EndpointStats,
    Epoch, FieldStats, LegStats, ProportionTest, Thresholds,
};
use super::Verdict;
use crate::targets::Role;
use crate::Counted;

/// Most endpoints the text summary lists (all regressing ones, and undecided ones with a
/// flagged field, are always listed); the JSON report has them all.
const TEXT_ENDPOINTS: usize = 50;
/// Most names in a `within noise:` line.
const NOISE_NAMES: usize = 8;
/// Most field lines the text summary gives an endpoint (regressions first); a candidate
/// that changes a large document can have hundreds, and the JSON report has them all.
const TEXT_FIELDS: usize = 16;

/// What one field came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FieldVerdict {
    /// Significant and above Diffy's thresholds.
    Regression,
    /// Diffy's rule flags it, but the endpoint has too few samples to test.
    TooFewSamples,
    /// Diffy's rule flags it; the test says it may be chance.
    NotSignificant,
    /// The test says it is real; the gap is below Diffy's thresholds.
    BelowThresholds,
    /// Explained by the noise.
    Noise,
}

impl FieldVerdict {
    fn label(self) -> &'static str {
        match self {
            FieldVerdict::Regression => "REGRESSION",
            FieldVerdict::TooFewSamples => "UNDECIDED (too few samples)",
            FieldVerdict::NotSignificant => "not significant",
            FieldVerdict::BelowThresholds => "below thresholds",
            FieldVerdict::Noise => "noise",
        }
    }

    fn name(self) -> &'static str {
        match self {
            FieldVerdict::Regression => "regression",
            FieldVerdict::TooFewSamples => "too few samples",
            FieldVerdict::NotSignificant => "not significant",
            FieldVerdict::BelowThresholds => "below thresholds",
            FieldVerdict::Noise => "noise",
        }
    }
}

/// What one endpoint came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EndpointVerdict {
    Regresses,
    /// Too few samples: Diffy's rule flags a field, or too few exchanges had their headers
    /// and bodies compared for a pass to mean anything (the shadows skipped, down, or
    /// answering with another status).
    Undecided,
    /// Enough compared exchanges, and no regression.
    Passes,
}

impl EndpointVerdict {
    fn name(self) -> &'static str {
        match self {
            EndpointVerdict::Regresses => "regresses",
            EndpointVerdict::Undecided => "undecided",
            EndpointVerdict::Passes => "passes",
        }
    }
}

/// One field, judged.
#[derive(Debug, Clone)]
pub struct FieldReport<'a> {
    pub stats: &'a FieldStats,
    /// The exchanges the field could differ in, for the candidate and the secondary
    /// (`EndpointStats::compared_for`).
    pub compared: (u64, u64),
    pub diffy: DiffyRule,
    pub test: ProportionTest,
    /// Both legs compared `--min-samples` times for the field: its test counts.
    pub tested: bool,
    pub verdict: FieldVerdict,
}

/// One endpoint, judged.
#[derive(Debug, Clone)]
pub struct EndpointReport<'a> {
    pub stats: &'a EndpointStats,
    /// Most severe first.
    pub fields: Vec<FieldReport<'a>>,
    pub enough_samples: bool,
    /// Enough exchanges had their header fields and bodies compared on both shadow legs
    /// (each answered with the primary's status) for a pass to mean anything: shadows down,
    /// or answering errors, compare statuses and nothing else.
    pub contents_decided: bool,
    /// A field is flagged by Diffy's rule, but the samples are too few to test it.
    pub flagged_unsure: bool,
    pub verdict: EndpointVerdict,
}

impl EndpointReport<'_> {
    /// The order endpoints are listed in: regressing ones, then those with a flagged field
    /// they have too few samples for; the rest (passing, or with too little compared, like a
    /// long tail of rare paths) by requests, so the busiest are listed.
    fn rank(&self) -> u8 {
        match self.verdict {
            EndpointVerdict::Regresses => 0,
            EndpointVerdict::Undecided if self.flagged_unsure => 1,
            _ => 2,
        }
    }
}

/// Why a summary is being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGUSR1: the epoch goes on.
    Signal,
    /// A reload started a new epoch: this one is over.
    Reload,
    /// Shutdown.
    Final,
    /// Still counting, in a report file written as an older epoch a reload ended closed.
    Counting,
}

impl Trigger {
    fn name(self) -> &'static str {
        match self {
            Trigger::Signal => "SIGUSR1",
            Trigger::Reload => "reloaded",
            Trigger::Final => "final",
            Trigger::Counting => "counting",
        }
    }
}

/// An epoch, judged.
#[derive(Debug, Clone)]
pub struct EpochReport<'a> {
    pub epoch: &'a Epoch,
    /// In `EndpointReport::rank` order.
    pub endpoints: Vec<EndpointReport<'a>>,
    /// Exchanges dropped because the reporting thread was behind, in this epoch.
    pub not_compared: u64,
    pub regressing: usize,
    pub undecided: usize,
    /// Undecided endpoints with a field Diffy's rule flags: the ones to watch.
    pub flagged_unsure: usize,
    /// The fields with the samples to test that could be significant (`least_p_value`), over
    /// every endpoint: the family the tests are corrected over.
    pub tested_fields: usize,
    pub thresholds: Thresholds,
}

impl<'a> EpochReport<'a> {
    /// Judges `epoch`; `not_compared_pending`: its exchanges dropped and still in the
    /// backlog's count (a summary so far does not take them).
    pub fn new(
        epoch: &'a Epoch,
        thresholds: &Thresholds,
        not_compared_pending: u64,
    ) -> EpochReport<'a> {
        let mut endpoints: Vec<EndpointReport<'a>> = epoch
            .endpoints
            .iter()
            .map(|stats| assess_endpoint(stats, thresholds))
            .collect();
        // One family: the candidate fails the epoch if any field of any endpoint regresses.
        // A field that could not be significant even alone is not in it (`least_p_value`).
        let alpha = 1.0 - thresholds.confidence.fraction();
        let mut tests: Vec<&mut ProportionTest> = Vec::new();
        for field in endpoints.iter_mut().flat_map(|e| e.fields.iter_mut()) {
            if !field.tested {
                continue;
            }
            let (n_raw, n_noise) = field.compared;
            let differences = field.stats.raw + field.stats.noise;
            if below_level(least_p_value(n_raw, n_noise, differences), alpha) {
                tests.push(&mut field.test);
            } else {
                field.test.p_adjusted = 1.0;
                field.test.significant = false;
            }
        }
        let tested_fields = tests.len();
        holm_adjust(&mut tests, thresholds.confidence);
        for endpoint in &mut endpoints {
            endpoint.decide();
        }
        endpoints.sort_by(|a, b| {
            (a.rank(), std::cmp::Reverse(a.stats.requests), &a.stats.name).cmp(&(
                b.rank(),
                std::cmp::Reverse(b.stats.requests),
                &b.stats.name,
            ))
        });
        let count = |v: EndpointVerdict| endpoints.iter().filter(|e| e.verdict == v).count();
        EpochReport {
            epoch,
            regressing: count(EndpointVerdict::Regresses),
            undecided: count(EndpointVerdict::Undecided),
            flagged_unsure: endpoints.iter().filter(|e| e.flagged_unsure).count(),
            endpoints,
            not_compared: epoch.not_compared + not_compared_pending,
            tested_fields,
            thresholds: *thresholds,
        }
    }

    /// The candidate fails this epoch.
    pub fn fails(&self) -> bool {
        self.regressing > 0
    }

    /// Some endpoint had the samples to compare the contents of responses: a pass is one
    /// with evidence.
    pub fn decides(&self) -> bool {
        self.endpoints.iter().any(|e| e.contents_decided)
    }

    /// The verdict over this epoch and the earlier ones that failed: FAIL if any did; else
    /// this epoch's, since it is the current candidate's (an earlier candidate's evidence
    /// says nothing of one a reload brought in).
    pub fn verdict(&self, earlier_failed: &[u64]) -> Verdict {
        if self.fails() || !earlier_failed.is_empty() {
            Verdict::Fail
        } else if self.decides() {
            Verdict::Pass
        } else {
            Verdict::Undecided
        }
    }
}

/// An endpoint's fields with their rules applied and their tests run, not yet judged: the
/// tests are corrected over the whole epoch first (`holm_adjust`).
fn assess_endpoint<'a>(stats: &'a EndpointStats, thresholds: &Thresholds) -> EndpointReport<'a> {
    let enough_samples = stats.raw_compared >= thresholds.min_samples
        && stats.noise_compared >= thresholds.min_samples;
    let contents_decided = stats.raw_contents.min(stats.both_contents) >= thresholds.min_samples;
    let mut fields: Vec<FieldReport<'a>> = stats
        .fields
        .iter()
        .map(|field| {
            let (n_raw, n_noise) = stats.compared_for(field);
            FieldReport {
                stats: field,
                compared: (n_raw, n_noise),
                diffy: diffy_over(field.raw, n_raw, field.noise, n_noise, thresholds),
                test: proportion_test(
                    field.raw,
                    n_raw,
                    field.noise,
                    n_noise,
                    thresholds.confidence,
                ),
                tested: n_raw >= thresholds.min_samples && n_noise >= thresholds.min_samples,
                verdict: FieldVerdict::Noise,
            }
        })
        .collect();
    // The total of the statuses and errors says more than each only when there are two
    // kinds or more; with one it says the same twice.
    let kinds = fields
        .iter()
        .filter(|f| is_outcome_field(&f.stats.name) && f.stats.name != STATUS_OR_ERROR)
        .count();
    if kinds < 2 {
        fields.retain(|f| f.stats.name != STATUS_OR_ERROR);
    }
    EndpointReport {
        stats,
        fields,
        enough_samples,
        contents_decided,
        flagged_unsure: false,
        verdict: EndpointVerdict::Undecided,
    }
}

impl EndpointReport<'_> {
    /// Judges the fields on their corrected tests, and the endpoint on its fields.
    fn decide(&mut self) {
        for field in &mut self.fields {
            field.verdict = match (field.tested, field.test.significant, field.diffy.flagged) {
                (false, _, true) => FieldVerdict::TooFewSamples,
                (false, _, false) => FieldVerdict::Noise,
                (true, true, true) => FieldVerdict::Regression,
                (true, false, true) => FieldVerdict::NotSignificant,
                (true, true, false) => FieldVerdict::BelowThresholds,
                (true, false, false) => FieldVerdict::Noise,
            };
        }
        self.fields.sort_by(|a, b| {
            (a.verdict, std::cmp::Reverse(a.stats.raw), &a.stats.name).cmp(&(
                b.verdict,
                std::cmp::Reverse(b.stats.raw),
                &b.stats.name,
            ))
        });
        let any = |v: FieldVerdict| self.fields.iter().any(|f| f.verdict == v);
        self.flagged_unsure = any(FieldVerdict::TooFewSamples);
        self.verdict = if any(FieldVerdict::Regression) {
            EndpointVerdict::Regresses
        } else if self.flagged_unsure || !self.contents_decided {
            EndpointVerdict::Undecided
        } else {
            EndpointVerdict::Passes
        };
    }
}

/// The verdict line: this epoch's, and earlier epochs' failures (`earlier_failed`).
pub fn verdict_line(report: &EpochReport<'_>, earlier_failed: &[u64]) -> String {
    let mut line = String::from("VERDICT candidate: ");
    if report.fails() {
        let n = report.regressing;
        let _ = write!(
            line,
            "FAIL — {n} {}",
            if n == 1 {
                "endpoint regresses"
            } else {
                "endpoints regress"
            }
        );
    } else if let Some(first) = earlier_failed.first() {
        let _ = write!(
            line,
            "FAIL — epoch {first} regressed (epoch {} {})",
            report.epoch.number,
            if report.decides() {
                "passes"
            } else {
                "undecided"
            }
        );
    } else if report.verdict(earlier_failed) == Verdict::Undecided {
        let n = report.thresholds.min_samples;
        if report.endpoints.iter().any(|e| e.enough_samples) {
            // Statuses were compared, and nothing else: say why, or it reads as no traffic.
            let why = shortfall(report.endpoints.iter().filter(|e| e.enough_samples));
            let _ = write!(
                line,
                "UNDECIDED — no endpoint has the {n} exchanges with headers and bodies \
                 compared a verdict needs (the shadows {why})"
            );
        } else {
            let _ = write!(
                line,
                "UNDECIDED — no endpoint has the {n} compared exchanges a verdict needs"
            );
        }
    } else {
        line.push_str("PASS");
    }
    let endpoints = |n: usize| if n == 1 { "endpoint" } else { "endpoints" };
    let mut notes = Vec::new();
    if report.flagged_unsure > 0 {
        let n = report.flagged_unsure;
        notes.push(format!("{n} {} flagged on too few samples", endpoints(n)));
    }
    // Undecided without a flag: a PASS or FAIL says nothing of them otherwise. (An UNDECIDED
    // verdict says it of them all.) Too few exchanges (a long tail, a method not shadowed),
    // or statuses alone compared (the shadows failed, were skipped, or answered another
    // status).
    if report.decides() {
        let unsettled = |few: bool| {
            report
                .endpoints
                .iter()
                .filter(|e| e.verdict == EndpointVerdict::Undecided && !e.flagged_unsure)
                .filter(move |e| e.enough_samples != few)
        };
        let (few, statuses) = (unsettled(true).count(), unsettled(false).count());
        if few > 0 {
            notes.push(format!(
                "{few} {} undecided: too few exchanges compared",
                endpoints(few)
            ));
        }
        if statuses > 0 {
            notes.push(format!(
                "{statuses} {} undecided: headers and bodies not compared (the shadows {})",
                endpoints(statuses),
                shortfall(unsettled(false))
            ));
        }
    }
    // A body compared by hash that the secondary's differs in too hides any change in it:
    // a pass there says nothing of the bodies (a noisy field inside one is past the cap).
    if report.verdict(earlier_failed) == Verdict::Pass {
        let noisy_hash = |f: &FieldReport<'_>| {
            f.stats.name == "body hash" && f.stats.noise > 0 && f.verdict == FieldVerdict::Noise
        };
        let blind = report
            .endpoints
            .iter()
            .filter(|e| e.verdict == EndpointVerdict::Passes && e.fields.iter().any(noisy_hash))
            .count();
        if blind > 0 {
            notes.push(format!(
                "{blind} {} with bodies compared by a hash that differs as noise: a change in \
                 them cannot be seen (raise --max-compare-bytes)",
                endpoints(blind)
            ));
        }
    }
    if !notes.is_empty() {
        let _ = write!(line, " ({})", notes.join("; "));
    }
    line
}

/// Appends the text summary: a `SUMMARY` line, the endpoints, and the `VERDICT` line last
/// (every summary ends with exactly one).
pub fn write_text(
    report: &EpochReport<'_>,
    trigger: Trigger,
    earlier_failed: &[u64],
    out: &mut String,
) {
    let epoch = report.epoch;
    let t = &report.thresholds;
    let _ = write!(
        out,
        "SUMMARY epoch {} ({}): {}, {} not compared",
        epoch.number,
        trigger.name(),
        Counted(epoch.exchanges as usize, "exchange"),
        report.not_compared
    );
    if epoch.late > 0 {
        let _ = write!(out, ", {} from an earlier epoch not counted", epoch.late);
    }
    let _ = writeln!(
        out,
        "; a regression is significant at {} over the {} tested (Holm) and above Diffy's \
         thresholds (relative > {}, absolute > {}), from {} samples",
        t.confidence,
        Counted(report.tested_fields, "field"),
        t.relative,
        t.absolute,
        t.min_samples
    );
    if report.endpoints.is_empty() {
        out.push_str("  no exchanges compared\n");
    }
    for (shown, endpoint) in report.endpoints.iter().enumerate() {
        if endpoint.rank() == 2 && shown >= TEXT_ENDPOINTS {
            let rest = report.endpoints.len() - shown;
            let _ = writeln!(
                out,
                "  … and {rest} more endpoints, none regressing (all of them in --report FILE)"
            );
            break;
        }
        write_endpoint(endpoint, t.min_samples, out);
    }
    out.push_str(&verdict_line(report, earlier_failed));
    out.push('\n');
}

fn write_endpoint(endpoint: &EndpointReport<'_>, min_samples: u64, out: &mut String) {
    let s = endpoint.stats;
    let _ = write!(
        out,
        "  {}: {} {}",
        s.name,
        s.requests,
        if s.requests == 1 {
            "request"
        } else {
            "requests"
        }
    );
    if s.raw_compared == 0 && s.noise_compared == 0 {
        // The shadows not sent, or nothing to compare them with (a primary cut for a new
        // client, a request the client never finished: see the errors below).
        if s.squeezed > 0 {
            let _ = write!(
                out,
                "; nothing compared but statuses: {} with headers and bodies not compared (the \
                 capture budget was full)",
                s.squeezed
            );
        } else if s.legs[1].skipped + s.legs[2].skipped > 0 {
            out.push_str("; nothing compared (the shadow legs were skipped)");
        } else {
            out.push_str("; nothing compared (see the errors)");
        }
    } else {
        if s.raw_compared < s.requests {
            // Sampling, skipped methods or saturation: the rates below are of these.
            let _ = write!(out, " ({} compared)", s.raw_compared);
        }
        let _ = write!(
            out,
            "; candidate differs {} ({} beyond noise), secondary differs {}",
            rate(s.raw_differs, s.raw_compared),
            rate(s.raw_beyond_noise, s.raw_compared),
            rate(s.noise_differs, s.noise_compared),
        );
        if s.masked > 0 {
            let _ = write!(out, "; {} candidate fields masked as noise", s.masked);
        }
        if s.hashed > 0 {
            let _ = write!(
                out,
                "; {} compared by hash (beyond --max-compare-bytes)",
                s.hashed
            );
        }
        if s.squeezed > 0 {
            let _ = write!(
                out,
                "; {} with headers and bodies not compared (the capture budget was full)",
                s.squeezed
            );
        }
        if !endpoint.enough_samples {
            let n = s.raw_compared.min(s.noise_compared);
            let _ = write!(out, "; too few samples to test ({n} < {min_samples})");
        } else if !endpoint.contents_decided {
            let n = s.raw_contents.min(s.both_contents);
            let _ = write!(
                out,
                "; too few exchanges with both shadows' headers and bodies compared ({n} < \
                 {min_samples}: the shadows {})",
                shortfall([endpoint])
            );
        }
    }
    out.push('\n');
    out.push_str("    latency p50/p99:");
    for (i, role) in Role::ALL.iter().enumerate() {
        let leg = &s.legs[role.index()];
        let _ = write!(
            out,
            "{} {role} {}/{}",
            if i == 0 { "" } else { "," },
            millis(leg.latency.quantile(0.5)),
            millis(leg.latency.quantile(0.99)),
        );
    }
    out.push('\n');
    out.push_str("    errors:");
    for (i, role) in Role::ALL.iter().enumerate() {
        let leg = &s.legs[role.index()];
        let _ = write!(
            out,
            "{} {role} {}",
            if i == 0 { "" } else { "," },
            leg.error_count()
        );
        write_kinds(&leg.errors, out);
    }
    if s.legs.iter().any(|leg| leg.skipped > 0) {
        // The primary is never skipped.
        out.push_str("; skipped:");
        for (i, role) in Role::ALL[1..].iter().enumerate() {
            let leg = &s.legs[role.index()];
            let _ = write!(
                out,
                "{} {role} {}",
                if i == 0 { "" } else { "," },
                leg.skipped
            );
            write_kinds(&leg.skipped_why, out);
        }
    }
    out.push('\n');
    let mut noise = Vec::new();
    let mut shown = 0;
    let mut unshown = [0u64; 4];
    for field in &endpoint.fields {
        if field.verdict == FieldVerdict::Noise {
            noise.push(listed_name(&field.stats.name));
            continue;
        }
        if shown == TEXT_FIELDS {
            unshown[field.verdict as usize] += 1;
            continue;
        }
        shown += 1;
        let f = field.stats;
        let (n_raw, n_noise) = field.compared;
        let _ = writeln!(
            out,
            "    {} {}: candidate {}/{} ({}), secondary {}/{} ({}); Diffy relative {:.1}%, \
             absolute {:.2}%{}; z {:.2}, {}{}",
            field.verdict.label(),
            listed_name(&f.name),
            f.raw,
            n_raw,
            rate(f.raw, n_raw),
            f.noise,
            n_noise,
            rate(f.noise, n_noise),
            field.diffy.relative,
            field.diffy.absolute,
            if field.diffy.flagged {
                " (flagged)"
            } else {
                " (not flagged)"
            },
            field.test.z,
            p_value(field.test.p_value),
            corrected(field),
        );
    }
    if unshown.iter().any(|&n| n > 0) {
        let _ = write!(
            out,
            "    … and {} more fields (",
            unshown.iter().sum::<u64>()
        );
        let verdicts = [
            FieldVerdict::Regression,
            FieldVerdict::TooFewSamples,
            FieldVerdict::NotSignificant,
            FieldVerdict::BelowThresholds,
        ];
        let mut first = true;
        for verdict in verdicts {
            let n = unshown[verdict as usize];
            if n > 0 {
                let _ = write!(
                    out,
                    "{}{n} {}",
                    if first { "" } else { ", " },
                    verdict.label()
                );
                first = false;
            }
        }
        out.push_str("; all of them in --report FILE)\n");
    }
    if !noise.is_empty() {
        let _ = write!(
            out,
            "    within noise: {}",
            noise[..noise.len().min(NOISE_NAMES)].join(", ")
        );
        if noise.len() > NOISE_NAMES {
            let _ = write!(out, ", +{} more", noise.len() - NOISE_NAMES);
        }
        out.push('\n');
    }
}

/// Why too few exchanges had both shadows' headers and bodies compared, at `endpoints`: of
/// `failed`, `were skipped` (saturated, sampled) and `answered another status than the
/// primary`, those that happened (all three if none is seen), and the capture budget if it
/// cut a body short.
fn shortfall<'e, 'a: 'e>(endpoints: impl IntoIterator<Item = &'e EndpointReport<'a>>) -> String {
    let (mut failed, mut skipped, mut other_status, mut squeezed) = (false, false, false, false);
    for endpoint in endpoints {
        let s = endpoint.stats;
        let shadows = &s.legs[1..];
        failed |= shadows.iter().any(|leg| leg.error_count() > 0);
        skipped |= shadows.iter().any(|leg| leg.skipped > 0);
        other_status |= s
            .fields
            .iter()
            .any(|f| f.name == "status" && f.raw + f.noise > 0);
        squeezed |= s.squeezed > 0;
    }
    let none_seen = !(failed || skipped || other_status || squeezed);
    let causes: Vec<&str> = [
        (failed || none_seen, "failed"),
        (skipped || none_seen, "were skipped"),
        (
            other_status || none_seen,
            "answered another status than the primary",
        ),
        (squeezed, "had bodies past trident's capture budget"),
    ]
    .into_iter()
    .filter_map(|(seen, cause)| seen.then_some(cause))
    .collect();
    match causes.split_last() {
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!(
            "{}{} or {last}",
            rest.join(", "),
            if rest.len() > 1 { "," } else { "" }
        ),
        None => String::new(),
    }
}

/// ` (refused 3, timeout 1)`: counts by kind, if any.
fn write_kinds(counts: &[(&'static str, u64)], out: &mut String) {
    if counts.is_empty() {
        return;
    }
    out.push_str(" (");
    for (i, (kind, n)) in counts.iter().enumerate() {
        let _ = write!(out, "{}{kind} {n}", if i == 0 { "" } else { ", " });
    }
    out.push(')');
}

/// `12.5%`, or `-` when nothing was compared.
fn rate(count: u64, total: u64) -> String {
    if total == 0 {
        "-".to_string()
    } else {
        format!("{:.1}%", count as f64 / total as f64 * 100.0)
    }
}

fn millis(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("{:.1}ms", d.as_secs_f64() * 1000.0),
        None => "-".to_string(),
    }
}

/// `, adjusted p = 0.0123 (significant)`: the test over the epoch's family (`holm_adjust`);
/// nothing for a field with too few samples, which is not tested.
fn corrected(field: &FieldReport<'_>) -> String {
    if !field.tested {
        return String::new();
    }
    format!(
        ", adjusted {} ({})",
        p_value(field.test.p_adjusted),
        if field.test.significant {
            "significant"
        } else {
            "not significant"
        }
    )
}

fn p_value(p: f64) -> String {
    if p < 0.0001 {
        "p < 0.0001".to_string()
    } else {
        format!("p = {p:.4}")
    }
}

/// Rounded for JSON: four decimals are more than any reader needs.
fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn fraction(count: u64, total: u64) -> Value {
    if total == 0 {
        Value::Null
    } else {
        json!(round(count as f64 / total as f64))
    }
}

/// The epoch as JSON, for `--report FILE` and `--format json`.
pub fn to_json(report: &EpochReport<'_>, trigger: Trigger, earlier_failed: &[u64]) -> Value {
    let epoch = report.epoch;
    let t = &report.thresholds;
    let endpoints: Vec<Value> = report.endpoints.iter().map(endpoint_json).collect();
    json!({
        "epoch": epoch.number,
        "trigger": trigger.name(),
        "exchanges": epoch.exchanges,
        "not_compared": report.not_compared,
        "late": epoch.late,
        "thresholds": {
            "relative_percent": t.relative.percent(),
            "absolute_percent": t.absolute.percent(),
            "confidence_percent": t.confidence.percent(),
            "min_samples": t.min_samples,
            "correction": "holm",
        },
        "tested_fields": report.tested_fields,
        "verdict": {
            "candidate": report.verdict(earlier_failed).name(),
            "epoch_fails": report.fails(),
            "regressing_endpoints": report.regressing,
            "undecided_endpoints": report.undecided,
            "flagged_undecided_endpoints": report.flagged_unsure,
            "earlier_failed_epochs": earlier_failed,
            "line": verdict_line(report, earlier_failed),
        },
        "endpoints": endpoints,
    })
}

fn endpoint_json(endpoint: &EndpointReport<'_>) -> Value {
    let s = endpoint.stats;
    let legs = |f: &dyn Fn(&LegStats) -> Value| {
        let mut map = serde_json::Map::new();
        for role in Role::ALL {
            map.insert(role.to_string(), f(&s.legs[role.index()]));
        }
        Value::Object(map)
    };
    let ms =
        |d: Option<Duration>| d.map_or(Value::Null, |d| json!(round(d.as_secs_f64() * 1000.0)));
    let fields: Vec<Value> = endpoint
        .fields
        .iter()
        .map(|field| {
            let f = field.stats;
            let samples: Vec<Value> = f
                .samples
                .iter()
                .map(|sample| {
                    json!({
                        "id": sample.id,
                        "request": sample.request,
                        "primary": sample.primary,
                        "candidate": sample.candidate,
                        "masked": sample.masked,
                    })
                })
                .collect();
            json!({
                "field": f.name,
                "verdict": field.verdict.name(),
                "raw": f.raw,
                "raw_compared": field.compared.0,
                "noise": f.noise,
                "noise_compared": field.compared.1,
                "masked": f.masked,
                "diffy": {
                    "relative_percent": round(field.diffy.relative),
                    "absolute_percent": round(field.diffy.absolute),
                    "flagged": field.diffy.flagged,
                },
                "z_test": {
                    "z": round(field.test.z),
                    "p_value": field.test.p_value,
                    "p_adjusted": if field.tested { json!(field.test.p_adjusted) } else { Value::Null },
                    "significant": field.tested && field.test.significant,
                },
                "samples": samples,
            })
        })
        .collect();
    json!({
        "endpoint": s.name,
        "verdict": endpoint.verdict.name(),
        "enough_samples": endpoint.enough_samples,
        "contents_decided": endpoint.contents_decided,
        "requests": s.requests,
        "contents_compared_by_both": s.both_contents,
        "candidate": {
            "compared": s.raw_compared,
            "contents_compared": s.raw_contents,
            "differs": s.raw_differs,
            "differs_beyond_noise": s.raw_beyond_noise,
            "rate": fraction(s.raw_differs, s.raw_compared),
            "rate_beyond_noise": fraction(s.raw_beyond_noise, s.raw_compared),
        },
        "secondary": {
            "compared": s.noise_compared,
            "contents_compared": s.noise_contents,
            "differs": s.noise_differs,
            "rate": fraction(s.noise_differs, s.noise_compared),
        },
        "masked": s.masked,
        "compared_by_hash": s.hashed,
        "contents_not_kept": s.squeezed,
        "latency_ms": legs(&|leg| json!({
            "p50": ms(leg.latency.quantile(0.5)),
            "p99": ms(leg.latency.quantile(0.99)),
            "count": leg.latency.count(),
        })),
        "errors": legs(&|leg| {
            let kinds: serde_json::Map<String, Value> =
                leg.errors.iter().map(|(k, n)| (k.to_string(), json!(n))).collect();
            json!({ "total": leg.error_count(), "by_kind": kinds })
        }),
        "skipped": legs(&|leg| json!(leg.skipped)),
        "skipped_why": legs(&|leg| {
            let why: serde_json::Map<String, Value> =
                leg.skipped_why.iter().map(|(k, n)| (k.to_string(), json!(n))).collect();
            json!(why)
        }),
        "fields": fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Version;
    use crate::report::compare::{Analysis, Rules};
    use crate::report::{ExchangeRecord, LegOutcome};

    fn leg(body: &str) -> LegOutcome {
        LegOutcome::ok_for_test(body, b"", Duration::from_millis(3))
    }

    /// `leg(body)`, with status `code`.
    fn answered(code: u16, body: &str) -> LegOutcome {
        let mut leg = leg(body);
        if let LegOutcome::Response { status, .. } = &mut leg {
            *status = code;
        }
        leg
    }

    fn failed(error: crate::failure::LegError) -> LegOutcome {
        LegOutcome::Failed {
            error,
            elapsed: Duration::from_millis(1),
        }
    }

    /// A JSON answer.
    fn json_leg(body: &str) -> LegOutcome {
        LegOutcome::ok_for_test(
            body,
            b"Content-Type: application/json\r\n",
            Duration::from_millis(3),
        )
    }

    /// An epoch of `n` exchanges on `GET /e`, each leg's outcome made by `legs(i)`.
    fn epoch_of(n: u64, legs: impl Fn(u64) -> [LegOutcome; 3]) -> Epoch {
        let mut epoch = Epoch::new(3, 1000);
        add_exchanges(&mut epoch, "GET", "/e", n, legs);
        epoch
    }

    /// Counts `n` exchanges on `METHOD target` into `epoch`, each leg's outcome made by
    /// `legs(i)`.
    fn add_exchanges(
        epoch: &mut Epoch,
        method: &str,
        target: &str,
        n: u64,
        legs: impl Fn(u64) -> [LegOutcome; 3],
    ) {
        let rules = Rules::new(&[], &[], 1024);
        let first = epoch.exchanges + 1;
        for i in 0..n {
            let record = ExchangeRecord {
                id: first + i,
                method: method.into(),
                target: target.into(),
                version: Version::Http11,
                host: None,
                request_body_bytes: 0,
                epoch: epoch.number,
                client_left: false,
                upstreams: [None; 3],
                legs: legs(i),
            };
            let endpoint = format!("{method} {target}");
            epoch.record(&endpoint, &record, &Analysis::of(&record, &rules));
        }
    }

    /// An epoch of `n` exchanges on `GET /e` where the candidate answers `b` `raw` times and
    /// the secondary `noise` times (`a` otherwise).
    fn epoch(n: u64, raw: u64, noise: u64) -> Epoch {
        epoch_of(n, |i| {
            [
                leg("a"),
                leg(if i < noise { "b" } else { "a" }),
                leg(if i < raw { "b" } else { "a" }),
            ]
        })
    }

    /// An epoch of `n` exchanges on `GET /e` where the candidate answers a JSON object with
    /// `keys` members, each different from the primary's and the secondary's.
    fn json_epoch(n: u64, keys: usize) -> Epoch {
        let object = |value: u32| {
            let members: Vec<String> = (0..keys).map(|k| format!("\"k{k:02}\":{value}")).collect();
            format!("{{{}}}", members.join(","))
        };
        let (stable, changed) = (object(1), object(2));
        epoch_of(n, |_| {
            [json_leg(&stable), json_leg(&stable), json_leg(&changed)]
        })
    }

    fn judge(e: &Epoch) -> EpochReport<'_> {
        EpochReport::new(e, &Thresholds::default(), 0)
    }

    #[test]
    fn field_verdicts_combine_the_test_and_diffys_rule() {
        // (exchanges, raw, noise, verdict of field `body`)
        let rows: &[(u64, u64, u64, FieldVerdict)] = &[
            (1000, 50, 0, FieldVerdict::Regression),
            // Diffy's worked examples.
            (1000, 1000, 990, FieldVerdict::BelowThresholds),
            (10_000, 1, 0, FieldVerdict::Noise),
            // Diffy flags one in a hundred; the test does not.
            (100, 1, 0, FieldVerdict::NotSignificant),
            (20, 20, 0, FieldVerdict::TooFewSamples),
            (1000, 0, 50, FieldVerdict::Noise),
        ];
        for &(n, raw, noise, verdict) in rows {
            let e = epoch(n, raw, noise);
            let report = judge(&e);
            let field = &report.endpoints[0].fields[0];
            assert_eq!(field.verdict, verdict, "{n} {raw} {noise}: {field:?}");
            assert_eq!(
                report.fails(),
                verdict == FieldVerdict::Regression,
                "{n} {raw} {noise}"
            );
        }
        // One difference in a hundred: it could not be under 0.01 however it fell (Fisher's
        // 0.5 at best), so the field is not in the family the tests are corrected over.
        let mut text = String::new();
        write_text(&judge(&epoch(100, 1, 0)), Trigger::Final, &[], &mut text);
        assert!(
            text.contains("z 1.00, p = 0.5000, adjusted p = 1.0000 (not significant)"),
            "{text}"
        );
        assert!(text.contains("over the 0 fields tested (Holm)"), "{text}");
    }

    /// An identical candidate on a service with many sometimes-noisy fields: one of them
    /// differs more often on the candidate by chance (22 against 8 in 300, p = 0.0068, a
    /// regression were it tested alone). Over the epoch's 60 tested fields it is not
    /// significant, and the candidate passes; a real change beside it still fails it.
    #[test]
    fn the_tests_are_corrected_over_every_field_of_the_epoch() {
        const FIELDS: u64 = 60;
        // Field 0 differs on the candidate in 22 exchanges and on the secondary in 8; every
        // other field on either shadow 1 time in 20, each at its own phase.
        let body = |i: u64, role: u64, changed: bool| {
            let members: Vec<String> = (0..FIELDS)
                .map(|k| {
                    let noisy = match (k, role) {
                        (0, 1) => i < 8,
                        (0, _) => (100..122).contains(&i),
                        _ => (i + k * 7 + role * 3) % 20 == 0,
                    };
                    format!("\"f{k:02}\":{}", u8::from(role > 0 && noisy))
                })
                .collect();
            let change = if changed && role == 2 { 2 } else { 1 };
            json_leg(&format!("{{{},\"v\":{change}}}", members.join(",")))
        };
        let run = |changed: bool| {
            epoch_of(300, move |i| {
                [
                    body(i, 0, changed),
                    body(i, 1, changed),
                    body(i, 2, changed),
                ]
            })
        };
        let e = run(false);
        let report = judge(&e);
        let f00 = &report.endpoints[0].fields[0];
        assert_eq!(f00.stats.name, "body f00");
        assert_eq!((f00.stats.raw, f00.stats.noise), (22, 8));
        assert!(f00.test.p_value < 0.01, "{f00:?}");
        assert_eq!(report.tested_fields, FIELDS as usize);
        assert!(f00.test.p_adjusted > 0.2, "{f00:?}");
        assert_eq!(f00.verdict, FieldVerdict::NotSignificant);
        assert_eq!(report.verdict(&[]), Verdict::Pass);
        let mut text = String::new();
        write_text(&report, Trigger::Final, &[], &mut text);
        assert!(text.contains("over the 60 fields tested (Holm)"), "{text}");
        assert!(
            text.contains("z 2.62, p = 0.0068, adjusted p = 0.4085 (not significant)"),
            "{text}"
        );
        // A candidate that changes `v` every time still fails.
        let e = run(true);
        let report = judge(&e);
        assert_eq!(report.tested_fields, FIELDS as usize + 1);
        let v = &report.endpoints[0].fields[0];
        assert_eq!(
            (v.stats.name.as_str(), v.verdict),
            ("body v", FieldVerdict::Regression)
        );
        assert!(v.test.p_adjusted < 1e-6, "{v:?}");
        assert_eq!(report.verdict(&[]), Verdict::Fail);
    }

    /// A field both legs change on every response (a timestamp) could not be significant
    /// whatever happened: it is not counted in the family, and costs a real change nothing.
    #[test]
    fn a_field_that_could_never_be_significant_is_not_corrected_for() {
        let e = epoch_of(100, |i| {
            let body = |ts: u64, v: u8| json_leg(&format!(r#"{{"ts":{ts},"v":{v}}}"#));
            [
                body(i, 1),
                body(i + 1000, 1),
                body(i + 2000, u8::from(i % 10 == 0) + 1),
            ]
        });
        let report = judge(&e);
        assert_eq!(report.tested_fields, 1);
        let ts = report.endpoints[0]
            .fields
            .iter()
            .find(|f| f.stats.name == "body ts")
            .expect("the ts field");
        assert_eq!((ts.test.p_adjusted, ts.verdict), (1.0, FieldVerdict::Noise));
        let v = &report.endpoints[0].fields[0];
        assert_eq!(v.stats.name, "body v");
        assert_eq!(v.test.p_adjusted, v.test.p_value);
    }

    #[test]
    fn verdict_lines() {
        let failing = epoch(100, 100, 0);
        let passing = epoch(100, 0, 0);
        let few = epoch(5, 5, 0);
        let quiet = epoch(5, 0, 0);
        let empty = Epoch::new(3, 1000);
        let refused = || LegOutcome::Failed {
            error: crate::failure::LegError::ConnectionRefused,
            elapsed: Duration::from_millis(1),
        };
        let shadows_down = epoch_of(100, |_| [leg("ok"), refused(), refused()]);
        // A passing endpoint beside one that no shadow was sent to (a method not shadowed).
        let mut with_unshadowed = epoch(100, 0, 0);
        let skipped = || LegOutcome::Skipped("method");
        add_exchanges(&mut with_unshadowed, "POST", "/orders", 5, |_| {
            [leg("ok"), skipped(), skipped()]
        });
        // A passing endpoint beside one whose shadows failed every time.
        let mut with_shadows_down = epoch(100, 0, 0);
        add_exchanges(&mut with_shadows_down, "GET", "/down", 40, |_| {
            [leg("ok"), refused(), refused()]
        });
        let rows: Vec<(&Epoch, &[u64], &str)> = vec![
            (
                &with_shadows_down,
                &[],
                "VERDICT candidate: PASS (1 endpoint undecided: headers and bodies not compared \
                 (the shadows failed))",
            ),
            (
                &with_unshadowed,
                &[],
                "VERDICT candidate: PASS (1 endpoint undecided: too few exchanges compared)",
            ),
            (
                &failing,
                &[],
                "VERDICT candidate: FAIL — 1 endpoint regresses",
            ),
            (&passing, &[], "VERDICT candidate: PASS"),
            (
                &passing,
                &[1],
                "VERDICT candidate: FAIL — epoch 1 regressed (epoch 3 passes)",
            ),
            (
                &few,
                &[1],
                "VERDICT candidate: FAIL — epoch 1 regressed (epoch 3 undecided) (1 endpoint \
                 flagged on too few samples)",
            ),
            // Too few samples anywhere: no evidence either way, not a pass.
            (
                &few,
                &[],
                "VERDICT candidate: UNDECIDED — no endpoint has the 30 compared exchanges a \
                 verdict needs (1 endpoint flagged on too few samples)",
            ),
            (
                &quiet,
                &[],
                "VERDICT candidate: UNDECIDED — no endpoint has the 30 compared exchanges a \
                 verdict needs",
            ),
            (
                &empty,
                &[],
                "VERDICT candidate: UNDECIDED — no endpoint has the 30 compared exchanges a \
                 verdict needs",
            ),
            (
                &shadows_down,
                &[],
                "VERDICT candidate: UNDECIDED — no endpoint has the 30 exchanges with headers \
                 and bodies compared a verdict needs (the shadows failed)",
            ),
        ];
        for (e, failed, line) in rows {
            assert_eq!(verdict_line(&judge(e), failed), line);
        }
        // The endpoint says why its shadows were skipped.
        let mut text = String::new();
        write_text(&judge(&with_unshadowed), Trigger::Final, &[], &mut text);
        assert!(
            text.contains(
                "    errors: primary 0, secondary 0, candidate 0; skipped: secondary 5 \
                 (method 5), candidate 5 (method 5)\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn text_summary_reads_at_a_glance() {
        let e = epoch(100, 100, 0);
        let mut text = String::new();
        write_text(&judge(&e), Trigger::Final, &[], &mut text);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "SUMMARY epoch 3 (final): 100 exchanges, 0 not compared; a regression is \
                 significant at 99% over the 1 field tested (Holm) and above Diffy's \
                 thresholds (relative > 20%, absolute > 0.03%), from 30 samples",
                "  GET /e: 100 requests; candidate differs 100.0% (100.0% beyond noise), \
                 secondary differs 0.0%",
                "    latency p50/p99: primary 3.0ms/3.0ms, secondary 3.0ms/3.0ms, candidate \
                 3.0ms/3.0ms",
                "    errors: primary 0, secondary 0, candidate 0",
                "    REGRESSION body: candidate 100/100 (100.0%), secondary 0/100 (0.0%); Diffy \
                 relative 100.0%, absolute 100.00% (flagged); z 14.14, p < 0.0001, adjusted \
                 p < 0.0001 (significant)",
                "VERDICT candidate: FAIL — 1 endpoint regresses",
            ]
        );
        let empty = Epoch::new(0, 1000);
        let mut text = String::new();
        write_text(&judge(&empty), Trigger::Signal, &[], &mut text);
        assert_eq!(
            text.lines().skip(1).collect::<Vec<_>>(),
            [
                "  no exchanges compared",
                "VERDICT candidate: UNDECIDED — no endpoint has the 30 compared exchanges a \
                 verdict needs"
            ]
        );
    }

    #[test]
    fn the_text_summary_lists_a_bounded_number_of_fields_per_endpoint() {
        let e = json_epoch(40, 40);
        let mut text = String::new();
        write_text(&judge(&e), Trigger::Final, &[], &mut text);
        let lines: Vec<&str> = text.lines().collect();
        let listed: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.starts_with("    REGRESSION body k"))
            .collect();
        assert_eq!(listed.len(), TEXT_FIELDS, "{text}");
        assert!(listed[0].starts_with("    REGRESSION body k00:"), "{text}");
        assert!(
            lines.contains(
                &"    … and 24 more fields (24 REGRESSION; all of them in --report FILE)"
            ),
            "{text}"
        );
        // The JSON report keeps every field.
        let report = judge(&e);
        assert_eq!(report.endpoints[0].fields.len(), 40);
    }

    /// A secondary that fails or answers another status says nothing of the noise in a body:
    /// such exchanges do not count as ones where it saw none, or the candidate's noisy fields
    /// would become regressions.
    #[test]
    fn a_failing_secondary_does_not_make_noise_a_regression() {
        let json = |ts: u64| json_leg(&format!(r#"{{"ts":{ts},"v":1}}"#));
        let unavailable = || answered(503, "busy");
        let refused = || failed(crate::failure::LegError::ConnectionRefused);
        // Half the secondary's answers are 503s, the other half differ in `ts` as the
        // candidate's all do: noise.
        let e = epoch_of(100, |i| {
            let secondary = if i % 2 == 0 {
                unavailable()
            } else {
                json(i + 1000)
            };
            [json(i), secondary, json(i + 2000)]
        });
        let report = judge(&e);
        assert!(!report.fails());
        let ts = report.endpoints[0]
            .fields
            .iter()
            .find(|f| f.stats.name == "body ts")
            .expect("the ts field");
        // The secondary's counted where both legs' bodies were compared.
        assert_eq!(ts.compared, (100, 50));
        assert_eq!(ts.verdict, FieldVerdict::Noise);
        // The secondary down: nothing says whether `ts` is noise, so the endpoint is
        // undecided, not failed (and not passed).
        let e = epoch_of(100, |i| [json(i), refused(), json(i + 2000)]);
        let report = judge(&e);
        assert!(!report.fails());
        assert_eq!(report.undecided, 1);
        assert_eq!(report.verdict(&[]), Verdict::Undecided);
        // Both shadows failing alike (or both answering errors) compare statuses, and
        // nothing else: no evidence of a pass.
        let e = epoch_of(100, |i| [json(i), refused(), refused()]);
        let report = judge(&e);
        assert_eq!(report.verdict(&[]), Verdict::Undecided);
        // The endpoint says so too: nothing flagged, and nothing to pass it on.
        assert_eq!(report.endpoints[0].verdict, EndpointVerdict::Undecided);
        assert_eq!((report.undecided, report.flagged_unsure), (1, 0));
        let e = epoch_of(100, |i| [json(i), unavailable(), unavailable()]);
        let report = judge(&e);
        assert_eq!(report.verdict(&[]), Verdict::Undecided);
        let mut text = String::new();
        write_text(&report, Trigger::Final, &[], &mut text);
        assert!(
            text.contains(
                "too few exchanges with both shadows' headers and bodies compared (0 < 30: the \
                 shadows answered another status than the primary)"
            ),
            "{text}"
        );
        // A real change is still seen, also where the secondary failed.
        let e = epoch_of(100, |i| {
            let secondary = if i % 2 == 0 {
                unavailable()
            } else {
                json(i + 1000)
            };
            let candidate = json_leg(&format!(r#"{{"ts":{},"v":2}}"#, i + 2000));
            [json(i), secondary, candidate]
        });
        let report = judge(&e);
        assert!(report.fails());
        let mut text = String::new();
        write_text(&report, Trigger::Final, &[], &mut text);
        assert!(
            text.contains("REGRESSION body v: candidate 100/100 (100.0%), secondary 0/50 (0.0%)"),
            "{text}"
        );
    }

    /// Exchanges whose candidate's body was cut short for the capture budget compare their
    /// statuses only: the endpoint is undecided, and the summary says why (hunt 66).
    #[test]
    fn bodies_past_the_capture_budget_are_counted_and_named() {
        let json = |ts: u64| json_leg(&format!(r#"{{"ts":{ts},"v":1}}"#));
        let e = epoch_of(40, |i| {
            let mut candidate = json(i);
            if let LegOutcome::Response { body, .. } = &mut candidate {
                let whole = std::mem::take(&mut body.bytes);
                *body = crate::report::CapturedBody::new();
                body.extend(&whole, 5);
            }
            [json(i), json(i), candidate]
        });
        let report = judge(&e);
        assert_eq!(report.verdict(&[]), Verdict::Undecided);
        let mut text = String::new();
        write_text(&report, Trigger::Final, &[], &mut text);
        for expected in [
            "; nothing compared but statuses: 40 with headers and bodies not compared (the \
             capture budget was full)",
            "VERDICT candidate: UNDECIDED",
        ] {
            assert!(text.contains(expected), "{expected}\n{text}");
        }
    }

    /// Bodies past the cap with a field that differs on every exchange: the secondary's
    /// hash differs as often as the candidate's, and a pass is said to see nothing of them
    /// (hunt 66: a changed field read as a plain PASS).
    #[test]
    fn a_pass_over_bodies_compared_by_a_noisy_hash_says_so() {
        let big = |ts: u64, v: u64| {
            let mut leg = json_leg(&format!(
                r#"{{"ts":{ts},"v":{v},"pad":"{}"}}"#,
                "x".repeat(2000)
            ));
            if let LegOutcome::Response { body, .. } = &mut leg {
                let whole = std::mem::take(&mut body.bytes);
                *body = crate::report::CapturedBody::new();
                body.extend(&whole, 1024);
            }
            leg
        };
        let e = epoch_of(40, |i| [big(i, 1), big(i + 1000, 1), big(i + 2000, 2)]);
        let report = judge(&e);
        assert_eq!(report.verdict(&[]), Verdict::Pass);
        let line = verdict_line(&report, &[]);
        assert!(
            line.contains("1 endpoint with bodies compared by a hash that differs as noise"),
            "{line}"
        );
        // A hash the secondary never differs in hides nothing, even where the candidate's
        // few differences fall below the thresholds (hunt 68).
        let e = epoch_of(40, |i| {
            [big(1, 1), big(1, 1), big(1, if i < 3 { 2 } else { 1 })]
        });
        let lenient = Thresholds {
            absolute: crate::report::stats::Percent::whole(50),
            ..Thresholds::default()
        };
        let report = EpochReport::new(&e, &lenient, 0);
        assert_eq!(report.verdict(&[]), Verdict::Pass);
        let line = verdict_line(&report, &[]);
        assert!(!line.contains("differs as noise"), "{line}");
    }

    /// A candidate answering 200 where the primary and the secondary answer 304 (no body),
    /// half the time: its timestamp differs on every 200 it sends, as the secondary's does on
    /// every 200; taken over the secondary's 304s too, the secondary's rate halved and the
    /// noise read as a regression beside the real one, `status` (hunt 39). The secondary's
    /// noise counts where the candidate's contents were compared too.
    #[test]
    fn the_secondarys_noise_counts_where_the_candidates_contents_were_compared() {
        let json = |ts: u64| json_leg(&format!(r#"{{"ts":{ts}}}"#));
        let e = epoch_of(120, |i| {
            if i % 2 == 0 {
                [answered(304, ""), answered(304, ""), json(i + 2000)]
            } else {
                [json(i), json(i + 1000), json(i + 2000)]
            }
        });
        let report = judge(&e);
        let field = |name: &str| {
            report.endpoints[0]
                .fields
                .iter()
                .find(|f| f.stats.name == name)
                .unwrap_or_else(|| panic!("{name}"))
        };
        assert_eq!(field("status").verdict, FieldVerdict::Regression);
        let ts = field("body ts");
        assert_eq!(
            (ts.stats.raw, ts.stats.noise, ts.compared),
            (60, 60, (60, 60))
        );
        assert_eq!(ts.verdict, FieldVerdict::Noise);
    }

    #[test]
    fn failures_of_several_kinds_add_up() {
        let ok = || leg("fine");
        let status = |code| answered(code, "oops");
        use crate::failure::LegError;
        // One in five fails, by four kinds in turn: 5 of 100 each is not significant alone,
        // 20 of 100 is.
        let e = epoch_of(100, |i| {
            let candidate = match i % 20 {
                0 => status(500),
                1 => failed(LegError::ConnectionRefused),
                2 => failed(LegError::ClosedEarly),
                3 => failed(LegError::ConnectionReset),
                _ => ok(),
            };
            [ok(), ok(), candidate]
        });
        let report = judge(&e);
        assert!(report.fails());
        let mut text = String::new();
        write_text(&report, Trigger::Final, &[], &mut text);
        assert!(
            text.contains(
                "REGRESSION status or error: candidate 20/100 (20.0%), secondary 0/100 (0.0%)"
            ),
            "{text}"
        );
        // One kind alone: its own field says it all, and the total is not listed twice.
        let e = epoch_of(100, |i| {
            [ok(), ok(), if i % 5 == 0 { status(500) } else { ok() }]
        });
        let report = judge(&e);
        assert!(report.fails());
        let names: Vec<&str> = report.endpoints[0]
            .fields
            .iter()
            .map(|f| f.stats.name.as_str())
            .collect();
        assert_eq!(names, ["status"]);
    }

    #[test]
    fn json_summary_has_the_numbers() {
        let e = epoch(100, 100, 0);
        let json = to_json(&judge(&e), Trigger::Final, &[]);
        assert_eq!(json["epoch"], 3);
        assert_eq!(json["verdict"]["candidate"], "FAIL");
        let endpoint = &json["endpoints"][0];
        assert_eq!(endpoint["endpoint"], "GET /e");
        assert_eq!(endpoint["candidate"]["rate"], 1.0);
        assert_eq!(endpoint["latency_ms"]["primary"]["p50"], 3.008);
        assert_eq!(endpoint["errors"]["candidate"]["total"], 0);
        let field = &endpoint["fields"][0];
        assert_eq!(field["field"], "body");
        assert_eq!(field["samples"][0]["primary"], "1 byte: a");
        assert_eq!(field["samples"][0]["candidate"], "1 byte: b");
    }
}
