//! Every loader on good and bad input; errors must name file:line (or the JSON path).

use std::fs;
use std::path::PathBuf;

use intent_data::formats::intents::{dataset_to_intents, load_intents, read_intents, write_intents_dir};
use intent_data::formats::interactions::{load_interactions, write_interactions};
use intent_data::formats::jsonl::{load_jsonl, write_jsonl};
use intent_data::formats::multilabel::{load_multilabel, write_multilabel};
use intent_data::formats::outcomes::read_outcomes;
use intent_data::import::{import_clinc150, import_movielens, import_nlupp, load_labeled_csv, parse_folds};
use intent_data::{detect_format, load_dataset, Dataset, Example, Format, LoadOptions};

fn write(dir: &tempfile::TempDir, name: &str, content: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(&p, content).unwrap();
    p
}

const STRICT: LoadOptions = LoadOptions { skip_invalid: false };
const SKIP: LoadOptions = LoadOptions { skip_invalid: true };

#[test]
fn jsonl_good_round_trip_and_multi_label() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        &dir,
        "a.jsonl",
        b"{\"text\": \"hi\", \"label\": \"greet\", \"confidence\": 0.9}\n\n\
          {\"text\": \"bye\", \"label\": \"bye\", \"timestamp\": 17}\n",
    );
    let d = load_jsonl(&p, &STRICT).unwrap().data;
    assert_eq!(d.len(), 2);
    assert_eq!(d.examples[0].confidence, Some(0.9));
    assert_eq!(d.examples[1].timestamp.as_deref(), Some("17"));
    let out = dir.path().join("b.jsonl");
    write_jsonl(&out, &d).unwrap();
    assert_eq!(load_jsonl(&out, &STRICT).unwrap().data, d);

    let p = write(
        &dir,
        "m.jsonl",
        b"{\"text\": \"x\", \"labels\": [\"a\", \"b\"]}\n{\"text\": \"y\", \"labels\": []}\n",
    );
    let d = load_jsonl(&p, &STRICT).unwrap().data;
    assert!(d.multi_label);
    assert_eq!(d.examples[0].labels, vec!["a", "b"]);
}

#[test]
fn jsonl_bad_lines_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "bad.jsonl", b"{\"text\": \"ok\", \"label\": \"a\"}\n[1, 2]\n");
    let err = load_jsonl(&p, &STRICT).unwrap_err().to_string();
    assert!(
        err.contains("bad.jsonl:2") && err.contains("expected a JSON object") && err.contains("an array"),
        "{err}"
    );

    let p = write(&dir, "trunc.jsonl", b"{\"text\": \"ok\", \"label\": \"a\"}\n{\"text\": \"cut");
    let err = load_jsonl(&p, &STRICT).unwrap_err().to_string();
    assert!(err.contains("trunc.jsonl:2") && err.contains("truncated"), "{err}");

    let p = write(&dir, "nolabel.jsonl", b"{\"text\": \"ok\"}\n");
    let err = load_jsonl(&p, &STRICT).unwrap_err().to_string();
    assert!(err.contains("nolabel.jsonl:1") && err.contains("no `label`"), "{err}");

    let p = write(&dir, "empty.jsonl", b"{\"text\": \" \", \"label\": \"a\"}\n");
    assert!(load_jsonl(&p, &STRICT).unwrap_err().to_string().contains("empty.jsonl:1: empty text"));

    let p = write(
        &dir,
        "latin1.jsonl",
        b"{\"text\": \"ok\", \"label\": \"a\"}\n{\"text\": \"caf\xe9\", \"label\": \"a\"}\n",
    );
    let err = load_jsonl(&p, &STRICT).unwrap_err().to_string();
    assert!(err.contains("latin1.jsonl:2") && err.contains("UTF-8"), "{err}");
}

#[test]
fn skip_invalid_keeps_the_rest_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        &dir,
        "mix.jsonl",
        b"{\"text\": \"a\", \"label\": \"x\"}\n42\n{\"text\": \"\", \"label\": \"x\"}\n\
          {\"text\": \"b\", \"label\": \"y\"}\n",
    );
    let loaded = load_jsonl(&p, &SKIP).unwrap();
    assert_eq!(loaded.data.len(), 2);
    let lines: Vec<_> = loaded.skipped.iter().map(|s| s.location.line.unwrap()).collect();
    assert_eq!(lines, vec![2, 3]);
    assert!(loaded.skipped[1].to_string().ends_with("mix.jsonl:3: empty text"));
}

