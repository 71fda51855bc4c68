//! Outgoing notifications of `serve`, received by a real HTTP server in the test (axum on a
//! loopback port) that checks each body's signature; and a receiver that is down: the sync
//! goes on, and `relsync_notifications_total{result="failed"}` counts what was lost.
