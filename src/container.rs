//! A socket's container: the -c/--netns options, resolved to the cgroup v2 ids and network
//! namespace inode the BPF side filters on (bpf/container.bpf.h), the set of cgroups it
//! filters on (which may change while the programs run), and cgroup ids turned back into
//! paths.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use libbpf_rs::{MapCore, MapFlags, MapHandle, MapMut, OpenMapMut};
use nix::sys::statfs::{statfs, FsType};

use crate::cli::UsageError;
use crate::pods::{Identities, PodArgs, PodFlags, Shown};
use crate::time::SinceFirst;

/// statfs(2)'s f_type of a cgroup v2 hierarchy and of a namespace file.
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const NSFS_MAGIC: i64 = 0x6e73_6673;
/// How often an unknown cgroup id may trigger a new walk of the hierarchy.
const RESCAN_EVERY: Duration = Duration::from_secs(1);
/// Bound on the directories one walk of the hierarchy visits.
const MAX_CGROUPS: usize = 100_000;

/// `-c` and `--netns`, which the three tracing tools have.
#[derive(Args, Clone, Debug, Default)]
pub struct ContainerFlags {
    /// Trace only sockets in this cgroup v2 directory or below it
    ///
    /// Only sockets whose own cgroup v2 (where they were created) is PATH or below it,
    /// whichever task is on the CPU when they change: the filter holds in softirq context
    /// and for accepted sockets. PATH must be a directory of the cgroup v2 hierarchy (found
    /// in /proc/mounts; on hybrid systems /sys/fs/cgroup/unified), else the tool exits 1;
    /// an empty PATH exits 64.
    #[arg(short = 'c', long = "cgroup", value_name = "PATH")]
    pub cgroup: Option<String>,
    /// Trace only sockets in this network namespace: a path such as /run/netns/NAME or
    /// /proc/PID/ns/net, or an inode number as lsns prints it
    ///
    /// A path that is not a network namespace exits 1; a number that is not a positive
    /// 32-bit inode exits 64.
    #[arg(long = "netns", value_name = "NS")]
    pub netns: Option<String>,
    #[command(flatten)]
    pub pods: PodFlags,
}

/// A network namespace as given to `--netns`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetnsArg {
    Inode(u32),
    Path(PathBuf),
}

/// The -c and --netns arguments, checked for form; [`ContainerArgs::resolve`] checks them
/// against the system.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerArgs {
    pub cgroup: Option<PathBuf>,
    pub netns: Option<NetnsArg>,
    /// `--k8s-namespace`, `--pod`, `--container`, `--runtime-endpoint`.
    pub pods: PodArgs,
}

impl ContainerFlags {
    /// An empty path, or an inode that is not a positive 32-bit number, is a usage error.
    pub fn into_args(self) -> Result<ContainerArgs, UsageError> {
        let cgroup = match self.cgroup {
            Some(path) if path.is_empty() => {
                return Err(UsageError::new("invalid cgroup path: (empty)"))
            }
            path => path.map(PathBuf::from),
        };
        let netns = self.netns.map(|ns| parse_netns(&ns)).transpose()?;
        let pods = self.pods.into_args()?;
        if cgroup.is_some() && pods.selector.is_some() {
            return Err(UsageError::new(
                "-c selects a cgroup, --k8s-namespace, --pod and --container select pods: give one or the other",
            ));
        }
        Ok(ContainerArgs {
            cgroup,
            netns,
            pods,
        })
    }
}

/// `--netns`: digits are an inode, anything with a `/` a path.
fn parse_netns(arg: &str) -> Result<NetnsArg, UsageError> {
    let invalid = || UsageError::new(format!("invalid network namespace: {arg}"));
    if arg.contains('/') {
        return Ok(NetnsArg::Path(PathBuf::from(arg)));
    }
    if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    match arg.parse::<u32>() {
        Ok(inode) if inode > 0 => Ok(NetnsArg::Inode(inode)),
        _ => Err(invalid()),
    }
}

