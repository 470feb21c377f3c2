//! Pods and containers by name, for the three tools: `--k8s-namespace`, `--pod` and
//! `--container` (which sockets are traced), and the names that JSON, `--show-pod` and
//! tcprtt's `--bypod` print. A cgroup v2 path tells the pod's uid and the container's id
//! (identity.rs); the node's container runtime tells their names (runtime/).

use clap::Args;

use crate::cli::UsageError;
use anyhow::Result;

use crate::container::{Cgroup, CgroupPaths, CgroupSet, ContainerArgs, ContainerFilter, Shows};
use crate::identity::{parse_cgroup_path, CgroupIdentity};
use crate::runtime::{Endpoint, Runtimes};

mod follow;
mod names;

pub use follow::{CgroupSink, Selection};
pub use names::{Identities, Shown, JSON_FIELDS};

/// `--k8s-namespace`, `--pod`, `--container` and `--runtime-endpoint`.
#[derive(Args, Clone, Debug, Default)]
pub struct PodFlags {
    /// Trace only sockets of pods in this Kubernetes namespace
    ///
    /// The pods' cgroup directories are found from the container runtime's names (see
    /// --runtime-endpoint) and filtered in the kernel as -c filters: the directory or below.
    /// Pods that start while the tool runs are traced once the runtime lists them (within a
    /// second or two). A name that matches nothing yet gets one line on stderr, and the tool
    /// waits for it. An empty or malformed name exits 64.
    #[arg(long = "k8s-namespace", value_name = "NS")]
    pub namespace: Option<String>,
    /// Trace only sockets of this pod: NS/NAME, or NAME in any namespace
    ///
    /// Filtered in the kernel as -c filters (the pod's cgroup directory or below); a pod that
    /// is not running yet is waited for (one line on stderr) and traced once it appears.
    #[arg(long = "pod", value_name = "[NS/]NAME")]
    pub pod: Option<String>,
    /// Trace only sockets of containers with this name
    ///
    /// A Kubernetes container name (with --pod or --k8s-namespace, only in those pods), or
    /// a Docker or podman container's name. Filtered in the kernel on the container's cgroup
    /// directory or below; waited for like --pod.
    #[arg(long = "container", value_name = "NAME")]
    pub container: Option<String>,
    /// Where to ask for pod and container names: unix:///PATH (a CRI socket, as crictl
    /// takes it), auto or none
    ///
    /// auto (the default) asks the CRI sockets of containerd and CRI-O and the Docker-API
    /// sockets of Docker and podman (or DOCKER_HOST) that exist; none asks nothing and shows
    /// cgroup paths. The runtime is asked only when names are printed or selected. A runtime
    /// that cannot be reached gets one line on stderr; tracing goes on with cgroup paths.
    #[arg(long = "runtime-endpoint", value_name = "URL")]
    pub runtime_endpoint: Option<String>,
}

/// Which pods' and containers' sockets to trace; each given part must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
}

/// The pod flags, checked for form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodArgs {
    pub selector: Option<Selector>,
    pub endpoint: Endpoint,
}

/// What a tool traces and how it names it: the kernel's filter (-c, --netns, the pod
/// selectors), the names cache, and the selection to follow once the programs are loaded.
pub struct Traced {
    pub filter: ContainerFilter,
    pub runtimes: Runtimes,
    selection: Option<Selection>,
}

impl ContainerArgs {
    /// Resolves the filter (records carry their socket's cgroup and netns where the output
    /// `shows` it), starts the names cache where names are shown or pods selected, and finds
    /// the selected pods' cgroups.
    pub fn trace(&self, shows: Shows, tool: &'static str) -> Result<Traced> {
        let runtimes = self.pods.runtimes(shows.names, tool);
        let mut filter = self.resolve(shows.cgroup)?;
        let selection = self.pods.select(&mut filter, &runtimes, tool);
        Ok(Traced {
            filter,
            runtimes,
            selection,
        })
    }
}

impl Traced {
    /// Follows the selection, if any, into the loaded programs' cgroup set.
    pub fn follow(&mut self, cgroups: CgroupSet) {
        if let Some(selection) = self.selection.take() {
            selection.follow(cgroups);
        }
    }

    /// Names for the cgroups of the records, from the system's hierarchy and the cache.
    pub fn identities(&self) -> Identities {
        Identities::new(CgroupPaths::system(), self.runtimes.clone())
    }
}

impl PodArgs {
    /// With a selector: its cgroups now into `filter`, whose set then may grow (the tool
    /// traces nothing until a selected pod appears), and the selection to follow once the
    /// programs are loaded ([`Selection::follow`]).
    fn select(
        &self,
        filter: &mut ContainerFilter,
        runtimes: &Runtimes,
        tool: &'static str,
    ) -> Option<Selection> {
        let selector = self.selector.clone()?;
        let selection = Selection::start(selector, runtimes.clone(), tool);
        filter.cgroups = selection.initial();
        filter.cgroups_may_grow = true;
        Some(selection)
    }

