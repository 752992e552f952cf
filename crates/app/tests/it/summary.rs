//! The patient summary over real HTTP against the sandbox: the time window and its links, and
//! sections whose search had more pages saying so.

use crate::common::{Browser, TestEnv, standalone_launch};

/// The number in the first chart's "Values (N)" (blood pressure), 0 when no chart is drawn.
fn first_chart_values(body: &str) -> usize {
    body.split("Values (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_window_links_bound_what_the_summary_reads_and_all_reads_the_most() {
    let env = TestEnv::start().await;
    let browser = Browser::new();
    let first = standalone_launch(&env, &browser).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(
        first.body.contains(r#"href="/?window=5y" aria-current="page""#),
        "five years by default: {}",
        first.body
    );
    let mut counts = Vec::new();
    for window in ["all", "5y", "1y"] {
        let page = browser.get(env.url(&format!("/?window={window}"))).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(
            page.body
                .contains(&format!(r#"href="/?window={window}" aria-current="page""#)),
            "the {window} link is marked current"
        );
        assert!(page.body.contains("Patient"), "{}", page.body);
        counts.push(first_chart_values(&page.body));
    }
    let (all, five, one) = (counts[0], counts[1], counts[2]);
    // The generated record ends on 2025-06-01 and starts years before: whatever today is, the
    // whole record holds more than its last year, and the windows nest.
    assert!(all >= five && five >= one, "all {all} ≥ 5y {five} ≥ 1y {one}");
    assert!(
        all > one,
        "the last year holds less than the whole record: {all} vs {one}"
    );
    assert!(all >= 4, "the whole record has the generated visits: {all}");
    // An unknown window falls back to the default, and a malformed query is not an error.
    let odd = browser.get(env.url("/?window=%FF&window=forever&x")).await;
    assert_eq!(odd.status, 200);
    assert!(odd.body.contains(r#"href="/?window=5y" aria-current="page""#));
    env.stop().await;
}

#[tokio::test]
async fn the_ips_sections_are_on_the_page_and_shared_with_the_default_scopes() {
    let env = TestEnv::start().await;
    let browser = Browser::new();
    let page = standalone_launch(&env, &browser).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for title in [
        "Diagnostic reports",
        "Procedures",
        "Active medications",
        "Active conditions",
    ] {
        assert!(
            page.body.contains(&format!(r#"aria-label="{title}""#)),
            "{title} section: {}",
            page.body
        );
        assert!(
            !page.body.contains(&format!("{title} not shared")),
            "{title} is shared"
        );
    }
    assert!(
        !page.body.contains("Reported medications (statements) not shared"),
        "statements are shared"
    );
    env.stop().await;
}