/// A cgroup v2 directory: its id (the directory's inode, which the kernel uses as the
/// cgroup's id), its depth below the root, and its path from the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cgroup {
    pub id: u64,
    pub level: u32,
    pub path: String,
}

/// What the BPF side filters on and whether its records carry the container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerFilter {
    /// The cgroup set at load (bpf/container.bpf.h): only sockets in these cgroups or below
    /// them are traced (`-c`: one).
    pub cgroups: Vec<Cgroup>,
    /// The set may grow while the tool runs (cgroups that appear later, through
    /// [`CgroupSet::insert`]): the filter is on even while the set is empty.
    pub cgroups_may_grow: bool,
    pub netns: Option<u32>,
    /// Records carry their socket's cgroup id and network namespace.
    pub record: bool,
}

impl ContainerFilter {
    /// Whether the BPF side filters by the cgroup set (its `filter_cgroups`).
    pub fn filter_cgroups(&self) -> bool {
        self.cgroups_may_grow || !self.cgroups.is_empty()
    }
}

impl ContainerArgs {
    /// Resolves the paths; a path that is not what it should be is one line, exit 1.
    pub fn resolve(&self, record: bool) -> Result<ContainerFilter> {
        let cgroups = self.cgroup.as_deref().map(cgroup_of).transpose()?;
        let netns = match &self.netns {
            Some(NetnsArg::Inode(inode)) => Some(*inode),
            Some(NetnsArg::Path(path)) => Some(netns_of(path)?),
            None => None,
        };
        Ok(ContainerFilter {
            cgroups: cgroups.into_iter().collect(),
            cgroups_may_grow: false,
            netns,
            record,
        })
    }
}

/// Where the cgroup v2 hierarchy is mounted (on hybrid systems, /sys/fs/cgroup/unified).
pub fn cgroup2_mount() -> Result<PathBuf> {
    let mounts = fs::read_to_string("/proc/mounts").context("cannot read /proc/mounts")?;
    mounts
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|fields| fields.get(2) == Some(&"cgroup2"))
        .and_then(|fields| fields.get(1).map(|dir| PathBuf::from(unescape_mount(dir))))
        .context("no cgroup v2 hierarchy is mounted (no cgroup2 line in /proc/mounts)")
}

/// /proc/mounts writes a space as \040 (and tab, newline, backslash likewise).
fn unescape_mount(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

fn cgroup_of(path: &Path) -> Result<Cgroup> {
    let not_v2 = || format!("{}: not a cgroup v2 directory", path.display());
    let dir = fs::canonicalize(path).with_context(not_v2)?;
    let meta = fs::metadata(&dir).with_context(not_v2)?;
    let on_cgroup2 =
        statfs(&dir).is_ok_and(|fs| fs.filesystem_type() == FsType(CGROUP2_SUPER_MAGIC));
    if !meta.is_dir() || !on_cgroup2 {
        bail!(not_v2());
    }
    let mount = cgroup2_mount()?;
    let below = dir.strip_prefix(&mount).with_context(not_v2)?;
    Ok(Cgroup {
        id: meta.ino(),
        level: below.components().count() as u32,
        path: format!("/{}", below.display()),
    })
}

fn netns_of(path: &Path) -> Result<u32> {
    let not_ns = || format!("{}: not a network namespace", path.display());
    let meta = fs::metadata(path).with_context(not_ns)?;
    let on_nsfs = statfs(path).is_ok_and(|fs| fs.filesystem_type() == FsType(NSFS_MAGIC));
    if !on_nsfs {
        bail!(not_ns());
    }
    u32::try_from(meta.ino()).with_context(not_ns)
}

/// A socket's container as a record carries it (when the filter asked for it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketContainer {
    pub cgroup_id: u64,
    pub netns: u32,
}

