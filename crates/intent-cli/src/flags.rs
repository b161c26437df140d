//! Library errors name option fields in backticks (`` `batch_size` ``, the names of
//! `MlpOptions`, `retrain.toml` and the other option structs); on the command line the same
//! options are flags. [`name_flags`] rewrites an option error of a training command into flag
//! names.

use intent_models::ModelError;
use intent_train::TrainError;

/// Which command's flags: NCF's differ from the classifiers' in a few names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flags {
    /// `intent train mlp|svm|bert`, `intent pipeline`.
    Classifier,
    /// `intent train ncf`.
    Ncf,
}

/// The flag that sets option `field`.
pub fn flag_of(field: &str, flags: Flags) -> String {
    let special = match (field, flags) {
        ("k", _) => Some("-k"),
        ("factors", Flags::Ncf) => Some("--embedding-dim"),
        ("layers", Flags::Ncf) => Some("--hidden-layers"),
        ("num_users", Flags::Ncf) => Some("--train"),
        ("lr", Flags::Ncf) => Some("--learning-rate"),
        ("pretrained", Flags::Ncf) => Some("--pretrain-gmf"),
        ("holdout", Flags::Ncf) => Some("--no-holdout"),
        ("kind", Flags::Ncf) => Some("--model"),
        _ => None,
    };
    special.map_or_else(|| format!("--{}", field.replace('_', "-")), str::to_string)
}

/// Whether `e` holds an option error of the libraries.
fn is_option_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<TrainError>(),
            Some(TrainError::Hyperparameter { .. } | TrainError::Model(ModelError::Hyperparameter { .. }))
        ) || matches!(c.downcast_ref::<ModelError>(), Some(ModelError::Hyperparameter { .. }))
    })
}

/// The error's text, with the backticked field names of an option error as flags; any other
/// error as it is.
pub fn name_flags(e: &anyhow::Error, flags: Flags) -> String {
    let text = error_text(e);
    if !is_option_error(e) {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = rest.find('`') {
        let after = &rest[start + 1..];
        match after.find('`') {
            Some(end)
                if !after[..end].is_empty()
                    && after[..end].bytes().all(|b| b.is_ascii_lowercase() || b == b'_') =>
            {
                out.push_str(&rest[..start]);
                out.push_str(&flag_of(&after[..end], flags));
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str(&rest[..=start]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_errors_name_flags_and_other_errors_are_untouched() {
        let e = anyhow::Error::new(TrainError::Hyperparameter {
            name: "resume",
            message: "needs `checkpoint_dir` (where the checkpoints are)".into(),
        })
        .context("training");
        assert_eq!(
            name_flags(&e, Flags::Classifier),
            "training: invalid --resume: needs --checkpoint-dir (where the checkpoints are)"
        );
        let e = anyhow::Error::new(ModelError::Hyperparameter {
            name: "factors",
            message: "must be at least 1".into(),
        });
        assert_eq!(name_flags(&e, Flags::Ncf), "invalid --embedding-dim: must be at least 1");
        assert_eq!(name_flags(&e, Flags::Classifier), "invalid --factors: must be at least 1");
        let e = anyhow::anyhow!("a `kind` in backticks, not an option error");
        assert_eq!(name_flags(&e, Flags::Ncf), "a `kind` in backticks, not an option error");
    }
}

/// `e` and its causes joined by ": " (anyhow's `{:#}`), leaving out a cause the message already
/// ends with: library errors that show their source (`path: os error`) would otherwise print it
/// twice. A cause that merely occurs somewhere in the message is kept.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if !text.is_empty() && text.ends_with(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

#[cfg(test)]
mod error_text_tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::IsADirectory, "Is a directory (os error 21)");
        let lib = intent_data::DataError::Io { path: "data/b77".into(), source: io };
        let e = anyhow::Error::new(lib).context("reading the training data");
        assert_eq!(error_text(&e), "reading the training data: data/b77: Is a directory (os error 21)");
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_text(&plain), "outer: inner");
    }
}
