//! The deny adapter: every capability a layer may import, answering as a
//! host does for a component granted none of it.
//!
//! When the host composes a route's middleware and component into one
//! component, a layer that does not inherit, say, `key_value_stores` has
//! its key-value imports wired here instead of to the host. Opening a
//! store, database or bucket fails with `access-denied`, a variable is
//! undefined and an outbound request is `HTTP-request-denied`: errors the
//! layer can handle, never a trap. No store, connection or bucket is ever
//! handed out, so the methods on them cannot be reached.

// The generated bindings export functions by symbol name.
#![allow(unsafe_code)]

mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

use bindings::exports::spin::key_value::key_value as spin_kv;
use bindings::exports::spin::sqlite::sqlite;
use bindings::exports::spin::variables::variables;
use bindings::exports::wasi::http::client;
use bindings::exports::wasi::keyvalue::{atomics, batch, store};
use spin_sdk::wasip3::http::types::{ErrorCode, Request, Response};
use spin_sdk::wit_bindgen::{FutureReader, StreamReader};

struct Deny;

/// The handle types: never constructed, since every way to get one fails.
enum Never {}

bindings::export!(Deny with_types_in bindings);

impl sqlite::Guest for Deny {
    type Connection = Never;
}

impl sqlite::GuestConnection for Never {
    fn open(_database: String) -> Result<sqlite::Connection, sqlite::Error> {
        Err(sqlite::Error::AccessDenied)
    }
    async fn open_async(_database: String) -> Result<sqlite::Connection, sqlite::Error> {
        Err(sqlite::Error::AccessDenied)
    }
    fn execute(
        &self,
        _statement: String,
        _parameters: Vec<sqlite::Value>,
    ) -> Result<sqlite::QueryResult, sqlite::Error> {
        match *self {}
    }
    async fn execute_async(
        &self,
        _statement: String,
        _parameters: Vec<sqlite::Value>,
    ) -> Result<
        (
            Vec<String>,
            StreamReader<sqlite::RowResult>,
            FutureReader<Result<(), sqlite::Error>>,
        ),
        sqlite::Error,
    > {
        match *self {}
    }
    fn last_insert_rowid(&self) -> i64 {
        match *self {}
    }
    async fn last_insert_rowid_async(&self) -> i64 {
        match *self {}
    }
    fn changes(&self) -> u64 {
        match *self {}
    }
    async fn changes_async(&self) -> u64 {
        match *self {}
    }
}

impl spin_kv::Guest for Deny {
    type Store = Never;
}

impl spin_kv::GuestStore for Never {
    async fn open(_label: String) -> Result<spin_kv::Store, spin_kv::Error> {
        Err(spin_kv::Error::AccessDenied)
    }
    async fn get(&self, _key: String) -> Result<Option<Vec<u8>>, spin_kv::Error> {
        match *self {}
    }
    async fn set(&self, _key: String, _value: Vec<u8>) -> Result<(), spin_kv::Error> {
        match *self {}
    }
    async fn delete(&self, _key: String) -> Result<(), spin_kv::Error> {
        match *self {}
    }
    async fn exists(&self, _key: String) -> Result<bool, spin_kv::Error> {
        match *self {}
    }
    async fn get_keys(
        &self,
    ) -> (
        StreamReader<String>,
        FutureReader<Result<(), spin_kv::Error>>,
    ) {
        match *self {}
    }
}

impl store::Guest for Deny {
    type Bucket = Never;
    fn open(_identifier: String) -> Result<store::Bucket, store::Error> {
        Err(store::Error::AccessDenied)
    }
}

impl store::GuestBucket for Never {
    fn get(&self, _key: String) -> Result<Option<Vec<u8>>, store::Error> {
        match *self {}
    }
    fn set(&self, _key: String, _value: Vec<u8>) -> Result<(), store::Error> {
        match *self {}
    }
    fn delete(&self, _key: String) -> Result<(), store::Error> {
        match *self {}
    }
    fn exists(&self, _key: String) -> Result<bool, store::Error> {
        match *self {}
    }
    fn list_keys(&self, _cursor: Option<String>) -> Result<store::KeyResponse, store::Error> {
        match *self {}
    }
}

impl atomics::Guest for Deny {
    type Cas = Never;
    fn increment(
        bucket: store::BucketBorrow<'_>,
        _key: String,
        _delta: i64,
    ) -> Result<i64, store::Error> {
        match *bucket.get::<Never>() {}
    }
    fn swap(cas: atomics::Cas, _value: Vec<u8>) -> Result<(), atomics::CasError> {
        match *cas.get::<Never>() {}
    }
}

impl atomics::GuestCas for Never {
    fn new(bucket: store::BucketBorrow<'_>, _key: String) -> Result<atomics::Cas, store::Error> {
        match *bucket.get::<Never>() {}
    }
    fn current(&self) -> Result<Option<Vec<u8>>, store::Error> {
        match *self {}
    }
}

impl batch::Guest for Deny {
    fn get_many(
        bucket: store::BucketBorrow<'_>,
        _keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, store::Error> {
        match *bucket.get::<Never>() {}
    }
    fn set_many(
        bucket: store::BucketBorrow<'_>,
        _key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), store::Error> {
        match *bucket.get::<Never>() {}
    }
    fn delete_many(
        bucket: store::BucketBorrow<'_>,
        _keys: Vec<String>,
    ) -> Result<(), store::Error> {
        match *bucket.get::<Never>() {}
    }
}

impl variables::Guest for Deny {
    async fn get(name: String) -> Result<String, variables::Error> {
        Err(variables::Error::Undefined(format!(
            "no variable {name:?}: this layer does not inherit the component's variables"
        )))
    }
}

impl client::Guest for Deny {
    async fn send(request: Request) -> Result<Response, ErrorCode> {
        drop(request);
        Err(ErrorCode::HttpRequestDenied)
    }
}
