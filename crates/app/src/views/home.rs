//! The start page (`/`): the authorize link before a launch, the patient summary after.

use chrono::{DateTime, Utc};
use maud::{Markup, PreEscaped, Render, html};

use super::layout;
use crate::absence::Empty;
use crate::charts::{Chart, DrawnChart, format_value};
use crate::style::Theme;
use crate::summary::{
    AllergyRow, ConditionRow, EncounterRow, ImmunizationRow, LabRow, MedicationRow, MedicationSource,
    OtherVitalRow, PatientBanner, ProcedureRow, ReportRow, Section, Summary,
};
use crate::window::Window;

/// Whether and how the EHR can be authorized against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthAvailability {
    /// The server advertises SMART/OAuth endpoints: offer the authorize link.
    OAuth,
    /// The server answers but advertises no OAuth: nothing to authorize.
    NoAuth,
}

/// The page before a launch: an authorize link (or the no-auth note) and the reset action.
pub fn start(csrf: &str, availability: &AuthAvailability, ehr: &str) -> Markup {
    layout::page(
        "Hello",
        None,
        html! {
            section.card {
                h1 { "Hello" }
                @match availability {
                    AuthAvailability::OAuth => {
                        p { "This app shows a patient summary from " strong { (ehr) } " using SMART on FHIR." }
                        p { "Please " a.button href="/authorize" { "authorize" } " to choose a patient and grant access." }
                    }
                    AuthAvailability::NoAuth => {
                        p { "Running against a no-auth server, nothing to demo here." }
                    }
                }
                p.actions.muted {
                    (layout::post_button("/reset", csrf, "Reset", "secondary small"))
                }
            }
        },
    )
}

/// A summary rendered once, for the many views of it while it is cached: everything on the patient
/// page that depends neither on the request nor on the session's CSRF token.
#[derive(Debug, Clone)]
pub struct SummaryView {
    /// The page title and the name in "ready to make API requests for …".
    pub patient_name: String,
    /// The banner, charts and sections, as HTML.
    sections: String,
    /// The printed pages' running head: name and date of birth.
    running_head: String,
    /// When the summary was read from the EHR.
    pub fetched_at: DateTime<Utc>,
    /// The time window it was read for.
    pub window: Window,
    /// The signed-in user's name (from the `fhirUser` resource), when the launch had one.
    pub signed_in_as: Option<String>,
}

impl SummaryView {
    /// Renders the summary's sections now.
    pub fn new(summary: &Summary, fetched_at: DateTime<Utc>) -> SummaryView {
        SummaryView {
            patient_name: summary.patient_name.clone(),
            sections: sections(summary).into_string(),
            running_head: running_head(summary),
            fetched_at,
            window: summary.window,
            signed_in_as: None,
        }
    }
}

/// The page after a launch: the seed's sentence, the actions, then the summary.
pub fn authorized(csrf: &str, view: &SummaryView, theme: Option<&Theme>) -> Markup {
    layout::page(&view.patient_name, theme, AuthorizedBody { csrf, view })
}

/// The body of [`authorized`], written straight into the page (the sections are not copied twice).
struct AuthorizedBody<'a> {
    csrf: &'a str,
    view: &'a SummaryView,
}

impl Render for AuthorizedBody<'_> {
    fn render_to(&self, buffer: &mut String) {
        let (csrf, view) = (self.csrf, self.view);
        buffer.reserve(view.sections.len() + 2048);
        html! {
            div.print-only.running-head {
                (view.running_head) " · fetched " (view.fetched_at.format("%Y-%m-%d %H:%M UTC"))
            }
            section.card.launch-card {
                h1 { "Hello" }
                p { "You are authorized and ready to make API requests for " em { (view.patient_name) } "." }
                @if let Some(user) = &view.signed_in_as { p.muted.signed-in { "Signed in as " strong { (user) } "." } }
                div.actions {
                    (layout::post_button("/logout", csrf, "Change patient", "button"))
                    a.button.secondary href="/inspect" { "Inspect launch" }
                    a.button.secondary href="/inspect/timeline" { "Launch timeline" }
                    (layout::post_button("/reset", csrf, "Reset", "secondary small"))
                }
            }
        }
        .render_to(buffer);
        buffer.push_str(&view.sections);
        html! { p.muted.fetched { "Fetched " (view.fetched_at.format("%Y-%m-%d %H:%M UTC")) "." } }
            .render_to(buffer);
    }
}

