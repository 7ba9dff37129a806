//! A middleware layer over the `wasi:http` resources themselves.
//!
//! spin-sdk's `http_service` and `next` turn each request and response
//! into `http` types and back, copying every header into the guest and
//! out again at each hand-off: in a composed chain that costs about a
//! whole request per layer. A layer built here takes the `request`
//! resource, reads only the fields it needs, and hands the same resource
//! to [`next`]; it rebuilds a message only to change its fields, and then
//! the fields are copied inside the host and the body is moved.
//!
//! A crate exports its layer with `spin_glue::export_layer!(Type)`, where
//! `Type` implements [`Middleware`].

// The generated bindings import and export functions by symbol name.
#![allow(unsafe_code)]

#[doc(hidden)]
pub mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

pub use bindings::exports::wasi::http::handler::Guest as Layer;
pub use spin_sdk::wasip3::http::types::{ErrorCode, Fields, Request, Response};

/// What a layer does with a request. Its fields come with it, fetched
/// from the host once for the layer and its span: in a traced build a
/// second `get-headers` per layer, to find `traceparent`, cost every
/// request about 5% of a cache hit, sampled or not.
#[allow(async_fn_in_trait)]
pub trait Middleware {
    async fn handle(request: Request, fields: RequestFields) -> Result<Response, ErrorCode>;
}

/// A request's fields, asked of the host when first needed and then kept
/// (a layer that reads none makes no call).
#[derive(Default)]
pub struct RequestFields(std::cell::OnceCell<Fields>);

impl RequestFields {
    /// The fields of `request`, the request this value came with.
    pub fn of(&self, request: &Request) -> &Fields {
        self.0.get_or_init(|| request.get_headers())
    }
}

/// Exports `$t` (a [`Middleware`]) as the component's `wasi:http/handler`.
#[cfg(not(feature = "otel"))]
#[macro_export]
macro_rules! export_layer {
    ($t:ident) => {
        #[doc(hidden)]
        struct __Layer;

        impl $crate::layer::Layer for __Layer {
            async fn handle(
                request: $crate::layer::Request,
            ) -> Result<$crate::layer::Response, $crate::layer::ErrorCode> {
                <$t as $crate::layer::Middleware>::handle(request, Default::default()).await
            }
        }

        $crate::layer::bindings::export!(__Layer with_types_in $crate::layer::bindings);
    };
}

/// Exports `$t` (a [`Middleware`]) as the component's `wasi:http/handler`,
/// each traced request it handles a span named after the crate
/// ([`crate::span::around`]).
#[cfg(feature = "otel")]
#[macro_export]
macro_rules! export_layer {
    ($t:ident) => {
        #[doc(hidden)]
        struct __SpannedLayer;

        impl $crate::layer::Layer for __SpannedLayer {
            async fn handle(
                request: $crate::layer::Request,
            ) -> Result<$crate::layer::Response, $crate::layer::ErrorCode> {
                $crate::span::around(
                    env!("CARGO_PKG_NAME"),
                    request,
                    <$t as $crate::layer::Middleware>::handle,
                )
                .await
            }
        }

        $crate::layer::bindings::export!(__SpannedLayer with_types_in $crate::layer::bindings);
    };
}

/// Hands `request` to the next layer, untouched.
pub async fn next(request: Request) -> Result<Response, ErrorCode> {
    bindings::wasi::http::handler::handle(request).await
}

/// The first value of field `name`, if it is UTF-8.
pub fn field(fields: &Fields, name: &str) -> Option<String> {
    fields
        .get(name)
        .into_iter()
        .next()
        .and_then(|v| String::from_utf8(v).ok())
}

/// Every value of field `name` that is UTF-8, in order.
pub fn fields_all(fields: &Fields, name: &str) -> Vec<String> {
    fields
        .get(name)
        .into_iter()
        .filter_map(|v| String::from_utf8(v).ok())
        .collect()
}

/// The request's path, without its query.
pub fn path(request: &Request) -> String {
    let target = request.get_path_with_query().unwrap_or_default();
    match target.split_once('?') {
        Some((path, _)) => path.to_string(),
        None => target,
    }
}

/// `response` with `set` fields replaced or added, its status and body
/// moved over.
pub fn with_fields(response: Response, set: &[(&str, String)]) -> Result<Response, ErrorCode> {
    let headers = edited(&response.get_headers(), &[], set)?;
    let status = response.get_status_code();
    let (result, reader) = spin_sdk::wasip3::wit_future::new(|| Ok(()));
    let (contents, trailers) = Response::consume_body(response, reader);
    let (rebuilt, transmitted) = Response::new(headers, Some(contents), trailers);
    rebuilt
        .set_status_code(status)
        .map_err(|()| internal("invalid status".into()))?;
    relay(transmitted, result);
    Ok(rebuilt)
}

/// `request` without the `delete` fields and with `set` replaced or
/// added; its method, target, options and body moved over.
pub fn with_request_fields(
    request: Request,
    delete: &[&str],
    set: &[(&str, String)],
) -> Result<Request, ErrorCode> {
    let headers = edited(&request.get_headers(), delete, set)?;
    let method = request.get_method();
    let target = request.get_path_with_query();
    let scheme = request.get_scheme();
    let authority = request.get_authority();
    let options = request.get_options();
    let (result, reader) = spin_sdk::wasip3::wit_future::new(|| Ok(()));
    let (contents, trailers) = Request::consume_body(request, reader);
    let (rebuilt, transmitted) = Request::new(headers, Some(contents), trailers, options);
    let refused = |what: &str| internal(format!("the request's {what} was refused"));
    rebuilt
        .set_method(&method)
        .map_err(|()| refused("method"))?;
    rebuilt
        .set_path_with_query(target.as_deref())
        .map_err(|()| refused("target"))?;
    rebuilt
        .set_scheme(scheme.as_ref())
        .map_err(|()| refused("scheme"))?;
    rebuilt
        .set_authority(authority.as_deref())
        .map_err(|()| refused("authority"))?;
    relay(transmitted, result);
    Ok(rebuilt)
}

fn internal(what: String) -> ErrorCode {
    ErrorCode::InternalError(Some(what))
}

/// A mutable copy of `fields` (made in the host) with `delete` removed and
/// `set` replaced or added.
fn edited(fields: &Fields, delete: &[&str], set: &[(&str, String)]) -> Result<Fields, ErrorCode> {
    let copy = fields.clone();
    for name in delete {
        copy.delete(name)
            .map_err(|e| internal(format!("field {name}: {e:?}")))?;
    }
    for (name, value) in set {
        copy.set(name, &[value.as_bytes().to_vec()])
            .map_err(|e| internal(format!("field {name}: {e:?}")))?;
    }
    Ok(copy)
}

/// Tells whoever gave us a body how sending it on went.
fn relay(
    transmitted: spin_sdk::wasip3::wit_bindgen::FutureReader<Result<(), ErrorCode>>,
    result: spin_sdk::wasip3::wit_bindgen::FutureWriter<Result<(), ErrorCode>>,
) {
    spin_sdk::wasip3::wit_bindgen::spawn(async move {
        let outcome = transmitted.await;
        let _ = result.write(outcome).await;
    });
}
