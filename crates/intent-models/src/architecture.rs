//! What a classifier folder holds, typed: the `kind` of its `config.json` together with the
//! `architecture` of that kind, as one enum ([`Architecture`]) that serde reads from and writes
//! to those two fields. A folder's JSON is the same as before the enum existed (`"kind": "mlp",
//! "architecture": {…}`), so folders written earlier still load; an unknown kind or an
//! architecture missing a field is an error when `config.json` is read, naming the field.
//!
//! NCF folders are recommenders with their own config ([`crate::ncf::folder::NcfConfig`], whose
//! `architecture` is an [`crate::ncf::NcfArchitecture`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::bert::sequence::HeadPooling;
use crate::folder::ModelKind;
use crate::mlp::MlpArchitecture;
use crate::svm::SvmArchitecture;
use crate::zero_shot::ZeroShotArchitecture;

/// The model kind of a classifier folder with the architecture of that kind: serialized as the
/// `kind` and `architecture` fields of `config.json` (serde's adjacent tagging).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "architecture", rename_all = "kebab-case")]
pub enum Architecture {
    /// Bag-of-words MLP.
    Mlp(MlpArchitecture),
    /// Linear SVM or kernel SVC.
    Svm(SvmArchitecture),
    /// Sentence encoder with label descriptions.
    ZeroShot(ZeroShotArchitecture),
    /// Fine-tuned BERT sequence classifier (the `intent.json` of a Hugging Face folder).
    Bert(BertArchitecture),
}

impl Architecture {
    /// The model kind this architecture belongs to.
    pub fn kind(&self) -> ModelKind {
        match self {
            Architecture::Mlp(_) => ModelKind::Mlp,
            Architecture::Svm(_) => ModelKind::Svm,
            Architecture::ZeroShot(_) => ModelKind::ZeroShot,
            Architecture::Bert(_) => ModelKind::Bert,
        }
    }
}

/// The `architecture` of a fine-tuned BERT classifier, in its `intent.json` (the encoder itself
/// is described by the Hugging Face `config.json` beside it).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BertArchitecture {
    /// The folder of the encoder it was fine-tuned from (a record; not read back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<PathBuf>,
    /// Token limit it was fine-tuned with; inference cuts texts there unless told otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<usize>,
    /// Which sentence vector the head reads (`pooler` when absent, as in older folders).
    #[serde(default)]
    pub head_pooling: HeadPooling,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_and_architecture_are_two_fields_of_the_same_json() {
        let a = Architecture::Bert(BertArchitecture { max_len: Some(64), ..Default::default() });
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"kind": "bert", "architecture": {"max_len": 64, "head_pooling": "pooler"}})
        );
        let back: Architecture = serde_json::from_value(v).unwrap();
        assert_eq!((back.kind(), back), (ModelKind::Bert, a));
    }

    #[test]
    fn an_unknown_kind_lists_the_known_ones() {
        let e = serde_json::from_str::<Architecture>(r#"{"kind": "tree", "architecture": {}}"#).unwrap_err();
        assert!(e.to_string().contains("unknown variant `tree`, expected one of `mlp`, `svm`"), "{e}");
    }
}
