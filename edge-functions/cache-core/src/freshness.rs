//! How old a stored response is, how long it stays fresh, and what a
//! shared cache may do with it now (RFC 9111 §4.2, RFC 5861).

use crate::directives::CacheControl;

const SEC: u64 = 1000;

/// When a response was asked for and received, and what it said about
/// its own age. Times in ms since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub request_time: u64,
    pub response_time: u64,
    /// The `Date` field, if it had one.
    pub date: Option<u64>,
    /// The `Age` field in seconds, if it had one.
    pub age_secs: Option<u64>,
}

impl Received {
    /// Its age on arrival (§4.2.3): the larger of what the clocks say and
    /// what `Age` says plus the time the request took.
    pub fn initial_age(&self) -> u64 {
        let apparent = self
            .date
            .map_or(0, |date| self.response_time.saturating_sub(date));
        let delay = self.response_time.saturating_sub(self.request_time);
        let corrected = self.age_secs.unwrap_or(0).saturating_mul(SEC) + delay;
        apparent.max(corrected)
    }
}

/// How long a response stays fresh (§4.2.1), for a shared cache:
/// `s-maxage`, else `max-age`, else `Expires` − `Date`. `None` when it
/// says nothing (this cache uses no heuristic freshness).
pub fn lifetime(cc: &CacheControl, expires: Option<u64>, date: Option<u64>) -> Option<u64> {
    if let Some(s) = cc.s_maxage.or(cc.max_age) {
        return Some(s * SEC);
    }
    // An `Expires` without a `Date` is measured from when it arrived; the
    // caller passes that as `date`.
    Some(expires?.saturating_sub(date?))
}

/// What is known about a stored response to judge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub cc: CacheControl,
    /// Freshness lifetime, ms.
    pub lifetime: u64,
    /// Age when it was stored, ms.
    pub initial_age: u64,
    /// When it was received, ms since the epoch.
    pub response_time: u64,
}

/// What a shared cache may do with a stored response at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usable {
    /// Serve it; fresh for `ttl` more ms.
    Fresh { ttl: u64 },
    /// Serve it and refresh it once in the background; `stale` ms past
    /// its lifetime (`stale-while-revalidate`).
    StaleWhileRevalidate { stale: u64 },
    /// Fetch a new one; if that fails, this may be served instead
    /// (`stale-if-error`), when `if_error` says so.
    Stale { stale: u64, if_error: bool },
    /// Fetch a new one first (`no-cache`); never served unvalidated.
    MustValidate,
}

impl Stored {
    /// Its current age at `now` (§4.2.3).
    pub fn age(&self, now: u64) -> u64 {
        self.initial_age + now.saturating_sub(self.response_time)
    }

    /// What may be done with it at `now`. Requests' own `no-cache` or
    /// `max-age=0` are not consulted: in a cache shared by everyone they
    /// would let any client force every request through to the app, and
    /// tag invalidation keeps entries current instead.
    pub fn usable(&self, now: u64) -> Usable {
        if self.cc.no_cache {
            return Usable::MustValidate;
        }
        let age = self.age(now);
        if age < self.lifetime {
            return Usable::Fresh {
                ttl: self.lifetime - age,
            };
        }
        let stale = age - self.lifetime;
        let within = |allowance: Option<u64>| {
            !self.cc.forbids_stale() && allowance.is_some_and(|a| stale <= a * SEC)
        };
        if within(self.cc.stale_while_revalidate) {
            return Usable::StaleWhileRevalidate { stale };
        }
        Usable::Stale {
            stale,
            if_error: within(self.cc.stale_if_error),
        }
    }

    /// When it is of no more use to anyone: past its lifetime and every
    /// stale allowance. What a store's expiry should be set to.
    pub fn useless_after(&self) -> u64 {
        let allowance = if self.cc.forbids_stale() {
            0
        } else {
            self.cc
                .stale_while_revalidate
                .unwrap_or(0)
                .max(self.cc.stale_if_error.unwrap_or(0))
        };
        (self.response_time + self.lifetime + allowance * SEC).saturating_sub(self.initial_age)
    }
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7) as
/// ms since the epoch. The obsolete formats are not read: a cache treats
/// a date it cannot read as absent (`Date`) or in the past (`Expires`).
pub fn parse_http_date(s: &str) -> Option<u64> {
    let s = s.trim();
    let (_weekday, rest) = s.split_once(", ")?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? as u64 + 1;
    let year: u64 = year.parse().ok().filter(|y| (1970..=9999).contains(y))?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    if *h > 23 || *m > 59 || *sec > 60 {
        return None;
    }
    // Days from the civil date (H. Hinnant's algorithm, proleptic Gregorian).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400) + h * 3600 + m * 60 + sec) * SEC)
}

