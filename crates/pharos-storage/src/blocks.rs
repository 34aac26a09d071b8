//! Immutable blocks on object storage: a directory of named files per block, written once,
//! read whole, deleted whole.
//!
//! A [`BlockStore`] keeps each block under `<prefix>/<block id>/`. What the files hold is the
//! signal store's business; this module only knows the life cycle that makes a block safe to
//! see:
//!
//! - **writing**: every data file first, [`META_FILE`] last. A block is *complete* once its
//!   meta file exists; a crash before that leaves an *incomplete* block that
//!   [`BlockStore::list`] reports so the owner can delete it.
//! - **deleting**: [`META_FILE`] first, so a crash half-way leaves an incomplete block, never
//!   a complete one with files missing.
//!
//! Every access goes through the [`object_store::ObjectStore`] interface, so the embedded
//! default ([`BlockStore::local`], a directory) and a bucket share one code path.
//!
//! Block ids are ULIDs (26 characters of Crockford base32: 48 bits of milliseconds, 80
//! random bits), so they sort by creation time, as Prometheus names its block directories.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

/// The file whose presence makes a block complete; written last, deleted first.
pub const META_FILE: &str = "meta.json";

/// Why a block store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlockStoreError {
    /// The object store refused or failed.
    #[error("object store: {op} {path}: {source}")]
    ObjectStore {
        /// What was being done.
        op: &'static str,
        /// The object or prefix.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// A block id or file name that cannot be an object path segment.
    #[error("invalid block path segment {0:?}")]
    InvalidName(String),
}

/// What [`BlockStore::list`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Ids of the blocks with a meta file, sorted (oldest first).
    pub complete: Vec<String>,
    /// Ids of the block directories without one, sorted.
    pub incomplete: Vec<String>,
}

/// Blocks under one prefix of an object store. Cheap to clone.
#[derive(Clone)]
pub struct BlockStore {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// The directory behind the store when it is the local file system, for
    /// [`BlockStore::get_mapped`].
    local_root: Option<std::path::PathBuf>,
}

impl fmt::Debug for BlockStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockStore")
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix.as_ref())
            .finish()
    }
}

