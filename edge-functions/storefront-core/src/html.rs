//! The storefront's HTML. maud escapes every interpolated value, so catalog
//! text (titles, descriptions, vendor names) can never become markup.
//!
//! Pages are plain documents: links and GET forms navigate and filter
//! without JavaScript; the one script (`app.js`) adds the cart.

use crate::filters::Filters;
use crate::money;
use maud::{DOCTYPE, Markup, html};
use problem::Problem;
use serde_json::Value;
use storefront_assets as assets;

pub(crate) const CONTENT_TYPE: &str = "text/html; charset=utf-8";

fn layout(title: &str, description: &str, search: Option<&str>, main: Markup) -> Markup {
    layout_with(title, description, search, main, None)
}

/// [`layout`] with one more script: pages that need more than the cart
/// (the vendor dashboard) load it; shoppers' pages do not pay for it.
fn layout_with(
    title: &str,
    description: &str,
    search: Option<&str>,
    main: Markup,
    script: Option<&str>,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · edgeshop" }
                meta name="description" content=(description);
                link rel="stylesheet" href=(assets::STYLE_CSS);
                link rel="icon" type="image/svg+xml" href=(assets::ICON_SVG);
                script src=(assets::APP_JS) defer {}
                @if let Some(src) = script { script src=(src) defer {} }
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.site {
                    a.brand href="/" {
                        img src=(assets::ICON_SVG) alt="" width="28" height="28";
                        "edgeshop"
                    }
                    form role="search" action="/search" method="get" {
                        label.vh for="site-search" { "Search products" }
                        input #site-search type="search" name="q" value=[search]
                            placeholder="Search products" maxlength="200";
                        button type="submit" { "Search" }
                    }
                    nav aria-label="Your shopping" {
                        a href="/account" { "Account" }
                        a href="/cart" { "Cart" span data-cart-count hidden {} }
                    }
                }
                main #main { (main) }
                footer.site {
                    p { "edgeshop: pages served from the edge location nearest you." }
                }
            }
        }
    }
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

/// A subcategory's own name, without its parent's (`Kitchen / Tea` -> `Tea`).
fn short_name(c: &Value) -> &str {
    let name = text(c, "name");
    name.rsplit(" / ").next().unwrap_or(name)
}

fn departments(categories: &Value, current: Option<&Value>) -> Markup {
    let current_id = current.and_then(|c| c["id"].as_i64());
    let current_parent = current.and_then(|c| c["parent_id"].as_i64());
    let top: Vec<&Value> = categories
        .as_array()
        .map(|a| a.iter().filter(|c| c["parent_id"].is_null()).collect())
        .unwrap_or_default();
    html! {
        nav.categories aria-label="Departments" {
            ul {
                @for c in top {
                    @let id = c["id"].as_i64();
                    li {
                        a href={ "/c/" (text(c, "slug")) }
                            aria-current=[(id == current_id || id == current_parent).then_some("page")] {
                            (text(c, "name"))
                        }
                    }
                }
            }
        }
    }
}

/// `src`, `srcset` and intrinsic size for the first image of `media`.
struct Picture {
    src: String,
    srcset: Option<String>,
    width: Option<i64>,
    height: Option<i64>,
}

fn picture(item: &Value) -> Option<Picture> {
    if let Some(path) = item.as_str() {
        return Some(Picture {
            src: path.to_string(),
            srcset: None,
            width: None,
            height: None,
        });
    }
    let variants = item["variants"].as_array()?;
    let chosen = variants
        .iter()
        .find(|v| v["width"].as_i64() == Some(800))
        .or(variants.last())?;
    let srcset = variants
        .iter()
        .map(|v| format!("{} {}w", text(v, "url"), v["width"].as_i64().unwrap_or(0)))
        .collect::<Vec<_>>()
        .join(", ");
    Some(Picture {
        src: text(chosen, "url").to_string(),
        srcset: Some(srcset),
        width: chosen["width"].as_i64(),
        height: chosen["height"].as_i64(),
    })
}

