//! Spin variables, read on every request and parsed again only when their
//! text changes, so a rotated key is picked up as soon as the host has it
//! while an unchanged one costs a string comparison.

use std::cell::RefCell;
use std::rc::Rc;
use std::thread::LocalKey;

/// A value parsed from a variable, kept with the text it came from.
pub type Parsed<T> = RefCell<Option<(String, Rc<T>)>>;

/// The variable's value; `None` when unset or empty.
pub async fn get(name: &str) -> Option<String> {
    spin_sdk::variables::get(name)
        .await
        .ok()
        .filter(|v| !v.is_empty())
}

/// Reads `name` and parses it with `parse` unless `cache` holds that text.
/// `None` when the variable is unset or does not parse.
pub async fn parsed<T>(
    cache: &'static LocalKey<Parsed<T>>,
    name: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Option<Rc<T>> {
    let raw = get(name).await?;
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

/// Reads each of `names`; the ones unset or empty are left out.
pub async fn read(names: &[&'static str]) -> std::collections::BTreeMap<&'static str, String> {
    let mut values = std::collections::BTreeMap::new();
    for &name in names {
        if let Some(v) = get(name).await {
            values.insert(name, v);
        }
    }
    values
}
