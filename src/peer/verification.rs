//! The short code two people read aloud to check that nobody sits between them: made from
//! both ends' DTLS certificate fingerprints (the `a=fingerprint` lines of the two session
//! descriptions), in an order that does not depend on who offered, so both sides show the
//! same code. A party in the middle would have to present its own certificates, which
//! changes the fingerprints and so the code.

use sha1::{Digest, Sha1};

/// The `a=fingerprint:` value of a session description (session or first media level),
/// lower-cased so two spellings of one fingerprint agree.
pub fn dtls_fingerprint(sdp: &str) -> Option<String> {
    sdp.lines()
        .filter_map(|line| line.trim().strip_prefix("a=fingerprint:"))
        .map(|value| value.trim().to_ascii_lowercase())
        .find(|value| !value.is_empty())
}

/// Six digits, shown as `123 456`, from the fingerprints of both descriptions; `None` when
/// either has none (the call would not be encrypted, and there is nothing to compare).
pub fn verification_code(local_sdp: &str, remote_sdp: &str) -> Option<String> {
    let mut both = [dtls_fingerprint(local_sdp)?, dtls_fingerprint(remote_sdp)?];
    both.sort();
    let digest = Sha1::new()
        .chain_update(both[0].as_bytes())
        .chain_update(b"\n")
        .chain_update(both[1].as_bytes())
        .finalize();
    let number = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 1_000_000;
    Some(format!("{:03} {:03}", number / 1000, number % 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdp(fingerprint: &str) -> String {
        format!(
            "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 {fingerprint}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
        )
    }

    #[test]
    fn both_sides_compute_the_same_code() {
        let (a, b) = (sdp("AA:BB:CC"), sdp("11:22:33"));
        let ours = verification_code(&a, &b).expect("code"); // test: a panic is the failure
        assert_eq!(verification_code(&b, &a), Some(ours.clone()));
        assert_eq!(ours.len(), 7);
        assert!(ours.chars().enumerate().all(|(i, c)| if i == 3 {
            c == ' '
        } else {
            c.is_ascii_digit()
        }));
    }

    #[test]
    fn a_different_certificate_changes_the_code() {
        let honest = verification_code(&sdp("AA:BB:CC"), &sdp("11:22:33"));
        let middle = verification_code(&sdp("AA:BB:CC"), &sdp("11:22:34"));
        assert_ne!(honest, middle);
    }

    #[test]
    fn no_fingerprint_no_code() {
        assert_eq!(verification_code("v=0\r\n", &sdp("11:22:33")), None);
        assert_eq!(
            dtls_fingerprint(&sdp("AB:cd")).as_deref(),
            Some("sha-256 ab:cd")
        );
    }
}