/// The [`SocketContainer`] of a BPF record with the fields `cgroup_id` and `netns`.
#[macro_export]
macro_rules! socket_container {
    ($raw:expr) => {
        $crate::same_fields!($crate::container::SocketContainer, $raw, cgroup_id, netns)
    };
}

/// The BPF side's `struct container_settings` (bpf/container.h) as the skeleton type `$ty`
/// of a tool, from a [`ContainerFilter`].
#[macro_export]
macro_rules! container_settings {
    ($ty:ty, $filter:expr) => {{
        let filter: &$crate::container::ContainerFilter = $filter;
        let mut settings = <$ty>::default();
        settings.filter_cgroups = u8::from(filter.filter_cgroups());
        settings.netns = filter.netns.unwrap_or(0);
        settings.record = u8::from(filter.record);
        settings
    }};
}

/// Room in the cgroup set (`cgroup_set` of bpf/container.bpf.h) when a tool filters by
/// cgroup: a node's pods and containers with room to spare (about 64 bytes of kernel memory
/// each). A tool that does not filter gives it one entry.
pub const CGROUP_SET_ENTRIES: u32 = 4096;
/// The levels (depths below the root) a member of the set may sit at: the bits of the BPF
/// side's level mask, CGROUP_SET_LEVELS (a u64 there too).
pub const CGROUP_SET_LEVELS: u32 = u64::BITS;

/// Sizes the cgroup set of an open skeleton for `filter`, before load:
/// `size_cgroup_set!(open, filter)` for a tool whose BPF side includes bpf/container.bpf.h.
#[macro_export]
macro_rules! size_cgroup_set {
    ($open:expr, $filter:expr) => {
        $crate::container::size_cgroup_set(&mut $open.maps.cgroup_set, $filter)
    };
}

/// The [`CgroupSet`] of a loaded skeleton, holding `filter`'s cgroups:
/// `cgroup_set!(skel, filter)`, after load and before the programs are attached, so that
/// they never run with the set still empty.
#[macro_export]
macro_rules! cgroup_set {
    ($skel:expr, $filter:expr) => {
        $crate::container::CgroupSet::new(
            &$skel.maps.cgroup_set,
            &$skel.maps.cgroup_set_levels,
            $filter,
        )
    };
}

/// Gives the open map `cgroup_set` room for CGROUP_SET_ENTRIES members where `filter`
/// filters by cgroup, else one entry.
pub fn size_cgroup_set(members: &mut OpenMapMut<'_>, filter: &ContainerFilter) -> Result<()> {
    let entries = if filter.filter_cgroups() {
        CGROUP_SET_ENTRIES
    } else {
        1
    };
    members
        .set_max_entries(entries)
        .context("failed to size the cgroup set")
}

/// The cgroup set of loaded programs (bpf/container.bpf.h): the cgroups whose sockets, and
/// those of the cgroups below them, pass the filter. Members can be added and removed while
/// the programs run, from any thread; it holds duplicates of the maps' descriptors, so it
/// may outlive the skeleton's borrow, and dropping it changes nothing in the kernel.
#[derive(Debug)]
pub struct CgroupSet {
    members: MapHandle,
    levels: MapHandle,
    filtering: bool,
    /// Each member's level: the level mask is recomputed from it when one leaves.
    copy: Mutex<HashMap<u64, u32>>,
}

impl CgroupSet {
    /// The set of the maps `cgroup_set` and `cgroup_set_levels` of a loaded skeleton loaded
    /// for `filter`, with `filter.cgroups` in it.
    pub fn new(members: &MapMut, levels: &MapMut, filter: &ContainerFilter) -> Result<CgroupSet> {
        let duplicate = |map| MapHandle::try_from(map).context("failed to duplicate a map");
        let set = CgroupSet {
            members: duplicate(members)?,
            levels: duplicate(levels)?,
            filtering: filter.filter_cgroups(),
            copy: Mutex::new(HashMap::new()),
        };
        for cgroup in &filter.cgroups {
            set.insert(cgroup)?;
        }
        Ok(set)
    }

