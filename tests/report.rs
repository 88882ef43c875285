//! The HTML report in a real browser: headless Chromium (Debian `chromium`) renders
//! `omnimeter report` over the public sample; every chart is there, the page logs
//! nothing to the console and fetches nothing from the network.

#![allow(clippy::unwrap_used)]

mod util;

use std::path::Path;
use std::process::Command;

use util::{omnimeter, python_check};

fn chromium(profile: &Path, extra: &[String], page: &Path) -> std::process::Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium (Debian package) must be installed: run deploy/local/setup.sh --test")
}

#[test]
fn the_report_renders_in_headless_chromium_with_every_chart_and_no_console_output() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let run = omnimeter(&["run", "--input", "tests/data/public-sample.ndjson", "--output", out.to_str().unwrap()]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let html = tmp.path().join("report.html");
    let rep = omnimeter(&["report", "--input", out.to_str().unwrap(), "--html", html.to_str().unwrap()]);
    assert!(rep.status.success(), "{}", String::from_utf8_lossy(&rep.stderr));
    let said = String::from_utf8_lossy(&rep.stdout);
    assert!(said.starts_with("omnimeter report: 101 journeys"), "{said}");

    // The DOM as Chromium built it, with the console on stderr and every request in a net log.
    let netlog = tmp.path().join("net.json");
    let dom = chromium(
        &tmp.path().join("profile-dom"),
        &[
            "--enable-logging=stderr".into(),
            "--v=0".into(),
            format!("--log-net-log={}", netlog.display()),
            "--dump-dom".into(),
        ],
        &html,
    );
    assert!(dom.status.success(), "{}", String::from_utf8_lossy(&dom.stderr));
    let console: Vec<String> = String::from_utf8_lossy(&dom.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .map(str::to_owned)
        .collect();
    assert!(console.is_empty(), "the page wrote to the console: {console:#?}");
    let dom_file = tmp.path().join("dom.html");
    std::fs::write(&dom_file, &dom.stdout).unwrap();
    python_check(&["tests/tools/check_report_dom.py", dom_file.to_str().unwrap(), netlog.to_str().unwrap()]);
    // Each figure says what it counts where it stands (issue 15 item 9), in the rendered page.
    let page = String::from_utf8_lossy(&dom.stdout);
    for caption in [
        "(event time)",
        "Resolved counts journeys whose outcome is resolved.",
        "journeys with a resolution time (any outcome)",
        "With resolution time</th>",
        "so channels get fractions of conversions",
    ] {
        assert!(page.contains(caption), "{caption:?} is not in the rendered page");
    }

    // What people will look at.
    let shot = tmp.path().join("report.png");
    let s = chromium(
        &tmp.path().join("profile-shot"),
        &[format!("--screenshot={}", shot.display()), "--window-size=1280,2200".into()],
        &html,
    );
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "a real screenshot ({} bytes)", png.len());
}
