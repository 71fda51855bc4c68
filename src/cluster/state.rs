//! The ConfigMap that holds relsync's own state (history and holds), in the namespace of
//! the kubeconfig context: read, and updated read-modify-write with the `resourceVersion`
//! as precondition (a 409 means someone wrote in between: read again and redo).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};

use super::{Cluster, ClusterError};

/// How often an update is redone after losing a race.
const UPDATE_ATTEMPTS: usize = 8;

impl Cluster {
    fn config_maps(&self) -> Api<ConfigMap> {
        Api::default_namespaced(self.client.clone())
    }

    fn config_map_name(&self, name: &str) -> String {
        format!("configmap:{}/{name}", self.default_namespace())
    }

    /// The value of `key` in ConfigMap `name` (`None`: no such ConfigMap or key).
    pub async fn read_state(&self, name: &str, key: &str) -> Result<Option<String>, ClusterError> {
        let api = self.config_maps();
        let object = self.config_map_name(name);
        let found = self.retrying(&object, "read", || api.get_opt(name)).await?;
        Ok(found.and_then(|cm| cm.data).and_then(|mut d| d.remove(key)))
    }

    /// Sets `key` of ConfigMap `name` to what `change` makes of its current value
    /// (creating the ConfigMap when absent); redone when another writer got in between.
    /// Returns the value written.
    pub async fn update_state<E>(
        &self,
        name: &str,
        key: &str,
        change: impl Fn(Option<&str>) -> Result<String, E>,
    ) -> Result<String, E>
    where
        E: From<ClusterError>,
    {
        let api = self.config_maps();
        let object = self.config_map_name(name);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let current = self.retrying(&object, "read", || api.get_opt(name)).await?;
            let result = match current {
                None => {
                    let text = change(None)?;
                    let cm = ConfigMap {
                        metadata: ObjectMeta {
                            name: Some(name.to_string()),
                            labels: Some(BTreeMap::from([(
                                "app.kubernetes.io/managed-by".to_string(),
                                "relsync".to_string(),
                            )])),
                            ..ObjectMeta::default()
                        },
                        data: Some(BTreeMap::from([(key.to_string(), text.clone())])),
                        ..ConfigMap::default()
                    };
                    let pp = PostParams::default();
                    self.retrying(&object, "create", || api.create(&pp, &cm))
                        .await
                        .map(|_| text)
                }
                Some(mut cm) => {
                    let old = cm.data.as_ref().and_then(|d| d.get(key)).cloned();
                    let text = change(old.as_deref())?;
                    cm.data
                        .get_or_insert_with(BTreeMap::new)
                        .insert(key.to_string(), text.clone());
                    let pp = PostParams::default();
                    self.retrying(&object, "update", || api.replace(name, &pp, &cm))
                        .await
                        .map(|_| text)
                }
            };
            match result {
                Ok(text) => return Ok(text),
                Err(ClusterError::Api { code: 409, .. }) if attempt < UPDATE_ATTEMPTS => {
                    tracing::debug!(
                        object,
                        attempt,
                        "lost a race for the state ConfigMap; redoing"
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}
