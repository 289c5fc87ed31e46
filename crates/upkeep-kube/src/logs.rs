//! Pod logs, for the short-lived Jobs the tools run on the cluster (a
//! datastore snapshot, a smoke test) whose only answer is what they print.

use futures_util::TryStreamExt;

use crate::{Cluster, ClusterRead, KubeError, ListOptions, Resource};

/// Most log bytes read from one pod: a Job's report is a few lines.
const MAX_LOG_BYTES: u64 = 256 * 1024;

impl Cluster {
    /// The log of the newest pod of Job `job` in `namespace` (at most
    /// 256 KiB, the end of it); empty when the Job has no pod yet.
    pub async fn job_logs(&self, namespace: &str, job: &str) -> Result<String, KubeError> {
        let pods = Resource::from_gvk("", "v1", "Pod", true);
        let opts = ListOptions::in_namespace(namespace).labels(&format!("job-name={job}"));
        let listed: Vec<_> = self.list(&pods, &opts).try_collect().await?;
        let newest = listed
            .iter()
            .filter_map(|p| {
                let name = p.metadata.name.clone()?;
                Some((p.metadata.creation_timestamp.clone(), name))
            })
            .max();
        let Some((_, pod)) = newest else {
            return Ok(String::new());
        };
        let target = format!("Pod {namespace}/{pod}");
        let request = http::Request::get(format!(
            "/api/v1/namespaces/{namespace}/pods/{pod}/log?limitBytes={MAX_LOG_BYTES}"
        ))
        .body(Vec::new())
        .map_err(|e| KubeError::InvalidObject {
            op: "read the log of".to_string(),
            target: target.clone(),
            detail: e.to_string(),
        })?;
        self.call(
            "read the log of",
            &target,
            self.client().request_text(request),
        )
        .await
    }
}
