//! Versions: dotted version vectors, contexts, siblings and tombstones.
//!
//! Every key is stored as an [`Object`], a [`DvvSet`] of [`Sibling`]s. Reads
//! return the live siblings and the state's [`VersionVector`], encoded as an
//! opaque [`quorra_client::Context`] by [`context`]. Writes bring that
//! context back and [`DvvSet::update`] replaces exactly what it covers.
//! Replicas reconcile with [`DvvSet::merge`]. Dots are issued by
//! [`Actor`]s: a node id plus an epoch, so that a node that crashed, purged
//! a key or handed a hint over never reuses a dot (see [`actor`]).

pub mod actor;
pub mod context;
pub mod dvvset;
pub mod sibling;
pub mod vector;

pub use actor::{Actor, Dot};
pub use context::ContextError;
pub use dvvset::{DvvSet, InvalidVersion};
pub use sibling::{Object, Sibling};
pub use vector::VersionVector;
