//! PURE: what `check`'s rule `payload` found per new release ([`PayloadRelease`]), and its
//! "Payloads" section of the pull-request comment.

use serde::Serialize;

use super::check::{CheckReport, code};
use super::count;

/// What one release the head newly publishes in a payload stream brings (rule `payload`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PayloadRelease {
    /// The release's version.
    pub version: String,
    /// The stream's `payload.target`.
    pub payload_target: String,
    /// How many components its image-references names.
    pub components: usize,
    /// How many of them `payload.target` does not hold yet (by digest): what merging copies.
    pub new_to_target: usize,
    /// How many are missing at (or cannot be read from) their source.
    pub missing_at_source: usize,
}

impl PayloadRelease {
    /// `4.16.0: 4 components, 2 new to quay.io/okd/scos-content`.
    pub fn sentence(&self) -> String {
        let mut s = format!(
            "{}: {}, {} new to {}",
            self.version,
            count(self.components, "component"),
            self.new_to_target,
            self.payload_target
        );
        if self.missing_at_source > 0 {
            s.push_str(&format!(
                ", {} missing at the source",
                self.missing_at_source
            ));
        }
        s
    }
}

/// The payloads section of the comment: per release newly published in a payload stream,
/// its components and how many are new to the payload target.
pub(super) fn markdown_payloads(report: &CheckReport) -> String {
    if report.payloads.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\n##### Payloads\n\n| release | payload target | components | new to the target |\n|---|---|---|---|\n",
    );
    for p in &report.payloads {
        let mut components = p.components.to_string();
        if p.missing_at_source > 0 {
            components.push_str(&format!(" ({} missing at the source)", p.missing_at_source));
        }
        out.push_str(&format!(
            "| {} | {} | {components} | {} |\n",
            code(&p.version),
            code(&p.payload_target),
            p.new_to_target
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::check::{LiveDrift, Rule, Verdict, json, markdown, text};

    fn report() -> CheckReport {
        CheckReport {
            base: "a".repeat(40),
            head: "b".repeat(40),
            invalid: Vec::new(),
            change: None,
            verdicts: vec![Verdict {
                rule: Rule::Payload,
                checked: "1 release".to_string(),
                violations: Vec::new(),
            }],
            review: Vec::new(),
            live: LiveDrift::NotChecked,
            payloads: Vec::new(),
        }
    }

    #[test]
    fn payloads_are_counted_in_every_format() {
        let mut r = report();
        r.payloads = vec![PayloadRelease {
            version: "4.16.0".to_string(),
            payload_target: "quay.io/okd/scos-content".to_string(),
            components: 4,
            new_to_target: 2,
            missing_at_source: 0,
        }];
        assert!(
            markdown(&r).contains(
                "##### Payloads\n\n| release | payload target | components | new to the target |\n|---|---|---|---|\n| `4.16.0` | `quay.io/okd/scos-content` | 4 | 2 |\n"
            ),
            "{}",
            markdown(&r)
        );
        assert!(text(&r).contains("  4.16.0: 4 components, 2 new to quay.io/okd/scos-content\n"));
        let j: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!(j["payloads"][0]["newToTarget"], 2);
        assert_eq!(j["payloads"][0]["components"], 4);
    }
}
