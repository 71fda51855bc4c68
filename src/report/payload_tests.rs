//! How plans and drift render a payload release's component tags.

use super::*;
use crate::desired::derive;
use crate::desired::testing::{Builder, dg, policy};
use crate::manifest::Order;
use crate::plan::{ObservedState, PlanOptions, drift, plan};

const REV: &str = "0123456789abcdef0123456789abcdef01234567";
const SCOS: &str = "quay.io/okd/scos-release";
const OCT: &str = "4.14.0-0.okd-scos-2023-10-11-084613";
const FEB: &str = "4.15.0-0.okd-scos-2024-02-02-125103";

/// A payload release's component tags: one row per release in text and Markdown, every
/// action in JSON (release mirrors with `components`), `release` on drift items.
#[test]
fn payload_component_tags_are_summarised_per_release() {
    use crate::manifest::{Located, Span, StreamPayload};
    use crate::payload::{Component, ComponentList};
    let mut m = Builder::new()
        .stream(
            "4-scos",
            SCOS,
            Order::Semver,
            &[(OCT, dg(0x11)), (FEB, dg(0x13))],
        )
        .channel("4-scos-next", "4-scos", &["4-scos-next"], &[OCT, FEB], &[])
        .build();
    m.streams.get_mut("4-scos").unwrap().payload = Some(StreamPayload {
        target: Located::new("quay.io/okd/scos-content".to_string(), Span::file("s.yaml")),
    });
    let list = ComponentList {
        components: (0..3)
            .map(|i| Component {
                name: format!("c{i}"),
                arch: None,
                source: "registry.ci.openshift.org/origin/c".to_string(),
                digest: dg(0x40 + i),
            })
            .collect(),
    };
    let mut d = derive(&m).unwrap();
    let lists = std::collections::BTreeMap::from([(dg(0x13), list)]);
    crate::desired::add_components(&mut d, &m, &lists, &Default::default());
    let p = plan(
        REV,
        &d,
        &ObservedState::default(),
        &policy(&[], None),
        &PlanOptions::default(),
    );
    let text = render_plan(&p, Format::Text, Style::default());
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("payload")).collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert!(rows[0].contains(&format!("{FEB}-*")), "{text}");
    assert!(
        rows[0].contains("payload: 3 components, 3 to copy"),
        "{text}"
    );
    assert!(!text.contains(&format!("{FEB}-c0")), "{text}");
    let md = render_plan(&p, Format::Markdown, Style::default());
    assert_eq!(md.matches("| payload |").count(), 1, "{md}");
    let json: serde_json::Value =
        serde_json::from_str(&render_plan(&p, Format::Json, Style::default())).unwrap();
    let actions = json["actions"].as_array().unwrap();
    assert_eq!(
        actions
            .iter()
            .filter(|a| a["target"] == "quay.io/okd/scos-content")
            .count(),
        3
    );
    let feb = actions
        .iter()
        .find(|a| a["target"] == SCOS && a["tag"] == FEB)
        .unwrap();
    assert_eq!(feb["components"], 3);
    let oct = actions
        .iter()
        .find(|a| a["target"] == SCOS && a["tag"] == OCT)
        .unwrap();
    assert!(oct["components"].is_null() && oct.get("components").is_some());
    let dr = drift(REV, &d, &ObservedState::default(), &PlanOptions::default());
    let json: serde_json::Value =
        serde_json::from_str(&render_drift(&dr, Format::Json, Style::default())).unwrap();
    let item = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["tag"] == format!("{FEB}-c1"))
        .unwrap();
    assert_eq!(item["release"], FEB);
}
