//! The signed-in user's name: the `fhirUser` resource read with the launch's token, beside the first summary.

use smart_launch::CompletedLaunch;
use url::Url;

use crate::launch_record::SignedInUser;
use crate::state::AppState;

/// Reads the `fhirUser` resource with the launch's token (a FHIR read of that URL) for the user's
/// name. Best effort: a refused or odd answer leaves the reference alone, logged at `warn`.
pub(crate) async fn read_signed_in_user(
    state: &AppState,
    completed: &CompletedLaunch,
) -> Option<SignedInUser> {
    let user = completed.fhir_user.as_ref()?;
    let reference = user.reference();
    let name = match fetch_user_name(state, &user.url, completed).await {
        Ok(name) => name,
        Err(reason) => {
            tracing::warn!(user = %reference, reason = %reason, "the signed-in user's resource could not be read");
            None
        }
    };
    Some(SignedInUser { reference, name })
}

async fn fetch_user_name(
    state: &AppState,
    url: &Url,
    completed: &CompletedLaunch,
) -> Result<Option<String>, String> {
    smart_launch::require_secure(url, "fhirUser", state.config().insecure_http).map_err(|e| e.reason())?;
    let response = state
        .http()
        .get(url.clone())
        .bearer_auth(completed.tokens.access_token.secret())
        .header(http::header::ACCEPT, "application/fhir+json, application/json")
        .send()
        .await
        .map_err(|e| format!("the request failed ({e})"))?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status().as_u16()));
    }
    let resource: serde_json::Value = response.json().await.map_err(|e| format!("not JSON ({e})"))?;
    Ok(human_name(&resource))
}

/// The display form of a resource's first `name` (`text`, else prefix, given and family joined).
fn human_name(resource: &serde_json::Value) -> Option<String> {
    let name = resource.get("name")?.as_array()?.first()?;
    if let Some(text) = name
        .get("text")
        .and_then(|t| t.as_str())
        .filter(|t| !t.trim().is_empty())
    {
        return Some(text.trim().to_owned());
    }
    let words = |key: &str| -> Vec<String> {
        match name.get(key) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    };
    let parts: Vec<String> = [words("prefix"), words("given"), words("family")].concat();
    let joined = parts.join(" ");
    (!joined.trim().is_empty()).then(|| joined.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_users_name_comes_from_text_or_its_parts() {
        let text = json!({"name": [{"text": " Dr. Jane Smith "}]});
        assert_eq!(human_name(&text).as_deref(), Some("Dr. Jane Smith"));
        let parts = json!({"name": [{"prefix": ["Dr."], "given": ["Jane", "Q"], "family": "Smith"}]});
        assert_eq!(human_name(&parts).as_deref(), Some("Dr. Jane Q Smith"));
        assert_eq!(human_name(&json!({"name": []})), None);
        assert_eq!(human_name(&json!({"resourceType": "Practitioner"})), None);
    }
}
