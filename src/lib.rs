//! intent: one name for the toolkit's crates, used by the examples and benchmarks.
//!
//! - [`data`]: schemas, loaders, importers, augmentation, splits, text features;
//! - [`models`]: model definitions and model folders;
//! - [`eval`]: metrics, reports, quality gate;
//! - [`train`]: the training engine;
//! - [`serve`]: inference.

pub use intent_data as data;
pub use intent_eval as eval;
pub use intent_models as models;
pub use intent_serve as serve;
pub use intent_train as train;
