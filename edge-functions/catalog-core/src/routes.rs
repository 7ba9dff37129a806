//! The catalog's routes under `/api/v1`.

use problem::Problem;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Products,
    Product(i64),
    Categories,
    Vendor(i64),
}

const READ_METHODS: &[&str] = &["GET", "HEAD"];

pub(crate) fn route(method: &str, path: &str) -> Result<Route, Problem> {
    let rest = path
        .strip_prefix("/api/v1/")
        .ok_or_else(|| unknown(path))?
        .trim_end_matches('/');
    let segments: Vec<&str> = rest.split('/').collect();
    let route = match segments.as_slice() {
        ["products"] => Route::Products,
        ["products", id] => Route::Product(parse_id("id", id)?),
        ["categories"] => Route::Categories,
        ["vendors", id] => Route::Vendor(parse_id("id", id)?),
        _ => return Err(unknown(path)),
    };
    if !READ_METHODS.contains(&method) {
        return Err(Problem::method_not_allowed(method, READ_METHODS));
    }
    Ok(route)
}

fn unknown(path: &str) -> Problem {
    Problem::not_found(format!("no catalog resource at {path}"))
}

fn parse_id(name: &str, raw: &str) -> Result<i64, Problem> {
    match raw.parse::<i64>() {
        Ok(id) if id > 0 && raw.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        _ => Err(Problem::invalid_parameter(
            name,
            format!("{name} must be a positive integer, got {raw:?}"),
        )),
    }
}
