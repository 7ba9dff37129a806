//! The WIT side of the key-value capability.

use super::{KeyValueGrants, KeyValueStore, KvError, MAX_LISTED_KEYS};
use crate::bindings::spin::key_value::key_value as spin_kv;
use crate::bindings::wasi::keyvalue::{atomics, batch, store as wasi_kv};
use std::sync::Arc;
use wasmtime::component::{Accessor, FutureReader, HasData, Resource, ResourceTable, StreamReader};

/// An open `spin:key-value` store.
pub struct SpinStoreHandle(Arc<dyn KeyValueStore>);
/// An open `wasi:keyvalue` bucket.
pub struct BucketHandle(Arc<dyn KeyValueStore>);
/// A `wasi:keyvalue` compare-and-swap ticket: the version it read.
pub struct CasHandle {
    store: Arc<dyn KeyValueStore>,
    key: String,
    version: u64,
    value: Option<Vec<u8>>,
}

/// `HasData` marker for the key-value capability.
pub struct KeyValue;

pub struct KeyValueView<'a> {
    pub table: &'a mut ResourceTable,
    pub grants: &'a KeyValueGrants,
}

impl HasData for KeyValue {
    type Data<'a> = KeyValueView<'a>;
}

impl KeyValueView<'_> {
    fn store(&self, label: &str) -> Option<Arc<dyn KeyValueStore>> {
        self.grants.stores.get(label).cloned()
    }
}

fn spin_error(e: KvError) -> spin_kv::Error {
    spin_kv::Error::Other(e.to_string())
}

fn wasi_error(e: KvError) -> wasi_kv::Error {
    wasi_kv::Error::Other(e.to_string())
}

// ---- spin:key-value@3.0.0 ----

impl spin_kv::Host for KeyValueView<'_> {}