/// "Name · born 1970-01-01" for the top of every printed page.
fn running_head(summary: &Summary) -> String {
    match summary.banner.as_ref().and_then(|b| b.birth_date.as_deref()) {
        Some(born) => format!("{} · born {born}", summary.patient_name),
        None => summary.patient_name.clone(),
    }
}

/// The time-window links: plain links, the current one marked for assistive technology too.
fn window_links(current: Window) -> Markup {
    html! {
        nav.window aria-label="Time window" {
            span.muted { "Show: " }
            @for w in Window::ALL {
                @if w == current {
                    a.current href={ "/?window=" (w.query_value()) } aria-current="page" { (w.label()) }
                } @else {
                    a href={ "/?window=" (w.query_value()) } { (w.label()) }
                }
                " "
            }
        }
    }
}

/// The summary's sections: banner, vitals, labs, then the lists.
fn sections(summary: &Summary) -> Markup {
    html! {
        @if let Some(banner) = &summary.banner { (patient_banner(banner)) }
        (window_links(summary.window))
        @for note in &summary.notes { p.notice.stopped-early role="status" { (note) } }
        (vitals(&summary.vitals, &summary.other_vitals))
        (section_card(summary, "Recent labs", &summary.labs, labs_table))
        (section_card(summary, "Diagnostic reports", &summary.reports, reports_list))
        div.grid {
            (conditions_card(summary))
            (medications_card(summary))
            (section_card(summary, "Allergies", &summary.allergies, allergies_list))
            (section_card(summary, "Immunizations", &summary.immunizations, immunizations_list))
            (section_card(summary, "Procedures", &summary.procedures, procedures_list))
            (section_card(summary, "Recent encounters", &summary.encounters, encounters_list))
        }
    }
}

fn patient_banner(b: &PatientBanner) -> Markup {
    html! {
        section.banner aria-label="Patient" {
            span.name { (b.name) }
            @if let Some(g) = &b.gender { span { span.muted { "Gender " } (g) } }
            @if let Some(d) = &b.birth_date {
                span { span.muted { "Born " } (d) @if let Some(age) = &b.age { " (" (age) ")" } }
            }
            @for (label, value) in &b.identifiers { span { span.muted { (label) " " } code { (value) } } }
        }
    }
}

fn not_shared(what: &str) -> Markup {
    html! { p.muted { (Empty::NotShared.sentence(what)) } }
}

fn failed(message: &str) -> Markup {
    html! { p.notice role="status" { (message) } }
}

fn section_card<T>(
    summary: &Summary,
    title: &str,
    section: &Section<T>,
    render: fn(&[T]) -> Markup,
) -> Markup {
    html! {
        section.card aria-label=(title) {
            h2 { (title) }
            (section_body(summary, title, section, render))
        }
    }
}

/// A section's rows, or the sentence saying why there are none.
fn section_body<T>(
    summary: &Summary,
    title: &str,
    section: &Section<T>,
    render: fn(&[T]) -> Markup,
) -> Markup {
    let recorded = summary.absences.iter().find(|(t, _)| t == title).map(|(_, r)| *r);
    html! {
        @match section {
            // IPS: "recorded none" (or "nothing known") is not "nothing returned".
            Section::Shown(rows) if rows.is_empty() => {
                @match recorded {
                    Some(r) => p.recorded-absence { (Empty::Recorded(r).sentence(title)) },
                    None => p.muted { (Empty::NothingReturned.sentence(title)) },
                }
            }
            Section::Shown(rows) => (render(rows)),
            Section::NotShared => (not_shared(title)),
            Section::Failed(message) => (failed(message)),
        }
    }
}

