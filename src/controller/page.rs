//! The status page (`GET /`): one server-rendered HTML5 document with inline CSS and no
//! script, the first thing an operator opens. It shows the revision, the replica's role and
//! the last reconcile; an overview of the channels; the rollback holds in force; a section
//! per channel (`<section class="channel" data-channel="NAME">`) with its state badge
//! (`<span class="state" data-state="Synced">`), revision, last sync, last error and drift
//! table (`<table class="drift">`, one `<tr data-state="moved">` per tag); and the recent
//! sync history, newest first. Every text from the status is escaped.

use std::fmt::Write as _;

use crate::digest::Digest;
use crate::plan::DriftItem;
use crate::store::{EntryKind, HistoryEntry, Hold};

use super::status::{ChannelState, ChannelStatus, PayloadStatus, Status};

/// How many history entries the page shows.
pub const HISTORY_ROWS: usize = 50;

/// How often the page reloads itself, in seconds.
pub const REFRESH_SECONDS: u32 = 15;

const STYLE: &str = r#"
:root {
  --bg: #f4f6f8; --card: #ffffff; --text: #1f2933; --muted: #616e7c; --line: #e4e7eb;
  --green: #1e7b34; --green-bg: #e3f5e8; --amber: #8a5a00; --amber-bg: #fff3d6;
  --red: #b42318; --red-bg: #fde8e7; --grey: #52606d; --grey-bg: #e9edf1;
  --blue: #175cd3; --blue-bg: #e6efff;
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, "DejaVu Sans Mono", monospace;
  font-size: 12.5px; }