fn image(p: &Picture, alt: &str, sizes: &str, first: bool) -> Markup {
    html! {
        img src=(p.src) srcset=[p.srcset.as_deref()] sizes=[p.srcset.as_ref().map(|_| sizes)]
            width=[p.width] height=[p.height] alt=(alt)
            loading=[(!first).then_some("lazy")] fetchpriority=[first.then_some("high")]
            decoding="async";
    }
}

fn price(product: &Value) -> String {
    money::format(
        product["price"]["amount"].as_i64().unwrap_or(0),
        text(&product["price"], "currency"),
    )
}

fn stock(product: &Value) -> Markup {
    let n = product["stock"].as_i64().unwrap_or(0);
    html! {
        @if n <= 0 {
            p.stock-out { "Out of stock" }
        } @else if n <= 5 {
            p.stock-low { "Only " (n) " left" }
        } @else {
            p.stock-in { "In stock" }
        }
    }
}

fn grid(items: &Value) -> Markup {
    let items = items.as_array().map(Vec::as_slice).unwrap_or_default();
    html! {
        ul.grid {
            @for (i, p) in items.iter().enumerate() {
                li {
                    @match p["media"].get(0).and_then(picture) {
                        // The title link beside it names the product, so the
                        // picture is decoration to a screen reader.
                        Some(pic) => (image(&pic, "", "(min-width: 50rem) 25vw, 50vw", i < 4)),
                        None => div.placeholder {},
                    }
                    div.card {
                        h2 { a href={ "/p/" (p["id"]) } { (text(p, "title")) } }
                        p.price { (price(p)) }
                        p.muted { (text(&p["vendor"], "name")) }
                        (stock(p))
                    }
                }
            }
        }
    }
}

fn listing(base: &str, filters: &Filters, page: &Value, searchable: bool) -> Markup {
    let sorts: &[(&str, &str)] = if filters.q.is_some() {
        &[
            ("relevance", "Best match"),
            ("newest", "Newest"),
            ("price_asc", "Price: low to high"),
            ("price_desc", "Price: high to low"),
        ]
    } else {
        &[
            ("newest", "Newest"),
            ("price_asc", "Price: low to high"),
            ("price_desc", "Price: high to low"),
        ]
    };
    let current = filters.effective_sort();
    let empty = page["items"].as_array().is_none_or(Vec::is_empty);
    let next = page["next_cursor"].as_str();
    html! {
        form.filters method="get" action=(base) aria-label="Filter and sort" {
            @if searchable {
                label { "Search for" input type="search" name="q" value=[filters.q.as_deref()] maxlength="200"; }
            }
            label { "Sort by"
                select name="sort" {
                    @for (value, label) in sorts {
                        option value=(value) selected[*value == current] { (label) }
                    }
                }
            }
            label { "Lowest price"
                input name="min" inputmode="decimal" value=[filters.min.map(money::field)] placeholder="0";
            }
            label { "Highest price"
                input name="max" inputmode="decimal" value=[filters.max.map(money::field)] placeholder="any";
            }
            button type="submit" { "Apply" }
        }
        @if empty {
            p.notice { "Nothing matches these filters. " a href=(base) { "Clear the filters" } }
        }
        (grid(&page["items"]))
        nav.pager aria-label="Pages" {
            @if filters.after.is_some() {
                a href=(Filters { after: None, ..filters.clone() }.page_url(base, None)) { "First page" }
            } @else { span {} }
            @if let Some(cursor) = next {
                a rel="next" href=(filters.page_url(base, Some(cursor))) { "Next page" }
            }
        }
    }
}

pub(crate) fn home(categories: &Value, newest: &Value) -> Markup {
    layout(
        "Independent makers, delivered",
        "Shop products from independent vendors, served from the edge.",
        None,
        html! {
            h1 { "Independent makers, delivered" }
            (departments(categories, None))
            h2 { "New this week" }
            (grid(&newest["items"]))
            p { a href="/search" { "See every product" } }
        },
    )
}

