//! Runs the distributed demo in its short mode and checks what it prints:
//! one trace across the three service processes, issues grouped with their
//! counts, and the note surfacing when the error comes back.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the demo may run before the test gives up on it (a bound
/// against a hang, not a speed check).
const HANG_LIMIT: Duration = Duration::from_secs(600);

#[test]
fn shop_demo_shows_a_cross_process_flow_and_surfaces_the_note() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shop"))
        .arg("--short")
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the shop demo");
    // Read both pipes on their own threads so that the demo never blocks
    // on a full pipe, and wait for it with a deadline.
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().expect("stdout")));
    let stderr = read_all(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + HANG_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waits for the demo") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the shop demo did not finish within {HANG_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = stdout.join().expect("stdout read");
    let stderr = stderr.join().expect("stderr read");
    assert!(status.success(), "shop failed\n{stdout}\n{stderr}");

    // One trace id across the three services, each its own process.
    let flow_line = stdout
        .lines()
        .find(|l| l.starts_with("trace ") && l.contains(" across "))
        .unwrap_or_else(|| panic!("no flow line in\n{stdout}"));
    assert!(
        flow_line.ends_with("user-service → inventory-service → payment-service"),
        "{flow_line}"
    );
    let trace_id = flow_line.split_whitespace().nth(1).unwrap();
    assert_eq!(trace_id.len(), 32);
    let waterfall_header = format!("trace {trace_id}  ");
    let header = stdout
        .lines()
        .find(|l| l.starts_with(&waterfall_header))
        .unwrap_or_else(|| panic!("no waterfall for {trace_id}\n{stdout}"));
    assert!(header.contains("3 services"), "{header}");
    assert!(
        stdout.contains("caused by: issuer answered: insufficient funds"),
        "{stdout}"
    );

    // Issues grouped by fingerprint with their counts (16 orders: declines
    // at 7 and 14, warehouse timeouts at 5, 10 and 15, a panic at 13): one
    // issue per cause; the failed call the panic causes upstream is its
    // consequence, not an issue.
    let count_of = |needle: &str| -> u64 {
        stdout
            .lines()
            .find(|l| l.contains(needle) && l.trim_start().starts_with(char::is_numeric))
            .unwrap_or_else(|| panic!("no issue {needle:?} in\n{stdout}"))
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(count_of("card payment failed"), 2);
    assert_eq!(count_of("stock lookup failed"), 3);
    assert_eq!(count_of("panic: exchange rate for currency"), 1);
    let issue_lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with(char::is_numeric) && l.contains("-service"))
        .collect();
    assert!(
        !issue_lines
            .iter()
            .any(|l| l.contains("payment-service call failed")),
        "the failed call is a consequence, not an issue\n{stdout}"
    );
    // The panic's issue shows what it caused in inventory-service.
    let panic_at = stdout
        .lines()
        .position(|l| l.contains("panic: exchange rate for currency"))
        .unwrap();
    let caused: Vec<&str> = stdout
        .lines()
        .skip(panic_at + 1)
        .take_while(|l| l.trim_start().starts_with("caused:"))
        .collect();
    assert!(
        caused
            .iter()
            .any(|l| l.contains("inventory-service") && l.contains("payment-service call failed")),
        "{stdout}"
    );
    // The failed calls upstream are consequences, listed under their
    // cause, never issues of their own.
    assert!(
        !issue_lines.iter().any(|l| l.contains("HTTP 50")),
        "failures are reported once, where they happen\n{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("caused: user-service POST /checkout: HTTP 502 Bad Gateway")),
        "{stdout}"
    );

    // The issue was resolved; it comes back, and the regression alert
    // brings the note written the first time, with its link.
    assert!(stdout.contains("now has 3 occurrences (was 2)"), "{stdout}");
    assert!(
        stdout.contains("ALERT       Regressed: PaymentError::Declined: card payment failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "solved before → note \"Card declined: insufficient funds\" by admin, last edited 20"
        ),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("http://") && l.contains("/#/note/")),
        "{stdout}"
    );
}
