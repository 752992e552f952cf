//! FHIR errors for the terminal: the error's sentence, then each issue of the server's OperationOutcome.

use fhir_client::FhirError;

/// A FHIR error as a message a user can read: what failed, the server's answer, and the OperationOutcome's
/// issues one per line.
pub fn explained(error: FhirError, what: &str) -> anyhow::Error {
    let issues: Vec<String> = error
        .issues()
        .iter()
        .map(|issue| format!("\n  the server says: {issue}"))
        .collect();
    anyhow::anyhow!("{what}: {error}{}", issues.concat())
}