#[test]
fn csv_good_and_missing_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "t.csv", b"text,category\n\"Hi, there\",greet\nwhere is my card,card_arrival\n");
    let d = load_labeled_csv(&p, &STRICT).unwrap().data;
    assert_eq!(d.examples[0], Example::new("Hi, there", "greet"));
    let p = write(&dir, "bad.csv", b"text,category\nok,a\nmissing column here\n");
    let err = load_labeled_csv(&p, &STRICT).unwrap_err().to_string();
    assert!(err.contains("bad.csv:3") && err.contains("expected 2 columns"), "{err}");
    let p = write(&dir, "hdr.csv", b"sentence,foo\nok,a\n");
    assert!(load_labeled_csv(&p, &STRICT).unwrap_err().to_string().contains("hdr.csv:1"));
}

#[test]
fn intents_file_list_wrapped_and_folder() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir, "in/a.json", br#"{"tag": "greet", "patterns": ["hi", "hello"], "responses": ["Hi!"]}"#);
    write(&dir, "in/b.json", br#"[{"tag": "bye", "patterns": ["bye"], "responses": []}]"#);
    write(&dir, "in/c.json", br#"{"intents": [{"tag": "thanks", "patterns": ["thx"], "context_set": "x"}]}"#);
    let d = load_intents(&dir.path().join("in"), &STRICT).unwrap().data;
    assert_eq!(d.labels(), vec!["bye", "greet", "thanks"]);
    assert_eq!(d.len(), 4);
    assert_eq!(detect_format(&dir.path().join("in")).unwrap(), Format::Intents);
    let out = dir.path().join("out");
    write_intents_dir(&out, &dataset_to_intents(&d)).unwrap();
    assert_eq!(read_intents(&out).unwrap().len(), 3);

    let p = write(&dir, "trunc.json", b"{\"tag\": \"greet\",\n \"patterns\": [\"hi\",\n");
    let err = load_intents(&p, &STRICT).unwrap_err().to_string();
    assert!(err.contains("trunc.json:3") && err.contains("truncated"), "{err}");
    let p = write(&dir, "shape.json", br#"{"tag": "greet", "patterns": "hi"}"#);
    assert!(load_intents(&p, &STRICT).unwrap_err().to_string().contains("shape.json"));
    let p = write(&dir, "emptypat.json", br#"{"tag": "greet", "patterns": ["hi", ""]}"#);
    let err = load_intents(&p, &STRICT).unwrap_err().to_string();
    assert!(err.contains("emptypat.json (intent 'greet' patterns[1]): empty text"), "{err}");
}

#[test]
fn outcomes_and_template_check() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir,
        "o/cancel.json",
        br#"{"name": "cancel", "examples": ["stop it"], "synonyms": {"order": ["purchase"]},
            "templates": ["cancel my {order}"], "teach_hints": ["x"]}"#,
    );
    let defs = read_outcomes(&dir.path().join("o")).unwrap();
    assert_eq!(defs[0].synonyms["order"], vec!["purchase"]);
    assert_eq!(detect_format(&dir.path().join("o")).unwrap(), Format::Outcomes);
    let p = write(&dir, "bad.json", br#"{"name": "c", "examples": [], "templates": ["a {slot}"]}"#);
    let err = read_outcomes(&p).unwrap_err().to_string();
    assert!(err.contains("$.templates[0]") && err.contains("{slot}"), "{err}");
}

#[test]
fn multilabel_round_trip_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = Dataset {
        examples: vec![
            Example::multi("a", vec!["x".into(), "y".into()]),
            Example::multi("b", vec!["x".into()]),
        ],
        multi_label: true,
    };
    let p = dir.path().join("m.json");
    write_multilabel(&p, &d).unwrap();
    let text = fs::read_to_string(&p).unwrap();
    assert!(text.contains("\"num_classes\": 2"));
    assert_eq!(load_multilabel(&p, &STRICT).unwrap().data, d);
    assert_eq!(detect_format(&p).unwrap(), Format::MultiLabel);
    let p = write(
        &dir,
        "bad.json",
        br#"{"metadata": {"num_samples": 1, "num_classes": 1, "class_distribution": {}},
            "samples": [{"text": "", "taxonomy_codes": ["x"]}]}"#,
    );
    assert!(load_multilabel(&p, &STRICT).unwrap_err().to_string().contains("$.samples[0]"));
}

