//! intent: one name for the toolkit's crates, used by the examples and benchmarks.
//!
//! - [`data`]: schemas, loaders, importers, augmentation, splits, text features, durable writes;
//! - [`models`]: model definitions and model folders;
//! - [`eval`]: metrics, reports, quality gate;
//! - [`train`]: the training engine;
//! - [`serve`]: inference (no HTTP);
//! - [`registry`]: numbered model versions and aliases;
//! - [`lifecycle`]: automated retraining and its schedule;
//! - [`server`]: the HTTP server.

pub use intent_data as data;
pub use intent_eval as eval;
pub use intent_lifecycle as lifecycle;
pub use intent_models as models;
pub use intent_registry as registry;
pub use intent_serve as serve;
pub use intent_server as server;
pub use intent_train as train;
