//! Nothing kept for strangers beyond a bound: pending authorizations and launches, which anyone can create, are
//! capped per client and overall (the oldest dropped), and expired rows are purged on a timer.

use std::time::Duration;

use crate::common::*;
use reqwest::StatusCode;
use sandbox::{ClientSpec, auth::AuthLimits};
use url::Url;

const LAUNCH_URL: &str = "http://127.0.0.1:9/launch";
const OTHER: &str = "other-app";

/// The sandbox database of `ts`, opened beside the running server.
fn db(ts: &TestSandbox) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(ts.dir.path().join("sandbox.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

fn rows(ts: &TestSandbox, sql: &str) -> i64 {
    db(ts).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Starts an authorization for `client` in `browser`; returns the sign-in step's URL.
async fn start_sign_in(ts: &TestSandbox, browser: &Browser, client: &str) -> String {
    let request = AuthRequest::new(ts, "launch/patient patient/*.rs").set("client_id", client);
    let response = browser.get(&request.url(ts)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    location(&response)
}

/// An EHR launch of the test app from `/launcher`, as anyone may start one; returns the `launch` id.
async fn launch(ts: &TestSandbox) -> String {
    let response = ts
        .http
        .get(ts.url(&format!("/launcher?launch_uri={LAUNCH_URL}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    query(&Url::parse(&location(&response)).unwrap(), "launch").unwrap()
}

#[tokio::test]
async fn pending_authorizations_beyond_a_clients_cap_drop_the_oldest() {
    let ts = start_with(|config| {
        config.auth_limits = AuthLimits {
            max_pending_per_client: 3,
            max_pending: 5,
            ..AuthLimits::default()
        };
    })
    .await;
    ts.register(ClientSpec::public(OTHER, Url::parse(REDIRECT).unwrap()));
    let browser = Browser::new(&ts);
    let mut steps = Vec::new();
    for _ in 0..4 {
        steps.push(start_sign_in(&ts, &browser, APP).await);
    }
    assert_eq!(rows(&ts, "SELECT count(*) FROM auth_requests"), 3);
    // The oldest is gone; the newest signs in as ever.
    let oldest = browser.get(&steps[0]).await;
    assert_eq!(oldest.status(), StatusCode::BAD_REQUEST);
    assert!(oldest.text().await.unwrap().contains("Sign-in expired"));
    assert_eq!(browser.get(&steps[3]).await.status(), StatusCode::OK);
    // Another client's requests count against the overall cap: 3 + 3 > 5 drops the oldest overall.
    for _ in 0..3 {
        start_sign_in(&ts, &browser, OTHER).await;
    }
    assert_eq!(rows(&ts, "SELECT count(*) FROM auth_requests"), 5);
    let mine = format!("SELECT count(*) FROM auth_requests WHERE client_id = '{APP}'");
    assert_eq!(rows(&ts, &mine), 2);
    assert_eq!(browser.get(&steps[3]).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn launches_beyond_a_clients_cap_drop_the_oldest() {
    let ts = start_with(|config| {
        config.auth_limits = AuthLimits {
            max_launches_per_client: 2,
            ..AuthLimits::default()
        };
    })
    .await;
    ts.register(
        ClientSpec::public(APP, Url::parse(REDIRECT).unwrap())
            .with_launch_uri(Url::parse(LAUNCH_URL).unwrap()),
    );
    let mut launches = Vec::new();
    for _ in 0..3 {
        launches.push(launch(&ts).await);
    }
    assert_eq!(rows(&ts, "SELECT count(*) FROM auth_launches"), 2);
    let kept = |id: &str| {
        db(&ts)
            .query_row("SELECT count(*) FROM auth_launches WHERE id = ?1", [id], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
    };
    assert_eq!(
        (kept(&launches[0]), kept(&launches[1]), kept(&launches[2])),
        (0, 1, 1)
    );
}

#[tokio::test]
async fn expired_launches_pending_requests_codes_and_tokens_are_purged_on_a_timer() {
    let ts = start_with(|config| {
        config.auth_limits = AuthLimits {
            purge_interval: Duration::from_millis(50),
            ..AuthLimits::default()
        };
    })
    .await;
    ts.register(
        ClientSpec::public(APP, Url::parse(REDIRECT).unwrap())
            .with_launch_uri(Url::parse(LAUNCH_URL).unwrap()),
    );
    launch_and_exchange(&ts, "launch/patient patient/*.rs offline_access").await;
    start_sign_in(&ts, &Browser::new(&ts), APP).await;
    launch(&ts).await;
    let tables = ["auth_requests", "auth_launches", "auth_codes", "auth_tokens"];
    for table in tables {
        assert!(
            rows(&ts, &format!("SELECT count(*) FROM {table}")) > 0,
            "{table} is empty"
        );
    }
    // Time passes: everything expired two days ago (past the day codes and tokens are kept for replays).
    let two_days_ago = chrono::Utc::now().timestamp_millis() - 2 * 24 * 3600 * 1000;
    for table in tables {
        db(&ts)
            .execute(&format!("UPDATE {table} SET expires_at = ?1"), [two_days_ago])
            .unwrap();
    }
    let mut left = i64::MAX;
    for _ in 0..200 {
        left = tables
            .iter()
            .map(|t| rows(&ts, &format!("SELECT count(*) FROM {t}")))
            .sum();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0, "expired rows were not purged");
}
