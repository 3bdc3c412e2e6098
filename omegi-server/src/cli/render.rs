//! Human-readable output of the CLI.

use std::fmt::Write as _;
use unicode_width::UnicodeWidthStr as _;

use crate::api::notes::IssueSuggestions;
use crate::api::views::{ErrorFlowView, IssueDetail, IssueView, MemberView, StatsView, TokenView};

/// `3s ago`, `5m ago`, `30h ago`, `4d ago`.
pub fn ago(time_ns: u64, now_ns: u64) -> String {
    format!("{} ago", whole_units(now_ns.saturating_sub(time_ns)))
}

/// A span of time in its largest whole unit, hours up to two days: `3s`,
/// `5m`, `24h`, `4d`.
pub fn whole_units(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=172_799 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// `text` followed by spaces up to `width` terminal columns (wide
/// characters, such as Hangul, take two).
pub fn pad_end(text: &str, width: usize) -> String {
    let mut out = text.to_owned();
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(text.width())));
    out
}

fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.width())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                for _ in cell.width()..widths[c] + 2 {
                    line.push(' ');
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The issue list as a table.
pub fn issues(list: &[IssueView], now_ns: u64) -> String {
    if list.is_empty() {
        return "no issues\n".into();
    }
    let mut rows = vec![vec![
        "ID".to_owned(),
        "STATUS".into(),
        "COUNT".into(),
        "LAST SEEN".into(),
        "SERVICES".into(),
        "TITLE".into(),
    ]];
    for i in list {
        rows.push(vec![
            i.id.clone(),
            status_word(&i.issue.status),
            i.issue.count.to_string(),
            ago(i.issue.last_seen_ns, now_ns),
            i.issue.services.join(","),
            i.issue.title.clone(),
        ]);
    }
    table(&rows)
}

fn status_word(status: &omegi_store::IssueStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// One issue, the flow of its latest error, the notes written about it (and
/// those that look related), and its latest occurrences.
pub fn issue(
    detail: &IssueDetail,
    flow: Option<&ErrorFlowView>,
    notes: Option<&IssueSuggestions>,
    now_ns: u64,
) -> String {
    let i = &detail.issue.issue;
    let mut out = String::new();
    let _ = writeln!(out, "{}  {}", detail.issue.id, i.title);
    let _ = writeln!(out, "status:     {}", status_word(&i.status));
    let _ = writeln!(out, "count:      {}", i.count);
    let _ = writeln!(out, "first seen: {}", ago(i.first_seen_ns, now_ns));
    let _ = writeln!(out, "last seen:  {}", ago(i.last_seen_ns, now_ns));
    let _ = writeln!(out, "services:   {}", i.services.join(", "));
    if let Some(trace) = i.latest_trace {
        let _ = writeln!(out, "trace:      {trace}");
    }
    if let Some(flow) = flow {
        match (&flow.flow, &flow.flow_error) {
            (Some(f), _) => {
                out.push_str("\nflow:\n");
                out.push_str(&f.summary);
            }
            (None, Some(why)) => {
                let _ = writeln!(out, "\nflow: {why}");
            }
            (None, None) => {}
        }
    }
    if let Some(notes) = notes {
        issue_notes(&mut out, &detail.issue.id, notes, now_ns);
    }
    if !detail.occurrences.is_empty() {
        out.push_str("\nlatest occurrences:\n");
        let mut rows = Vec::new();
        for o in &detail.occurrences {
            rows.push(vec![
                format!("  {}", o.id),
                ago(o.time_ns, now_ns),
                o.service.clone(),
                o.trace_id.map(|t| t.to_string()).unwrap_or_default(),
            ]);
        }
        out.push_str(&table(&rows));
    }
    out
}

/// The notes section of an issue: what was written about it, then what looks
/// related, or how to write the first note.
fn issue_notes(out: &mut String, issue_id: &str, notes: &IssueSuggestions, now_ns: u64) {
    let rows = |notes: &[omegi_core::note::Note]| -> String {
        let rows: Vec<Vec<String>> = notes
            .iter()
            .map(|n| {
                vec![
                    format!("  {}", n.title),
                    n.id.to_string(),
                    format!("by {}", n.author),
                    format!("updated {}", ago(n.updated_ns, now_ns)),
                ]
            })
            .collect();
        table(&rows)
    };
    if notes.linked.is_empty() {
        let _ = writeln!(
            out,
            "\nnotes: none yet; write one with `omegi note new --issue {issue_id} --title ...`"
        );
    } else {
        out.push_str("\nnotes about this issue (`omegi note show <id>`):\n");
        out.push_str(&rows(&notes.linked));
    }
    if !notes.suggested.is_empty() {
        out.push_str("\nnotes that may be related:\n");
        out.push_str(&rows(&notes.suggested));
    }
}

/// The dashboard.
pub fn stats(stats: &StatsView) -> String {
    let s = &stats.summary;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "all projects: {} spans, {} errors, {} issues ({} open)",
        s.spans, s.errors, s.issues, s.open_issues
    );
    for p in &s.projects {
        let _ = writeln!(
            out,
            "  {}: {} spans, {} traces, {} errors; issues: {} unresolved, {} regressed, {} resolved, {} ignored",
            p.project, p.spans, p.traces, p.errors, p.unresolved, p.regressed, p.resolved, p.ignored
        );
    }
    let window = whole_units(
        stats
            .to_ns
            .min(crate::api::now_ns())
            .saturating_sub(stats.from_ns),
    );
    for p in &stats.projects {
        let total: u64 = p.error_counts.iter().map(|b| b.count).sum();
        let _ = writeln!(
            out,
            "\n{} (last {window}): {total} errors, {} new issues",
            p.project,
            p.new_issue_count.max(p.new_issues.len() as u64)
        );
        for s in &p.services {
            let _ = writeln!(out, "  {} {}", pad_end(&s.service, 24), s.count);
        }
        for i in &p.new_issues {
            let _ = writeln!(out, "  new: {}  {}", i.id, i.issue.title);
        }
    }
    if !stats.dependencies.is_empty() {
        out.push_str("\nservice dependencies:\n");
        for e in &stats.dependencies {
            let _ = writeln!(
                out,
                "  {} -> {}  {} calls, {} errors",
                e.caller, e.callee, e.calls, e.errors
            );
        }
    }
    out
}

/// Tokens as a table (never the tokens themselves).
pub fn tokens(list: &[TokenView], now_ns: u64) -> String {
    if list.is_empty() {
        return "no tokens\n".into();
    }
    let mut rows = vec![vec![
        "ID".to_owned(),
        "KIND".into(),
        "OWNER".into(),
        "LABEL".into(),
        "CREATED".into(),
        "LAST USED".into(),
    ]];
    for t in list {
        rows.push(vec![
            t.id.clone(),
            t.kind.clone(),
            t.owner.clone(),
            if t.label.is_empty() {
                "-".into()
            } else {
                t.label.clone()
            },
            ago(t.created_ns, now_ns),
            t.last_used_ns
                .map_or_else(|| "never".into(), |used| ago(used, now_ns)),
        ]);
    }
    table(&rows)
}

/// A project's members, one a line, admins marked.
pub fn members(project: &str, list: &[MemberView]) -> String {
    let mut out = String::new();
    for m in list {
        let _ = match (m.admin, m.named) {
            (true, true) => writeln!(out, "{}  admin", m.login),
            (true, false) => writeln!(out, "{}  admin (member of every project)", m.login),
            _ => writeln!(out, "{}", m.login),
        };
    }
    if out.is_empty() {
        let _ = writeln!(out, "{project} has no members");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times() {
        let s = 1_000_000_000;
        assert_eq!(ago(0, 5 * s), "5s ago");
        assert_eq!(ago(0, 125 * s), "2m ago");
        assert_eq!(ago(0, 7200 * s), "2h ago");
        assert_eq!(ago(0, 30 * 3600 * s), "30h ago");
        assert_eq!(ago(0, 3 * 86_400 * s), "3d ago");
        assert_eq!(whole_units(86_400 * s), "24h");
        assert_eq!(whole_units(7 * 86_400 * s), "7d");
        assert_eq!(ago(10 * s, 5 * s), "0s ago");
    }

    #[test]
    fn tables_align_columns() {
        let t = table(&[
            vec!["A".into(), "BB".into(), "x".into()],
            vec!["long".into(), "c".into(), "y".into()],
        ]);
        assert_eq!(t, "A     BB  x\nlong  c   y\n");
    }

    #[test]
    fn tables_align_wide_text_by_terminal_columns() {
        // "결제" is two characters and four columns wide.
        let t = table(&[
            vec!["결제".into(), "x".into()],
            vec!["abcde".into(), "y".into()],
        ]);
        assert_eq!(t, "결제   x\nabcde  y\n");
        assert_eq!(pad_end("결제", 6), "결제  ");
    }
}