pub(crate) fn category(
    categories: &Value,
    category: &Value,
    filters: &Filters,
    page: &Value,
) -> Markup {
    let name = text(category, "name");
    let base = format!("/c/{}", text(category, "slug"));
    let id = category["id"].as_i64();
    let children: Vec<&Value> = categories
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| c["parent_id"].as_i64() == id && id.is_some())
                .collect()
        })
        .unwrap_or_default();
    layout(
        name,
        &format!("{name} from independent vendors."),
        None,
        html! {
            (departments(categories, Some(category)))
            h1 { (name) }
            @if !children.is_empty() {
                nav.categories aria-label={ "Within " (name) } {
                    ul { @for c in &children { li { a href={ "/c/" (text(c, "slug")) } { (short_name(c)) } } } }
                }
            }
            (listing(&base, filters, page, false))
        },
    )
}

pub(crate) fn search(categories: &Value, filters: &Filters, page: &Value) -> Markup {
    let heading = match &filters.q {
        Some(q) => format!("Results for “{q}”"),
        None => "Every product".to_string(),
    };
    layout(
        &heading,
        "Search products from independent vendors.",
        filters.q.as_deref(),
        html! {
            (departments(categories, None))
            h1 { (heading) }
            (listing("/search", filters, page, true))
        },
    )
}

pub(crate) fn product(categories: &Value, product: &Value) -> Markup {
    let title = text(product, "title");
    let in_category = product["categories"].as_array().and_then(|ids| {
        ids.iter()
            .rev()
            .find_map(|id| categories.as_array()?.iter().find(|c| c["id"] == *id))
    });
    let pictures: Vec<Picture> = product["media"]
        .as_array()
        .map(|m| m.iter().filter_map(picture).collect())
        .unwrap_or_default();
    let stock = product["stock"].as_i64().unwrap_or(0);
    let description = text(product, "description");
    layout(
        title,
        description.get(..160).unwrap_or(description),
        None,
        html! {
            nav aria-label="Breadcrumb" {
                ol.crumbs {
                    li { a href="/" { "Home" } }
                    @if let Some(c) = in_category {
                        li { a href={ "/c/" (text(c, "slug")) } { (text(c, "name")) } }
                    }
                    li aria-current="page" { (title) }
                }
            }
            article.product {
                div.gallery {
                    @for (i, p) in pictures.iter().enumerate() {
                        (image(p, &format!("{title}, photo {} of {}", i + 1, pictures.len()),
                            "(min-width: 50rem) 60vw, 100vw", i == 0))
                    }
                    @if pictures.is_empty() { div.placeholder {} }
                }
                div {
                    h1 { (title) }
                    p.price { (price(product)) }
                    p { "Sold by " (text(&product["vendor"], "name")) }
                    (self::stock(product))
                    button type="button" data-add-to-cart hidden disabled[stock <= 0]
                        data-id=(product["id"]) data-title=(title)
                        data-price=(product["price"]["amount"]) data-currency=(text(&product["price"], "currency"))
                        data-stock=(stock) {
                        "Add to cart"
                    }
                    noscript { p { "Adding to the cart needs JavaScript." } }
                    p #cart-status role="status" {}
                    h2 { "About this product" }
                    p { (description) }
                }
            }
        },
    )
}

pub(crate) fn cart() -> Markup {
    layout(
        "Your cart",
        "The products in your cart.",
        None,
        html! {
            h1 { "Your cart" }
            div data-cart {
                p.notice data-cart-needs-script {
                    "Your cart is kept in this browser and needs JavaScript to show; turn it on to see what you added."
                }
                p data-cart-empty hidden { "Your cart is empty. " a href="/" { "Find something you like" } }
                table.cart hidden {
                    caption.vh { "Products in your cart" }
                    thead { tr { th scope="col" { "Product" } th scope="col" { "Quantity" } th scope="col" { "Price" } th scope="col" { span.vh { "Actions" } } } }
                    tbody {}
                }
                p { "Total: " strong data-cart-total {} }
                p data-cart-checkout hidden { a.button href="/checkout" { "Check out" } }
            }
        },
    )
}

