//! The launch timeline as the app records it: the session's last launch step by step — discovery, then
//! RFC 6749's A–F — as [`smart_launch::trace`] recorded it (no secret is representable there), bounded before
//! it is stored in the session; the first page's FHIR requests and what it read are E and F. The page
//! showing it is `GET /inspect/timeline`.

use std::sync::Mutex;

use fhir_client::{RequestObservation, RequestObserver};
use smart_launch::trace::{CheckOutcome, TraceField, TracedRequest};
use smart_launch::{LaunchTrace, Step, TraceStep};

use crate::summary::{Section, Summary};

/// At most this many FHIR requests are kept for step E (the first page makes about ten).
pub const MAX_TIMELINE_REQUESTS: usize = 50;

/// Strings in a stored timeline are cut at this many characters.
pub const MAX_TIMELINE_CHARS: usize = 2_000;

/// `trace` bounded for the session: [`MAX_TIMELINE_REQUESTS`], [`MAX_TIMELINE_CHARS`].
pub fn bound(mut trace: LaunchTrace) -> LaunchTrace {
    trace.cap(MAX_TIMELINE_REQUESTS, MAX_TIMELINE_CHARS);
    trace
}

/// The FHIR requests of a page, collected as [`TracedRequest`]s for step E (at most
/// [`MAX_TIMELINE_REQUESTS`]).
#[derive(Debug, Default)]
pub struct RequestLog(Mutex<Vec<TracedRequest>>);

impl RequestObserver for RequestLog {
    fn observe(&self, o: RequestObservation) {
        let mut requests = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if requests.len() < MAX_TIMELINE_REQUESTS {
            requests.push(TracedRequest {
                method: o.method,
                url: o.url,
                status: o.status,
                latency_ms: u64::try_from(o.latency.as_millis()).unwrap_or(u64::MAX),
                bytes: o.bytes,
            });
        }
    }
}

/// True when the timeline ends at D, successfully: the first page's requests (E, F) are next.
pub fn awaits_first_page(trace: &LaunchTrace) -> bool {
    trace
        .steps
        .last()
        .is_some_and(|s| s.step == Step::AccessToken && s.failure.is_none())
}

/// `trace` with E (the requests `log` saw) and F (what each summary section got, or why the page failed)
/// added, bounded for the session; for a timeline that [`awaits_first_page`].
pub fn with_first_page(
    mut trace: LaunchTrace,
    log: &RequestLog,
    summary: Result<&Summary, String>,
) -> LaunchTrace {
    let mut e = TraceStep::new(Step::ResourceRequest);
    e.requests = std::mem::take(&mut *log.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    e.sent
        .push(TraceField::text("Authorization", "Bearer [redacted]"));
    let mut f = TraceStep::new(Step::ProtectedResource);
    match summary {
        Ok(summary) => read_in_f(&mut f, summary),
        Err(reason) => f.failure = Some(reason),
    }
    trace.push(e);
    trace.push(f);
    bound(trace)
}

/// F's fields: the patient, how many resources of each type the searches returned, what each
/// section shows of them, and the problems met reading them as R4.
fn read_in_f(f: &mut TraceStep, summary: &Summary) {
    f.received
        .push(TraceField::text("Patient", summary.patient_name.as_str()));
    let reading = &summary.reading;
    f.received.push(TraceField::text(
        "Resources read",
        format!("{} in all", reading.total()),
    ));
    for (resource_type, n) in &reading.counts {
        f.received.push(TraceField::text(
            format!("Resources read: {resource_type}"),
            n.to_string(),
        ));
    }
    let sections = [
        ("Vital signs: charts", section_text(&summary.vitals)),
        ("Recent labs: rows", section_text(&summary.labs)),
        ("Active conditions: rows", section_text(&summary.conditions)),
        ("Medications prescribed: rows", section_text(&summary.medications)),
        (
            "Medications reported: rows",
            section_text(&summary.medication_statements),
        ),
        ("Allergies: rows", section_text(&summary.allergies)),
        ("Immunizations: rows", section_text(&summary.immunizations)),
        ("Procedures: rows", section_text(&summary.procedures)),
        ("Diagnostic reports: rows", section_text(&summary.reports)),
        ("Encounters: rows", section_text(&summary.encounters)),
    ];
    for (name, (text, issue)) in sections {
        f.received.push(TraceField::text(name, text));
        if let Some(issue) = issue {
            f.check(name, issue, CheckOutcome::Failed);
        }
    }
    if reading.issues.is_empty() {
        f.received.push(TraceField::text(
            "Reading problems",
            "none: everything read fit the FHIR R4 model",
        ));
    }
    for issue in &reading.issues {
        f.received
            .push(TraceField::text("Reading problem", issue.as_str()));
    }
    if reading.issues_left_out > 0 {
        f.received.push(TraceField::text(
            "Reading problems not listed",
            format!(
                "{} more (the first {} are kept; all are in the app's log at warn)",
                reading.issues_left_out,
                crate::reading::MAX_READING_ISSUES
            ),
        ));
    }
}

/// A section as F shows it: the number of rows, "not shared", or "failed" with the issue.
fn section_text<T>(section: &Section<T>) -> (String, Option<String>) {
    match section {
        Section::Shown(rows) => (rows.len().to_string(), None),
        Section::NotShared => ("not shared (scope not granted or 403)".to_owned(), None),
        Section::Failed(reason) => ("failed".to_owned(), Some(reason.clone())),
    }
}