    /// Adds `cgroup`: its sockets and those below it pass from now on. Fails where the
    /// programs were loaded without a cgroup filter, the set is full or the cgroup is deeper
    /// than CGROUP_SET_LEVELS - 1.
    pub fn insert(&self, cgroup: &Cgroup) -> Result<()> {
        if !self.filtering {
            bail!(
                "cannot add cgroup {}: the programs were loaded without a cgroup filter",
                cgroup.path
            );
        }
        if cgroup.level >= CGROUP_SET_LEVELS {
            bail!(
                "cannot filter on cgroup {}: {} levels deep, the most is {}",
                cgroup.path,
                cgroup.level,
                CGROUP_SET_LEVELS - 1
            );
        }
        let mut copy = self.copy();
        if copy.len() >= CGROUP_SET_ENTRIES as usize && !copy.contains_key(&cgroup.id) {
            bail!(
                "cannot add cgroup {}: the cgroup set is full ({CGROUP_SET_ENTRIES} cgroups)",
                cgroup.path
            );
        }
        // Between the two writes a program passes what the set passed before the insert.
        self.members
            .update(&cgroup.id.to_ne_bytes(), &[1], MapFlags::ANY)
            .with_context(|| format!("failed to add cgroup {} to the cgroup set", cgroup.path))?;
        copy.insert(cgroup.id, cgroup.level);
        self.write_levels(&copy)
    }

    /// Removes the member with id `id` (a cgroup not in the set is no error): its sockets no
    /// longer pass, unless a member above it is in the set.
    pub fn remove(&self, id: u64) -> Result<()> {
        let mut copy = self.copy();
        if copy.remove(&id).is_none() {
            return Ok(());
        }
        // Between the two writes a program passes what the set passes after the removal.
        self.write_levels(&copy)?;
        self.members
            .delete(&id.to_ne_bytes())
            .with_context(|| format!("failed to remove cgroup {id} from the cgroup set"))
    }

    /// Whether cgroup `id` is a member.
    pub fn contains(&self, id: u64) -> bool {
        self.copy().contains_key(&id)
    }

    fn copy(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u32>> {
        // A panic elsewhere while holding the lock left the copy as the maps are.
        self.copy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the level mask of the members in `copy`.
    fn write_levels(&self, copy: &HashMap<u64, u32>) -> Result<()> {
        let mask = copy.values().fold(0u64, |mask, level| mask | 1 << level);
        self.levels
            .update(&0u32.to_ne_bytes(), &mask.to_ne_bytes(), MapFlags::ANY)
            .context("failed to update the cgroup set's levels")
    }
}

/// The columns the event tools add to bcc's, for each record: its seconds since the first
/// one (`-t`; JSON's `seconds`), its socket's cgroup path where the format shows it (JSON,
/// `--show-cgroup`) and its pod and container names (JSON, `--show-pod`).
pub struct AddedColumns {
    since_first: SinceFirst,
    shown: Shows,
    identities: Identities,
}

/// What a format shows of a socket's cgroup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shows {
    /// Its path (JSON, `--show-cgroup`, `--show-pod` outside containers).
    pub cgroup: bool,
    /// Its pod's and container's names (JSON, `--show-pod`).
    pub names: bool,
}

impl Shows {
    /// A format's: JSON shows the path and the names, `--show-cgroup` the path, `--show-pod`
    /// the names (and the path, where a socket is in no container).
    pub fn of(json: bool, cgroup: bool, pod: bool) -> Shows {
        Shows {
            cgroup: json || cgroup || pod,
            names: json || pod,
        }
    }
}

impl AddedColumns {
    pub fn new(shown: Shows, identities: impl Into<Identities>) -> AddedColumns {
        AddedColumns {
            since_first: SinceFirst::default(),
            shown,
            identities: identities.into(),
        }
    }