pub(crate) fn problem_page(p: &Problem) -> Markup {
    layout(
        &p.title,
        &p.detail,
        None,
        html! {
            h1 { (p.title) }
            div.problem role="alert" { p { (p.detail) } }
            p { a href="/" { "Go to the home page" } }
        },
    )
}

fn credentials_form(
    action: &str,
    csrf: &str,
    next: &str,
    email: &str,
    error: Option<&str>,
    new_password: bool,
    shop: Option<(&str, &str)>,
) -> Markup {
    html! {
        @if let Some(e) = error {
            div.problem role="alert" { p { (e) } }
        }
        form.account method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="next" value=(next);
            p {
                label for="email" { "Email" }
                input #email type="email" name="email" autocomplete="email" required value=(email);
            }
            p {
                label for="password" { "Password" }
                @if new_password {
                    input #password type="password" name="password" autocomplete="new-password"
                        required minlength=(passwords_min()) aria-describedby="password-hint";
                    span #password-hint .muted { "At least " (passwords_min()) " characters." }
                } @else {
                    input #password type="password" name="password" autocomplete="current-password" required;
                }
            }
            @if let Some((name, country)) = shop {
                p {
                    label for="shop_name" { "Shop name" }
                    input #shop_name name="shop_name" autocomplete="organization" required maxlength="100" value=(name);
                }
                p {
                    label for="shop_country" { "Country code" }
                    input #shop_country name="shop_country" autocomplete="country" required
                        minlength="2" maxlength="2" pattern="[A-Za-z]{2}" aria-describedby="shop-country-hint" value=(country);
                    span #shop-country-hint .muted { "Where the shop is based: two letters, for example DE." }
                }
            }
            button type="submit" {
                @if shop.is_some() { "Open my shop" } @else if new_password { "Create account" } @else { "Sign in" }
            }
        }
    }
}

fn passwords_min() -> usize {
    passwords::MIN_PASSWORD_CHARS
}

pub(crate) fn sign_in(csrf: &str, next: &str, email: &str, error: Option<&str>) -> Markup {
    let signup: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
    layout(
        "Sign in",
        "Sign in to your edgeshop account.",
        None,
        html! {
            h1 { "Sign in" }
            (credentials_form("/account/signin", csrf, next, email, error, false, None))
            p { "New here? " a href={ "/account/signup?next=" (signup) } { "Create an account" } }
        },
    )
}

/// The sign-up form; with `shop`, a vendor's (a shop name and country).
pub(crate) fn sign_up(
    csrf: &str,
    next: &str,
    email: &str,
    error: Option<&str>,
    shop: Option<(&str, &str)>,
) -> Markup {
    let signin: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
    let heading = if shop.is_some() {
        "Open a shop"
    } else {
        "Create an account"
    };
    layout(
        heading,
        "Create an edgeshop account.",
        None,
        html! {
            h1 { (heading) }
            (credentials_form("/account/signup", csrf, next, email, error, true, shop))
            p { "Already have one? " a href={ "/account/signin?next=" (signin) } { "Sign in" } }
            @if shop.is_none() {
                p { "Selling your own work? " a href="/account/signup?shop=1&next=%2Fsell" { "Open a shop" } }
            }
        },
    )
}

pub(crate) fn account(me: &Value, csrf: &str) -> Markup {
    layout(
        "Your account",
        "Your edgeshop account.",
        None,
        html! {
            h1 { "Your account" }
            dl.account {
                dt { "Email" } dd #account-email { (text(me, "email")) }
                dt { "Account type" } dd { (text(me, "kind")) }
            }
            @if text(me, "kind") == "vendor" {
                p { a.button href="/sell" { "Manage your shop" } }
            } @else {
                p { a href="/orders" { "Your orders" } }
            }
            form method="post" action="/account/signout" {
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" { "Sign out" }
            }
        },
    )
}

