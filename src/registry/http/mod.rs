//! The distribution HTTP client: one [`HttpRegistry`] per host (its reqwest client, its
//! credentials and token cache, its request limit), and [`HttpRepository`] for one
//! repository on it.

mod answer;
mod budget;
mod client;
mod limits;
mod rate;
mod read;
mod token;
mod write;

pub use client::HttpRegistry;
pub(crate) use client::shared_http_client;
pub use read::HttpRepository;
