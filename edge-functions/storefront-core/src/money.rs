//! Prices: minor units (cents) in the catalog, decimal text on the page.

/// `1299, "USD"` -> `$12.99`; currencies without a symbol here keep their
/// code (`12.99 SEK`).
pub(crate) fn format(amount: i64, currency: &str) -> String {
    let sign = if amount < 0 { "-" } else { "" };
    let a = amount.unsigned_abs();
    let number = format!("{}.{:02}", group(a / 100), a % 100);
    match currency {
        "USD" => format!("{sign}${number}"),
        "EUR" => format!("{sign}€{number}"),
        "GBP" => format!("{sign}£{number}"),
        other => format!("{sign}{number} {other}"),
    }
}

fn group(mut n: u64) -> String {
    let mut parts = Vec::new();
    loop {
        if n < 1000 {
            parts.push(n.to_string());
            break;
        }
        parts.push(format!("{:03}", n % 1000));
        n /= 1000;
    }
    parts.reverse();
    parts.join(",")
}

/// Parses a price a person typed (`12`, `12.5`, `12.50`) into minor units.
pub(crate) fn parse(text: &str) -> Option<i64> {
    let text = text.trim().trim_start_matches(['$', '€', '£']);
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || whole.len() > 9 || frac.len() > 2 {
        return None;
    }
    if !whole
        .bytes()
        .chain(frac.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let cents = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().ok()? * 10,
        _ => frac.parse::<i64>().ok()?,
    };
    Some(whole.parse::<i64>().ok()? * 100 + cents)
}

/// Minor units back to what the filter field shows (`1250` -> `12.50`,
/// `1200` -> `12`).
pub(crate) fn field(amount: i64) -> String {
    if amount % 100 == 0 {
        (amount / 100).to_string()
    } else {
        format!("{}.{:02}", amount / 100, amount % 100)
    }
}
