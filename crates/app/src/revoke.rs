//! Telling the EHR, at log-out and reset, that a launch's tokens are no longer wanted (RFC 7009).

use std::time::Duration;

use crate::launch_record::LaunchRecord;
use crate::state::AppState;

/// Tells the EHR that a launch's tokens are no longer wanted (log-out, reset): when its discovery
/// advertised a `revocation_endpoint`, the refresh token (which ends the grant) and the access
/// token are revoked there (RFC 7009).
///
/// Best effort: the user is logged out whatever happens here. A refusal, an unreachable endpoint or
/// one slower than [`REVOKE_TIMEOUT`] is logged as a warning (never with a token) and forgotten.
/// The work runs in its own task, so a browser that gives up waiting does not cancel it halfway.
pub async fn revoke_tokens(state: &AppState, record: LaunchRecord) {
    let state = state.clone();
    let task = tokio::spawn(async move { revoke_within(&state, &record, REVOKE_TIMEOUT).await });
    if let Err(e) = task.await {
        tracing::warn!(error = %e, "the token revocation task failed; logging out anyway");
    }
}

/// The revocation requests of [`revoke_tokens`], both sent at once and given `timeout` together.
async fn revoke_within(state: &AppState, record: &LaunchRecord, timeout: Duration) {
    let Some(endpoint) = record.endpoints.revocation_endpoint.as_ref() else {
        tracing::debug!("the EHR offers no revocation endpoint; its tokens stay valid until they expire");
        return;
    };
    let tokens = record.tokens();
    let client = state.smart().token_client();
    match tokio::time::timeout(timeout, client.revoke_tokens(endpoint, tokens)).await {
        Ok(revocation) => {
            let results = [
                ("refresh", revocation.refresh.as_ref()),
                ("access", Some(&revocation.access)),
            ];
            for (kind, result) in results {
                if let Some(Err(e)) = result {
                    tracing::warn!(
                        endpoint = %endpoint,
                        token = kind,
                        error = %e,
                        "the EHR did not revoke the {kind} token; logging out anyway"
                    );
                }
            }
            if revocation.is_complete() {
                tracing::info!(endpoint = %endpoint, "the launch's tokens were revoked at the EHR");
            }
        }
        Err(_) => tracing::warn!(
            endpoint = %endpoint,
            timeout_secs = timeout.as_secs(),
            "the EHR's revocation endpoint did not answer in time; logging out anyway"
        ),
    }
}

/// How long log-out waits for the EHR to revoke the tokens before going on without it.
pub const REVOKE_TIMEOUT: Duration = Duration::from_secs(3);
