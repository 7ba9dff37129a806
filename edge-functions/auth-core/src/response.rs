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
        let mut headers = vec![
            ("content-type".into(), Problem::CONTENT_TYPE.into()),
            ("cache-control".into(), "no-store".into()),
        ];
        if let Some(allow) = p.extensions.get("allow").and_then(|v| v.as_str()) {
            headers.push(("allow".into(), allow.into()));
        }
        if let Some(secs) = p.extensions.get("retry_after").and_then(|v| v.as_i64()) {
            headers.push(("retry-after".into(), secs.to_string()));
        }
        Response {
            status: p.status,
            headers,
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

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
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
