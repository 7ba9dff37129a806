//! The OpenAPI document (`docs/openapi.json`) as an oracle: does a live
//! answer have a documented status and the documented shape?

use crate::{Reply, root};
use serde_json::Value;

/// The parsed document.
pub fn doc() -> Value {
    let text =
        std::fs::read_to_string(root().join("docs/openapi.json")).expect("docs/openapi.json");
    serde_json::from_str(&text).expect("docs/openapi.json is JSON")
}

/// Does `v` have the shape `schema` describes? Follows `$ref`s and checks
/// `anyOf`, `type`, `const`, `enum`, `required`, `properties`, `items` and
/// a closed `additionalProperties`: what a client relies on.
pub fn conforms(v: &Value, schema: &Value, doc: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let target = r
            .trim_start_matches("#/")
            .split('/')
            .fold(doc, |d, k| &d[k]);
        assert!(!target.is_null(), "dangling $ref {r}");
        return conforms(v, target, doc, at);
    }
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array) {
        let errors: Vec<String> = options
            .iter()
            .filter_map(|o| conforms(v, o, doc, at).err())
            .collect();
        if errors.len() == options.len() {
            return Err(errors.join("; and "));
        }
    }
    if let Some(c) = schema.get("const")
        && v != c
    {
        return Err(format!("{at}: {v} is not {c}"));
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(v)
    {
        return Err(format!("{at}: {v} is none of {options:?}"));
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let fits = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => false,
        });
        if !fits {
            return Err(format!("{at}: {v} is not of type {types:?}"));
        }
    }
    if let (Some(obj), Some(props)) = (
        v.as_object(),
        schema.get("properties").and_then(Value::as_object),
    ) {
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !obj.contains_key(name) {
                return Err(format!("{at}: `{name}` is missing"));
            }
        }
        for (name, s) in props {
            if let Some(x) = obj.get(name) {
                conforms(x, s, doc, &format!("{at}.{name}"))?;
            }
        }
        if schema.get("additionalProperties") == Some(&Value::Bool(false))
            && let Some(extra) = obj.keys().find(|k| !props.contains_key(*k))
        {
            return Err(format!("{at}: `{extra}` is not documented"));
        }
    }
    if let (Some(items), Some(s)) = (v.as_array(), schema.get("items")) {
        for (i, x) in items.iter().enumerate() {
            conforms(x, s, doc, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// Asserts that `reply` to `method path` has a documented status and
/// content type and, for a JSON body, the documented shape.
pub fn documented(doc: &Value, method: &str, path: &str, reply: &Reply) {
    let op = &doc["paths"][path][method.to_ascii_lowercase()];
    assert!(op.is_object(), "{method} {path} is not documented");
    let mut response = &op["responses"][reply.status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path}: status {} is not documented: {}",
        reply.status,
        reply.text()
    );
    if let Some(r) = response.get("$ref").and_then(Value::as_str) {
        response = r
            .trim_start_matches("#/")
            .split('/')
            .fold(doc, |d, k| &d[k]);
    }
    let Some(ctype) = reply.header("content-type") else {
        return;
    };
    let ctype = ctype.split(';').next().unwrap().trim();
    let schema = &response["content"][ctype]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path}: {} as {ctype} is not documented",
        reply.status
    );
    let json = ctype == "application/json" || ctype.ends_with("+json");
    if method != "HEAD"
        && json
        && let Err(e) = conforms(&reply.json(), schema, doc, "body")
    {
        let text = reply.text();
        let end = text.char_indices().nth(600).map_or(text.len(), |(i, _)| i);
        panic!("{method} {path} ({}): {e}\n{}", reply.status, &text[..end]);
    }
}
