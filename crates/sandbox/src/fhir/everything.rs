//! `GET [base]/Patient/[id]/$everything` (FHIR R4 OperationDefinition `Patient-everything`): the patient,
//! everything in their compartment the token may read, and the practitioners / organizations / medications those
//! resources refer to, paged like a search.
//!
//! Parameters: `_type` (only these types), `start` / `end` (only care in this date range: a resource whose care
//! date — see [`registry::care_date_params`] — overlaps the range, while resources without such a date stay in), `_since`
//! (only resources whose `meta.lastUpdated` is at or after the instant), `_count` and `_offset`. The Patient itself
//! is always returned (unless `_type` leaves it out): R4 returns "at a minimum, the patient resource". Every
//! filter is repeated in the `self` / `next` / `previous` links, so each page is a page of the same result.

use super::bundle::{self, Page};
use super::interaction::{check_id, gone, not_found};
use super::outcome::OutcomeError;
use super::{Ctx, FhirResponse};
use crate::registry;
use crate::store::normalize;
use crate::store::search::{self, Condition, DEFAULT_COUNT, MAX_COUNT, Restriction};
use crate::store::{self, Store};
use axum::http::StatusCode;
use smart_launch::scope::Permissions;

/// The parameters of one `$everything` request, checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EverythingRequest {
    /// Page size.
    pub count: usize,
    /// Resources skipped (paging).
    pub offset: usize,
    /// `_type`: only these resource types (`None`: all).
    pub types: Option<Vec<String>>,
    /// `start` / `end` as the first and last second (Unix time) of the care range; an open side is
    /// `i64::MIN` / `i64::MAX`.
    pub care_range: Option<(i64, i64)>,
    /// `_since` as `lastUpdated` text (millisecond precision, rounded up so no earlier change slips in).
    pub since: Option<String>,
    /// The parameters that define the result (all but `_count` / `_offset`), for the page links.
    pub link_params: Vec<(String, String)>,
}

impl EverythingRequest {
    /// Checks the query parameters; a value that is not a number, date or instant, a parameter given twice,
    /// `start` after `end`, or an unknown parameter is a 400 naming it.
    pub(crate) fn parse(pairs: &[(String, String)]) -> Result<Self, OutcomeError> {
        let mut request = EverythingRequest {
            count: DEFAULT_COUNT,
            offset: 0,
            types: None,
            care_range: None,
            since: None,
            link_params: Vec::new(),
        };
        // The value as sent and its first (`start`) or last (`end`) second.
        let mut start: Option<(&str, i64)> = None;
        let mut end: Option<(&str, i64)> = None;
        let mut seen: Vec<&str> = Vec::new();
        for (k, v) in pairs {
            let once = ["start", "end", "_since"].contains(&k.as_str());
            if once && seen.contains(&k.as_str()) {
                return Err(OutcomeError::BadRequest(format!(
                    "`{k}` is given more than once; $everything takes it at most once."
                )));
            }
            seen.push(k.as_str());
            let whole = || OutcomeError::BadRequest(format!("`{k}={v}` is not a whole number."));
            match k.as_str() {
                "_count" => {
                    request.count = v
                        .trim()
                        .parse::<usize>()
                        .map_err(|_| whole())?
                        .clamp(1, MAX_COUNT);
                }
                "_offset" => request.offset = v.trim().parse().map_err(|_| whole())?,
                "_type" => {
                    // R4 allows `_type` more than once: the types of all of them are wanted.
                    let types = request.types.get_or_insert_with(Vec::new);
                    types.extend(v.split(',').map(|t| t.trim().to_owned()));
                    request.link_params.push((k.clone(), v.clone()));
                }
                "start" => {
                    start = Some((v, care_date(k, v)?.0));
                    request.link_params.push((k.clone(), v.trim().to_owned()));
                }
                "end" => {
                    end = Some((v, care_date(k, v)?.1));
                    request.link_params.push((k.clone(), v.trim().to_owned()));
                }
                "_since" => {
                    let (text, since) = since_instant(v)?;
                    request.since = Some(since);
                    request.link_params.push((k.clone(), text));
                }
                "_format" | "_pretty" => {}
                other => {
                    return Err(OutcomeError::BadRequest(format!(
                        "`{other}` is not a parameter of $everything here (supported: start, end, _since, _type, \
                         _count, _offset)."
                    )));
                }
            }
        }
        if let (Some((start_text, lo)), Some((end_text, hi))) = (start, end)
            && lo > hi
        {
            return Err(OutcomeError::BadRequest(format!(
                "`start={start_text}` is after `end={end_text}`, so no care could fall between them; swap them."
            )));
        }
        if start.is_some() || end.is_some() {
            request.care_range = Some((
                start.map_or(i64::MIN, |(_, lo)| lo),
                end.map_or(i64::MAX, |(_, hi)| hi),
            ));
        }
        Ok(request)
    }