/// Active problems, and the resolved ones folded away under them (a `<details>`: no JavaScript).
fn conditions_card(summary: &Summary) -> Markup {
    let title = "Active conditions";
    let resolved = &summary.resolved_conditions;
    html! {
        section.card aria-label=(title) {
            h2 { (title) }
            (section_body(summary, title, &summary.conditions, conditions_list))
            @if !resolved.is_empty() {
                details.resolved-problems {
                    summary { "Resolved problems (" (resolved.len()) ")" }
                    ul.plain {
                        @for row in resolved {
                            li {
                                (row.name)
                                @if let Some(onset) = &row.onset { span.muted { " · since " (onset) } }
                                @if let Some(r) = &row.resolved { " " span.badge { (r) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Orders and statements in one list, each marked prescribed or reported; the part that was not
/// shared or failed says so below the list.
fn medications_card(summary: &Summary) -> Markup {
    let title = "Active medications";
    let (requests, statements) = (&summary.medications, &summary.medication_statements);
    let rows: Vec<&MedicationRow> = [requests, statements]
        .into_iter()
        .filter_map(|s| match s {
            Section::Shown(rows) => Some(rows.iter()),
            _ => None,
        })
        .flatten()
        .collect();
    let shown = |s: &Section<MedicationRow>| matches!(s, Section::Shown(_));
    let part = |s: &Section<MedicationRow>, what: &str| -> Markup {
        match s {
            Section::Shown(_) => html! {},
            Section::NotShared => not_shared(what),
            Section::Failed(message) => html! { p.notice role="status" { (what) ": " (message) } },
        }
    };
    html! {
        section.card aria-label=(title) {
            h2 { (title) }
            @if !rows.is_empty() {
                (medications_list(&rows))
            } @else if shown(requests) || shown(statements) {
                (section_body(summary, title, &Section::<MedicationRow>::Shown(Vec::new()), |_| html! {}))
            }
            @match (requests, statements) {
                (Section::NotShared, Section::NotShared) => (not_shared(title)),
                _ => {
                    (part(requests, "Prescribed medications (orders)"))
                    (part(statements, "Reported medications (statements)"))
                }
            }
        }
    }
}

fn vitals(section: &Section<DrawnChart>, others: &[OtherVitalRow]) -> Markup {
    html! {
        section.card aria-label="Vital signs" {
            h2 { "Vital signs" }
            @match section {
                Section::Shown(charts) if charts.iter().all(|c| c.chart.is_empty()) && others.is_empty() => {
                    p.muted { "The EHR returned no vital signs — that does not mean none were taken." }
                }
                Section::Shown(charts) => {
                    div.charts {
                        @for chart in charts.iter().filter(|c| !c.chart.is_empty()) { (chart_figure(chart)) }
                    }
                    @if !others.is_empty() { (other_vitals_table(others)) }
                }
                Section::NotShared => (not_shared("Vital signs")),
                Section::Failed(message) => (failed(message)),
            }
        }
    }
}

/// Vital signs without a chart: their latest value each.
fn other_vitals_table(rows: &[OtherVitalRow]) -> Markup {
    html! {
        h3 { "Other vital signs" }
        div.table-wrap {
            table {
                thead { tr { th scope="col" { "Measurement" } th scope="col" { "Latest" } th scope="col" { "Date" } th scope="col" { "Readings" } } }
                tbody {
                    @for row in rows {
                        tr {
                            td { (row.name) }
                            td { (row.value) }
                            td { (row.date.as_deref().unwrap_or("—")) }
                            td { (row.count) }
                        }
                    }
                }
            }
        }
    }
}

fn chart_figure(drawn: &DrawnChart) -> Markup {
    let chart = &drawn.chart;
    let latest: Vec<String> = chart
        .latest()
        .into_iter()
        .map(|(label, at, value)| {
            format!(
                "{label} {} {} on {}",
                format_value(value),
                chart.unit,
                at.format("%Y-%m-%d")
            )
        })
        .collect();
    let bands: Vec<String> = chart.bands.iter().map(|b| b.caption(&chart.unit)).collect();
    let mut description = format!("{} over time. Latest: {}.", chart.title, latest.join(", "));
    if !bands.is_empty() {
        description.push_str(&format!(" Shaded: {}.", bands.join("; ")));
    }
    html! {
        figure.chart {
            figcaption { (chart.title) " " span.muted { "(" (chart.unit) ")" } }
            @match &drawn.svg {
                Ok(Some(svg)) => {
                    div role="img" aria-label=(description) { (PreEscaped(svg)) }
                }
                Ok(None) => p.muted { "No measurements." },
                Err(e) => p.notice { (e) }
            }
            p.muted { "Latest (ringed): " (latest.join(", ")) }
            @if !bands.is_empty() { p.muted.bands { "Shaded: " (bands.join("; ")) } }
            (chart_table(chart))
        }
    }
}

/// The chart's numbers as a table, folded away: no JavaScript, and a screen reader reads it.
fn chart_table(chart: &Chart) -> Markup {
    let rows = chart.rows();
    html! {
        details.chart-data {
            summary { "Values (" (rows.len()) ")" }
            div.table-wrap {
                table {
                    caption { (chart.title) " in " (chart.unit) ", newest first" }
                    thead { tr { th scope="col" { "Date" } @for s in &chart.series { th scope="col" { (s.label) } } } }
                    tbody {
                        @for (at, cells) in &rows {
                            tr {
                                th scope="row" { (at.format("%Y-%m-%d")) }
                                @for cell in cells { td { @match cell { Some(v) => (format_value(*v)), None => "—" } } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn labs_table(rows: &[LabRow]) -> Markup {
    html! {
        div.table-wrap {
            table {
                thead { tr { th scope="col" { "Test" } th scope="col" { "Result" } th scope="col" { "Range" } th scope="col" { "Date" } } }
                tbody {
                    @for row in rows {
                        tr {
                            td { (row.name) }
                            td {
                                (row.value)
                                @if let Some(flag) = &row.flag {
                                    // Flagged in text and by an icon, never by colour alone.
                                    " " span.flag title=(flag.1) {
                                        span.flag-icon aria-hidden="true" { (flag_icon(&flag.0)) " " }
                                        (flag.0)
                                    }
                                    span.skip { " (" (flag.1) ")" }
                                }
                                @if let Some(sent) = &row.as_sent {
                                    // Converted to the configured lab units; what the EHR sent stays readable.
                                    br; span.muted.as-sent { "as sent: " (sent) }
                                }
                            }
                            td { (row.range.as_deref().unwrap_or("—")) }
                            td { (row.date.as_deref().unwrap_or("—")) }
                        }
                    }
                }
            }
        }
    }
}

/// ▲ above the range, ▼ below it, ⚠ for other abnormal flags (A, AA, critical).
fn flag_icon(flag: &str) -> &'static str {
    match flag {
        "H" | "HH" | "HU" | ">" => "▲",
        "L" | "LL" | "LU" | "<" => "▼",
        _ => "⚠",
    }
}

fn conditions_list(rows: &[ConditionRow]) -> Markup {
    html! {
        ul.plain { @for row in rows { li { (row.name) @if let Some(onset) = &row.onset { span.muted { " · since " (onset) } } } } }
    }
}

fn medications_list(rows: &[&MedicationRow]) -> Markup {
    html! {
        ul.plain {
            @for row in rows {
                @let (marker, verb) = match row.source {
                    MedicationSource::Prescribed => ("prescribed", "prescribed"),
                    MedicationSource::Reported => ("reported", "taken since"),
                };
                li { (row.name) " " span.badge.source { (marker) }
                    @if let Some(d) = &row.dosage { br; span.muted { (d) } }
                    @if let Some(a) = &row.authored { span.muted { " · " (verb) " " (a) } }
                }
            }
        }
    }
}

fn procedures_list(rows: &[ProcedureRow]) -> Markup {
    html! {
        ul.plain {
            @for row in rows {
                li { (row.name) @if let Some(d) = &row.date { span.muted { " · " (d) } } @if let Some(s) = &row.status { " " span.badge { (s) } } }
            }
        }
    }
}

/// Each report with its results under it, in the lab table (ranges, flags in text and icon).
fn reports_list(rows: &[ReportRow]) -> Markup {
    html! {
        @for row in rows {
            div.report {
                h3 {
                    (row.name)
                    @if let Some(d) = &row.date { span.muted { " · " (d) } }
                    @if let Some(s) = &row.status { " " span.badge { (s) } }
                }
                @if row.results.is_empty() {
                    p.muted { "The EHR returned none of this report's results." }
                } @else {
                    (labs_table(&row.results))
                }
                @if let Some(c) = &row.conclusion { p { span.muted { "Conclusion: " } (c) } }
            }
        }
    }
}

fn allergies_list(rows: &[AllergyRow]) -> Markup {
    html! {
        ul.plain {
            @for row in rows {
                li {
                    (row.substance) " "
                    @if let Some(c) = &row.criticality {
                        span.badge.high[c == "high"] { "criticality: " (c) }
                    }
                    @if let Some(r) = &row.reactions { br; span.muted { (r) } }
                }
            }
        }
    }
}

fn immunizations_list(rows: &[ImmunizationRow]) -> Markup {
    html! {
        ul.plain { @for row in rows { li { (row.vaccine) @if let Some(d) = &row.date { span.muted { " · " (d) } } } } }
    }
}

fn encounters_list(rows: &[EncounterRow]) -> Markup {
    html! {
        ul.plain {
            @for row in rows {
                li { (row.kind) @if let Some(p) = &row.period { span.muted { " · " (p) } } @if let Some(s) = &row.status { " " span.badge { (s) } } }
            }
        }
    }
}
