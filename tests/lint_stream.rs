//! `lint` streams its inputs and lints them in parallel: the reports must stay byte for byte
//! those of the linter that read every input whole on one thread. The golden files under
//! tests/golden/lint/ were first written by that linter (commit 47b6bbb, before streaming) from
//! the same command lines, and matched byte for byte; when rules were added later they were
//! written again with `-j 1` and the diff (new findings only, same verdicts) read by a person.

mod support;

use std::path::Path;

use serde_json::Value;
use support::{corpus_files, lint};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const CORPUS: &str = "../shared/corpus/daemonsets";
const EXAMPLES: &str = "examples/manifests";
const MIXED: &str = "tests/golden/lint/mixed-stream.yaml";

fn golden(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(ROOT).join("tests/golden/lint").join(name)).unwrap()
}

/// Fails with the first differing line rather than two walls of bytes.
fn same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let (g, w) = (String::from_utf8_lossy(got), String::from_utf8_lossy(want));
    let line = g
        .lines()
        .zip(w.lines())
        .position(|(a, b)| a != b)
        .unwrap_or(g.lines().count().min(w.lines().count()));
    panic!(
        "{what}: differs at line {}:\n got: {:?}\nwant: {:?}\n({} vs {} bytes)",
        line + 1,
        g.lines().nth(line),
        w.lines().nth(line),
        got.len(),
        want.len()
    );
}

#[test]
fn reports_are_byte_identical_to_the_golden_files() {
    for (format, file) in [
        ("text", "run.txt"),
        ("json", "run.json"),
        ("sarif", "run.sarif"),
    ] {
        for jobs in ["1", "3"] {
            let o = lint(
                &["--format", format, "-j", jobs, CORPUS, EXAMPLES, MIXED],
                None,
            );
            assert_eq!(o.status.code(), Some(1), "{format}");
            same_bytes(&o.stdout, &golden(file), &format!("{format} -j {jobs}"));
        }
    }
    let stdin = std::fs::read(Path::new(ROOT).join(MIXED)).unwrap();
    let o = lint(&["--format", "json"], Some(&stdin));
    same_bytes(&o.stdout, &golden("stdin.json"), "json from stdin");
}

#[test]
fn fix_output_is_byte_identical_to_the_golden_file() {
    let o = lint(&["--fix", "--format", "json", EXAMPLES, MIXED], None);
    assert_eq!(o.status.code(), Some(1));
    same_bytes(&o.stdout, &golden("fix.yaml"), "--fix manifests");
    same_bytes(&o.stderr, &golden("fix.json"), "--fix report");
}

/// A stream of many documents: DaemonSets of the corpus between other kinds.
fn big_stream() -> String {
    let files = corpus_files();
    let mut out = String::new();
    for (i, f) in files.iter().cycle().take(60).enumerate() {
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}}}\n---\n"
        ));
        out.push_str(&std::fs::read_to_string(f).unwrap());
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i}\n  namespace: ns\n"
        ));
    }
    out
}

#[test]
fn parallel_output_equals_sequential_output() {
    let dir = tempfile::tempdir().unwrap();
    let stream = dir.path().join("stream.yaml");
    std::fs::write(&stream, big_stream()).unwrap();
    let stream = stream.to_str().unwrap();
    for format in ["text", "json", "sarif"] {
        let one = lint(&["--format", format, "-j", "1", CORPUS, stream], None);
        for jobs in ["2", "5"] {
            let many = lint(&["--format", format, "-j", jobs, CORPUS, stream], None);
            assert_eq!(one.status.code(), many.status.code());
            same_bytes(&many.stdout, &one.stdout, &format!("{format} -j {jobs}"));
        }
    }
    let one = lint(&["--fix", "-j", "1", stream], None);
    let many = lint(&["--fix", "-j", "4", stream], None);
    same_bytes(&many.stdout, &one.stdout, "--fix -j 4");
}

