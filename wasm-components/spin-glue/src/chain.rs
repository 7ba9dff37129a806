//! A middleware's two hand-offs: its request to the next layer, and that
//! layer's response back to the client, with the bodies moved as streams.
//!
//! spin-sdk 7's `next` and `IntoResponse` copy every body chunk through
//! the guest: each conversion spawns a loop that reads the incoming stream
//! and writes a new one (their shortcut for an untouched body looks for
//! the body type on the whole message, so it never applies). Here the
//! body stream, its trailers and the transmission result are handed on
//! untouched, so a layer costs its header work and nothing per byte.

use spin_sdk::http::{Request, Response};
use spin_sdk::wasip3::http::types::{self, ErrorCode, Fields};
use spin_sdk::wasip3::http_compat::IncomingMessage;
use spin_sdk::wasip3::wit_bindgen::FutureReader;

/// Sends `req` (with its headers as they are now) to the next layer.
pub async fn next(req: Request) -> Result<Response, ErrorCode> {
    let (parts, mut body) = req.into_parts();
    let Some(original) = body.take_unstarted() else {
        // Already read from: only the SDK's copy can pass on the rest.
        return spin_sdk::http::next(http::Request::from_parts(parts, body)).await;
    };
    let request = rebuild_request(original, &parts.headers)?;
    spin_sdk::http::next(request).await
}

/// The response to hand back: `resp`'s status and current headers around
/// its original body.
pub fn respond(resp: Response) -> Result<types::Response, ErrorCode> {
    let (parts, mut body) = resp.into_parts();
    let Some(original) = body.take_unstarted() else {
        return spin_sdk::http::IntoResponse::into_response(http::Response::from_parts(
            parts, body,
        ));
    };
    let headers = fields(&parts.headers)?;
    let (contents, trailers, result) = take_body(original);
    let (response, transmitted) = types::Response::new(headers, Some(contents), trailers);
    response
        .set_status_code(parts.status.as_u16())
        .map_err(|()| ErrorCode::InternalError(Some("invalid status".into())))?;
    relay(transmitted, result);
    Ok(response)
}

fn rebuild_request(
    original: types::Request,
    headers: &http::HeaderMap,
) -> Result<types::Request, ErrorCode> {
    let invalid = |what: &str| ErrorCode::InternalError(Some(format!("invalid {what}")));
    let method = original.get_method();
    let scheme = original.get_scheme();
    let authority = original.get_authority();
    let path = original.get_path_with_query();
    let options = original.get_options();
    let fields = fields(headers)?;
    let (contents, trailers, result) = take_body(original);
    let (request, transmitted) = types::Request::new(fields, Some(contents), trailers, options);
    request
        .set_method(&method)
        .map_err(|()| invalid("method"))?;
    request
        .set_scheme(scheme.as_ref())
        .map_err(|()| invalid("scheme"))?;
    request
        .set_authority(authority.as_deref())
        .map_err(|()| invalid("authority"))?;
    request
        .set_path_with_query(path.as_deref())
        .map_err(|()| invalid("path"))?;
    relay(transmitted, result);
    Ok(request)
}

type Trailers = FutureReader<Result<Option<types::Trailers>, ErrorCode>>;
type Sent = spin_sdk::wasip3::wit_bindgen::FutureWriter<Result<(), ErrorCode>>;

/// The message's body stream and trailers, and where to report how
/// sending them on went.
fn take_body<M: IncomingMessage>(
    message: M,
) -> (
    spin_sdk::wasip3::wit_bindgen::StreamReader<u8>,
    Trailers,
    Sent,
) {
    let (result, reader) = spin_sdk::wasip3::wit_future::new(|| Ok(()));
    let (contents, trailers) = message.consume_body(reader);
    (contents, trailers, result)
}

/// Reports the new message's transmission result to whoever gave us the
/// body, as if we had sent it ourselves.
fn relay(transmitted: FutureReader<Result<(), ErrorCode>>, result: Sent) {
    spin_sdk::wasip3::wit_bindgen::spawn(async move {
        let outcome = transmitted.await;
        let _ = result.write(outcome).await;
    });
}

/// Header fields for a new message. `host` is left out: the authority
/// travels separately, and hosts refuse it as a field.
fn fields(headers: &http::HeaderMap) -> Result<Fields, ErrorCode> {
    let list: Vec<(String, Vec<u8>)> = headers
        .iter()
        .filter(|(name, _)| *name != http::header::HOST)
        .map(|(name, value)| (name.as_str().to_string(), value.as_bytes().to_vec()))
        .collect();
    Fields::from_list(&list).map_err(|e| ErrorCode::InternalError(Some(format!("{e:?}"))))
}
