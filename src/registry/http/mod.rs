//! The distribution HTTP client: one [`HttpRegistry`] per host (its reqwest client, its
//! credentials and token cache, its request limit), and [`HttpRepository`] for one
//! repository on it.

mod answer;
mod budget;
mod client;
mod limits;
mod rate;
mod read;
mod referrers;
mod tls;
mod token;
mod write;

pub(crate) use client::shared_http_client;
pub use client::{HttpRegistry, USER_AGENT_PREFIX, user_agent};
pub use read::HttpRepository;
