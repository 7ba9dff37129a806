//! Variables and secrets, under the names `spin.toml` declares (one set of
//! names on every host), parsed again only when their text changes.

use std::cell::RefCell;
use std::rc::Rc;
use std::thread::LocalKey;
use worker::Env;

/// A value parsed from a variable, kept with the text it came from.
pub type Parsed<T> = RefCell<Option<(String, Rc<T>)>>;

/// The variable's (or secret's) value; `None` when unset or empty.
pub fn get(env: &Env, name: &str) -> Option<String> {
    // Both are strings on the Workers `env`; a secret just is not shown.
    env.secret(name)
        .map(|s| s.to_string())
        .or_else(|_| env.var(name).map(|v| v.to_string()))
        .ok()
        .filter(|v| !v.is_empty())
}

/// Reads `name` and parses it with `parse` unless `cache` holds that text.
pub fn parsed<T>(
    env: &Env,
    cache: &'static LocalKey<Parsed<T>>,
    name: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Option<Rc<T>> {
    let raw = get(env, name)?;
    if let Some(hit) = cache.with_borrow(|c| {
        c.as_ref()
            .filter(|(text, _)| *text == raw)
            .map(|(_, v)| v.clone())
    }) {
        return Some(hit);
    }
    let value = Rc::new(parse(&raw)?);
    cache.with_borrow_mut(|c| *c = Some((raw, value.clone())));
    Some(value)
}

/// The origin's base URL, without a trailing slash.
pub fn origin_url(env: &Env) -> Option<String> {
    get(env, "origin_url")
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .map(|u| u.trim_end_matches('/').to_string())
}

/// Seconds since the epoch, as the Workers clock has them (it moves on
/// I/O, which is all a rule about token lifetimes needs).
pub fn now_secs() -> i64 {
    (worker::Date::now().as_millis() / 1000) as i64
}

pub fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}
