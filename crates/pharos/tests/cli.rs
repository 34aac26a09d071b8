//! `pharos check-config` and `pharos version`, on good and bad fixtures.
//! Each `*.bad.yaml` names the text its error must contain in a first line
//! `# expect: ...`.

use std::path::Path;
use std::process::Command;

fn pharos(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pharos"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn fixtures_check_as_expected() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata");
    let mut good = 0;
    let mut bad = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let (ok, stdout, stderr) = pharos(&["check-config", path.to_str().unwrap()]);
        if name.ends_with(".good.yaml") {
            assert!(ok, "{name} should pass: {stderr}");
            assert!(stdout.ends_with(": ok\n"), "{stdout}");
            good += 1;
        } else if name.ends_with(".bad.yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let expect = text
                .lines()
                .next()
                .unwrap()
                .strip_prefix("# expect: ")
                .expect("an expect line");
            assert!(!ok, "{name} should fail");
            assert!(
                stderr.contains(&name),
                "{name}: the error must name the file: {stderr}"
            );
            assert!(
                stderr.contains(expect),
                "{name}: expected {expect:?} in: {stderr}"
            );
            bad += 1;
        }
    }
    assert!(
        good >= 3 && bad >= 6,
        "fixtures missing: {good} good, {bad} bad"
    );
}

#[test]
fn missing_file_is_an_error() {
    let (ok, _, stderr) = pharos(&["check-config", "no-such-file.yaml"]);
    assert!(!ok);
    assert!(stderr.contains("no-such-file.yaml"), "{stderr}");
}

#[test]
fn version_prints_the_crate_version() {
    let (ok, stdout, _) = pharos(&["version"]);
    assert!(ok);
    assert_eq!(stdout, format!("pharos {}\n", env!("CARGO_PKG_VERSION")));
}
