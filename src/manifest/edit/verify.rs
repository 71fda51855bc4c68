//! Verification: the edited manifests are the old ones plus exactly the one entry.

use super::Change;
use crate::manifest::{Located, Manifests, Order, Policy, ReleaseChannel, ReleaseStream};

/// Checks that `after` is `before` plus exactly the change, comparing values (places move).
pub(super) fn verify(
    before: &Manifests,
    after: &Manifests,
    change: Change<'_>,
    index: usize,
) -> Result<(), String> {
    let names = |m: &Manifests| -> (Vec<String>, Vec<String>) {
        (
            m.streams.keys().cloned().collect(),
            m.channels.keys().cloned().collect(),
        )
    };
    if names(before) != names(after) {
        return Err("the set of streams or channels changed".to_string());
    }
    if policy_values(&before.policy) != policy_values(&after.policy) {
        return Err("the policies changed".to_string());
    }
    for (name, b) in &before.streams {
        let a = &after.streams[name];
        let mut expected = stream_values(b);
        if let Change::AddRelease {
            stream,
            version,
            digest,
        } = change
            && stream == name
        {
            expected
                .4
                .insert(index, (version.to_string(), digest.to_string(), Vec::new()));
        }
        if stream_values(a) != expected {
            return Err(format!("stream `{name}` is not as intended"));
        }
    }
    for (name, b) in &before.channels {
        let a = &after.channels[name];
        let mut expected = channel_values(b);
        if let Change::Promote { channel, version } = change
            && channel == name
        {
            expected.5.insert(index, version.to_string());
        }
        if channel_values(a) != expected {
            return Err(format!("channel `{name}` is not as intended"));
        }
    }
    Ok(())
}

type StreamValues = (
    String,
    String,
    String,
    bool,
    Vec<(String, String, Vec<String>)>,
);

fn stream_values(s: &ReleaseStream) -> StreamValues {
    (
        s.name.value.clone(),
        s.source.value.clone(),
        s.target.value.clone(),
        s.order == Order::Listed,
        s.releases
            .iter()
            .map(|r| {
                (
                    r.version.value.clone(),
                    r.digest.value.to_string(),
                    values(&r.tags),
                )
            })
            .collect(),
    )
}

type ChannelValues = (
    String,
    String,
    Vec<String>,
    Option<(String, String)>,
    Option<(String, u64)>,
    Vec<String>,
    Vec<String>,
);

fn channel_values(c: &ReleaseChannel) -> ChannelValues {
    (
        c.name.value.clone(),
        c.stream.value.clone(),
        values(&c.tags),
        c.image_stream
            .as_ref()
            .map(|i| (i.namespace.clone(), i.name.clone())),
        c.feeder
            .as_ref()
            .map(|f| (f.channel.value.clone(), f.delay_seconds)),
        values(&c.versions),
        values(&c.tombstones),
    )
}

type PolicyValues = (
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Option<u32>,
    Vec<(String, String)>,
);

fn policy_values(p: &Policy) -> PolicyValues {
    (
        values(&p.names),
        values(&p.allowed_sources),
        p.immutable_tags
            .iter()
            .map(|r| r.value.as_str().to_string())
            .collect(),
        p.max_deletes_per_sync.as_ref().map(|m| m.value),
        p.channel_subsets
            .iter()
            .map(|(a, b)| (a.value.clone(), b.value.clone()))
            .collect(),
    )
}

fn values(list: &[Located<String>]) -> Vec<String> {
    list.iter().map(|v| v.value.clone()).collect()
}
