//! The Cloudflare Workers twin of a PoP: what `spin.toml` serves (the
//! public API: catalog, accounts and tokens, checkout and the vendor API;
//! and the shop's pages, static files, account, order and dashboard
//! pages), behind the same chain (rate limiter, then the token gate, then the cache on
//! catalog reads), from the same pure crates.
//!
//! Only the adapters here are Workers-specific. A Worker has no local
//! replica: data is read and written at the origin over Hrana
//! ([`hrana`]), so a cache miss costs a round trip; counters live in a
//! Durable Object per budget key ([`limits`]), exact like the PoP's
//! compare-and-swap store; responses are kept in the Workers Cache API
//! and dropped by the same `changes` table as the PoP cache ([`cache`]).
//! Variables keep the names `spin.toml` gives them; the secret ones are
//! Workers secrets.

mod cache;
mod coding;
mod forward;
mod gate;
mod hrana;
mod limits;
mod pages;
mod reply;
mod routes;
mod vars;

pub use limits::RateCounter;

use worker::{Context, Env, Request, Response, event};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    routes::serve(req, &env).await.into_worker()
}
