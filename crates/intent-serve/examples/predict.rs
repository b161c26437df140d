//! Inference only: load a model folder (or `models/NAME@ALIAS`) and predict, with nothing but
//! the inference library compiled in (no HTTP server, database or trainer).
//!
//! ```text
//! cargo run -p intent-serve --example predict -- MODEL_DIR "where is my card" "hello"
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use intent_serve::Classifier;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: predict MODEL_DIR TEXT...");
        return ExitCode::from(2);
    };
    let model = match Classifier::load(&dir) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let texts: Vec<String> = args.collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    match model.predict_batch(&refs, 3) {
        Ok(predictions) => {
            for (text, p) in texts.iter().zip(predictions) {
                let alternatives: Vec<String> =
                    p.top_k.iter().map(|s| format!("{} {:.3}", s.label, s.score)).collect();
                println!("{text:<40} → {} ({:.3}); top: {}", p.label, p.confidence, alternatives.join(", "));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
