//! A chart archive (`.tgz`) read in memory for the two things impact
//! analysis compares between versions: the defaults in `values.yaml` and the
//! CustomResourceDefinitions under `crds/`. Nothing is written to disk, so
//! paths inside the archive cannot escape anywhere; sizes are bounded
//! because an archive is upstream input.

use std::io::Read;

use serde_json::Value;

/// Unpacked bytes read from one archive at most (a gzip bomb stops here).
const UNPACKED_LIMIT: u64 = 64 * 1024 * 1024;
/// Entries looked at at most.
const ENTRY_LIMIT: usize = 20_000;

/// What impact analysis reads from a chart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChartFiles {
    /// `values.yaml` of the chart itself (not of its subcharts); `{}` when absent or empty.
    pub values: Value,
    /// Every CustomResourceDefinition in the chart's own `crds/` directory.
    pub crds: Vec<Value>,
}

/// An archive that could not be read, with the file inside it when one is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("chart archive: {0}")]
pub struct ChartError(String);

/// Reads `archive` (a gzip-compressed tar as `helm package` writes it).
pub fn read_chart(archive: &[u8]) -> Result<ChartFiles, ChartError> {
    let gz = flate2::read::GzDecoder::new(archive);
    let mut tar = tar::Archive::new(gz.take(UNPACKED_LIMIT));
    let entries = tar
        .entries()
        .map_err(|e| ChartError(format!("not a tar.gz: {e}")))?;
    let mut files = ChartFiles {
        values: Value::Object(Default::default()),
        crds: Vec::new(),
    };
    let mut root: Option<String> = None;
    for (n, entry) in entries.enumerate() {
        if n >= ENTRY_LIMIT {
            return Err(ChartError(format!("more than {ENTRY_LIMIT} entries")));
        }
        let mut entry = entry.map_err(|e| ChartError(format!("not a tar.gz: {e}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| ChartError(format!("bad path: {e}")))?
            .to_string_lossy()
            .into_owned();
        // Every file sits under the chart's directory; subcharts under
        // charts/ have values and CRDs of their own, not compared here.
        let Some((top, rest)) = path.split_once('/') else {
            continue;
        };
        match &root {
            None => root = Some(top.to_string()),
            Some(r) if r != top => continue,
            Some(_) => {}
        }
        let is_values = rest == "values.yaml";
        let is_crd = rest
            .strip_prefix("crds/")
            .is_some_and(|f| f.ends_with(".yaml") || f.ends_with(".yml") || f.ends_with(".json"));
        if !is_values && !is_crd {
            continue;
        }
        let mut text = String::new();
        entry
            .read_to_string(&mut text)
            .map_err(|e| ChartError(format!("{path}: {e}")))?;
        if is_values {
            let v: Option<Value> = serde_saphyr::from_str(&text)
                .map_err(|e| ChartError(format!("{path}: {}", one_line(&e.to_string()))))?;
            files.values = match v {
                Some(v @ Value::Object(_)) => v,
                None | Some(Value::Null) => Value::Object(Default::default()),
                Some(_) => return Err(ChartError(format!("{path}: not a mapping"))),
            };
        } else {
            let docs: Vec<Option<Value>> = serde_saphyr::from_multiple(&text)
                .map_err(|e| ChartError(format!("{path}: {}", one_line(&e.to_string()))))?;
            files.crds.extend(docs.into_iter().flatten().filter(|d| {
                d.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
            }));
        }
    }
    if root.is_none() {
        return Err(ChartError("no files in the archive".into()));
    }
    Ok(files)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A .tgz with `files` (path, text), as `helm package` lays them out.
    pub(crate) fn tgz(files: &[(&str, &str)]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for (path, text) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(text.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, path, text.as_bytes()).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    const CRD: &str = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
        metadata: {name: widgets.example.com}\nspec:\n  group: example.com\n  names: {kind: Widget}\n\
        \x20 versions:\n  - {name: v1, served: true, storage: true}\n";

    #[test]
    fn values_and_crds_of_the_chart_itself() {
        let a = tgz(&[
            ("app/Chart.yaml", "name: app\nversion: 1.0.0\n"),
            (
                "app/values.yaml",
                "# defaults\nimage:\n  tag: \"1.0\"\nreplicas: 1\n",
            ),
            ("app/crds/widgets.yaml", &format!("{CRD}---\n# empty\n")),
            ("app/charts/sub/values.yaml", "other: 1\n"),
            ("app/charts/sub/crds/x.yaml", CRD),
            ("app/templates/deploy.yaml", "kind: Deployment\n"),
        ]);
        let f = read_chart(&a).unwrap();
        assert_eq!(
            f.values,
            serde_json::json!({"image": {"tag": "1.0"}, "replicas": 1})
        );
        assert_eq!(f.crds.len(), 1);
        assert_eq!(f.crds[0]["metadata"]["name"], "widgets.example.com");
    }

    #[test]
    fn an_empty_values_file_is_no_defaults() {
        let f = read_chart(&tgz(&[
            ("app/Chart.yaml", "name: app\n"),
            ("app/values.yaml", ""),
        ]))
        .unwrap();
        assert_eq!(f.values, serde_json::json!({}));
        assert!(f.crds.is_empty());
    }

    #[test]
    fn bad_archives_are_errors_naming_the_file() {
        assert!(read_chart(b"not gzip at all").is_err());
        let e = read_chart(&tgz(&[("app/values.yaml", "a: [1,\n")])).unwrap_err();
        assert!(e.to_string().contains("app/values.yaml"), "{e}");
        let e = read_chart(&tgz(&[("app/values.yaml", "- a\n")])).unwrap_err();
        assert!(e.to_string().contains("not a mapping"), "{e}");
        let e = read_chart(&tgz(&[])).unwrap_err();
        assert!(e.to_string().contains("no files"), "{e}");
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        // 100 MB of zeros inside one entry compress to about 100 KB.
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        let size = 100 * 1024 * 1024;
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "app/values.yaml", std::io::repeat(b' ').take(size))
            .unwrap();
        let a = b.into_inner().unwrap().finish().unwrap();
        assert!(a.len() < 1024 * 1024);
        assert!(read_chart(&a).is_err());
    }
}
