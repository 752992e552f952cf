//! PKCE (RFC 7636) with the S256 method, which SMART App Launch 2 requires.

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::secret::{PkceVerifier, random_urlsafe};

/// The only challenge method this crate sends.
pub const CHALLENGE_METHOD: &str = "S256";

impl PkceVerifier {
    /// A fresh verifier: 32 bytes (256 bits) from a CSPRNG, base64url (43 characters).
    pub fn generate() -> Self {
        PkceVerifier::new(random_urlsafe(32))
    }

    /// The S256 `code_challenge` for this verifier: `BASE64URL(SHA256(verifier))`.
    pub fn challenge(&self) -> String {
        challenge_s256(self.secret())
    }
}

/// `BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))`, without padding.
pub fn challenge_s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_vector() {
        // RFC 7636 appendix B: the verifier is the base64url of these 32 octets.
        let octets: [u8; 32] = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212, 37, 77, 105,
            214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
        ];
        let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(octets);
        assert_eq!(verifier, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            PkceVerifier::new(verifier).challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn generated_verifiers_meet_the_rfc_length_and_alphabet() {
        let v = PkceVerifier::generate();
        assert!((43..=128).contains(&v.secret().len()));
        assert!(
            v.secret()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(v, PkceVerifier::generate());
    }
}