impl spin_kv::HostStore for KeyValueView<'_> {
    async fn drop(&mut self, rep: Resource<SpinStoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

fn spin_store<T>(
    accessor: &Accessor<T, KeyValue>,
    handle: &Resource<SpinStoreHandle>,
) -> wasmtime::Result<Arc<dyn KeyValueStore>> {
    accessor.with(|mut a| Ok(a.get().table.get(handle)?.0.clone()))
}

impl<T> spin_kv::HostStoreWithStore<T> for KeyValue {
    async fn open(
        accessor: &Accessor<T, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<SpinStoreHandle>, spin_kv::Error>> {
        accessor.with(|mut a| {
            let view = a.get();
            match view.store(&label) {
                Some(s) => Ok(Ok(view.table.push(SpinStoreHandle(s))?)),
                None => Ok(Err(spin_kv::Error::AccessDenied)),
            }
        })
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        this: Resource<SpinStoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, spin_kv::Error>> {
        Ok(spin_store(accessor, &this)?.get(&key).map_err(spin_error))
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        this: Resource<SpinStoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), spin_kv::Error>> {
        Ok(spin_store(accessor, &this)?
            .set(&key, value)
            .map_err(spin_error))
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        this: Resource<SpinStoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), spin_kv::Error>> {
        Ok(spin_store(accessor, &this)?
            .delete(&key)
            .map_err(spin_error))
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        this: Resource<SpinStoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, spin_kv::Error>> {
        Ok(spin_store(accessor, &this)?
            .exists(&key)
            .map_err(spin_error))
    }

    async fn get_keys(
        accessor: &Accessor<T, Self>,
        this: Resource<SpinStoreHandle>,
    ) -> wasmtime::Result<(
        StreamReader<String>,
        FutureReader<Result<(), spin_kv::Error>>,
    )> {
        let store = spin_store(accessor, &this)?;
        let (keys, result) = match store.keys(None, MAX_LISTED_KEYS) {
            Ok(keys) => (keys, Ok(())),
            Err(e) => (Vec::new(), Err(spin_error(e))),
        };
        accessor.with(|mut a| {
            let stream = StreamReader::new(&mut a, keys)?;
            let done =
                FutureReader::new(&mut a, std::future::ready(Ok::<_, wasmtime::Error>(result)))?;
            Ok((stream, done))
        })
    }
}

// ---- wasi:keyvalue/store@0.2.0-draft2 ----

impl wasi_kv::Host for KeyValueView<'_> {
    async fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<BucketHandle>, wasi_kv::Error>> {
        match self.store(&identifier) {
            Some(s) => Ok(Ok(self.table.push(BucketHandle(s))?)),
            None => Ok(Err(wasi_kv::Error::AccessDenied)),
        }
    }
}

impl KeyValueView<'_> {
    fn bucket(&self, b: &Resource<BucketHandle>) -> wasmtime::Result<Arc<dyn KeyValueStore>> {
        Ok(self.table.get(b)?.0.clone())
    }
}

impl wasi_kv::HostBucket for KeyValueView<'_> {
    async fn get(
        &mut self,
        b: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_kv::Error>> {
        Ok(self.bucket(&b)?.get(&key).map_err(wasi_error))
    }

    async fn set(
        &mut self,
        b: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        Ok(self.bucket(&b)?.set(&key, value).map_err(wasi_error))
    }

    async fn delete(
        &mut self,
        b: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        Ok(self.bucket(&b)?.delete(&key).map_err(wasi_error))
    }

    async fn exists(
        &mut self,
        b: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, wasi_kv::Error>> {
        Ok(self.bucket(&b)?.exists(&key).map_err(wasi_error))
    }

    async fn list_keys(
        &mut self,
        b: Resource<BucketHandle>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<wasi_kv::KeyResponse, wasi_kv::Error>> {
        // Pages of 1,000; the cursor is the last key of the previous page.
        const PAGE: usize = 1000;
        let store = self.bucket(&b)?;
        Ok(store
            .keys(cursor.as_deref(), PAGE)
            .map(|keys| {
                let cursor = if keys.len() == PAGE {
                    keys.last().cloned()
                } else {
                    None
                };
                wasi_kv::KeyResponse { keys, cursor }
            })
            .map_err(wasi_error))
    }

    async fn drop(&mut self, b: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.table.delete(b)?;
        Ok(())
    }
}

// ---- wasi:keyvalue/atomics@0.2.0-draft2 ----

impl atomics::Host for KeyValueView<'_> {
    async fn increment(
        &mut self,
        b: Resource<BucketHandle>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, wasi_kv::Error>> {
        Ok(self.bucket(&b)?.increment(&key, delta).map_err(wasi_error))
    }

    async fn swap(
        &mut self,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let ticket = self.table.delete(cas)?;
        match ticket
            .store
            .swap_if_version(&ticket.key, ticket.version, value)
        {
            Ok(true) => Ok(Ok(())),
            Ok(false) => {
                // Hand back a fresh ticket so the guest can retry.
                let now = ticket.store.get_versioned(&ticket.key);
                match now {
                    Ok(v) => {
                        let fresh = self.table.push(CasHandle {
                            store: ticket.store,
                            key: ticket.key,
                            version: v.version,
                            value: v.value,
                        })?;
                        Ok(Err(atomics::CasError::CasFailed(fresh)))
                    }
                    Err(e) => Ok(Err(atomics::CasError::StoreError(wasi_error(e)))),
                }
            }
            Err(e) => Ok(Err(atomics::CasError::StoreError(wasi_error(e)))),
        }
    }
}

impl atomics::HostCas for KeyValueView<'_> {
    async fn new(
        &mut self,
        b: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<CasHandle>, wasi_kv::Error>> {
        let store = self.bucket(&b)?;
        match store.get_versioned(&key) {
            Ok(v) => Ok(Ok(self.table.push(CasHandle {
                store,
                key,
                version: v.version,
                value: v.value,
            })?)),
            Err(e) => Ok(Err(wasi_error(e))),
        }
    }

    async fn current(
        &mut self,
        cas: Resource<CasHandle>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_kv::Error>> {
        Ok(Ok(self.table.get(&cas)?.value.clone()))
    }

    async fn drop(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<()> {
        // A ticket a swap consumed never comes here: this one was read
        // and given up unwritten.
        let ticket = self.table.delete(cas)?;
        ticket.store.read_given_up(&ticket.key);
        Ok(())
    }
}

// ---- wasi:keyvalue/batch@0.2.0-draft2 ----

/// Most keys one batch call may name.
const MAX_BATCH: usize = 1000;

fn batch_too_large(n: usize) -> Option<wasi_kv::Error> {
    (n > MAX_BATCH).then(|| {
        wasi_kv::Error::Other(format!(
            "a batch may name at most {MAX_BATCH} keys, got {n}"
        ))
    })
}

impl batch::Host for KeyValueView<'_> {
    async fn get_many(
        &mut self,
        b: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<(String, Option<Vec<u8>>)>, wasi_kv::Error>> {
        if let Some(e) = batch_too_large(keys.len()) {
            return Ok(Err(e));
        }
        let store = self.bucket(&b)?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            match store.get(&k) {
                Ok(v) => out.push((k, v)),
                Err(e) => return Ok(Err(wasi_error(e))),
            }
        }
        Ok(Ok(out))
    }

    async fn set_many(
        &mut self,
        b: Resource<BucketHandle>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        if let Some(e) = batch_too_large(key_values.len()) {
            return Ok(Err(e));
        }
        let store = self.bucket(&b)?;
        for (k, v) in key_values {
            if let Err(e) = store.set(&k, v) {
                return Ok(Err(wasi_error(e)));
            }
        }
        Ok(Ok(()))
    }

    async fn delete_many(
        &mut self,
        b: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        if let Some(e) = batch_too_large(keys.len()) {
            return Ok(Err(e));
        }
        let store = self.bucket(&b)?;
        for k in keys {
            if let Err(e) = store.delete(&k) {
                return Ok(Err(wasi_error(e)));
            }
        }
        Ok(Ok(()))
    }
}