    /// The names cache, started where names are printed (`names`) or selected; else one
    /// that asks nothing.
    fn runtimes(&self, names: bool, tool: &'static str) -> Runtimes {
        if names || self.selector.is_some() {
            Runtimes::start(&self.endpoint, tool, crate::attach::verbose())
        } else {
            Runtimes::none()
        }
    }
}

impl PodFlags {
    /// Empty or malformed names, and a namespace given twice differently, are usage errors.
    pub fn into_args(self) -> Result<PodArgs, UsageError> {
        let endpoint = match &self.runtime_endpoint {
            Some(arg) => Endpoint::parse(arg)?,
            None => Endpoint::Auto,
        };
        let mut namespace = self
            .namespace
            .map(|ns| dns_label("--k8s-namespace", ns))
            .transpose()?;
        let pod = match self.pod {
            Some(arg) => Some(pod_arg(&arg, &mut namespace)?),
            None => None,
        };
        let container = self.container.map(container_name).transpose()?;
        let any = namespace.is_some() || pod.is_some() || container.is_some();
        let selector = any.then_some(Selector {
            namespace,
            pod,
            container,
        });
        Ok(PodArgs { selector, endpoint })
    }
}

/// `--pod [NS/]NAME`: its namespace must agree with `--k8s-namespace` where both are given.
fn pod_arg(arg: &str, namespace: &mut Option<String>) -> Result<String, UsageError> {
    let Some((ns, name)) = arg.split_once('/') else {
        return dns_subdomain("--pod", arg.to_owned());
    };
    let ns = dns_label("--pod", ns.to_owned())?;
    if namespace.as_ref().is_some_and(|given| *given != ns) {
        return Err(UsageError::new(format!(
            "--pod {arg}: namespace {ns} differs from --k8s-namespace {}",
            namespace.as_deref().unwrap_or_default()
        )));
    }
    *namespace = Some(ns);
    dns_subdomain("--pod", name.to_owned())
}

fn invalid(flag: &str, name: &str, what: &str) -> UsageError {
    let shown = if name.is_empty() { "(empty)" } else { name };
    UsageError::new(format!("invalid {flag} name: {shown} ({what})"))
}

/// A namespace (and a Kubernetes container name): an RFC 1123 label, as Kubernetes checks
/// it: at most 63 lower-case letters, digits and `-`, starting and ending alphanumeric.
fn dns_label(flag: &str, name: String) -> Result<String, UsageError> {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| alnum(b) || b == b'-')
        && name.bytes().next().is_some_and(alnum)
        && name.bytes().last().is_some_and(alnum);
    if ok {
        Ok(name)
    } else {
        Err(invalid(
            flag,
            &name,
            "lower-case letters, digits and -, at most 63",
        ))
    }
}

/// A pod name: an RFC 1123 subdomain, dot-separated labels, at most 253 characters.
fn dns_subdomain(flag: &str, name: String) -> Result<String, UsageError> {
    let ok = name.len() <= 253
        && name
            .split('.')
            .all(|label| dns_label(flag, label.to_owned()).is_ok());
    if ok && !name.is_empty() {
        Ok(name)
    } else {
        Err(invalid(
            flag,
            &name,
            "lower-case letters, digits, - and ., at most 253",
        ))
    }
}

/// `--container`: a Kubernetes container name, or a Docker/podman one
/// (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`, which includes the former).
fn container_name(name: String) -> Result<String, UsageError> {
    let ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(name)
    } else {
        Err(invalid("--container", &name, "letters, digits, _, . and -"))
    }
}

impl Selector {
    /// How stderr names what is selected: `pod ns/web`, `container db in namespace ns`.
    pub fn describe(&self) -> String {
        let pod = match (&self.namespace, &self.pod) {
            (Some(ns), Some(pod)) => Some(format!("pod {ns}/{pod}")),
            (None, Some(pod)) => Some(format!("pod {pod}")),
            (Some(ns), None) => Some(format!("namespace {ns}")),
            (None, None) => None,
        };
        match (&self.container, pod) {
            (Some(c), Some(pod)) => format!("container {c} in {pod}"),
            (Some(c), None) => format!("container {c}"),
            (None, Some(pod)) => pod,
            (None, None) => String::from("nothing"),
        }
    }

    /// The directory this selector selects at the cgroup `path`: the pod's directory when
    /// `path` is it and the pod's names match, the container's directory likewise with
    /// `--container`; None for every other path.
    pub fn selects(&self, path: &str, runtimes: &Runtimes) -> bool {
        let Some(identity) = parse_cgroup_path(path) else {
            return false;
        };
        match &self.container {
            Some(_) => self.selects_container(path, &identity, runtimes),
            None => self.selects_pod(path, &identity, runtimes),
        }
    }