/// The `Age` field for a response served at `now`: whole seconds.
pub fn age_field(age_ms: u64) -> String {
    (age_ms / SEC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(cc: &str, lifetime_s: u64) -> Stored {
        Stored {
            cc: CacheControl::parse([cc]),
            lifetime: lifetime_s * SEC,
            initial_age: 0,
            response_time: 1_000_000,
        }
    }

    #[test]
    fn initial_age_takes_the_larger_estimate() {
        let r = Received {
            request_time: 10_000,
            response_time: 10_500,
            date: Some(8_000),
            age_secs: Some(1),
        };
        // Clocks say 2.5 s; Age says 1 s + 0.5 s in flight.
        assert_eq!(r.initial_age(), 2_500);
        let r = Received {
            date: Some(20_000), // a date from the future: not negative
            ..r
        };
        assert_eq!(r.initial_age(), 1_500);
        let r = Received {
            date: None,
            age_secs: None,
            ..r
        };
        assert_eq!(r.initial_age(), 500);
    }

    #[test]
    fn lifetime_prefers_s_maxage_then_max_age_then_expires() {
        let cc = |s| CacheControl::parse([s]);
        assert_eq!(
            lifetime(&cc("max-age=10, s-maxage=20"), None, None),
            Some(20_000)
        );
        assert_eq!(
            lifetime(&cc("max-age=10"), Some(99_000), Some(0)),
            Some(10_000)
        );
        assert_eq!(lifetime(&cc(""), Some(30_000), Some(10_000)), Some(20_000));
        assert_eq!(lifetime(&cc(""), Some(5_000), Some(10_000)), Some(0));
        assert_eq!(lifetime(&cc("public"), None, Some(10_000)), None);
    }

    #[test]
    fn fresh_then_stale_while_revalidate_then_stale_if_error_then_stale() {
        let s = stored(
            "max-age=10, stale-while-revalidate=5, stale-if-error=60",
            10,
        );
        let t = s.response_time;
        assert_eq!(s.usable(t), Usable::Fresh { ttl: 10_000 });
        assert_eq!(s.usable(t + 9_999), Usable::Fresh { ttl: 1 });
        assert_eq!(
            s.usable(t + 10_000),
            Usable::StaleWhileRevalidate { stale: 0 }
        );
        assert_eq!(
            s.usable(t + 15_000),
            Usable::StaleWhileRevalidate { stale: 5_000 }
        );
        assert_eq!(
            s.usable(t + 15_001),
            Usable::Stale {
                stale: 5_001,
                if_error: true
            }
        );
        assert_eq!(
            s.usable(t + 70_001),
            Usable::Stale {
                stale: 60_001,
                if_error: false
            }
        );
        assert_eq!(s.useless_after(), t + 70_000);
    }

    #[test]
    fn revalidation_directives_forbid_serving_stale() {
        for cc in [
            "max-age=10, must-revalidate, stale-while-revalidate=5, stale-if-error=60",
            "max-age=10, proxy-revalidate, stale-if-error=60",
            "s-maxage=10, stale-while-revalidate=5",
        ] {
            let s = stored(cc, 10);
            assert_eq!(
                s.usable(s.response_time + 10_001),
                Usable::Stale {
                    stale: 1,
                    if_error: false
                },
                "{cc}"
            );
            assert_eq!(s.useless_after(), s.response_time + 10_000, "{cc}");
        }
        let s = stored("max-age=10, no-cache", 10);
        assert_eq!(s.usable(s.response_time), Usable::MustValidate);
    }

    #[test]
    fn age_counts_from_the_initial_age() {
        let s = Stored {
            initial_age: 3_000,
            ..stored("max-age=10", 10)
        };
        assert_eq!(s.age(s.response_time + 2_000), 5_000);
        assert_eq!(
            s.usable(s.response_time + 2_000),
            Usable::Fresh { ttl: 5_000 }
        );
        assert_eq!(age_field(5_999), "5");
        assert_eq!(s.useless_after(), s.response_time + 7_000);
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777_000)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Sat, 29 Feb 2020 23:59:59 GMT"),
            Some(1_583_020_799_000)
        );
        for bad in [
            "0",
            "",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }
}
