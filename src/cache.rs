//! The catalogue cache: each on-demand backend's lists (tools, prompts, resources,
//! templates) and what it said of itself at `initialize` (its server info, protocol
//! version and capabilities), kept in the state directory so that a restarted gateway lists them without
//! starting the backend. A backend's file is good for the entry it was learned from: its
//! key is a hash of what defines the entry (type, command, arguments, cwd, URL, and the
//! names and values of its environment and headers, hashed, never written); another entry
//! under the same name is learned anew. Files are written whole and renamed into place,
//! readable by the owner only. The cache is never trusted over the running backend, which
//! lists again each time it starts.
//!
//! I/O on the hub's thread, at start and after a backend's lists are learned: small files,
//! seldom.

use crate::config::BackendSpec;
use crate::registry::{Kind, Lists};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

pub struct CatalogCache {
    dir: PathBuf,
}

/// What a cache file says of a backend.
pub enum Cached {
    /// Its lists and what it said of itself, learned from this very entry.
    Lists(Lists, Option<Value>),
    /// Nothing for this entry: no file, or one for another entry of that name.
    Missing,
}

impl CatalogCache {
    pub fn new(dir: &Path) -> CatalogCache {
        CatalogCache {
            dir: dir.to_path_buf(),
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("catalogue-{name}.json"))
    }

    /// What defines `spec`'s lists, hashed: its transport with every field (environment
    /// and header values included, as they may change what a server offers).
    pub fn key(spec: &BackendSpec) -> String {
        format!("{:016x}", fnv1a(format!("{:?}", spec.transport).as_bytes()))
    }

    /// The cached lists of `spec`; Err (saying why) for a file that cannot be read or is
    /// damaged, which the caller reports once and learns the lists anew.
    pub fn load(&self, spec: &BackendSpec) -> Result<Cached, String> {
        let path = self.file(&spec.name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Cached::Missing),
            Err(e) => return Err(format!("cannot read '{}': {e}", path.display())),
        };
        let damaged = |why: &str| format!("'{}' is damaged ({why})", path.display());
        let v: Value = serde_json::from_str(&text).map_err(|e| damaged(&e.to_string()))?;
        if v.get("key").and_then(Value::as_str) != Some(Self::key(spec).as_str()) {
            return Ok(Cached::Missing);
        }
        let lists = v
            .get("lists")
            .and_then(Value::as_object)
            .ok_or_else(|| damaged("no 'lists'"))?;
        let mut out = Lists::default();
        for kind in Kind::ALL {
            let items = lists
                .get(kind.field())
                .and_then(Value::as_array)
                .ok_or_else(|| damaged(&format!("no '{}' list", kind.field())))?;
            out.items[kind.index()] = items
                .iter()
                .map(|i| {
                    i.as_object()
                        .cloned()
                        .ok_or_else(|| damaged("an item is not an object"))
                })
                .collect::<Result<Vec<Map<String, Value>>, String>>()?;
        }
        let server = v.get("server").filter(|s| s.is_object()).cloned();
        Ok(Cached::Lists(out, server))
    }

    /// Keeps `lists` as `spec`'s: written to a file of its own, then renamed over the last
    /// one, so a reader sees the old file or the new, never half of one.
    pub fn store(
        &self,
        spec: &BackendSpec,
        lists: &Lists,
        server: Option<&Value>,
    ) -> Result<(), String> {
        create_private_dir(&self.dir)
            .map_err(|e| format!("cannot create '{}': {e}", self.dir.display()))?;
        let mut all = Map::new();
        for kind in Kind::ALL {
            let items: Vec<Value> = lists.get(kind).iter().cloned().map(Value::Object).collect();
            all.insert(kind.field().into(), Value::Array(items));
        }
        let doc = json!({
            "backend": spec.name,
            "key": Self::key(spec),
            "learned": crate::audit::now(),
            "lists": all,
            "server": server,
        });
        let path = self.file(&spec.name);
        let tmp = self.dir.join(format!(
            ".catalogue-{}.{}.tmp",
            spec.name,
            std::process::id()
        ));
        write_private(&tmp, doc.to_string().as_bytes())
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                format!("cannot write '{}': {e}", path.display())
            })
    }
}

/// FNV-1a, 64 bits: a hash that is the same in every build (the standard library's is
/// not promised to be).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip_under_their_entrys_key_and_damage_is_said() {
        let dir = std::env::temp_dir().join(format!("mcp-gateway-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = CatalogCache::new(&dir);
        let text = r#"{"fx": {"command": "python3", "args": ["s.py"], "env": {"K": "v1"}}}"#;
        let spec = crate::config::parse(text, &|_| None)
            .unwrap()
            .config
            .backends[0]
            .clone();
        assert!(matches!(cache.load(&spec), Ok(Cached::Missing)));
        let mut lists = Lists::default();
        lists.items[Kind::Tools.index()]
            .push(serde_json::from_str(r#"{"name": "echo", "inputSchema": {}}"#).unwrap());
        let server = json!({"serverInfo": {"name": "fx"}, "capabilities": {"tools": {}}});
        cache.store(&spec, &lists, Some(&server)).unwrap();
        match cache.load(&spec) {
            Ok(Cached::Lists(l, s)) => assert_eq!((l, s), (lists, Some(server))),
            _ => panic!("not read back"),
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&dir.join("catalogue-fx.json")), 0o600);
        }
        // Another value of an environment variable is another entry; its value is not
        // written anywhere.
        let changed = text.replace("v1", "v2");
        let other = crate::config::parse(&changed, &|_| None)
            .unwrap()
            .config
            .backends[0]
            .clone();
        assert!(matches!(cache.load(&other), Ok(Cached::Missing)));
        let written = std::fs::read_to_string(dir.join("catalogue-fx.json")).unwrap();
        assert!(!written.contains("v1"), "{written}");
        // A damaged file says so.
        std::fs::write(dir.join("catalogue-fx.json"), "{not json").unwrap();
        let e = cache.load(&spec).err().unwrap();
        assert!(e.contains("catalogue-fx.json' is damaged"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
