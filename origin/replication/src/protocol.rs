//! libSQL's v2 sync protocol over HTTP, as the `libsql` crate's embedded
//! replica speaks it:
//!
//! - `GET /info` -> `{"current_generation": N}` (we add `current_frame`
//!   and `oldest_generation`, which the client ignores);
//! - `GET /export/{N}` -> the database file at the start of generation N;
//! - `GET /sync/{N}/{start}/{end}` -> frames `start..end` of generation N,
//!   concatenated. With nothing at `start` the answer is 400 with
//!   `{"generation": current}`: the client stops if it is in the current
//!   generation, else checkpoints and moves to the next.
//!
//! A generation that is no longer kept is 410 Gone, which the client
//! reports as an error: the replica must bootstrap again.
//!
//! Ours alone: `GET /push/{N}/{start}` holds a response open and writes
//! frames into it as they are shipped (see [`crate::push`]).

use crate::primary::{Primary, Pull};
use problem::Problem;

/// A replication request, parsed from the path after the database name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Info,
    Export {
        generation: u32,
    },
    Sync {
        generation: u32,
        start: u32,
        end: u32,
    },
    Push {
        generation: u32,
        start: u32,
    },
}

impl Request {
    /// `None` if `endpoint` is not a replication endpoint.
    pub fn parse(endpoint: &str) -> Option<Request> {
        let mut parts = endpoint.split('/');
        let request = match parts.next()? {
            "info" => Request::Info,
            "export" => Request::Export {
                generation: parts.next()?.parse().ok()?,
            },
            "sync" => Request::Sync {
                generation: parts.next()?.parse().ok()?,
                start: parts.next()?.parse().ok()?,
                end: parts.next()?.parse().ok()?,
            },
            "push" => Request::Push {
                generation: parts.next()?.parse().ok()?,
                start: parts.next()?.parse().ok()?,
            },
            _ => return None,
        };
        parts.next().is_none().then_some(request)
    }
}

/// What to send back.
#[derive(Debug)]
pub enum Reply {
    Json(serde_json::Value),
    Frames(Vec<u8>),
    /// The base file, to stream.
    File(std::fs::File),
    Problem(Problem),
}

pub fn answer(primary: &Primary, request: Request) -> Reply {
    let io = |e: std::io::Error| {
        tracing::error!(db = primary.name(), error = %e, "reading replication history");
        Reply::Problem(Problem::new(
            500,
            "replication-io",
            "Replication history unreadable",
            "the origin could not read its replication history; retry shortly",
        ))
    };
    match request {
        Request::Info => {
            let p = primary.position();
            Reply::Json(serde_json::json!({
                "current_generation": p.generation,
                "current_frame": p.frame,
                "oldest_generation": primary.oldest_generation(),
            }))
        }
        Request::Export { generation } => match primary.export(generation) {
            Ok(Ok(file)) => Reply::File(file),
            Ok(Err(pull)) => Reply::Problem(refusal(pull)),
            Err(e) => io(e),
        },
        Request::Sync {
            generation,
            start,
            end,
        } => match primary.frames(generation, start, end) {
            Ok(Ok(frames)) => Reply::Frames(frames),
            Ok(Err(pull)) => Reply::Problem(refusal(pull)),
            Err(e) => io(e),
        },
        // A stream, served by the caller with `push::serve`.
        Request::Push { .. } => {
            Reply::Problem(Problem::bad_request("a push stream is not a single answer"))
        }
    }
}

pub fn refusal(pull: Pull) -> Problem {
    match pull {
        Pull::End { current } => Problem::new(
            400,
            "replication-end",
            "No more frames",
            "there are no frames at or after the start in this generation",
        )
        .with("generation", current),
        Pull::Gone {
            generation,
            current,
        } => Problem::new(
            410,
            "replication-generation-gone",
            "Generation not available",
            format!(
                "generation {generation} is not kept (current is {current}); \
                 bootstrap the replica again from /export/{current}"
            ),
        )
        .with("generation", current),
        Pull::BadRange => Problem::bad_request(
            "frame ranges are 1-based and end-exclusive: /sync/{generation}/{start}/{end} with 0 < start < end",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_endpoints_and_nothing_else() {
        assert_eq!(Request::parse("info"), Some(Request::Info));
        assert_eq!(
            Request::parse("export/3"),
            Some(Request::Export { generation: 3 })
        );
        assert_eq!(
            Request::parse("push/2/17"),
            Some(Request::Push {
                generation: 2,
                start: 17
            })
        );
        assert_eq!(
            Request::parse("sync/2/1/129"),
            Some(Request::Sync {
                generation: 2,
                start: 1,
                end: 129
            })
        );
        for bad in [
            "",
            "sync/1/2",
            "sync/1/2/3/4",
            "export/x",
            "info/1",
            "v3/pipeline",
            "sync/-1/1/2",
            "push/1",
            "push/1/2/3",
        ] {
            assert_eq!(Request::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn end_of_generation_names_the_current_generation() {
        let p = refusal(Pull::End { current: 7 });
        assert_eq!(p.status, 400);
        let body: serde_json::Value = serde_json::from_slice(&p.to_json()).unwrap();
        assert_eq!(body["generation"], 7);
        assert_eq!(
            refusal(Pull::Gone {
                generation: 1,
                current: 9
            })
            .status,
            410
        );
    }
}
