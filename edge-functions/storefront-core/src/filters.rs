//! A listing's filters as they appear in the page URL (`q`, `sort`, `min`,
//! `max`, `after`), and their translation into the catalog API's query.
//!
//! Page URLs are forgiving where the API is strict, because people and
//! forms write them: empty fields (an unfilled form input) are absent,
//! parameters the page does not use (`utm_source`, ...) are ignored, and
//! prices are decimal amounts rather than cents.

use crate::money;
use problem::Problem;

/// Products per listing page.
pub const PAGE_SIZE: u32 = 24;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub q: Option<String>,
    /// One of the API's sorts; `None` is the default for the page.
    pub sort: Option<&'static str>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub after: Option<String>,
}

const SORTS: &[&str] = &["relevance", "price_asc", "price_desc", "newest"];

impl Filters {
    pub fn parse(query: &str) -> Result<Filters, Problem> {
        let mut f = Filters::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            match &*key {
                "q" => f.q = Some(value.to_string()),
                "sort" => {
                    f.sort = Some(SORTS.iter().copied().find(|s| *s == value).ok_or_else(
                        || {
                            Problem::invalid_parameter(
                                "sort",
                                format!(
                                    "sort must be one of relevance, price_asc, price_desc or newest, not {value:?}"
                                ),
                            )
                        },
                    )?)
                }
                "min" | "max" => {
                    let cents = money::parse(value).ok_or_else(|| {
                        Problem::invalid_parameter(
                            &key,
                            format!(
                                "the {} price must be an amount such as 12 or 12.50, not {value:?}",
                                if key == "min" { "lowest" } else { "highest" }
                            ),
                        )
                    })?;
                    if key == "min" {
                        f.min = Some(cents);
                    } else {
                        f.max = Some(cents);
                    }
                }
                "after" => f.after = Some(value.to_string()),
                _ => {}
            }
        }
        // Relevance ranks search results; without a search it means nothing,
        // and a form's default should not be an error.
        if f.q.is_none() && f.sort == Some("relevance") {
            f.sort = None;
        }
        Ok(f)
    }

    /// The sort a listing uses: relevance for a search, else newest first.
    pub fn effective_sort(&self) -> &'static str {
        self.sort.unwrap_or(if self.q.is_some() {
            "relevance"
        } else {
            "newest"
        })
    }

    /// The catalog API query for one page of this listing.
    pub fn api_query(&self, category: Option<&str>) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(c) = category {
            q.append_pair("category", c);
        }
        if let Some(text) = &self.q {
            q.append_pair("q", text);
        }
        q.append_pair("sort", self.effective_sort());
        if let Some(v) = self.min {
            q.append_pair("min_price", &v.to_string());
        }
        if let Some(v) = self.max {
            q.append_pair("max_price", &v.to_string());
        }
        if let Some(c) = &self.after {
            q.append_pair("cursor", c);
        }
        q.append_pair("limit", &PAGE_SIZE.to_string());
        q.finish()
    }

    /// The page URL of this listing at `base`, continuing after `cursor`.
    pub fn page_url(&self, base: &str, cursor: Option<&str>) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(text) = &self.q {
            q.append_pair("q", text);
        }
        if let Some(s) = self.sort {
            q.append_pair("sort", s);
        }
        if let Some(v) = self.min {
            q.append_pair("min", &money::field(v));
        }
        if let Some(v) = self.max {
            q.append_pair("max", &money::field(v));
        }
        if let Some(c) = cursor {
            q.append_pair("after", c);
        }
        let q = q.finish();
        if q.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{q}")
        }
    }
}