impl BlockStore {
    /// Returns a store of blocks under `prefix` (for example `metrics/blocks`) in `store`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> BlockStore {
        BlockStore {
            store,
            prefix: ObjectPath::from(prefix),
            local_root: None,
        }
    }

    /// Returns a store of blocks in the local directory `dir`, created if missing. Every
    /// file put is fsynced with its directory before the put returns, so a block is
    /// durable once its meta file is written (the metrics log behind it is then deleted).
    ///
    /// # Errors
    ///
    /// When the directory cannot be created or opened.
    pub fn local(dir: &Path) -> Result<BlockStore, BlockStoreError> {
        std::fs::create_dir_all(dir).map_err(|e| BlockStoreError::ObjectStore {
            op: "create directory",
            path: dir.display().to_string(),
            source: object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            },
        })?;
        let fs = LocalFileSystem::new_with_prefix(dir)
            .map(|fs| fs.with_automatic_cleanup(true).with_fsync(true))
            .map_err(|source| BlockStoreError::ObjectStore {
                op: "open",
                path: dir.display().to_string(),
                source,
            })?;
        let mut store = BlockStore::new(Arc::new(fs), "");
        store.local_root = Some(dir.to_path_buf());
        Ok(store)
    }

    fn path(&self, block: &str, file: &str) -> Result<ObjectPath, BlockStoreError> {
        for part in [block, file] {
            if part.is_empty() || part.contains('/') || part.starts_with('.') {
                return Err(BlockStoreError::InvalidName(part.to_owned()));
            }
        }
        Ok(self.prefix.clone().join(block).join(file))
    }

    /// Writes one file of a block (whole-object put, atomic on the local file system and in
    /// buckets). Write [`META_FILE`] last.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn put(&self, block: &str, file: &str, bytes: Bytes) -> Result<(), BlockStoreError> {
        let path = self.path(block, file)?;
        self.store
            .put(&path, bytes.into())
            .await
            .map_err(|source| BlockStoreError::ObjectStore {
                op: "put",
                path: path.to_string(),
                source,
            })?;
        Ok(())
    }

    /// Reads one file of a block whole.
    ///
    /// # Errors
    ///
    /// When the file is missing or the store fails.
    pub async fn get(&self, block: &str, file: &str) -> Result<Bytes, BlockStoreError> {
        let path = self.path(block, file)?;
        let err = |source| BlockStoreError::ObjectStore {
            op: "get",
            path: path.to_string(),
            source,
        };
        self.store
            .get(&path)
            .await
            .map_err(err)?
            .bytes()
            .await
            .map_err(err)
    }

    /// Reads one file of a block whole, memory-mapped when the store is a local directory:
    /// the bytes then live in the page cache (read on first touch, evictable) rather than
    /// on the heap. Other stores read it as [`BlockStore::get`] does. Block files are
    /// never modified once complete, which is what makes mapping them safe.
    ///
    /// # Errors
    ///
    /// When the file is missing or cannot be read or mapped.
    pub async fn get_mapped(&self, block: &str, file: &str) -> Result<Bytes, BlockStoreError> {
        let Some(root) = &self.local_root else {
            return self.get(block, file).await;
        };
        let path = self.path(block, file)?;
        let fs_path = root.join(path.as_ref());
        let err = |e: std::io::Error| BlockStoreError::ObjectStore {
            op: "map",
            path: path.to_string(),
            source: object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            },
        };
        let file = std::fs::File::open(&fs_path).map_err(err)?;
        if file.metadata().map_err(err)?.len() == 0 {
            return Ok(Bytes::new());
        }
        // SAFETY: block files are written once (the local store writes a temporary file and
        // renames it into place, so a rewrite would be a new inode) and never truncated or
        // written again; deleting one unlinks it, which leaves existing mappings valid.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(err)?;
        Ok(Bytes::from_owner(map))
    }

    /// Lists the blocks, complete and incomplete.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn list(&self) -> Result<Listing, BlockStoreError> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let top = self
            .store
            .list_with_delimiter(prefix)
            .await
            .map_err(|source| BlockStoreError::ObjectStore {
                op: "list",
                path: self.prefix.to_string(),
                source,
            })?;
        let mut listing = Listing::default();
        for dir in top.common_prefixes {
            let Some(id) = dir.filename().map(str::to_owned) else {
                continue;
            };
            let meta = dir.clone().join(META_FILE);
            let complete = match self.store.head(&meta).await {
                Ok(_) => true,
                Err(object_store::Error::NotFound { .. }) => false,
                Err(source) => {
                    return Err(BlockStoreError::ObjectStore {
                        op: "head",
                        path: meta.to_string(),
                        source,
                    });
                }
            };
            if complete {
                listing.complete.push(id);
            } else {
                listing.incomplete.push(id);
            }
        }
        listing.complete.sort();
        listing.incomplete.sort();
        Ok(listing)
    }

    /// Deletes a block: its meta file first, then every other file under it. Deleting a
    /// block that does not exist succeeds.
    ///
    /// # Errors
    ///
    /// When the store fails; the block is then incomplete (or still complete, if even the
    /// meta file could not be deleted).
    pub async fn delete(&self, block: &str) -> Result<(), BlockStoreError> {
        let meta = self.path(block, META_FILE)?;
        match self.store.delete(&meta).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => {
                return Err(BlockStoreError::ObjectStore {
                    op: "delete",
                    path: meta.to_string(),
                    source,
                });
            }
        }
        let dir = self.prefix.clone().join(block);
        let files = self
            .store
            .list_with_delimiter(Some(&dir))
            .await
            .map_err(|source| BlockStoreError::ObjectStore {
                op: "list",
                path: dir.to_string(),
                source,
            })?;
        for object in files.objects {
            match self.store.delete(&object.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(source) => {
                    return Err(BlockStoreError::ObjectStore {
                        op: "delete",
                        path: object.location.to_string(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }
}

/// What [`BlockStore::open_all`] found.
#[derive(Debug)]
pub struct Opened<B> {
    /// The blocks loaded and kept, in id (creation) order.
    pub blocks: Vec<B>,
    /// Blocks without a meta file (a write cut short), deleted.
    pub incomplete_removed: usize,
    /// Blocks that a loaded block names as its parents (a merge whose inputs were not yet
    /// deleted), deleted.
    pub parents_removed: usize,
    /// Blocks that did not load: left in the store, not served.
    pub unreadable: Vec<String>,
}

impl BlockStore {
    /// Opens every block, as a signal store does before serving: deletes the incomplete
    /// ones, loads each complete one with `load` (one that fails is logged with `signal`
    /// and reported, not deleted), then deletes the blocks a loaded block names among its
    /// `parents`.
    ///
    /// # Errors
    ///
    /// When the store cannot be listed or a leftover cannot be deleted.
    pub async fn open_all<B, E, Fut>(
        &self,
        signal: &str,
        load: impl Fn(String) -> Fut,
        parents: impl Fn(&B) -> (&str, &[String]),
    ) -> Result<Opened<B>, BlockStoreError>
    where
        Fut: std::future::Future<Output = Result<B, E>>,
        E: fmt::Display,
    {
        let listing = self.list().await?;
        let mut incomplete_removed = 0;
        for id in &listing.incomplete {
            tracing::warn!(block = %id, signal, "deleting an incomplete block");
            self.delete(id).await?;
            incomplete_removed += 1;
        }
        let mut loaded = Vec::new();
        let mut unreadable = Vec::new();
        for id in listing.complete {
            match load(id.clone()).await {
                Ok(b) => loaded.push(b),
                Err(error) => {
                    tracing::error!(block = %id, signal, %error, "block does not load; not serving it");
                    unreadable.push(id);
                }
            }
        }
        let merged: std::collections::HashSet<String> = loaded
            .iter()
            .flat_map(|b| parents(b).1.iter().cloned())
            .collect();
        let mut blocks = Vec::new();
        let mut parents_removed = 0;
        for b in loaded {
            let id = parents(&b).0.to_owned();
            if merged.contains(&id) {
                self.delete(&id).await?;
                parents_removed += 1;
            } else {
                blocks.push(b);
            }
        }
        Ok(Opened {
            blocks,
            incomplete_removed,
            parents_removed,
            unreadable,
        })
    }
}

/// Returns a new ULID for the current time: 26 Crockford base32 characters that sort by
/// creation time (to the millisecond).
///
/// Ids are monotonic within a process: one made in the same millisecond as the previous,
/// or after the clock stepped back, is the previous plus one, so "older block" by id is
/// creation order.
pub fn new_block_id() -> String {
    static LAST: std::sync::Mutex<u128> = std::sync::Mutex::new(0);
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let fresh = ulid_value(ms, rand::random::<u128>());
    let mut last = LAST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let value = if fresh > *last { fresh } else { *last + 1 };
    *last = value;
    encode_ulid(value)
}

/// Returns when a block id from [`new_block_id`] was made, in unix milliseconds (its
/// first ten characters), or `None` for an id that is not a ULID.
pub fn block_id_ms(id: &str) -> Option<u64> {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    if id.len() != 26 {
        return None;
    }
    id.bytes().take(10).try_fold(0u64, |ms, c| {
        let digit = ALPHABET.iter().position(|&a| a == c.to_ascii_uppercase())?;
        Some((ms << 5) | digit as u64)
    })
}

fn ulid_value(ms: u64, random: u128) -> u128 {
    (u128::from(ms & 0xFFFF_FFFF_FFFF) << 80) | (random & ((1u128 << 80) - 1))
}

#[cfg(test)]
fn ulid(ms: u64, random: u128) -> String {
    encode_ulid(ulid_value(ms, random))
}

fn encode_ulid(value: u128) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    (0..26)
        .rev()
        .map(|i| ALPHABET[((value >> (i * 5)) & 31) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_ids_tell_when_they_were_made() {
        let id = ulid(1_765_000_000_123, 0xdead_beef);
        assert_eq!(block_id_ms(&id), Some(1_765_000_000_123));
        assert_eq!(block_id_ms(&id.to_lowercase()), Some(1_765_000_000_123));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let made = block_id_ms(&new_block_id()).unwrap();
        assert!(made.abs_diff(now) < 60_000, "{made} vs {now}");
        assert_eq!(block_id_ms("not-a-ulid"), None);
        assert_eq!(
            block_id_ms("01M97H1Z15ZFQTPG681JWYNMU!"),
            Some(block_id_ms("01M97H1Z15ZFQTPG681JWYNM58").unwrap())
        );
        assert_eq!(block_id_ms("01M97H1Z1UZFQTPG681JWYNM58"), None);
    }

    #[test]
    fn ulids_sort_by_time_and_use_crockford_base32() {
        assert_eq!(ulid(0, 0), "00000000000000000000000000");
        // The spec's example time: 1469918176385 ms encodes as 01ARYZ6S41.
        assert!(ulid(1_469_918_176_385, 0).starts_with("01ARYZ6S41"));
        assert!(ulid(1, u128::MAX) < ulid(2, 0));
        assert_eq!(new_block_id().len(), 26);
        let ids: Vec<String> = (0..1000).map(|_| new_block_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase");
    }

    #[tokio::test]
    async fn blocks_are_complete_only_with_their_meta_file() {
        let tmp = tempfile::tempdir().unwrap();
        let store = BlockStore::local(tmp.path()).unwrap();
        store
            .put("B1", "chunks", Bytes::from_static(b"c"))
            .await
            .unwrap();
        store
            .put("B1", META_FILE, Bytes::from_static(b"{}"))
            .await
            .unwrap();
        store
            .put("B2", "chunks", Bytes::from_static(b"half"))
            .await
            .unwrap();
        let listing = store.list().await.unwrap();
        assert_eq!(listing.complete, vec!["B1"]);
        assert_eq!(listing.incomplete, vec!["B2"]);
        assert_eq!(&store.get("B1", "chunks").await.unwrap()[..], b"c");
        assert_eq!(&store.get_mapped("B1", "chunks").await.unwrap()[..], b"c");
        assert!(store.get_mapped("B1", "index").await.is_err());
        assert!(store.get("B1", "index").await.is_err());

        store.delete("B1").await.unwrap();
        store.delete("B2").await.unwrap();
        store.delete("never").await.unwrap();
        assert_eq!(store.list().await.unwrap(), Listing::default());
        assert!(matches!(
            store.put("../x", "f", Bytes::new()).await,
            Err(BlockStoreError::InvalidName(_))
        ));
    }
}
