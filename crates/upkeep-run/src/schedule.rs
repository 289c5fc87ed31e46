//! `upkeep schedule`: the scheduled form of a run for each way people
//! schedule things — a Kubernetes CronJob (with the RBAC it needs), a
//! crontab line, a systemd service and timer — at the start of each
//! maintenance window of upkeep.yaml.

use jiff::civil::Weekday;
use upkeep_window::Window;

/// When a scheduled run starts: minute, hour and days, in a time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub minute: i8,
    pub hour: i8,
    pub days: Vec<Weekday>,
    pub time_zone: String,
}

impl Start {
    pub fn of(w: &Window) -> Start {
        Start {
            minute: w.start().minute(),
            hour: w.start().hour(),
            days: w.days().to_vec(),
            time_zone: w.time_zone().to_string(),
        }
    }

    /// Every day at `hour:minute` UTC, when no window is configured.
    pub fn daily(hour: i8, minute: i8) -> Start {
        use Weekday::*;
        Start {
            minute,
            hour,
            days: vec![
                Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday,
            ],
            time_zone: "UTC".to_string(),
        }
    }

    /// The cron expression (`30 2 * * 0,6`); cron counts Sunday as 0.
    pub fn cron(&self) -> String {
        let dow = if self.days.len() == 7 {
            "*".to_string()
        } else {
            let mut n: Vec<i8> = self
                .days
                .iter()
                .map(|d| d.to_sunday_zero_offset())
                .collect();
            n.sort();
            n.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        format!("{} {} * * {dow}", self.minute, self.hour)
    }

    /// systemd's `OnCalendar=` (`Sat,Sun *-*-* 02:30:00 Europe/Berlin`).
    pub fn on_calendar(&self) -> String {
        let days = if self.days.len() == 7 {
            String::new()
        } else {
            let mut d = self.days.clone();
            d.sort_by_key(|w| w.to_monday_zero_offset());
            format!(
                "{} ",
                d.iter()
                    .map(|w| format!("{w:?}")[..3].to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        format!(
            "{days}*-*-* {:02}:{:02}:00 {}",
            self.hour, self.minute, self.time_zone
        )
    }
}

/// The shell a scheduled run executes: scan, plan, run, each document
/// saved in `state` so the next morning shows what happened.
pub fn script(state: &str) -> String {
    // scan exits 3 when some upstream did not answer (the report says which)
    // and still saves the report; without a fresh report nothing runs.
    format!(
        "rm -f {state}/report.json; \
         upkeep scan -o json --save {state}/report.json >/dev/null; \
         test -s {state}/report.json && \
         upkeep plan -o json --report {state}/report.json >{state}/plan.json && \
         upkeep run -o json --yes --plan {state}/plan.json"
    )
}

/// A crontab entry per start.
pub fn crontab(starts: &[Start], upkeep_config: &str) -> String {
    let mut s = String::from(
        "# upkeep: a run at the start of each maintenance window.\n\
         # CRON_TZ is honoured by cronie and systemd-cron; Debian's cron uses the system time zone.\n",
    );
    for st in starts {
        s.push_str(&format!(
            "CRON_TZ={}\n{} UPKEEP_CONFIG={upkeep_config} sh -c '{}'\n",
            st.time_zone,
            st.cron(),
            script("\"$HOME/.local/state/upkeep\"")
        ));
    }
    s
}

/// A oneshot service and its timer.
pub fn systemd(starts: &[Start], upkeep_config: &str) -> String {
    let calendars: String = starts
        .iter()
        .map(|s| format!("OnCalendar={}\n", s.on_calendar()))
        .collect();
    format!(
        "# /etc/systemd/system/upkeep.service\n\
         [Unit]\nDescription=upkeep: bring the k3s cluster up to date, safely\n\
         After=network-online.target\nWants=network-online.target\n\n\
         [Service]\nType=oneshot\nEnvironment=UPKEEP_CONFIG={upkeep_config}\n\
         StateDirectory=upkeep\n\
         ExecStart=/bin/sh -c '{}'\n\
         # Let a run finish its rollback rather than be killed halfway.\nTimeoutStopSec=30min\n\n\
         # /etc/systemd/system/upkeep.timer\n\
         [Unit]\nDescription=upkeep at the start of each maintenance window\n\n\
         [Timer]\n{calendars}Persistent=false\n\n\
         [Install]\nWantedBy=timers.target\n",
        script("/var/lib/upkeep")
    )
}

/// A CronJob per start, with its ServiceAccount and the RBAC a run needs.
/// The restore point reads every kind (it is a backup), so reading is
/// cluster-wide; writing is limited to what a run changes.
pub fn cronjob(starts: &[Start], namespace: &str, image: &str) -> String {
    let mut s = format!(
        "# upkeep as a CronJob: a run at the start of each maintenance window.\n\
         # The GitOps checkout, its push credentials and upkeep.yaml come from the Secret\n\
         # upkeep-config (keys: upkeep.yaml, and what it names); restore points go to the PVC upkeep-state.\n\
         apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: upkeep\n  namespace: {namespace}\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: upkeep\nrules:\n\
         # Restore points and validators read every kind.\n\
         - apiGroups: [\"*\"]\n  resources: [\"*\"]\n  verbs: [get, list, watch]\n\
         # Reconcile requests, suspension during maintenance, direct-mode updates.\n\
         - apiGroups: [helm.toolkit.fluxcd.io, kustomize.toolkit.fluxcd.io, source.toolkit.fluxcd.io]\n  resources: [helmreleases, kustomizations, gitrepositories, ocirepositories]\n  verbs: [patch]\n\
         - apiGroups: [upgrade.cattle.io]\n  resources: [plans]\n  verbs: [patch]\n\
         # Longhorn snapshots and backups in restore points.\n\
         - apiGroups: [longhorn.io]\n  resources: [snapshots, backups]\n  verbs: [create, delete]\n\
         # The maintenance freeze.\n\
         - apiGroups: [admissionregistration.k8s.io]\n  resources: [validatingadmissionpolicies, validatingadmissionpolicybindings]\n  verbs: [create]\n\
         - apiGroups: [admissionregistration.k8s.io]\n  resources: [validatingadmissionpolicies, validatingadmissionpolicybindings]\n  resourceNames: [upkeep-maintenance-freeze]\n  verbs: [patch, update, delete]\n\
         - apiGroups: [authentication.k8s.io]\n  resources: [selfsubjectreviews]\n  verbs: [create]\n\
         ---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: upkeep\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: upkeep}}\n\
         subjects: [{{kind: ServiceAccount, name: upkeep, namespace: {namespace}}}]\n---\n\
         # The run's Lease and the maintenance announcement live in kube-system.\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: upkeep\n  namespace: kube-system\nrules:\n\
         - apiGroups: [coordination.k8s.io]\n  resources: [leases]\n  verbs: [create]\n\
         - apiGroups: [coordination.k8s.io]\n  resources: [leases]\n  resourceNames: [upkeep-run]\n  verbs: [update, patch, delete]\n\
         - apiGroups: [\"\"]\n  resources: [configmaps]\n  verbs: [create]\n\
         - apiGroups: [\"\"]\n  resources: [configmaps]\n  resourceNames: [upkeep-maintenance]\n  verbs: [update, patch, delete]\n\
         ---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: upkeep\n  namespace: kube-system\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: upkeep}}\n\
         subjects: [{{kind: ServiceAccount, name: upkeep, namespace: {namespace}}}]\n"
    );
    for (i, st) in starts.iter().enumerate() {
        s.push_str(&format!(
            "---\napiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: upkeep-{i}\n  namespace: {namespace}\n\
             spec:\n  schedule: \"{}\"\n  timeZone: {}\n  concurrencyPolicy: Forbid\n  startingDeadlineSeconds: 600\n\
             \x20 jobTemplate:\n    spec:\n      backoffLimit: 0\n      template:\n        spec:\n\
             \x20         serviceAccountName: upkeep\n          restartPolicy: Never\n\
             \x20         securityContext: {{runAsNonRoot: true, runAsUser: 65532, fsGroup: 65532}}\n\
             \x20         containers:\n            - name: upkeep\n              image: {image}\n\
             \x20             command: [/bin/sh, -c, '{}']\n\
             \x20             env: [{{name: UPKEEP_CONFIG, value: /config/upkeep.yaml}}, {{name: HOME, value: /tmp}}]\n\
             \x20             securityContext: {{allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {{drop: [ALL]}}}}\n\
             \x20             volumeMounts:\n                - {{name: config, mountPath: /config, readOnly: true}}\n                - {{name: state, mountPath: /state}}\n                - {{name: tmp, mountPath: /tmp}}\n\
             \x20         volumes:\n            - {{name: config, secret: {{secretName: upkeep-config, defaultMode: 0400}}}}\n\
             \x20           - {{name: state, persistentVolumeClaim: {{claimName: upkeep-state}}}}\n\
             \x20           - {{name: tmp, emptyDir: {{}}}}\n",
            st.cron(),
            st.time_zone,
            script("/state")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(days: &[&str], start: &str) -> Window {
        Window::from_spec(&upkeep_window::WindowSpec {
            days: days.iter().map(|d| d.to_string()).collect(),
            start: start.into(),
            end: "05:00".into(),
            time_zone: "Europe/Berlin".into(),
        })
        .unwrap()
    }

    #[test]
    fn a_window_start_in_each_notation() {
        let st = Start::of(&window(&["sun", "sat"], "02:30"));
        assert_eq!(st.cron(), "30 2 * * 0,6");
        assert_eq!(st.on_calendar(), "Sat,Sun *-*-* 02:30:00 Europe/Berlin");
        let daily = Start::of(&window(&["daily"], "03:00"));
        assert_eq!(daily.cron(), "0 3 * * *");
        assert_eq!(daily.on_calendar(), "*-*-* 03:00:00 Europe/Berlin");
    }

    #[test]
    fn the_cronjob_is_valid_yaml_with_least_privilege_writes() {
        let text = cronjob(
            &[Start::daily(3, 0)],
            "upkeep",
            "ghcr.io/example/upkeep:0.1.0",
        );
        let docs: Vec<serde_json::Value> = text
            .split("\n---\n")
            .map(|d| serde_saphyr::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")))
            .collect();
        let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
                "CronJob"
            ]
        );
        let cj = &docs[5];
        assert_eq!(cj["spec"]["schedule"], "0 3 * * *");
        assert_eq!(cj["spec"]["concurrencyPolicy"], "Forbid");
        // Cluster-wide writes are only patches, creates of upkeep's own
        // objects, and deletes by name.
        for rule in docs[1]["rules"].as_array().unwrap() {
            let verbs: Vec<&str> = rule["verbs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            if verbs.contains(&"delete") && rule["resources"][0] != "snapshots" {
                assert!(rule.get("resourceNames").is_some(), "{rule}");
            }
            assert!(!verbs.contains(&"*"), "{rule}");
        }
    }
}
