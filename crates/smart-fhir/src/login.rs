//! `smart-fhir login` and `smart-fhir logout`: a SMART standalone launch from the terminal, as a native app.
//!
//! The redirect comes back to this process on the loopback interface, RFC 8252 §7.3
//! (<https://www.rfc-editor.org/rfc/rfc8252#section-7.3>): `http://127.0.0.1:{port}/callback` on a port the OS
//! picks, which the EHR must accept for a registered `http://127.0.0.1/callback` of a public client. PKCE (S256)
//! protects the code (RFC 8252 §8.1), the state is checked, and the tokens are kept in the user's data
//! directory for `get` and `search` ([`crate::token_store`]). `logout` revokes them (RFC 7009) and deletes them.

use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse};
use clap::Args;
use smart_launch::{CallbackParams, PendingLaunch, SmartClient, SmartClientConfig};
use tokio::sync::mpsc;
use url::Url;

use crate::token_store::{self, StoredLogin};

/// The path of the loopback redirect URI (register `http://127.0.0.1/callback` with the EHR).
pub const CALLBACK_PATH: &str = "/callback";

/// Options of `smart-fhir login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The FHIR server's base URL (its endpoints are discovered from .well-known/smart-configuration).
    #[arg(long = "fhir-base", value_name = "URL")]
    pub fhir_base: Url,
    /// The client id of a public (native) app registered with the redirect URI http://127.0.0.1/callback.
    #[arg(long = "client-id", value_name = "ID")]
    pub client_id: String,
    /// The scopes to ask for (space-separated, SMART v1 or v2).
    #[arg(
        long,
        value_name = "SCOPES",
        default_value = "openid fhirUser offline_access launch/patient patient/*.rs"
    )]
    pub scope: String,
    /// Open the sign-in page with xdg-open (when installed) as well as printing its URL.
    #[arg(long)]
    pub open: bool,
    /// How long to wait for the browser to come back, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub timeout: u64,
}

/// Options of `smart-fhir logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {}

/// Run the standalone launch and store the tokens.
pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let scope = token_store::parse_scope(&args.scope)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("Could not listen on 127.0.0.1 for the browser's redirect")?;
    let port = listener
        .local_addr()
        .context("The loopback listener has no address")?
        .port();
    let redirect_uri = Url::parse(&format!("http://127.0.0.1:{port}{CALLBACK_PATH}"))?;
    let smart = SmartClient::new(SmartClientConfig::new(
        args.client_id.clone(),
        redirect_uri.clone(),
        scope,
    ))
    .context("The SMART client could not be set up")?;
    let (request, pending) = smart
        .standalone_launch(&args.fhir_base)
        .await
        .with_context(|| format!("Could not start a SMART launch with {}", args.fhir_base))?;

    eprintln!("Sign in to the EHR in your browser: open");
    eprintln!("  {}", request.url);
    eprintln!("Waiting for the browser to come back to {redirect_uri} …");
    if args.open {
        open_in_browser(&request.url);
    }
    let redirect = wait_for_callback(
        listener,
        &redirect_uri,
        &pending,
        Duration::from_secs(args.timeout),
    )
    .await?;
    let completed = smart
        .complete_from_url(pending, &redirect)
        .await
        .context("The EHR did not complete the sign-in")?;

    let path = token_store::path()?;
    let login = StoredLogin {
        client_id: args.client_id,
        redirect_uri,
        patient: completed.context.patient.clone(),
        tokens: completed.tokens,
    };
    token_store::save(&path, &login)?;
    let who = completed
        .fhir_user
        .map(|user| format!(" as {}/{}", user.resource_type, user.id))
        .unwrap_or_default();
    let patient = login
        .patient
        .as_deref()
        .map(|p| format!(", patient {p}"))
        .unwrap_or_default();
    println!(
        "Logged in to {}{who}{patient} (scopes: {}). Tokens kept in {} (readable by you alone).",
        login.tokens.fhir_base,
        login.tokens.scope,
        path.display()
    );
    Ok(())
}

/// Revoke the stored login's grant and delete it.
pub async fn logout(_args: LogoutArgs) -> anyhow::Result<()> {
    let Some((login, path)) = token_store::load()? else {
        println!("Not logged in; nothing to do.");
        return Ok(());
    };
    let revoked = token_store::smart_client(&login)?.revoke(&login.tokens).await;
    token_store::delete(&path)?;
    match revoked {
        Ok(()) => {
            println!(
                "Logged out of {}: the tokens were revoked and deleted.",
                login.tokens.fhir_base
            );
            Ok(())
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "The tokens were deleted from {}, but {} did not revoke them; they stay valid until they expire",
            path.display(),
            login.tokens.fhir_base
        ))),
    }
}

/// Try `xdg-open` on the sign-in URL; when it is missing or fails, the printed URL is enough.
fn open_in_browser(url: &Url) {
    match std::process::Command::new("xdg-open")
        .arg(url.as_str())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(_) => eprintln!("(opened with xdg-open)"),
        Err(_) => eprintln!("(xdg-open is not available: open the URL yourself)"),
    }
}

/// The loopback server's state: where to send a redirect carrying this login's state.
#[derive(Clone)]
struct Callback {
    redirect_uri: Url,
    expected_state: String,
    done: mpsc::Sender<Url>,
}

/// Serve the loopback redirect URI until a redirect with this login's state arrives (others are answered
/// 400 and ignored, so a stray request cannot end the login), or until `timeout`.
async fn wait_for_callback(
    listener: tokio::net::TcpListener,
    redirect_uri: &Url,
    pending: &PendingLaunch,
    timeout: Duration,
) -> anyhow::Result<Url> {
    let (done, mut arrived) = mpsc::channel(1);
    let state = Callback {
        redirect_uri: redirect_uri.clone(),
        expected_state: pending.state().secret().to_owned(),
        done,
    };
    let router = axum::Router::new()
        .route(CALLBACK_PATH, axum::routing::get(callback))
        .with_state(state);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    let result = tokio::time::timeout(timeout, arrived.recv()).await;
    let _ = stop.send(());
    let _ = server.await;
    match result {
        Ok(Some(url)) => Ok(url),
        Ok(None) => bail!("The loopback listener stopped before the browser came back"),
        Err(_) => bail!(
            "The browser did not come back within {} s; run `smart-fhir login` again (or raise --timeout)",
            timeout.as_secs()
        ),
    }
}

/// `GET /callback?code&state` (or `?error&state`): hand the URL to the login when the state is this login's.
async fn callback(
    State(callback): State<Callback>,
    Query(query): Query<Vec<(String, String)>>,
) -> impl IntoResponse {
    let mut url = callback.redirect_uri.clone();
    url.query_pairs_mut().extend_pairs(&query);
    let params = CallbackParams::from_url(&url);
    let ours = params
        .state()
        .is_some_and(|state| state.ct_eq_str(&callback.expected_state));
    if !ours {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            Html(
                "<!doctype html><title>smart-fhir login</title><p>This is not the sign-in smart-fhir is waiting for.",
            ),
        );
    }
    let message = if params.error().is_some() {
        "<!doctype html><title>smart-fhir login</title><p>The EHR did not sign you in. The terminal says why."
    } else {
        "<!doctype html><title>smart-fhir login</title><p>Signed in. You can close this tab and go back to the terminal."
    };
    let _ = callback.done.send(url).await;
    (axum::http::StatusCode::OK, Html(message))
}
