//! The storefront's URLs and what each page reads.
//!
//! | URL | page | catalog reads |
//! |---|---|---|
//! | `/` | home: departments, newest products | categories, products |
//! | `/c/{slug}` | a category, with filters and pages | categories, products |
//! | `/search?q=` | search results (all products without `q`) | categories, products |
//! | `/p/{id}` | a product with its gallery | categories, the product |
//! | `/cart` | the cart, kept in the browser | none |

use crate::filters::Filters;
use crate::{CatalogRead, Rendered, Response, html};
use problem::Problem;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    Home,
    Category { slug: String, filters: Filters },
    Search { filters: Filters },
    Product { id: i64 },
    Cart,
}

/// Newest products on the home page.
const HOME_PRODUCTS: u32 = 12;
const MAX_SLUG: usize = 64;

/// The page at `path`. `Err` is a 404, 405 or 400 the client can act on.
pub fn route(method: &str, path: &str, query: &str) -> Result<Page, Problem> {
    let page = match path {
        "/" => Page::Home,
        "/cart" => Page::Cart,
        "/search" => Page::Search {
            filters: Filters::parse(query)?,
        },
        _ => {
            let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            match segments.as_slice() {
                ["c", slug] if is_slug(slug) => Page::Category {
                    slug: (*slug).to_string(),
                    filters: Filters::parse(query)?,
                },
                ["p", id] => Page::Product {
                    id: id
                        .parse::<i64>()
                        .ok()
                        .filter(|id| *id > 0)
                        .ok_or_else(|| no_page(path))?,
                },
                _ => return Err(no_page(path)),
            }
        }
    };
    if !matches!(method, "GET" | "HEAD") {
        return Err(Problem::method_not_allowed(method, &["GET", "HEAD"]));
    }
    Ok(page)
}

fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SLUG
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn no_page(path: &str) -> Problem {
    Problem::not_found(format!(
        "there is no page at {path}; the home page lists every department"
    ))
}

fn read(path: &str, query: String) -> CatalogRead {
    CatalogRead {
        path: path.to_string(),
        query,
    }
}

const CATEGORIES: &str = "/api/v1/categories";
/// Menus need names, not counts (which scan every product).
const NAVIGATION: &str = "counts=false";
const PRODUCTS: &str = "/api/v1/products";

impl Page {
    pub(crate) fn catalog_reads(&self) -> Vec<CatalogRead> {
        match self {
            Page::Home => vec![
                read(CATEGORIES, NAVIGATION.to_string()),
                read(PRODUCTS, format!("sort=newest&limit={HOME_PRODUCTS}")),
            ],
            Page::Category { slug, filters } => vec![
                read(CATEGORIES, NAVIGATION.to_string()),
                read(PRODUCTS, filters.api_query(Some(slug))),
            ],
            Page::Search { filters } => vec![
                read(CATEGORIES, NAVIGATION.to_string()),
                read(PRODUCTS, filters.api_query(None)),
            ],
            Page::Product { id } => vec![
                read(CATEGORIES, NAVIGATION.to_string()),
                read(&format!("{PRODUCTS}/{id}"), String::new()),
            ],
            Page::Cart => vec![],
        }
    }

    pub(crate) fn render(&self, answers: &[Response]) -> Result<Rendered, Problem> {
        let mut docs = Vec::with_capacity(answers.len());
        let mut tags: Vec<String> = Vec::new();
        for answer in answers {
            docs.push(answered(answer)?);
            for tag in answer
                .header("cache-tag")
                .unwrap_or_default()
                .split(',')
                .filter(|t| !t.is_empty())
            {
                if !tags.iter().any(|t| t == tag) {
                    tags.push(tag.to_string());
                }
            }
        }
        let categories = docs.first().map(|d| &d["items"]);
        let (body, cache_control) = match self {
            Page::Home => (
                html::home(categories.unwrap_or(&Value::Null), &docs[1]),
                catalog_core::LIST_CACHE_CONTROL,
            ),
            Page::Category { slug, filters } => {
                let categories = categories.unwrap_or(&Value::Null);
                let Some(category) = find_category(categories, slug) else {
                    return Err(Problem::not_found(format!(
                        "there is no category {slug:?}; the home page lists every department"
                    )));
                };
                (
                    html::category(categories, category, filters, &docs[1]),
                    catalog_core::LIST_CACHE_CONTROL,
                )
            }
            Page::Search { filters } => (
                html::search(categories.unwrap_or(&Value::Null), filters, &docs[1]),
                catalog_core::LIST_CACHE_CONTROL,
            ),
            Page::Product { .. } => (
                html::product(categories.unwrap_or(&Value::Null), &docs[1]),
                catalog_core::ITEM_CACHE_CONTROL,
            ),
            Page::Cart => (html::cart(), "public, max-age=300"),
        };
        Ok(Rendered {
            body: body.into_string(),
            cache_control,
            tags,
        })
    }
}

fn find_category<'a>(categories: &'a Value, slug: &str) -> Option<&'a Value> {
    categories
        .as_array()?
        .iter()
        .find(|c| c["slug"].as_str() == Some(slug))
}

/// The JSON of a 200 answer, or the page's error from any other.
fn answered(answer: &Response) -> Result<Value, Problem> {
    let doc: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    if answer.status == 200 {
        return Ok(doc);
    }
    // The API names its own parameters; a page names its URL's.
    if doc["parameter"].as_str() == Some("cursor") {
        return Err(Problem::invalid_parameter(
            "after",
            "this page link no longer matches its filters; start again from the first page",
        ));
    }
    let mut p = Problem::new(
        answer.status,
        "catalog",
        doc["title"].as_str().unwrap_or("Catalog error"),
        doc["detail"]
            .as_str()
            .unwrap_or("the catalog could not answer; try again shortly"),
    );
    if let Some(t) = doc["type"].as_str() {
        p.type_uri = t.to_string();
    }
    if let Some(name) = doc["parameter"].as_str() {
        p = p.with("parameter", name);
    }
    Err(p)
}