    fn wants(&self, resource_type: &str) -> bool {
        self.types
            .as_ref()
            .is_none_or(|types| types.iter().any(|t| t == resource_type))
    }

    /// The conditions the date range and `_since` put on resources of `resource_type`.
    fn filters(&self, resource_type: &str) -> Vec<Vec<Condition>> {
        let mut filters = Vec::new();
        if let Some((lo, hi)) = self.care_range {
            filters.push(vec![Condition::CareDate {
                params: registry::care_date_params(resource_type),
                lo,
                hi,
            }]);
        }
        if let Some(since) = &self.since {
            filters.push(vec![Condition::UpdatedSince(since.clone())]);
        }
        filters
    }
}

/// The first and last second a `start` / `end` value covers: a FHIR date (`2024`, `2024-03`, `2024-03-15`), or
/// a dateTime, which some clients send.
fn care_date(name: &str, value: &str) -> Result<(i64, i64), OutcomeError> {
    normalize::date_range(value).ok_or_else(|| {
        OutcomeError::BadRequest(format!(
            "`{name}={value}` is not a date: write it as `2024`, `2024-03` or `2024-03-15`."
        ))
    })
}

/// `_since` as (the value to repeat in page links, the `lastUpdated` text to compare with). A FHIR instant has
/// seconds and a time zone; a `+` sent unencoded in a query string arrives as a space, which is read back as the
/// `+` it was.
fn since_instant(value: &str) -> Result<(String, String), OutcomeError> {
    let bad = || {
        OutcomeError::BadRequest(format!(
            "`_since={value}` is not an instant: write it with seconds and a time zone, as `2024-03-15T10:00:00Z` \
             (encode a `+` in the zone as `%2B`)."
        ))
    };
    let text = value.trim();
    let (text, parsed) = match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(t) => (text.to_owned(), t),
        Err(_) => {
            let repaired = repair_zone_plus(text).ok_or_else(bad)?;
            let parsed = chrono::DateTime::parse_from_rfc3339(&repaired).map_err(|_| bad())?;
            (repaired, parsed)
        }
    };
    let utc = parsed.with_timezone(&chrono::Utc);
    // Stored instants have whole milliseconds: round a finer `_since` up, so `>=` keeps "at or after".
    let below_ms = utc.timestamp_subsec_nanos() % 1_000_000;
    let rounded = if below_ms == 0 {
        utc
    } else {
        utc.checked_add_signed(chrono::TimeDelta::nanoseconds(i64::from(1_000_000 - below_ms)))
            .ok_or_else(bad)?
    };
    Ok((text, normalize::instant_text(rounded)))
}

/// `2024-03-15T10:00:00 01:00` (a form-decoded `+01:00`) as `2024-03-15T10:00:00+01:00`; `None` when there is
/// no space after the time.
fn repair_zone_plus(text: &str) -> Option<String> {
    let t = text.find('T')?;
    let space = text[t..].rfind(' ')? + t;
    Some(format!("{}+{}", &text[..space], &text[space + 1..]))
}