    fn selects_pod(&self, path: &str, identity: &CgroupIdentity, runtimes: &Runtimes) -> bool {
        let Some(pod) = identity.pod.as_ref().filter(|pod| pod.dir == path) else {
            return false;
        };
        if identity.container.is_some() {
            return false;
        }
        runtimes
            .pod(&pod.uid)
            .is_some_and(|names| self.pod_matches(&names.namespace, &names.name))
    }

    fn selects_container(
        &self,
        path: &str,
        identity: &CgroupIdentity,
        runtimes: &Runtimes,
    ) -> bool {
        let Some(container) = identity.container.as_ref().filter(|c| c.dir == path) else {
            return false;
        };
        let Some(names) = runtimes.container(&container.id) else {
            return false;
        };
        if Some(&names.name) != self.container.as_ref() {
            return false;
        }
        match &names.pod {
            Some(pod) => self.pod_matches(&pod.namespace, &pod.name),
            None => self.namespace.is_none() && self.pod.is_none(),
        }
    }

    fn pod_matches(&self, namespace: &str, name: &str) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == namespace)
            && self.pod.as_deref().is_none_or(|pod| pod == name)
    }

    /// Every cgroup directory the selector selects now, from a fresh walk of the hierarchy.
    pub fn cgroups(&self, paths: &mut CgroupPaths, runtimes: &Runtimes) -> Vec<Cgroup> {
        let mut selected: Vec<Cgroup> = paths
            .rescan()
            .into_iter()
            .filter(|(_, path)| self.selects(path, runtimes))
            .map(|(id, path)| Cgroup {
                id,
                level: path.split('/').filter(|p| !p.is_empty()).count() as u32,
                path,
            })
            .collect();
        selected.sort_by(|a, b| a.path.cmp(&b.path));
        selected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(ns: Option<&str>, pod: Option<&str>, container: Option<&str>) -> PodFlags {
        PodFlags {
            namespace: ns.map(str::to_owned),
            pod: pod.map(str::to_owned),
            container: container.map(str::to_owned),
            runtime_endpoint: None,
        }
    }

    #[test]
    fn selectors_from_flags() {
        let args = flags(None, Some("shop/web-0"), None).into_args().unwrap();
        let sel = args.selector.unwrap();
        assert_eq!(sel.namespace.as_deref(), Some("shop"));
        assert_eq!(sel.pod.as_deref(), Some("web-0"));
        assert_eq!(sel.describe(), "pod shop/web-0");
        let sel = flags(Some("shop"), None, Some("db")).into_args().unwrap();
        assert_eq!(
            sel.selector.unwrap().describe(),
            "container db in namespace shop"
        );
        assert_eq!(flags(None, None, None).into_args().unwrap().selector, None);
    }

    #[test]
    fn malformed_names_are_usage_errors() {
        let cases = [
            (flags(Some(""), None, None), "invalid --k8s-namespace name: (empty) (lower-case letters, digits and -, at most 63)"),
            (flags(Some("Shop"), None, None), "invalid --k8s-namespace name: Shop (lower-case letters, digits and -, at most 63)"),
            (flags(None, Some(""), None), "invalid --pod name: (empty) (lower-case letters, digits, - and ., at most 253)"),
            (flags(None, Some("a/"), None), "invalid --pod name: (empty) (lower-case letters, digits, - and ., at most 253)"),
            (flags(None, Some("a/b/c"), None), "invalid --pod name: b/c (lower-case letters, digits, - and ., at most 253)"),
            (flags(Some("x"), Some("y/web"), None), "--pod y/web: namespace y differs from --k8s-namespace x"),
            (flags(None, None, Some("")), "invalid --container name: (empty) (letters, digits, _, . and -)"),
            (flags(None, None, Some("-x")), "invalid --container name: -x (letters, digits, _, . and -)"),
        ];
        for (flags, expected) in cases {
            assert_eq!(flags.into_args(), Err(UsageError::new(expected)));
        }
    }

    #[test]
    fn columns_and_keys() {
        let mut shown = Shown {
            cgroup: "/kubepods/besteffort/podx".into(),
            ..Shown::default()
        };
        assert_eq!(shown.column(), "/kubepods/besteffort/podx");
        assert_eq!(shown.pod_key(), "/kubepods/besteffort/podx");
        shown.namespace = Some("shop".into());
        shown.pod = Some("web-0".into());
        assert_eq!(shown.column(), "shop/web-0/-");
        shown.container = Some("nginx".into());
        assert_eq!(shown.column(), "shop/web-0/nginx");
        assert_eq!(shown.pod_key(), "shop/web-0");
    }
}