/// The checkout form. The order summary comes from the cart (kept in the
/// browser), so the script fills it in and sends the order as JSON.
pub(crate) fn checkout() -> Markup {
    let field = |id: &str, label: &str, auto: &str, required: bool| {
        html! {
            p {
                label for=(id) { (label) @if !required { " " span.muted { "(optional)" } } }
                input #(id) name=(id) autocomplete=(auto) required[required] maxlength="200";
            }
        }
    };
    layout(
        "Check out",
        "Place your order.",
        None,
        html! {
            h1 { "Check out" }
            noscript { p.notice { "Your cart is kept in this browser, so checking out needs JavaScript; turn it on to place your order." } }
            div #checkout-problem .problem role="alert" tabindex="-1" hidden {}
            form #checkout .account data-checkout hidden {
                h2 { "Your order" }
                table.cart {
                    caption.vh { "Products in this order" }
                    thead { tr { th scope="col" { "Product" } th scope="col" { "Quantity" } th scope="col" { "Price" } } }
                    tbody {}
                }
                p { "Total: " strong data-checkout-total {} }
                p { a href="/cart" { "Change the cart" } }
                fieldset {
                    legend { "Shipping address" }
                    (field("name", "Full name", "name", true))
                    (field("line1", "Address", "address-line1", true))
                    (field("line2", "Address line 2", "address-line2", false))
                    (field("city", "City", "address-level2", true))
                    (field("postal_code", "Postal code", "postal-code", true))
                    p {
                        label for="country" { "Country code" }
                        input #country name="country" autocomplete="country" required
                            minlength="2" maxlength="2" pattern="[A-Za-z]{2}" aria-describedby="country-hint";
                        span #country-hint .muted { "Two letters, for example DE or US." }
                    }
                }
                fieldset {
                    legend { "Payment" }
                    p {
                        label for="payment_method" { "Payment method" }
                        select #payment_method name="payment_method" {
                            option value="pm_card_visa" { "Test card: Visa, approved" }
                            option value="pm_card_chargeDeclined" { "Test card: declined" }
                        }
                    }
                }
                button type="submit" { "Place order" }
                p #checkout-status role="status" {}
            }
            p data-checkout-empty hidden { "Your cart is empty. " a href="/" { "Find something you like" } }
        },
    )
}

/// A person's words for an order's status.
fn order_status(order: &Value) -> &'static str {
    match text(order, "status") {
        "completed" => "Confirmed",
        "payment_failed" => "Payment declined",
        "out_of_stock" => "Out of stock",
        "cancelled" => "Cancelled",
        "compensating" => "Being cancelled",
        _ => "Processing",
    }
}

/// `2026-12-05T10:41:07Z` -> `2026-12-05 10:41 UTC`.
fn when(ms: &Value) -> String {
    let stamp = catalog_core::rfc3339(ms.as_i64().unwrap_or(0).div_euclid(1000));
    format!("{} {} UTC", &stamp[..10], &stamp[11..16])
}

fn order_total(order: &Value) -> String {
    money::format(
        order["total_minor"].as_i64().unwrap_or(0),
        text(order, "currency"),
    )
}