/// Runs `$everything` for Patient `id`: the patient, then what is in their compartment, then the shared resources
/// those refer to, one page of them.
pub(crate) fn everything(
    ctx: &Ctx,
    store: &Store,
    id: &str,
    pairs: &[(String, String)],
) -> Result<FhirResponse, OutcomeError> {
    check_id("Patient", id)?;
    let request = EverythingRequest::parse(pairs)?;
    store.with_reader(|conn| {
        let patient = store::current_row(conn, "Patient", id)?.ok_or_else(|| not_found("Patient", id))?;
        ctx.access.check_row(conn, &patient, Permissions::READ)?;
        if patient.deleted {
            return Err(gone(&patient));
        }
        let mut rids = Vec::new();
        if request.wants("Patient") {
            rids.push(patient.rid);
        }
        rids.extend(compartment_rids(ctx, conn, id, &request)?);
        rids.extend(shared_target_rids(ctx, conn, id, &request)?);
        page(ctx, conn, id, &request, rids)
    })
}

/// The rows of the patient's compartment (the Patient aside) that the request wants and the token may read, type
/// by type.
fn compartment_rids(
    ctx: &Ctx,
    conn: &rusqlite::Connection,
    id: &str,
    request: &EverythingRequest,
) -> Result<Vec<i64>, OutcomeError> {
    let compartment_types: Vec<String> = conn
        .prepare_cached(
            "SELECT DISTINCT type FROM fhir_resources WHERE patient = ?1 AND deleted = 0 ORDER BY type",
        )?
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut rids = Vec::new();
    for t in compartment_types
        .iter()
        .filter(|t| *t != "Patient" && request.wants(t))
    {
        let Ok(decision) = ctx.access.decide(t, Permissions::READ) else {
            continue;
        };
        let restriction = Restriction {
            patient: Some(id.to_owned()),
            any_of: decision.any_of,
        };
        rids.extend(search::matching_rids(conn, t, &request.filters(t), &restriction)?);
    }
    Ok(rids)
}

/// The shared resources (practitioners, organizations, medications…) the compartment refers to, that the request
/// wants and the token may read.
fn shared_target_rids(
    ctx: &Ctx,
    conn: &rusqlite::Connection,
    id: &str,
    request: &EverythingRequest,
) -> Result<Vec<i64>, OutcomeError> {
    let targets: Vec<String> = conn
        .prepare_cached(
            "SELECT DISTINCT x.target FROM fhir_idx_ref x JOIN fhir_resources r ON r.rid = x.rid \
             WHERE r.patient = ?1 AND r.deleted = 0 ORDER BY x.target",
        )?
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut rids = Vec::new();
    for target in targets {
        let Some((t, target_id)) = target.split_once('/') else {
            continue;
        };
        if !registry::is_shared(t) || !request.wants(t) {
            continue;
        }
        // Shared resources have no care date, so only `_since` can leave them out.
        if let Some(row) = store::current_row(conn, t, target_id)?.filter(|r| !r.deleted)
            && request
                .since
                .as_deref()
                .is_none_or(|since| row.last_updated.as_str() >= since)
            && ctx.access.may(conn, &row, Permissions::READ)?
        {
            rids.push(row.rid);
        }
    }
    Ok(rids)
}