#[test]
fn documents_are_reported_in_stream_order() {
    let text = big_stream();
    let o = lint(&["--format", "json", "-j", "4"], Some(text.as_bytes()));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let file = &r["files"][0];
    let entries = |key: &str| -> Vec<(u64, String, String)> {
        file[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let kind = o["kind"].as_str().unwrap().to_string();
                let name = o["name"].as_str().unwrap().to_string();
                (o["document"].as_u64().unwrap(), kind, name)
            })
            .collect()
    };
    let (objects, skipped) = (entries("objects"), entries("skipped"));
    let increasing = |v: &[(u64, String, String)]| v.windows(2).all(|w| w[0].0 < w[1].0);
    assert!(increasing(&objects) && increasing(&skipped));
    // Merged by document, the report reads as the stream was written.
    let mut all = [objects, skipped].concat();
    all.sort();
    assert!(increasing(&all));
    let kinds: Vec<&str> = all.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["ConfigMap", "DaemonSet", "Service"].repeat(60));
    for (i, three) in all.chunks(3).enumerate() {
        assert_eq!(three[0].2, format!("cm-{i}"));
        assert_eq!(three[2].2, format!("svc-{i}"));
    }
}

/// An unreadable document ends its input there (YAML cannot resume after a syntax error); what
/// came before it and the next inputs are still reported.
#[test]
fn an_unreadable_document_stops_its_input_only() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_string()
    };
    let good = std::fs::read(Path::new(ROOT).join(EXAMPLES).join("good-daemonset.yaml")).unwrap();
    let mut broken = good.clone();
    broken.extend_from_slice(b"---\nkind: ConfigMap\napiVersion: v1\n---\na: [1\n---\n");
    broken.extend_from_slice(&good);
    let mut bad_utf8 = good.clone();
    bad_utf8.extend_from_slice(b"---\na: \xff\n");
    let broken = write("broken.yaml", &broken);
    let bad_utf8 = write("utf8.yaml", &bad_utf8);
    let good = write("good.yaml", &good);
    for jobs in ["1", "4"] {
        let o = lint(
            &["--format", "json", "-j", jobs, &broken, &bad_utf8, &good],
            None,
        );
        assert_eq!(o.status.code(), Some(2));
        let r: Value = serde_json::from_slice(&o.stdout).unwrap();
        let files = r["files"].as_array().unwrap();
        let sources: Vec<&str> = files
            .iter()
            .map(|f| f["source"].as_str().unwrap())
            .collect();
        assert_eq!(sources, [&broken, &bad_utf8, &good]);
        let count = |i: usize, key: &str| files[i][key].as_array().unwrap().len();
        assert_eq!((count(0, "objects"), count(0, "skipped")), (1, 1));
        assert_eq!((count(1, "objects"), count(2, "objects")), (1, 1));
        let errors = r["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 2, "{errors:?}");
        // The flow sequence opened five lines after the good file's last line is still open at the
        // end of its document, one line later.
        let good_lines =
            std::fs::read_to_string(Path::new(ROOT).join(EXAMPLES).join("good-daemonset.yaml"))
                .unwrap()
                .lines()
                .count();
        assert_eq!(
            (
                &errors[0]["kind"],
                &errors[0]["document"],
                &errors[0]["line"]
            ),
            (
                &Value::from("syntax"),
                &Value::from(2),
                &Value::from(good_lines + 6)
            )
        );
        assert_eq!(
            (
                &errors[1]["kind"],
                &errors[1]["document"],
                &errors[1]["line"]
            ),
            (
                &Value::from("encoding"),
                &Value::from(1),
                &Value::from(good_lines + 2)
            )
        );
        assert_eq!(r["summary"]["files"], 3);
        assert_eq!(r["summary"]["errors"], 2);
    }
}

#[test]
fn jobs_must_be_positive() {
    let o = lint(&["-j", "0", EXAMPLES], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--jobs"));
}