header.top { background: #1f2933; color: #f5f7fa; padding: 18px 32px; }
header.top h1 { margin: 0 0 10px; font-size: 22px; font-weight: 600; letter-spacing: .3px; }
header.top h1 small { color: #9aa5b1; font-weight: 400; font-size: 14px; margin-left: 8px; }
dl.facts { display: flex; flex-wrap: wrap; gap: 8px 36px; margin: 0; }
dl.facts div { min-width: 120px; }
dl.facts dt { color: #9aa5b1; font-size: 11px; text-transform: uppercase; letter-spacing: .6px; }
dl.facts dd { margin: 2px 0 0; }
header.top .error { margin-top: 12px; }
main { padding: 22px 32px 32px; max-width: 1400px; }
h2 { font-size: 17px; margin: 0; }
h3 { font-size: 13px; margin: 16px 0 6px; color: var(--muted); text-transform: uppercase;
  letter-spacing: .6px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 16px 20px; margin-bottom: 18px; box-shadow: 0 1px 2px rgba(16,24,40,.04); }
ul.overview { list-style: none; display: flex; flex-wrap: wrap; gap: 10px; padding: 0;
  margin: 0 0 18px; }
ul.overview li a { display: flex; align-items: center; gap: 8px; background: var(--card);
  border: 1px solid var(--line); border-radius: 8px; padding: 8px 12px; color: var(--text);
  text-decoration: none; }
ul.overview li a:hover { border-color: #9aa5b1; }
.state, .badge, .drift-state, .outcome, .role { display: inline-block; border-radius: 999px;
  padding: 1px 10px; font-size: 12px; font-weight: 600; white-space: nowrap; }
span[data-state="Synced"], span[data-state="ok"], span[data-outcome="succeeded"],
span[data-role="leader"] { color: var(--green); background: var(--green-bg); }
span[data-state="OutOfSync"], span[data-state="missing"], span[data-state="moved"],
span[data-state="importing"], span[data-outcome="refused"] {
  color: var(--amber); background: var(--amber-bg); }
span[data-state="Degraded"], span[data-state="import-failed"], span[data-outcome="failed"],
span[data-outcome="interrupted"] {
  color: var(--red); background: var(--red-bg); }
span[data-state="Unknown"], span[data-state="extra"], span[data-role="standby"] {
  color: var(--grey); background: var(--grey-bg); }
section.channel > header { display: flex; align-items: center; gap: 12px; margin-bottom: 8px; }
section.channel > header .count { margin-left: auto; color: var(--muted); }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; }
.error { background: var(--red-bg); color: var(--red); border-radius: 6px; padding: 8px 12px;
  margin: 10px 0 0; white-space: pre-wrap; word-break: break-word; }
header.top .error { background: #5c1d18; color: #ffd7d3; }
.none { color: #9aa5b1; }
table { border-collapse: collapse; width: 100%; }
th { text-align: left; font-size: 11px; text-transform: uppercase; letter-spacing: .5px;
  color: var(--muted); font-weight: 600; border-bottom: 1px solid var(--line); padding: 6px 8px; }
td { border-bottom: 1px solid var(--line); padding: 6px 8px; vertical-align: top; }
tbody tr:last-child td { border-bottom: none; }
table.drift tr[data-state="missing"] td:first-child, table.drift tr[data-state="moved"] td:first-child,
table.drift tr[data-state="importing"] td:first-child { box-shadow: inset 3px 0 0 #f0b429; }
table.drift tr[data-state="import-failed"] td:first-child { box-shadow: inset 3px 0 0 var(--red); }
table.drift tr[data-state="extra"] td:first-child { box-shadow: inset 3px 0 0 #9aa5b1; }
table.drift tr[data-state="ok"] { color: var(--muted); }
table.drift tr[data-state="unsigned"] td:first-child { box-shadow: inset 3px 0 0 #f0b429; }
.msg { color: var(--red); font-size: 12px; margin-top: 2px; }
.empty { color: var(--muted); margin: 8px 0 0; }
footer { color: var(--muted); padding: 0 32px 24px; font-size: 12px; }
footer a, .card a { color: var(--blue); }
"#;

/// The whole page for `status`.
pub fn render(status: &Status) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let synced = status
        .channels
        .iter()
        .filter(|c| c.state == ChannelState::Synced)
        .count();
    let title = if status.channels.is_empty() {
        "relsync".to_string()
    } else {
        format!(
            "relsync: {synced} of {} channels synced",
            status.channels.len()
        )
    };
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>",
        escape(&title)
    );
    render_header(&mut out, status);
    out.push_str("<main>\n");
    render_overview(&mut out, &status.channels);
    render_holds(&mut out, &status.holds);
    for channel in &status.channels {
        render_channel(&mut out, channel);
    }
    render_history(&mut out, &status.history);
    out.push_str("</main>\n");
    let _ = writeln!(
        out,
        "<footer>relsync {} &middot; this page reloads every {REFRESH_SECONDS} s &middot; \
         <a href=\"/api/v1/status\">status JSON</a> &middot; <a href=\"/metrics\">metrics</a>\
         </footer>\n</body>\n</html>",
        escape(env!("CARGO_PKG_VERSION"))
    );
    out
}

fn render_header(out: &mut String, status: &Status) {
    out.push_str("<header class=\"top\">\n<h1>relsync <small>release channels</small></h1>\n");
    out.push_str("<dl class=\"facts\">\n");
    let _ = writeln!(
        out,
        "<div><dt>Revision</dt><dd id=\"revision\">{}</dd></div>",
        revision(status.revision.as_deref())
    );
    let (role, label) = if status.leader {
        ("leader", "Leader")
    } else {
        ("standby", "Standby")
    };
    let _ = writeln!(
        out,
        "<div><dt>Role</dt><dd><span class=\"role\" data-role=\"{role}\">{label}</span></dd></div>"
    );
    let _ = writeln!(
        out,
        "<div><dt>Last reconcile</dt><dd id=\"last-reconcile\">{}</dd></div>",
        time(status.last_reconcile.as_deref(), "not yet")
    );
    let _ = writeln!(
        out,
        "<div><dt>Channels</dt><dd>{} synced of {}</dd></div>",
        status
            .channels
            .iter()
            .filter(|c| c.state == ChannelState::Synced)
            .count(),
        status.channels.len()
    );
    out.push_str("</dl>\n");
    if let Some(error) = &status.last_error {
        let _ = writeln!(
            out,
            "<div class=\"error\" id=\"last-error\">Last reconcile failed: {}</div>",
            escape(error)
        );
    }
    out.push_str("</header>\n");
}

fn render_overview(out: &mut String, channels: &[ChannelStatus]) {
    if channels.is_empty() {
        out.push_str(
            "<div class=\"card\"><p class=\"empty\" id=\"no-channels\">No channels yet: \
             the first reconcile has not finished.</p></div>\n",
        );
        return;
    }
    out.push_str("<ul class=\"overview\">\n");
    for c in channels {
        let state = c.state.as_str();
        let _ = writeln!(
            out,
            "<li><a href=\"#{}\">{} <span class=\"badge\" data-state=\"{state}\">{state}</span>\
             </a></li>",
            escape(&anchor(&c.name)),
            escape(&c.name)
        );
    }
    out.push_str("</ul>\n");
}

fn render_holds(out: &mut String, holds: &[Hold]) {
    if holds.is_empty() {
        return;
    }
    out.push_str(
        "<section class=\"card holds\">\n<h2>Rollback holds</h2>\n<p class=\"empty\">Each held \
         channel keeps the rolled-back revision's desired state until its branch moves past \
         the tip below.</p>\n<table class=\"holds\">\n<thead><tr><th>Channel</th>\
         <th>Held revision</th><th>Branch</th><th>Tip at hold</th><th>Since</th></tr></thead>\n\
         <tbody>\n",
    );
    for h in holds {
        let channel = match &h.channel {
            Some(c) => escape(c),
            None => "<span class=\"none\">every channel</span>".to_string(),
        };
        let _ = writeln!(
            out,
            "<tr data-revision=\"{}\"><td>{channel}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td></tr>",
            escape(&h.revision),
            revision(Some(&h.revision)),
            escape(&h.branch),
            revision(Some(&h.tip)),
            time(Some(&h.time), "")
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn render_channel(out: &mut String, c: &ChannelStatus) {
    let state = c.state.as_str();
    // What counts as drift: `importing` does not, and `extra` only with prune on.
    let drifting = c.drift.iter().filter(|i| i.counts).count();
    let _ = writeln!(
        out,
        "<section class=\"card channel\" id=\"{}\" data-channel=\"{}\">\n<header><h2>{}</h2>\
         <span class=\"state\" data-state=\"{state}\">{state}</span>\
         <span class=\"count\">{drifting} of {} tags drift</span></header>",
        escape(&anchor(&c.name)),
        escape(&c.name),
        escape(&c.name),
        c.drift.len()
    );
    let _ = writeln!(
        out,
        "<dl class=\"meta\"><dt>Revision</dt><dd class=\"revision\">{}</dd>\
         <dt>Last sync</dt><dd class=\"last-sync\">{}</dd></dl>",
        revision(c.revision.as_deref()),
        time(c.last_sync.as_deref(), "never by this replica")
    );
    if let Some(error) = &c.last_error {
        let _ = writeln!(
            out,
            "<div class=\"error last-error\">{}</div>",
            escape(error)
        );
    }
    render_payloads(out, &c.payloads);
    render_signatures(out, c);
    out.push_str("<h3>Drift</h3>\n");
    if c.drift.is_empty() {
        out.push_str("<p class=\"empty\">No tags observed yet.</p>\n</section>\n");
        return;
    }
    out.push_str(
        "<table class=\"drift\">\n<thead><tr><th>Target</th><th>Tag</th><th>Desired</th>\
         <th>Actual</th><th>State</th></tr></thead>\n<tbody>\n",
    );
    for item in &c.drift {
        render_drift_row(out, item);
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

/// A payload stream's channel: per published release, whether its payload is complete.
fn render_payloads(out: &mut String, payloads: &[PayloadStatus]) {
    if payloads.is_empty() {
        return;
    }
    out.push_str(
        "<h3>Payloads</h3>\n<table class=\"payloads\">\n<thead><tr><th>Release</th>\
         <th>Components</th><th>Payload</th></tr></thead>\n<tbody>\n",
    );
    for p in payloads {
        let (state, word) = match (p.complete, p.components) {
            (true, _) => ("complete", "complete".to_string()),
            (false, None) => ("unknown", "component list not read yet".to_string()),
            (false, Some(_)) => ("incomplete", format!("incomplete: {} missing", p.missing)),
        };
        let _ = writeln!(
            out,
            "<tr data-version=\"{}\" data-payload=\"{state}\"><td class=\"version\">{}</td>\
             <td class=\"components\">{}</td><td class=\"payload\">{}</td></tr>",
            escape(&p.version),
            escape(&p.version),
            p.components.map_or("?".to_string(), |n| n.to_string()),
            escape(&word)
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

/// With signatures required: one row per published release, signed (in the target) and
/// verified (by a sync: yes, refused, or not yet judged).
fn render_signatures(out: &mut String, c: &ChannelStatus) {
    if c.releases.is_empty() {
        return;
    }
    out.push_str(
        "<h3>Signatures</h3>\n<table class=\"signatures\">\n<thead><tr><th>Release</th>\
         <th>Digest</th><th>Signed</th><th>Verified</th></tr></thead>\n<tbody>\n",
    );
    for r in &c.releases {
        let verified = match r.verified {
            Some(true) => "yes",
            Some(false) => "refused",
            None => "not yet",
        };
        let _ = writeln!(
            out,
            "<tr data-signed=\"{}\" data-verified=\"{verified}\"><td class=\"mono\">{}</td>\
             <td>{}</td><td>{}</td><td>{verified}</td></tr>",
            r.signed,
            escape(&r.version),
            digest(Some(&r.digest)),
            if r.signed { "yes" } else { "no" },
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

fn render_drift_row(out: &mut String, item: &DriftItem) {
    let state = item.state.word();
    let message = match &item.message {
        Some(m) => format!("<div class=\"msg\">{}</div>", escape(m)),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "<tr data-state=\"{state}\"><td class=\"mono target\">{}</td><td class=\"mono tag\">{}</td>\
         <td class=\"desired\">{}</td><td class=\"actual\">{}</td>\
         <td><span class=\"drift-state\" data-state=\"{state}\">{state}</span>{message}</td></tr>",
        escape(&item.target.to_string()),
        escape(&item.tag),
        digest(item.desired.as_ref()),
        digest(item.actual.as_ref()),
    );
}

fn render_history(out: &mut String, history: &[HistoryEntry]) {
    out.push_str("<section class=\"card history\">\n<h2>Recent history</h2>\n");
    if history.is_empty() {
        out.push_str("<p class=\"empty\">No syncs recorded yet.</p>\n</section>\n");
        return;
    }
    // Newest first, whatever order the entries came in (unreadable times last).
    let mut entries: Vec<&HistoryEntry> = history.iter().collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.time.parse::<jiff::Timestamp>().ok()));
    out.push_str(
        "<table class=\"history\">\n<thead><tr><th>Time</th><th>Revision</th><th>Kind</th>\
         <th>Channel</th><th>Outcome</th><th>Author</th><th>Summary</th></tr></thead>\n<tbody>\n",
    );
    for e in entries.into_iter().take(HISTORY_ROWS) {
        let kind = match e.kind {
            EntryKind::Sync => "sync",
            EntryKind::Rollback => "rollback",
        };
        let outcome = e.outcome.to_string();
        let channel = match &e.channel {
            Some(c) => escape(c),
            None => "<span class=\"none\">all</span>".to_string(),
        };
        let _ = writeln!(
            out,
            "<tr data-revision=\"{}\" data-outcome=\"{outcome}\"><td class=\"time\">{}</td>\
             <td>{}</td><td class=\"kind\">{kind}</td><td>{channel}</td>\
             <td><span class=\"outcome\" data-outcome=\"{outcome}\">{outcome}</span></td>\
             <td class=\"author\">{}</td><td class=\"summary\" title=\"{}\">{}</td></tr>",
            escape(&e.revision),
            time(Some(&e.time), ""),
            revision(Some(&e.revision)),
            escape(&e.author),
            escape(&e.subject),
            escape(&e.summary),
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

/// The id of a channel's section.
fn anchor(name: &str) -> String {
    format!("channel-{name}")
}

/// A revision, shortened to 12 characters, the whole one in its title.
fn revision(rev: Option<&str>) -> String {
    match rev {
        Some(r) => format!(
            "<code title=\"{}\">{}</code>",
            escape(r),
            escape(crate::revision::short_revision(r))
        ),
        None => "<span class=\"none\">none yet</span>".to_string(),
    }
}

/// A digest, shortened, the whole one in its title; a dash when absent.
fn digest(d: Option<&Digest>) -> String {
    match d {
        Some(d) => format!(
            "<code title=\"{}\">{}</code>",
            escape(d.as_str()),
            escape(&d.short())
        ),
        None => "<span class=\"none\">&mdash;</span>".to_string(),
    }
}

/// An RFC 3339 time shown in UTC (as given when it does not parse), or `absent` in grey.
fn time(t: Option<&str>, absent: &str) -> String {
    match t {
        Some(t) => {
            let shown = match t.parse::<jiff::Timestamp>() {
                Ok(ts) => ts.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
                Err(_) => t.to_string(),
            };
            format!("<time datetime=\"{}\">{}</time>", escape(t), escape(&shown))
        }
        None => format!("<span class=\"none\">{}</span>", escape(absent)),
    }
}

/// Escapes text for HTML content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn channel_names_and_errors_are_escaped() {
        let status = Status {
            channels: vec![ChannelStatus {
                name: "<b>x</b>".to_string(),
                state: ChannelState::Degraded,
                revision: None,
                last_sync: None,
                last_error: Some("tag \"a\" <moved>".to_string()),
                drift: Vec::new(),
                payloads: Vec::new(),
                releases: Vec::new(),
            }],
            last_error: Some("<script>alert(1)</script>".to_string()),
            ..Default::default()
        };
        let html = render(&status);
        assert!(!html.contains("<b>x</b>"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("data-channel=\"&lt;b&gt;x&lt;/b&gt;\""));
        assert!(html.contains("tag &quot;a&quot; &lt;moved&gt;"));
    }

    #[test]
    fn payloads_show_complete_incomplete_and_unknown_releases() {
        let payload = |version: &str, complete, components, missing| PayloadStatus {
            version: version.to_string(),
            complete,
            components,
            missing,
        };
        let status = Status {
            channels: vec![ChannelStatus {
                name: "next".to_string(),
                state: ChannelState::OutOfSync,
                revision: None,
                last_sync: None,
                last_error: None,
                drift: Vec::new(),
                releases: Vec::new(),
                payloads: vec![
                    payload("1.0.0", true, Some(4), 0),
                    payload("1.1.0", false, Some(4), 2),
                    payload("1.2.0", false, None, 0),
                ],
            }],
            ..Default::default()
        };
        let html = render(&status);
        assert!(html.contains("<h3>Payloads</h3>"), "{html}");
        assert!(
            html.contains("<tr data-version=\"1.0.0\" data-payload=\"complete\">"),
            "{html}"
        );
        assert!(html.contains("incomplete: 2 missing"), "{html}");
        assert!(html.contains("data-payload=\"unknown\""), "{html}");
        let none = Status {
            channels: vec![ChannelStatus {
                payloads: Vec::new(),
                ..status.channels[0].clone()
            }],
            ..Default::default()
        };
        assert!(!render(&none).contains("Payloads"));
    }
}