#[test]
fn interactions_round_trip_with_numeric_ids() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        &dir,
        "i.json",
        br#"{"metadata": {"num_users": 0, "num_items": 0, "num_interactions": 0, "density": 0},
            "interactions": [{"user_id": 1, "item_id": "b", "implicit_rating": 1.0},
                             {"user_id": "2", "item_id": "b", "timestamp": 5, "implicit_rating": 0.5}]}"#,
    );
    let i = load_interactions(&p).unwrap();
    assert_eq!(i.metadata.num_users, 2);
    assert!((i.metadata.density - 1.0).abs() < 1e-12);
    let out = dir.path().join("o.json");
    write_interactions(&out, &i).unwrap();
    assert_eq!(load_interactions(&out).unwrap(), i);
    let p =
        write(&dir, "bad.json", br#"{"metadata": {}, "interactions": [{"user_id": null, "item_id": 1}]}"#);
    assert!(load_interactions(&p).unwrap_err().to_string().contains("bad.json:1"));
}

#[test]
fn importers_on_small_copies() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        &dir,
        "data_full.json",
        br#"{"train": [["hi", "greet"]], "val": [], "test": [["yo", "greet"]],
            "oos_train": [["what", "oos"]], "oos_val": [], "oos_test": []}"#,
    );
    let d = import_clinc150(&p, &["train", "oos_train"]).unwrap().data;
    assert_eq!(d.labels(), vec!["greet", "oos"]);
    assert_eq!(detect_format(&p).unwrap(), Format::Clinc150);
    assert_eq!(load_dataset(&p, None, &STRICT).unwrap().data.len(), 3);
    assert!(import_clinc150(&p, &["nope"]).unwrap_err().to_string().contains("no split 'nope'"));
    let p = write(&dir, "bad_clinc.json", br#"{"train": [["hi"]]}"#);
    assert!(import_clinc150(&p, &["train"]).unwrap_err().to_string().contains("$.train[0]"));

    write(
        &dir,
        "nlupp/banking/fold0.json",
        br#"[{"text": "new card", "intents": ["card", "new"]}, {"text": "ok"}]"#,
    );
    write(&dir, "nlupp/banking/fold1.json", br#"[{"text": "pin", "intents": ["pin"], "slots": {}}]"#);
    let d = import_nlupp(&dir.path().join("nlupp"), Some(&[0])).unwrap().data;
    assert!(d.multi_label);
    assert_eq!(d.examples[1].labels.len(), 0);
    assert_eq!(import_nlupp(&dir.path().join("nlupp"), None).unwrap().data.len(), 3);
    assert!(import_nlupp(&dir.path().join("nlupp"), Some(&[7])).is_err());
    assert_eq!(parse_folds("0-2,5").unwrap(), vec![0, 1, 2, 5]);
    assert!(parse_folds("3-1").is_err());

    let p = write(&dir, "u.data", b"1\t10\t5\t100\n2\t10\t3\t200\n");
    let i = import_movielens(&p).unwrap();
    assert_eq!((i.metadata.num_users, i.metadata.num_items), (2, 1));
    let p = write(&dir, "bad.data", b"1\t10\t5\t100\n2\t10\n");
    assert!(import_movielens(&p).unwrap_err().to_string().contains("bad.data:2"));
}

#[test]
fn missing_file_and_format_flag() {
    let err =
        load_dataset(std::path::Path::new("/nonexistent/x.jsonl"), None, &STRICT).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/x.jsonl"), "{err}");
    assert!("yaml".parse::<Format>().unwrap_err().to_string().contains("unknown format 'yaml'"));
}

#[test]
fn a_utf8_byte_order_mark_is_not_part_of_the_first_record() {
    let dir = tempfile::tempdir().unwrap();
    let bom = b"\xEF\xBB\xBF";
    let jsonl =
        [&bom[..], b"{\"text\": \"hi\", \"label\": \"greet\"}\n{\"text\": \"bye\", \"label\": \"bye\"}\n"]
            .concat();
    let p = write(&dir, "bom.jsonl", &jsonl);
    for opts in [STRICT, SKIP] {
        let loaded = load_jsonl(&p, &opts).unwrap();
        assert_eq!((loaded.data.len(), loaded.skipped.len()), (2, 0));
        assert_eq!(loaded.data.examples[0].text, "hi");
    }
    // JSON and CSV files too, and the format is still detected.
    let intents =
        [&bom[..], br#"{"intents": [{"tag": "greet", "patterns": ["hi", "hello"], "responses": []}]}"#]
            .concat();
    let p = write(&dir, "bom.json", &intents);
    assert_eq!(detect_format(&p).unwrap(), Format::Intents);
    assert_eq!(load_dataset(&p, None, &STRICT).unwrap().data.len(), 2);
    let csv = [&bom[..], b"text,category\nhi,greet\nbye,bye\n"].concat();
    let p = write(&dir, "bom.csv", &csv);
    assert_eq!(load_labeled_csv(&p, &STRICT).unwrap().data.len(), 2);
}
