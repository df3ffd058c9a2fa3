//! Where the peer connection's own types meet the signaling's: a description becomes a paste
//! token or a room message and back, a candidate a room message and back. Neither `peer`
//! nor `signaling` knows the other; the call converts between them here.

use crate::peer::{Candidate, Description, DescriptionKind};
use crate::signaling::protocol::CandidateInit;
use crate::signaling::token::{PasteToken, SdpKind};

impl From<Description> for PasteToken {
    fn from(description: Description) -> Self {
        let kind = match description.kind {
            DescriptionKind::Offer => SdpKind::Offer,
            DescriptionKind::Answer => SdpKind::Answer,
        };
        PasteToken::new(kind, description.sdp)
    }
}

impl From<&PasteToken> for Description {
    fn from(token: &PasteToken) -> Self {
        let kind = match token.kind {
            SdpKind::Offer => DescriptionKind::Offer,
            SdpKind::Answer => DescriptionKind::Answer,
        };
        Description {
            kind,
            sdp: token.sdp.clone(),
        }
    }
}

impl From<Candidate> for CandidateInit {
    fn from(c: Candidate) -> Self {
        CandidateInit {
            candidate: c.candidate,
            sdp_mid: c.sdp_mid,
            sdp_mline_index: c.sdp_mline_index,
            username_fragment: c.username_fragment,
        }
    }
}

impl From<CandidateInit> for Candidate {
    fn from(c: CandidateInit) -> Self {
        Candidate {
            candidate: c.candidate,
            sdp_mid: c.sdp_mid,
            sdp_mline_index: c.sdp_mline_index,
            username_fragment: c.username_fragment,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_and_candidates_cross_the_edge_unchanged() {
        let token = PasteToken::new(SdpKind::Answer, "v=0\r\n".into());
        assert_eq!(PasteToken::from(Description::from(&token)), token);
        let init = CandidateInit {
            candidate: "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
            username_fragment: Some("abcd".into()),
        };
        assert_eq!(CandidateInit::from(Candidate::from(init.clone())), init);
    }
}