    /// The seconds since the first record of the one at kernel time `ts_us`, and what is
    /// shown of its socket's cgroup (empty where the format shows nothing).
    pub fn of(&mut self, ts_us: u64, container: &SocketContainer) -> (f64, Shown) {
        let seconds = self.since_first.seconds(ts_us);
        let shown = if self.shown.names {
            self.identities.of(container.cgroup_id)
        } else if self.shown.cgroup {
            Shown {
                cgroup: self.identities.path(container.cgroup_id),
                ..Shown::default()
            }
        } else {
            Shown::default()
        };
        (seconds, shown)
    }
}

/// Cgroup v2 paths by id, for printing: found by walking the hierarchy, cached, and walked
/// again (at most once a second) for an id not seen yet. An id with no directory (the
/// cgroup was removed) prints as its number.
pub struct CgroupPaths {
    mount: Option<PathBuf>,
    paths: HashMap<u64, String>,
    last_scan: Option<Instant>,
}

impl CgroupPaths {
    /// The paths of this system's hierarchy; without one, every id prints as its number.
    pub fn system() -> CgroupPaths {
        CgroupPaths {
            mount: cgroup2_mount().ok(),
            paths: HashMap::new(),
            last_scan: None,
        }
    }

    /// Fixed paths, for golden tests.
    pub fn fixed(paths: impl IntoIterator<Item = (u64, String)>) -> CgroupPaths {
        CgroupPaths {
            mount: None,
            paths: paths.into_iter().collect(),
            last_scan: None,
        }
    }

