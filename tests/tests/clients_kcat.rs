//! kcat (librdkafka's command-line client, from Debian) against brook: `-L`
//! metadata, `-P` with keys, and a `-C -e -o beginning` round trip.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{bail, ensure, Context, Result};
use brook_tests::{kcat_path, require_clients, Broker};

fn kcat() -> Result<Option<PathBuf>> {
    match kcat_path() {
        Some(p) => Ok(Some(p)),
        None if require_clients() => {
            bail!(
                "kcat is not installed (BROOK_REQUIRE_CLIENTS=1); run scripts/install-test-deps.sh"
            )
        }
        None => {
            eprintln!("SKIPPED: kcat is not installed; scripts/install-test-deps.sh installs it");
            Ok(None)
        }
    }
}

fn run(kcat: &Path, args: &[&str], stdin: Option<&[u8]>) -> Result<Output> {
    // coreutils `timeout` bounds every invocation: a broker that never reports the
    // end of a partition must fail the test, not hang it (exit status 124).
    let mut child = Command::new("timeout")
        .arg("60")
        .arg(kcat)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning kcat {args:?}"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input)?;
        // Dropping the pipe closes kcat's stdin so -P finishes.
    }
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "kcat {args:?} exited with {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out)
}

#[test]
fn kcat_metadata_produce_consume() -> Result<()> {
    let Some(kcat) = kcat()? else {
        return Ok(());
    };
    let broker = Broker::start_default()?;
    let b = broker.bootstrap();
    // -m bounds metadata/consume waits so a misbehaving broker fails instead of hanging.
    let common = ["-b", b.as_str(), "-m", "30"];

    let lines: Vec<String> = (0..500).map(|i| format!("key-{i}:value {i} ✓")).collect();
    let input = lines.join("\n") + "\n";
    let mut args = common.to_vec();
    args.extend(["-P", "-t", "kcat-topic", "-K:", "-X", "acks=all"]);
    run(&kcat, &args, Some(input.as_bytes()))?;

    let mut args = common.to_vec();
    args.extend(["-L"]);
    let out = run(&kcat, &args, None)?;
    let listing = String::from_utf8_lossy(&out.stdout);
    ensure!(
        listing.contains("topic \"kcat-topic\" with 1 partitions"),
        "kcat -L does not list kcat-topic with 1 partition:\n{listing}"
    );
    ensure!(
        listing.contains(&format!("broker 1 at {b}")),
        "kcat -L does not list broker 1 at {b}:\n{listing}"
    );

    let mut args = common.to_vec();
    args.extend([
        "-C",
        "-t",
        "kcat-topic",
        "-e",
        "-o",
        "beginning",
        "-f",
        "%k:%s\\n",
    ]);
    let out = run(&kcat, &args, None)?;
    let consumed = String::from_utf8(out.stdout)?;
    let got: Vec<&str> = consumed.lines().collect();
    ensure!(
        got.len() == lines.len(),
        "consumed {} lines, produced {}",
        got.len(),
        lines.len()
    );
    for (i, (want, have)) in lines.iter().zip(&got).enumerate() {
        ensure!(
            want == have,
            "record {i}: produced {want:?}, consumed {have:?}"
        );
    }

    // Offsets: -o with an absolute offset starts mid-partition.
    let mut args = common.to_vec();
    args.extend([
        "-C",
        "-t",
        "kcat-topic",
        "-e",
        "-o",
        "490",
        "-f",
        "%o %k\\n",
    ]);
    let out = run(&kcat, &args, None)?;
    let tail = String::from_utf8(out.stdout)?;
    let want: Vec<String> = (490..500).map(|i| format!("{i} key-{i}")).collect();
    ensure!(
        tail.lines().collect::<Vec<_>>() == want,
        "kcat -o 490 read:\n{tail}"
    );
    Ok(())
}