pub(crate) fn orders(list: &Value, next: Option<&str>) -> Markup {
    let empty = Vec::new();
    let orders = list["orders"].as_array().unwrap_or(&empty);
    layout(
        "Your orders",
        "The orders you placed.",
        None,
        html! {
            h1 { "Your orders" }
            @if orders.is_empty() {
                p { "You have not placed an order yet. " a href="/" { "Find something you like" } }
            } @else {
                table.cart {
                    caption.vh { "Your orders, newest first" }
                    thead { tr { th scope="col" { "Order" } th scope="col" { "Placed" } th scope="col" { "Status" } th scope="col" { "Total" } } }
                    tbody {
                        @for o in orders {
                            tr {
                                td { a href={ "/orders/" (text(o, "id")) } { (text(o, "id")) } }
                                td { (when(&o["created_at_ms"])) }
                                td { (order_status(o)) }
                                td { (order_total(o)) }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = next {
                nav.pager aria-label="More orders" { span {} a rel="next" href=(next) { "Older orders" } }
            }
        },
    )
}

pub(crate) fn order(order: &Value) -> Markup {
    let id = text(order, "id");
    let empty = Vec::new();
    let lines = order["lines"].as_array().unwrap_or(&empty);
    let currency = text(order, "currency");
    let address = &order["shipping_address"];
    let settled = order["final"].as_bool().unwrap_or(false);
    layout(
        &format!("Order {id}"),
        "One of your orders.",
        None,
        html! {
            nav aria-label="Breadcrumb" {
                ol.crumbs { li { a href="/orders" { "Your orders" } } li aria-current="page" { (id) } }
            }
            h1 { "Order " (id) }
            dl.account {
                dt { "Status" } dd #order-status { (order_status(order)) }
                dt { "Placed" } dd { (when(&order["created_at_ms"])) }
                dt { "Total" } dd { (order_total(order)) }
            }
            @if let Some(reason) = order["reason"].as_str() {
                div.problem { p { (reason) } }
            }
            @if !settled {
                p.notice { "We are still working on this order; reload the page in a moment to see its outcome." }
            }
            table.cart {
                caption { "Products" }
                thead { tr { th scope="col" { "Product" } th scope="col" { "Quantity" } th scope="col" { "Unit price" } } }
                tbody {
                    @for l in lines {
                        tr {
                            td { a href={ "/p/" (l["product_id"]) } { (text(l, "title")) } }
                            td { (l["quantity"]) }
                            td { (money::format(l["unit_price_minor"].as_i64().unwrap_or(0), currency)) }
                        }
                    }
                }
            }
            h2 { "Shipping to" }
            address {
                (text(address, "name")) br;
                (text(address, "line1")) br;
                @if !text(address, "line2").is_empty() { (text(address, "line2")) br; }
                (text(address, "postal_code")) " " (text(address, "city")) br;
                (text(address, "country"))
            }
        },
    )
}

/// The vendor's products, drafts included.
pub(crate) fn sell_products(list: &Value, status: Option<&str>, next: Option<&str>) -> Markup {
    let empty = Vec::new();
    let products = list["products"].as_array().unwrap_or(&empty);
    let filter = |label: &str, value: Option<&str>| {
        let href = match value {
            Some(v) => format!("/sell?status={v}"),
            None => "/sell".to_string(),
        };
        html! { a href=(href) aria-current=[(value == status).then_some("page")] { (label) } }
    };
    layout_with(
        "Your shop",
        "Manage your products.",
        None,
        html! {
            h1 { "Your shop" }
            p { a.button href="/sell/products/new" { "Add a product" } }
            nav.categories aria-label="Show" {
                ul { li { (filter("All", None)) } li { (filter("Drafts", Some("draft"))) } li { (filter("Published", Some("published"))) } }
            }
            @if products.is_empty() {
                p { "No products here yet." }
            } @else {
                table.cart {
                    caption.vh { "Your products, newest first" }
                    thead { tr { th scope="col" { "Product" } th scope="col" { "Status" } th scope="col" { "Price" } th scope="col" { "Stock" } } }
                    tbody {
                        @for p in products {
                            tr {
                                td { a href={ "/sell/products/" (p["id"]) } { (text(p, "title")) } }
                                td { @if text(p, "status") == "published" { "Published" } @else { "Draft" } }
                                td { (money::format(p["price_minor"].as_i64().unwrap_or(0), text(p, "currency"))) }
                                td { (p["stock"]) }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = next {
                nav.pager aria-label="More products" { span {} a rel="next" href=(next) { "Older products" } }
            }
        },
        Some(assets::SELL_JS),
    )
}

/// The product form: a new product (`product` is `None`) or an edit of
/// one, with its photos and the upload. The script sends it as JSON.
pub(crate) fn sell_product(product: Option<&Value>, etag: Option<&str>) -> Markup {
    let empty = Value::Null;
    let p = product.unwrap_or(&empty);
    let title = if product.is_some() {
        text(p, "title")
    } else {
        "Add a product"
    };
    let price = p["price_minor"]
        .as_i64()
        .map(|m| format!("{}.{:02}", m / 100, m % 100))
        .unwrap_or_default();
    let currency = p["currency"].as_str().unwrap_or("USD");
    let selected = p["categories"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|id| id.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let published = text(p, "status") == "published";
    let pictures: Vec<Picture> = p["media"]
        .as_array()
        .map(|m| m.iter().filter_map(picture).collect())
        .unwrap_or_default();
    let field = |id: &str, label: &str, control: Markup| {
        html! { p { label for=(id) { (label) } (control) } }
    };
    layout_with(
        title,
        "Add or change a product.",
        None,
        html! {
            nav aria-label="Breadcrumb" {
                ol.crumbs { li { a href="/sell" { "Your shop" } } li aria-current="page" { (title) } }
            }
            h1 { (title) }
            noscript { p.notice { "Saving products and uploading photos need JavaScript; turn it on to make changes." } }
            div #product-problem .problem role="alert" tabindex="-1" hidden {}
            form #product .account data-product-form data-id=[p["id"].as_i64()] data-etag=[etag]
                data-initial=(p.to_string()) {
                (field("title", "Title", html! { input #title name="title" required maxlength="200" value=(text(p, "title")); }))
                (field("description", "Description", html! { textarea #description name="description" rows="6" maxlength="20000" { (text(p, "description")) } }))
                (field("price", "Price", html! {
                    input #price name="price" required inputmode="decimal" pattern="[0-9]{1,9}([.][0-9]{1,2})?"
                        aria-describedby="price-hint" value=(price);
                    span #price-hint .muted { "For example 12.50." }
                }))
                (field("currency", "Currency", html! { input #currency name="currency" required minlength="3" maxlength="3" pattern="[A-Za-z]{3}" value=(currency); }))
                (field("stock", "In stock", html! { input #stock name="stock" type="number" required min="0" max="1000000000" value=(p["stock"].as_i64().unwrap_or(0)); }))
                (field("categories", "Categories", html! {
                    select #categories name="categories" multiple required data-selected=(selected) aria-describedby="categories-hint" {}
                    span #categories-hint .muted { "One to ten; hold Ctrl or Cmd to pick more than one." }
                }))
                (field("status", "Visibility", html! {
                    select #status name="status" {
                        option value="draft" selected[!published] { "Draft: only you see it" }
                        option value="published" selected[published] { "Published: in the shop" }
                    }
                }))
                button type="submit" { @if product.is_some() { "Save changes" } @else { "Create product" } }
                p #product-status role="status" {}
            }
            div #conflict .problem hidden {
                p #conflict-text {}
                p {
                    button type="button" data-conflict-keep { "Save mine over them" } " "
                    a href="" data-conflict-discard { "Show the current version" }
                }
            }
            @if product.is_some() {
                section aria-labelledby="photos-heading" {
                    h2 #photos-heading { "Photos" }
                    ul.grid #photos {
                        @for (i, pic) in pictures.iter().enumerate() {
                            li { (image(pic, &format!("{title}, photo {}", i + 1), "13rem", false)) }
                        }
                    }
                    form #upload data-upload-form {
                        p {
                            label for="photo" { "Add a photo" }
                            input #photo type="file" name="photo" accept="image/jpeg,image/png,image/webp,image/avif"
                                aria-describedby="photo-hint";
                            span #photo-hint .muted { "JPEG, PNG, WebP or AVIF, up to 20 MB. It goes straight to storage; shoppers see it once it is processed." }
                        }
                        button type="submit" { "Upload" }
                        p { label for="upload-progress" { "Upload progress" } " " progress #upload-progress max="100" value="0" {} }
                        p #upload-status role="status" {}
                    }
                }
            }
        },
        Some(assets::SELL_JS),
    )
}
