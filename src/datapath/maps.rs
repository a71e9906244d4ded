//! Typed I/O over the datapath's maps (pinned, or a loaded skeleton's):
//! keys and values are the skeleton's shared types, converted with
//! crate::skel::{bytes_of, from_bytes}.
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use libbpf_rs::{MapCore, MapFlags, MapHandle, MapType};
use plain::Plain;

use super::pins::{restrict_pin, OpenMode, PinDir, REPIN_SUFFIX, SET_PINS};
use super::{DatapathError, Result};
use crate::policy::image::{MetaEntry, TrieEntry};
use crate::skel::types::{
    segfw_ct_key, segfw_ct_value, segfw_flow_cache, segfw_meta_key, segfw_meta_value,
    segfw_policy_key, segfw_policy_value, segfw_rule_stats, segfw_runtime, segfw_set_record,
};
use crate::skel::{bytes_of, from_bytes};

/// Entries per batch syscall.
pub(crate) const BATCH: usize = 4096;

/// Opens a pinned map read-only or read-write, as `mode` says.
pub fn open_pinned_map(path: &Path, mode: OpenMode) -> libbpf_rs::Result<MapHandle> {
    MapHandle::from_pinned_path_with_file_flags(path, mode.file_flags())
}

/// One map with typed I/O: a pinned map opened by name, a fresh unpinned
/// twin ([`TypedMap::empty_twin`]) or a loaded skeleton's map.
#[derive(Debug)]
pub struct TypedMap {
    name: String,
    map: MapHandle,
}

impl TypedMap {
    /// Opens maps/<name> of the instance and checks that its key and value
    /// sizes are those of this binary's shared header (a pinned map is an ABI).
    pub fn open<K, V>(pins: &PinDir, name: &str) -> Result<Self> {
        let path = pins.map(name);
        let map = open_pinned_map(&path, pins.open_mode())
            .map_err(|source| DatapathError::open_pinned(path, source))?;
        let opened = TypedMap {
            name: name.to_string(),
            map,
        };
        opened.check_layout(size_of::<K>(), size_of::<V>())?;
        Ok(opened)
    }

    /// A map of a loaded skeleton, by a duplicate of its fd (an unpinned
    /// datapath: BPF_PROG_TEST_RUN tests and benchmarks).
    pub fn of_skeleton<K, V, T: std::fmt::Debug>(
        map: &libbpf_rs::MapImpl<'_, T>,
        name: &str,
    ) -> Result<Self> {
        let map = MapHandle::try_from(map).map_err(|source| DatapathError::MapIo {
            map: name.to_string(),
            op: "duplicate the fd of",
            source,
        })?;
        let opened = TypedMap {
            name: name.to_string(),
            map,
        };
        opened.check_layout(size_of::<K>(), size_of::<V>())?;
        Ok(opened)
    }

