//! A response as plain data; components turn it into their host's type.

use problem::Problem;

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A problem response. Nothing about accounts is cacheable.
    pub fn problem(p: Problem) -> Response {
        Response {
            status: p.status,
            headers: p.header_fields(),
            body: p.to_json(),
        }
    }

    /// A private JSON response (`no-store`: it carries tokens or personal
    /// data).
    pub fn json(status: u16, body: &serde_json::Value) -> Response {
        Response {
            status,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("cache-control".into(), "no-store".into()),
            ],
            body: serde_json::to_vec(body).expect("json serialises"),
        }
    }

    pub fn no_content() -> Response {
        Response {
            status: 204,
            headers: vec![("cache-control".into(), "no-store".into())],
            body: Vec::new(),
        }
    }

    /// Sets field `name`, replacing any value it had: every field set
    /// here (`Content-Type`, `Cache-Control`, `Location`, ...) takes one.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
