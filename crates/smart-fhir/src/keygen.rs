//! `smart-fhir keygen`: a signing key for SMART Backend Services (`private_key_jwt`), written with mode 0600,
//! and its public JWKS printed for registration with the EHR.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use smart_launch::{SigningAlgorithm, SigningKey};

/// Options of `smart-fhir keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The key's algorithm (the two the SMART Backend Services spec requires EHRs to support).
    #[arg(long, value_enum, default_value_t = Alg::Es384)]
    pub alg: Alg,
    /// Where to write the private key (PKCS#8 PEM, readable by you alone). An existing file is not overwritten.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// A signing algorithm of SMART Backend Services.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-384 (a 2048-bit RSA key).
    #[value(name = "RS384")]
    Rs384,
    /// ECDSA P-384 with SHA-384.
    #[value(name = "ES384")]
    Es384,
}

impl From<Alg> for SigningAlgorithm {
    fn from(alg: Alg) -> Self {
        match alg {
            Alg::Rs384 => SigningAlgorithm::RS384,
            Alg::Es384 => SigningAlgorithm::ES384,
        }
    }
}

/// Generate the key, write it, print the public JWKS.
pub fn run(args: &KeygenArgs) -> anyhow::Result<()> {
    let algorithm = SigningAlgorithm::from(args.alg);
    let draft = SigningKey::generate(algorithm, "draft").context("The key could not be generated")?;
    let kid = stable_kid(&draft)?;
    let key = draft.with_kid(kid);
    write_private(&args.out, key.private_key_pem())?;
    let jwks = serde_json::to_string_pretty(&key.jwks()).context("The JWKS could not be written")?;
    println!("{jwks}");
    eprintln!(
        "Private key written to {} (mode 0600). Register the JWKS above with the EHR as this client's keys.",
        args.out.display()
    );
    Ok(())
}

/// A `kid` derived from the key's public part, so the same file always signs with the same `kid` as the JWKS
/// printed by `keygen`.
fn stable_kid(key: &SigningKey) -> anyhow::Result<String> {
    let jwk = serde_json::to_value(key.public_jwk())?;
    let material = jwk["x"]
        .as_str()
        .or_else(|| jwk["n"].as_str())
        .unwrap_or_default();
    let kid: String = material.chars().take(16).collect();
    Ok(format!("smart-fhir-{kid}"))
}

/// Load a key written by `keygen` (RS384 or ES384, told apart by trying both), under its stable key id.
pub fn load(path: &Path) -> anyhow::Result<SigningKey> {
    let key = SigningKey::read_pem_file(path, "probe").with_context(|| {
        format!(
            "{} is not an RS384 or ES384 private key in PEM form (make one with `smart-fhir keygen`)",
            path.display()
        )
    })?;
    let kid = stable_kid(&key)?;
    Ok(key.with_kid(kid))
}

/// Create `path` with mode 0600 (on Unix) and write `text`; refuse to overwrite.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| {
        format!(
            "The key could not be written to {} (an existing file is never overwritten)",
            path.display()
        )
    })?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("The key could not be written to {}", path.display()))?;
    Ok(())
}
