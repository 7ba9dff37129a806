//! Answers as the pure crates give them (status, fields, body), and their
//! way into a Workers `Response`.

use problem::Problem;

/// A platform-neutral answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Reply {
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A problem (`application/problem+json`), never stored by a cache;
    /// a 401 carries the Bearer challenge (RFC 6750 section 3).
    pub fn problem(p: Problem) -> Reply {
        let mut headers = p.header_fields();
        if p.status == 401 {
            headers.push(("www-authenticate".into(), "Bearer".into()));
        }
        Reply::new(p.status, headers, p.to_json())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Sets `name` to `value`, replacing any earlier value.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.into()));
    }

    pub fn into_worker(self) -> worker::Result<worker::Response> {
        let headers = worker::Headers::new();
        for (name, value) in &self.headers {
            headers.append(name, value)?;
        }
        // 204 and 304 have no body; a Response with one would not build.
        let resp = if matches!(self.status, 204 | 304) {
            worker::Response::empty()?
        } else {
            worker::Response::from_bytes(self.body)?
        };
        Ok(resp.with_status(self.status).with_headers(headers))
    }
}

impl From<catalog_core::Response> for Reply {
    fn from(r: catalog_core::Response) -> Reply {
        Reply::new(r.status, r.headers, r.body)
    }
}

impl From<auth_core::Response> for Reply {
    fn from(r: auth_core::Response) -> Reply {
        Reply::new(r.status, r.headers, r.body)
    }
}

/// The request fields the chain reads, copied once out of JavaScript.
#[derive(Debug, Clone, Default)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The fields of `req`, with the client's own `Accept-Encoding`: the
    /// runtime shows a Worker `br, gzip` whatever the client sent (it
    /// re-encodes the answer for the client), and keeps the original in
    /// `request.cf.clientAcceptEncoding`, empty when the client sent none.
    pub fn of(req: &worker::Request) -> Fields {
        let mut fields: Vec<(String, String)> = req.headers().entries().collect();
        if let Some(original) = client_accept_encoding(req) {
            fields.retain(|(n, _)| !n.eq_ignore_ascii_case("accept-encoding"));
            if !original.is_empty() {
                fields.push(("accept-encoding".into(), original));
            }
        }
        Fields(fields)
    }

    /// These fields with `name` set to `value` (any earlier one removed).
    pub fn with(&self, name: &str, value: String) -> Fields {
        let mut fields: Vec<(String, String)> = self
            .0
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
            .cloned()
            .collect();
        fields.push((name.to_string(), value));
        Fields(fields)
    }

    /// The value of `name` (the Fetch API joins repeated fields with `, `).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn client_accept_encoding(req: &worker::Request) -> Option<String> {
    use worker::js_sys::Reflect;
    let cf = Reflect::get(req.inner(), &"cf".into()).ok()?;
    if cf.is_undefined() || cf.is_null() {
        return None;
    }
    Reflect::get(&cf, &"clientAcceptEncoding".into())
        .ok()?
        .as_string()
}
