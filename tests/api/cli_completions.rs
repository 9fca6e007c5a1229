//! `logwell completions SHELL`: scripts that shells load and that complete
//! logwell's subcommands.

use crate::helpers::logwell;

#[tokio::test]
async fn bash_completes_subcommands_from_the_script() {
    let script = logwell().args(["completions", "bash"]).output().await.expect("run");
    assert!(script.status.success());
    let folder = tempfile::tempdir().expect("temporary folder");
    let path = folder.path().join("logwell.bash");
    std::fs::write(&path, &script.stdout).expect("write the script");
    // As bash calls a completion function when the user presses Tab after
    // `logwell ta`: the words so far, and (command, word, previous word).
    let completed = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(logwell ta); COMP_CWORD=1; _logwell logwell ta logwell; echo \"${{COMPREPLY[@]}}\"",
            path.display()
        ))
        .output()
        .await
        .expect("run bash");
    assert_eq!(
        String::from_utf8_lossy(&completed.stdout).trim(),
        "tail",
        "{}",
        String::from_utf8_lossy(&completed.stderr)
    );
}

#[tokio::test]
async fn every_shell_gets_a_script_naming_the_client_commands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let output = logwell().args(["completions", shell]).output().await.expect("run");
        let script = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{shell}");
        assert!(["logs", "tail", "runs"].iter().all(|command| script.contains(command)), "{shell}: {script}");
    }
    let unknown = logwell().args(["completions", "tcsh"]).output().await.expect("run");
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("possible values"));
}

#[tokio::test]
async fn every_client_command_shows_examples_in_its_help() {
    for command in ["logs", "tail", "export", "stats", "runs", "push", "run", "bench"] {
        let output = crate::helpers::logwell().args([command, "--help"]).output().await.expect("run");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{command}");
        let examples = help.split("Examples:\n").nth(1).unwrap_or_default();
        assert!(examples.contains(&format!("logwell {command} ")), "logwell {command} --help shows examples: {help}");
    }
}