    fn check_layout(&self, key: usize, value: usize) -> Result<()> {
        let (k, v) = (self.map.key_size() as usize, self.map.value_size() as usize);
        if (k, v) == (key, value) {
            return Ok(());
        }
        Err(DatapathError::MapContent {
            map: self.name.clone(),
            what: format!(
                "pinned with key/value sizes {k}/{v} but this segfw expects {key}/{value}; \
                 run `segfw uninstall` and attach again"
            ),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn max_entries(&self) -> u32 {
        self.map.max_entries()
    }

    /// Bytes of memory the kernel charges for this map, if it says.
    pub fn memlock(&self) -> Option<u64> {
        self.map.query_fdinfo().ok()?.memlock
    }

    /// The kernel's id of this map.
    pub fn id(&self) -> Option<u32> {
        self.map.info().ok().map(|info| info.info.id)
    }

    fn err(&self, op: &'static str) -> impl FnOnce(libbpf_rs::Error) -> DatapathError + '_ {
        move |source| DatapathError::MapIo {
            map: self.name.clone(),
            op,
            source,
        }
    }

    pub fn get<K: Plain, V: Plain + Default>(&self, key: &K) -> Result<Option<V>> {
        let found = self
            .map
            .lookup(bytes_of(key), MapFlags::ANY)
            .map_err(self.err("look up in"))?;
        Ok(found.and_then(|bytes| from_bytes(&bytes)))
    }

    pub fn put<K: Plain, V: Plain>(&self, key: &K, value: &V) -> Result<()> {
        self.map
            .update(bytes_of(key), bytes_of(value), MapFlags::ANY)
            .map_err(self.err("update"))
    }

    /// Deletes `key`; Ok if it is not there.
    pub fn delete<K: Plain>(&self, key: &K) -> Result<()> {
        match self.map.delete(bytes_of(key)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err("delete from")(e)),
        }
    }

    /// A new, empty, unpinned map with this one's layout and name (see
    /// [`create_like`]).
    pub fn empty_twin(&self) -> Result<TypedMap> {
        let name = self.map.name().to_string_lossy().into_owned();
        let map = create_like(&self.map, &name).map_err(self.err("create a map like"))?;
        Ok(TypedMap {
            name: self.name.clone(),
            map,
        })
    }

    /// Writes all entries: batched where the map type supports it, else one
    /// update per entry.
    pub fn put_all<K: Plain, V: Plain>(&self, entries: &[(K, V)]) -> Result<()> {
        for chunk in entries.chunks(BATCH) {
            let mut keys = Vec::with_capacity(chunk.len() * size_of::<K>());
            let mut values = Vec::with_capacity(chunk.len() * size_of::<V>());
            for (k, v) in chunk {
                keys.extend_from_slice(bytes_of(k));
                values.extend_from_slice(bytes_of(v));
            }
            let batched = self.map.update_batch(
                &keys,
                &values,
                chunk.len() as u32,
                MapFlags::ANY,
                MapFlags::ANY,
            );
            if batched.is_err() {
                for (k, v) in chunk {
                    self.put(k, v)?;
                }
            }
        }
        Ok(())
    }

    /// Every (key, value), raw: in batches of BATCH per syscall for tries,
    /// one key at a time for hash maps. (libbpf-rs's batch iterator stops
    /// at the first short batch, and hash maps return short batches at
    /// bucket boundaries long before their end.)
    fn raw_entries(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if self.map.map_type() == MapType::LpmTrie {
            let batched: Vec<(Vec<u8>, Vec<u8>)> = self
                .map
                .lookup_batch(BATCH as u32, MapFlags::ANY, MapFlags::ANY)
                .map_err(self.err("read"))?
                .collect();
            // The iterator also ends silently on error: an empty result
            // from a non-empty trie means batches are not supported.
            if !batched.is_empty() || self.map.keys().next().is_none() {
                return Ok(batched);
            }
        }
        let mut entries = Vec::new();
        for key in self.map.keys() {
            // Skip keys deleted since they were listed (conntrack).
            let value = self
                .map
                .lookup(&key, MapFlags::ANY)
                .map_err(self.err("read"))?;
            if let Some(value) = value {
                entries.push((key, value));
            }
        }
        Ok(entries)
    }

    /// Every entry, typed.
    pub fn entries<K: Plain + Default, V: Plain + Default>(&self) -> Result<Vec<(K, V)>> {
        Ok(self
            .raw_entries()?
            .iter()
            .filter_map(|(k, v)| Some((from_bytes(k)?, from_bytes(v)?)))
            .collect())
    }

    /// Number of entries (hash and trie maps).
    pub fn count(&self) -> Result<usize> {
        Ok(self.raw_entries()?.len())
    }

    /// Deletes every entry; returns how many there were.
    pub fn clear(&self) -> Result<usize> {
        let mut removed = 0;
        if matches!(self.map.map_type(), MapType::Hash | MapType::LruHash) {
            removed += self.drain_in_batches()?;
        }
        // Tries, and whatever the batches left: list the keys, then delete
        // them in batches (one at a time if the kernel has no batch delete).
        let keys: Vec<Vec<u8>> = self.raw_entries()?.into_iter().map(|(k, _)| k).collect();
        for chunk in keys.chunks(BATCH) {
            let flat: Vec<u8> = chunk.concat();
            let count = chunk.len() as u32;
            if self
                .map
                .delete_batch(&flat, count, MapFlags::ANY, MapFlags::ANY)
                .is_err()
            {
                self.delete_each(chunk)?;
            }
        }
        Ok(removed + keys.len())
    }

    /// Hash maps: lookup-and-delete batches from the start until one comes
    /// back empty. Restarting each time sidesteps libbpf-rs ending its
    /// iteration at the first short batch.
    fn drain_in_batches(&self) -> Result<usize> {
        let mut removed = 0;
        loop {
            let drained = self
                .map
                .lookup_and_delete_batch(BATCH as u32, MapFlags::ANY, MapFlags::ANY)
                .map_err(self.err("delete from"))?
                .count();
            if drained == 0 {
                return Ok(removed);
            }
            removed += drained;
        }
    }

    fn delete_each(&self, keys: &[Vec<u8>]) -> Result<()> {
        for key in keys {
            match self.map.delete(key) {
                Ok(()) => {}
                // Gone already (an LRU eviction, a concurrent delete).
                Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => {}
                Err(e) => return Err(self.err("delete from")(e)),
            }
        }
        Ok(())
    }

    /// Per-CPU values of `key`, one per possible CPU.
    pub fn get_percpu<V: Plain + Default>(&self, key: u32) -> Result<Vec<V>> {
        let found = self
            .map
            .lookup_percpu(&key.to_ne_bytes(), MapFlags::ANY)
            .map_err(self.err("look up in"))?;
        Ok(found
            .unwrap_or_default()
            .iter()
            .filter_map(|bytes| from_bytes(bytes))
            .collect())
    }

    /// Zeroes `keys` on every CPU of a per-CPU array: in batches (one
    /// syscall per BATCH keys; 100k single updates took ~250 ms), or one key
    /// at a time where the kernel has no batch update for arrays.
    pub fn zero_percpu(&self, keys: &[u32]) -> Result<()> {
        let cpus = libbpf_rs::num_possible_cpus().map_err(self.err("count CPUs for"))?;
        // The kernel lays out per-CPU values 8-byte aligned, one per CPU.
        let stride = (self.map.value_size() as usize).next_multiple_of(8);
        let zeros = vec![0u8; keys.len().min(BATCH) * cpus * stride];
        for chunk in keys.chunks(BATCH) {
            let values = &zeros[..chunk.len() * cpus * stride];
            if update_percpu_batch(&self.map, chunk, values).is_ok() {
                continue;
            }
            let one = vec![vec![0u8; self.map.value_size() as usize]; cpus];
            for key in chunk {
                self.map
                    .update_percpu(&key.to_ne_bytes(), &one, MapFlags::ANY)
                    .map_err(self.err("update"))?;
            }
        }
        Ok(())
    }

    /// Points slot `index` of this map-of-maps at `inner`: one update, so
    /// the datapath sees the old inner map or the new one, never a mix.
    pub fn set_inner(&self, index: u32, inner: &TypedMap) -> Result<()> {
        let fd = inner.map.as_fd().as_raw_fd() as u32;
        self.map
            .update(&index.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
            .map_err(self.err("update"))
    }

    /// Pins this map at `path` atomically: pin under a temporary name,
    /// then rename(2) over `path`, so readers never see it missing.
    /// (Fault point `repin-tmp:NAME`, NAME the pin's file name.)
    pub fn repin(&mut self, path: &Path) -> Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(REPIN_SUFFIX);
        let tmp = std::path::PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        self.map.pin(&tmp).map_err(|source| DatapathError::Pin {
            path: tmp.clone(),
            source: std::io::Error::other(source),
        })?;
        restrict_pin(&tmp)?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        super::faults::fault_point(&format!("repin-tmp:{name}"));
        std::fs::rename(&tmp, path).map_err(|source| DatapathError::Pin {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Creates an empty map named `name` with `like`'s type, key and value
/// sizes, capacity, flags and BTF types, so that `bpftool map dump` still
/// pretty-prints it and policy_outer accepts it as an inner map.
pub fn create_like(like: &MapHandle, name: &str) -> libbpf_rs::Result<MapHandle> {
    let info = like.info()?.info;
    let btf = btf_fd_by_id(info.btf_id)?;
    let opts = libbpf_sys::bpf_map_create_opts {
        sz: size_of::<libbpf_sys::bpf_map_create_opts>() as _,
        map_flags: info.map_flags,
        btf_fd: btf.as_ref().map_or(0, |fd| fd.as_raw_fd() as u32),
        btf_key_type_id: info.btf_key_type_id,
        btf_value_type_id: info.btf_value_type_id,
        ..Default::default()
    };
    MapHandle::create(
        like.map_type(),
        Some(name),
        info.key_size,
        info.value_size,
        info.max_entries,
        &opts,
    )
}

/// BPF_MAP_UPDATE_BATCH on a per-CPU map: `values` holds, per key, one
/// 8-byte-aligned value per possible CPU. (libbpf-rs's update_batch checks
/// for one value per key, so it refuses per-CPU maps.)
fn update_percpu_batch(map: &MapHandle, keys: &[u32], values: &[u8]) -> std::io::Result<()> {
    let opts = libbpf_sys::bpf_map_batch_opts {
        sz: size_of::<libbpf_sys::bpf_map_batch_opts>() as _,
        ..Default::default()
    };
    let mut count = keys.len() as u32;
    // SAFETY: `keys` holds `count` u32 keys (the map's key size) and the
    // caller sizes `values` as count * CPUs * aligned value size, the
    // layout the kernel reads for per-CPU maps; both outlive the call and
    // the kernel only reads them.
    let ret = unsafe {
        libbpf_sys::bpf_map_update_batch(
            map.as_fd().as_raw_fd(),
            keys.as_ptr().cast(),
            values.as_ptr().cast(),
            &mut count,
            &opts,
        )
    };
    if ret < 0 {
        return Err(std::io::Error::from_raw_os_error(-ret));
    }
    Ok(())
}

/// An fd of the kernel's BTF object `id` (None for 0: the map has no BTF).
fn btf_fd_by_id(id: u32) -> libbpf_rs::Result<Option<OwnedFd>> {
    if id == 0 {
        return Ok(None);
    }
    // SAFETY: bpf_btf_get_fd_by_id only takes an integer; it returns a new
    // file descriptor, or a negative errno and touches nothing.
    let fd = unsafe { libbpf_sys::bpf_btf_get_fd_by_id(id) };
    if fd < 0 {
        return Err(std::io::Error::from_raw_os_error(-fd).into());
    }
    // SAFETY: a non-negative return is a new fd that nothing else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// The maps an instance's commands read and write, opened by name.
#[derive(Debug)]
pub struct Maps {
    pub policy: [TypedMap; 2],
    pub meta: [TypedMap; 2],
    pub policy_outer: TypedMap,
    pub runtime: TypedMap,
    /// maps/set_records: entry S describes set S ([`super::set_records`]).
    pub set_records: TypedMap,
}

impl Maps {
    pub fn open(pins: &PinDir) -> Result<Self> {
        super::abi::require_compatible(pins)?;
        type PK = segfw_policy_key;
        type PV = segfw_policy_value;
        type MK = segfw_meta_key;
        type MV = segfw_meta_value;
        Ok(Maps {
            policy: [
                TypedMap::open::<PK, PV>(pins, SET_PINS[0].0)?,
                TypedMap::open::<PK, PV>(pins, SET_PINS[1].0)?,
            ],
            meta: [
                TypedMap::open::<MK, MV>(pins, SET_PINS[0].1)?,
                TypedMap::open::<MK, MV>(pins, SET_PINS[1].1)?,
            ],
            policy_outer: TypedMap::open::<u32, u32>(pins, "policy_outer")?,
            runtime: TypedMap::open::<u32, segfw_runtime>(pins, "runtime")?,
            set_records: TypedMap::open::<u32, segfw_set_record>(pins, "set_records")?,
        })
    }

    /// The same maps of a loaded, unpinned skeleton, for the fill and swap
    /// of BPF_PROG_TEST_RUN tests and benchmarks.
    pub fn of_skeleton(skel: &crate::skel::SegfwSkel<'_>) -> Result<Self> {
        type PK = segfw_policy_key;
        type PV = segfw_policy_value;
        type MK = segfw_meta_key;
        type MV = segfw_meta_value;
        let m = &skel.maps;
        Ok(Maps {
            policy: [
                TypedMap::of_skeleton::<PK, PV, _>(&m.policy_a, SET_PINS[0].0)?,
                TypedMap::of_skeleton::<PK, PV, _>(&m.policy_b, SET_PINS[1].0)?,
            ],
            meta: [
                TypedMap::of_skeleton::<MK, MV, _>(&m.meta_a, SET_PINS[0].1)?,
                TypedMap::of_skeleton::<MK, MV, _>(&m.meta_b, SET_PINS[1].1)?,
            ],
            policy_outer: TypedMap::of_skeleton::<u32, u32, _>(&m.policy_outer, "policy_outer")?,
            runtime: TypedMap::of_skeleton::<u32, segfw_runtime, _>(&m.runtime, "runtime")?,
            set_records: TypedMap::of_skeleton::<u32, segfw_set_record, _>(
                &m.set_records,
                "set_records",
            )?,
        })
    }

    pub fn runtime(&self) -> Result<segfw_runtime> {
        Ok(self.runtime.get(&0u32)?.unwrap_or_default())
    }

    /// The live set (0 = A, 1 = B), or None before the first apply: the
    /// set policy_outer[0] points at, which is what the datapath reads.
    /// (runtime.active_set says the same unless an apply was killed between
    /// the swap and the runtime write; [`Maps::torn`] tells.)
    pub fn active_set(&self) -> Result<Option<usize>> {
        let Some(inner) = self.outer_inner_id()? else {
            return Ok(None);
        };
        Ok((0..2).find(|set| self.policy[*set].id() == Some(inner)))
    }

    /// The id of the map in policy_outer[0] (a map-of-maps lookup from
    /// userspace returns the inner map's id), None while the slot is empty.
    fn outer_inner_id(&self) -> Result<Option<u32>> {
        let id: Option<u32> = self.policy_outer.get(&0u32)?;
        Ok(id.filter(|id| *id != 0))
    }

    /// Whether runtime disagrees with the swapped-in set: an apply or
    /// rollback stopped between its swap and its runtime write, so tracked
    /// flows are not re-checked against the live policy until the next
    /// mutating command repairs it. Returns (live set, its generation).
    pub fn torn(&self) -> Result<Option<(usize, u32)>> {
        let Some(set) = self.active_set()? else {
            return Ok(None);
        };
        let runtime = self.runtime()?;
        let config: Option<segfw_policy_value> =
            self.policy[set].get(&crate::policy::image::config_key())?;
        let generation = config.map_or(0, |c| c.id);
        // A set without CONFIG is the "no policy" of a rolled-back first
        // apply; runtime then keeps its own (newer) generation.
        let agrees = runtime.active_set as usize & 1 == set
            && (generation == 0 || runtime.generation == generation);
        Ok((!agrees).then_some((set, generation)))
    }

    /// Trie and meta entries of the live policy (empty before the first apply).
    pub fn live_policy(&self) -> Result<(Vec<TrieEntry>, Vec<MetaEntry>)> {
        match self.active_set()? {
            Some(set) => Ok((self.policy[set].entries()?, self.meta[set].entries()?)),
            None => Ok((Vec::new(), Vec::new())),
        }
    }
}

/// The conntrack map.
pub fn open_conntrack(pins: &PinDir) -> Result<TypedMap> {
    super::abi::require_compatible(pins)?;
    TypedMap::open::<segfw_ct_key, segfw_ct_value>(pins, "conntrack")
}

/// The per-CPU flow cache (one entry per CPU).
pub fn open_flow_cache(pins: &PinDir) -> Result<TypedMap> {
    super::abi::require_compatible(pins)?;
    TypedMap::open::<u32, segfw_flow_cache>(pins, "flow_cache")
}

/// The per-CPU per-rule counters.
pub fn open_rule_stats(pins: &PinDir) -> Result<TypedMap> {
    super::abi::require_compatible(pins)?;
    TypedMap::open::<u32, segfw_rule_stats>(pins, "rule_stats")
}

/// The per-CPU per-reason counters.
pub fn open_reason_stats(pins: &PinDir) -> Result<TypedMap> {
    super::abi::require_compatible(pins)?;
    TypedMap::open::<u32, u64>(pins, "reason_stats")
}