/// The requested page of `rids` as a searchset Bundle, with the total and the page links.
fn page(
    ctx: &Ctx,
    conn: &rusqlite::Connection,
    id: &str,
    request: &EverythingRequest,
    rids: Vec<i64>,
) -> Result<FhirResponse, OutcomeError> {
    let total = rids.len();
    let page_rids: Vec<i64> = rids
        .into_iter()
        .skip(request.offset)
        .take(request.count)
        .collect();
    let rows = store::rows_by_rid(conn, &page_rids)?;
    let page = Page {
        base: &ctx.base,
        path: format!("Patient/{id}/$everything"),
        link_params: &request.link_params,
        count: request.count,
        offset: request.offset,
        total,
    };
    Ok(FhirResponse::json(
        StatusCode::OK,
        bundle::searchset(&page, &rows, &[]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(items: &[(&str, &str)]) -> Result<EverythingRequest, OutcomeError> {
        let pairs: Vec<(String, String)> = items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        EverythingRequest::parse(&pairs)
    }

    fn message(result: Result<EverythingRequest, OutcomeError>) -> String {
        match result {
            Err(e @ OutcomeError::BadRequest(_)) => e.message(),
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn start_and_end_cover_their_whole_dates_and_open_sides_are_unbounded() {
        let both = parse(&[("start", "2024-03"), ("end", "2024-03-31")]).unwrap();
        let (march_lo, _) = normalize::date_range("2024-03-01").unwrap();
        let (_, march_hi) = normalize::date_range("2024-03-31").unwrap();
        assert_eq!(both.care_range, Some((march_lo, march_hi)));
        assert_eq!(
            parse(&[("start", "2024")]).unwrap().care_range,
            Some((normalize::date_range("2024").unwrap().0, i64::MAX))
        );
        assert_eq!(
            parse(&[("end", "2024")]).unwrap().care_range,
            Some((i64::MIN, normalize::date_range("2024").unwrap().1))
        );
        assert_eq!(parse(&[]).unwrap().care_range, None);
    }

    #[test]
    fn since_is_kept_at_millisecond_precision_and_rounded_up() {
        let exact = parse(&[("_since", "2024-03-15T10:00:00+01:00")]).unwrap();
        assert_eq!(exact.since.as_deref(), Some("2024-03-15T09:00:00.000Z"));
        let fine = parse(&[("_since", "2024-03-15T09:00:00.1234Z")]).unwrap();
        assert_eq!(fine.since.as_deref(), Some("2024-03-15T09:00:00.124Z"));
        // An unencoded `+` decodes to a space; it is read back, and the links carry the repaired value.
        let spaced = parse(&[("_since", "2024-03-15T10:00:00 01:00")]).unwrap();
        assert_eq!(spaced.since, exact.since);
        assert_eq!(
            spaced.link_params,
            vec![("_since".to_owned(), "2024-03-15T10:00:00+01:00".to_owned())]
        );
    }

    #[test]
    fn every_filter_is_kept_for_the_page_links_but_not_the_paging() {
        let request = parse(&[
            ("start", "2024"),
            ("end", "2025"),
            ("_since", "2024-01-01T00:00:00Z"),
            ("_type", "Observation,Patient"),
            ("_count", "5"),
            ("_offset", "10"),
        ])
        .unwrap();
        let names: Vec<&str> = request.link_params.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["start", "end", "_since", "_type"]);
        assert_eq!((request.count, request.offset), (5, 10));
        assert!(request.wants("Observation") && !request.wants("Condition"));
        let twice = parse(&[("_type", "Observation"), ("_type", "Condition")]).unwrap();
        assert!(twice.wants("Observation") && twice.wants("Condition") && !twice.wants("Patient"));
        assert_eq!(twice.link_params.len(), 2);
    }

    #[test]
    fn bad_dates_instants_repeats_and_reversed_ranges_are_rejected_by_name() {
        assert!(message(parse(&[("start", "yesterday")])).contains("`start=yesterday` is not a date"));
        assert!(message(parse(&[("end", "2024-13")])).contains("`end=2024-13`"));
        assert!(message(parse(&[("start", "ge2024")])).contains("`start=ge2024`"));
        for since in ["2024-03-15", "2024-03-15T10:00", "2024-03-15T10:00:00", "now"] {
            assert!(
                message(parse(&[("_since", since)])).contains("is not an instant"),
                "{since}"
            );
        }
        assert!(message(parse(&[("start", "2024"), ("start", "2025")])).contains("more than once"));
        assert!(message(parse(&[("start", "2025"), ("end", "2024")])).contains("is after"));
        assert!(message(parse(&[("date", "2024")])).contains("`date` is not a parameter"));
    }

    #[test]
    fn care_dates_are_date_parameters_the_index_knows() {
        for t in [
            "Encounter",
            "Observation",
            "Condition",
            "MedicationRequest",
            "AllergyIntolerance",
            "Immunization",
            "Procedure",
            "DiagnosticReport",
            "DocumentReference",
            "CarePlan",
        ] {
            let params = registry::care_date_params(t);
            assert!(!params.is_empty(), "{t} has no care date");
            for name in params {
                let param = registry::param(t, name).unwrap_or_else(|| panic!("{t} has no parameter {name}"));
                assert_eq!(param.kind, registry::ParamKind::Date, "{t}.{name}");
            }
        }
        assert!(registry::care_date_params("Patient").is_empty());
        assert!(registry::care_date_params("Practitioner").is_empty());
    }
}
