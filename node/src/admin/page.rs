//! `GET /`: the live status page, one self-contained HTML file compiled
//! into the binary (no CDN, no external assets: it works offline and on a
//! machine with no route to the internet).
//!
//! The page holds no data. Every second its script fetches `/v1/status`
//! and `/v1/ring` from the node that served it (with the bearer token
//! taken from the URL's fragment, `/#token=...`, which browsers never
//! send to the server) and redraws: the ring as a circle with each node's
//! token ranges in its own colour, the partitions coloured by how many of
//! their primaries are up, and each node's state, zone, share, phi and
//! heartbeat age, with hints, anti-entropy and moves. A killed node turns
//! `down` (red) as soon as this node's failure detector judges it so.
//! Rows carry `data-node` and `data-state` attributes for tests and tools.

/// The page.
pub const PAGE: &str = include_str!("page.html");