    /// The path of cgroup `id` from the hierarchy's root (`/` for the root itself).
    ///
    /// An id not seen yet is asked of the kernel (a cgroup made since the last walk: a
    /// container that just started), else found by a walk (at most once a second).
    pub fn path(&mut self, id: u64) -> String {
        if !self.paths.contains_key(&id) {
            match self
                .mount
                .as_deref()
                .and_then(|mount| path_of_id(mount, id))
            {
                Some(path) => drop(self.paths.insert(id, path)),
                None if self.may_scan() => drop(self.scan()),
                None => {}
            }
        }
        self.paths
            .get(&id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    /// Walks the hierarchy again now if any of `ids` has no known path (a caller that looks
    /// ids up in batches, at its own pace).
    pub fn learn(&mut self, ids: impl IntoIterator<Item = u64>) {
        if ids.into_iter().any(|id| !self.paths.contains_key(&id)) {
            self.scan();
        }
    }

    /// Whether cgroup `id` still exists: its directory, found by its known path, still has
    /// that id. False for an id never seen (or without a hierarchy).
    pub fn exists(&self, id: u64) -> bool {
        let (Some(mount), Some(path)) = (&self.mount, self.paths.get(&id)) else {
            return false;
        };
        let dir = mount.join(path.trim_start_matches('/'));
        fs::metadata(dir).is_ok_and(|m| m.ino() == id)
    }

    /// Whether a cgroup directory exists now at `path` (from the hierarchy's root), whatever
    /// its id: a pod's cgroup outlives its containers' (the exporter keeps a pod's series
    /// while it stands). False without a hierarchy.
    pub fn dir_exists(&self, path: &str) -> bool {
        let Some(mount) = &self.mount else {
            return false;
        };
        fs::metadata(mount.join(path.trim_start_matches('/'))).is_ok_and(|m| m.is_dir())
    }

    fn may_scan(&self) -> bool {
        self.mount.is_some() && self.last_scan.is_none_or(|t| t.elapsed() >= RESCAN_EVERY)
    }

    /// Walks the hierarchy now, and returns every directory it has now (selection by pod,
    /// which must see new directories and forget removed ones).
    pub fn rescan(&mut self) -> Vec<(u64, String)> {
        self.scan()
    }

    fn scan(&mut self) -> Vec<(u64, String)> {
        self.last_scan = Some(Instant::now());
        let Some(mount) = self.mount.clone() else {
            return Vec::new();
        };
        let mut found = Vec::new();
        let mut pending = vec![(mount.clone(), String::from("/"))];
        let mut visited = 0;
        while let Some((dir, path)) = pending.pop() {
            visited += 1;
            if visited > MAX_CGROUPS {
                break;
            }
            let Ok(meta) = fs::metadata(&dir) else {
                continue;
            };
            for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let child = if path == "/" {
                        format!("/{name}")
                    } else {
                        format!("{path}/{name}")
                    };
                    pending.push((entry.path(), child));
                }
            }
            self.paths.insert(meta.ino(), path.clone());
            found.push((meta.ino(), path));
        }
        found
    }
}

/// The path of cgroup `id` below `mount`, from the kernel: the id is the cgroup's kernfs
/// file handle, which open_by_handle_at(2) opens (CAP_DAC_READ_SEARCH, which the tools'
/// root has), and the opened directory's /proc/self/fd link is its path. None if no cgroup
/// has that id (any more).
fn path_of_id(mount: &Path, id: u64) -> Option<String> {
    use nix::libc;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    /// `struct file_handle` with the 8 bytes of a kernfs handle (FILEID_KERNFS).
    #[repr(C)]
    struct KernfsHandle {
        handle_bytes: u32,
        handle_type: i32,
        id: u64,
    }
    const FILEID_KERNFS: i32 = 0xfe;
    let root = fs::File::open(mount).ok()?;
    let mut handle = KernfsHandle {
        handle_bytes: 8,
        handle_type: FILEID_KERNFS,
        id,
    };
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    let handle_ptr = (&mut handle as *mut KernfsHandle).cast::<libc::file_handle>();
    // SAFETY: handle is a valid file_handle header followed by its handle_bytes bytes; the
    // call returns a new descriptor or -1.
    let fd = unsafe { libc::open_by_handle_at(root.as_raw_fd(), handle_ptr, flags) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd is a new descriptor that nothing else owns.
    let dir = unsafe { OwnedFd::from_raw_fd(fd) };
    let link = fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd())).ok()?;
    let below = link.strip_prefix(mount).ok()?;
    Some(format!("/{}", below.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netns_arguments() {
        assert_eq!(parse_netns("4026531840"), Ok(NetnsArg::Inode(4026531840)));
        assert_eq!(
            parse_netns("/run/netns/x"),
            Ok(NetnsArg::Path("/run/netns/x".into()))
        );
        for bad in ["-5", "0", "", "abc", "4294967296", "1e3"] {
            assert_eq!(
                parse_netns(bad),
                Err(UsageError::new(format!("invalid network namespace: {bad}"))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn empty_cgroup_path_is_a_usage_error() {
        let flags = ContainerFlags {
            cgroup: Some(String::new()),
            netns: None,
            pods: PodFlags::default(),
        };
        assert_eq!(
            flags.into_args(),
            Err(UsageError::new("invalid cgroup path: (empty)"))
        );
    }

    #[test]
    fn mount_fields_are_unescaped() {
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
    }

    /// The kernel names a cgroup by its id: this process's own, and the root.
    #[test]
    fn paths_of_ids_from_the_kernel() {
        let mount = cgroup2_mount().expect("a cgroup v2 mount");
        let own = fs::read_to_string("/proc/self/cgroup").expect("/proc/self/cgroup");
        let own = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .expect("a 0:: line");
        for path in [own, "/"] {
            let dir = mount.join(path.trim_start_matches('/'));
            let id = fs::metadata(&dir).expect("the cgroup's directory").ino();
            assert_eq!(
                path_of_id(&mount, id).as_deref(),
                Some(path),
                "{}",
                dir.display()
            );
        }
        assert_eq!(path_of_id(&mount, u64::MAX), None);
    }

    #[test]
    fn unknown_ids_print_as_numbers() {
        let mut paths = CgroupPaths::fixed([(1, "/".to_owned()), (7, "/pod/c".to_owned())]);
        assert_eq!(paths.path(7), "/pod/c");
        assert_eq!(paths.path(8), "8");
    }
}
