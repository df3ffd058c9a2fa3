//! Rebuilds H.264 access units from RTP (RFC 6184: single NAL, STAP-A, FU-A) and hands each
//! one on as soon as its last packet (the marker bit) arrives — never waiting for the next
//! frame's first packet, which would add a whole frame interval of latency.
//!
//! A gap in sequence numbers breaks the frame it falls in; a broken stream is dropped until
//! the next IDR, and the caller is told to ask for one (PLI). Every length in a packet is
//! checked: network input never panics.

/// Larger than any frame a 1080p encoder makes at sane bitrates; a bigger one is hostile.
const MAX_ACCESS_UNIT: usize = 4 * 1024 * 1024;
const START_CODE: [u8; 4] = [0, 0, 0, 1];
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

/// One whole picture's NAL units in Annex B form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    pub data: Vec<u8>,
    pub rtp_timestamp: u32,
    /// Carries an IDR (with its SPS/PPS, as browsers send it).
    pub keyframe: bool,
}

/// What one packet completed.
#[derive(Debug, PartialEq, Eq)]
pub enum Assembled {
    Frame(AccessUnit),
    /// A frame was lost or damaged; nothing decodable comes until an IDR: request one.
    NeedKeyframe,
}

/// Per-track reassembly state.
#[derive(Debug)]
pub struct H264Assembler {
    expected_seq: Option<u16>,
    timestamp: Option<u32>,
    data: Vec<u8>,
    /// Bytes of the FU-A NAL being rebuilt, as an index into `data`.
    fu_open: bool,
    keyframe: bool,
    broken: bool,
    /// After a loss (and at the start) only an IDR can be decoded.
    waiting_for_keyframe: bool,
}

impl Default for H264Assembler {
    fn default() -> Self {
        Self::new()
    }
}

impl H264Assembler {
    pub fn new() -> Self {
        Self {
            expected_seq: None,
            timestamp: None,
            data: Vec::new(),
            fu_open: false,
            keyframe: false,
            broken: false,
            waiting_for_keyframe: true,
        }
    }

    /// Feeds one RTP packet's fields. Returns what it completed, if anything.
    pub fn push(
        &mut self,
        sequence_number: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Option<Assembled> {
        let mut lost = false;
        if let Some(expected) = self.expected_seq {
            let ahead = sequence_number.wrapping_sub(expected);
            if ahead >= 0x8000 {
                // Older than expected: a duplicate or a retransmission that came too late.
                return None;
            }
            lost = ahead != 0;
        }
        self.expected_seq = Some(sequence_number.wrapping_add(1));

        let mut outcome = None;
        if self.timestamp.is_some_and(|t| t != timestamp) {
            // A new picture began before the last one's marker: that one is incomplete.
            self.reset();
            outcome = Some(self.lose());
        }
        if lost {
            self.broken = true;
        }
        self.timestamp = Some(timestamp);
        if !self.broken {
            self.depacketize(payload);
        }
        if !marker {
            return outcome;
        }
        let complete = !self.broken && !self.fu_open && !self.data.is_empty();
        let frame = AccessUnit {
            data: std::mem::take(&mut self.data),
            rtp_timestamp: timestamp,
            keyframe: self.keyframe,
        };
        self.reset();
        if !complete {
            return Some(self.lose());
        }
        if self.waiting_for_keyframe && !frame.keyframe {
            return Some(Assembled::NeedKeyframe);
        }
        self.waiting_for_keyframe = false;
        Some(Assembled::Frame(frame))
    }

    /// A frame this one handed on was dropped downstream: what follows cannot be decoded
    /// until the next IDR.
    pub fn require_keyframe(&mut self) {
        self.waiting_for_keyframe = true;
    }

    fn lose(&mut self) -> Assembled {
        self.waiting_for_keyframe = true;
        Assembled::NeedKeyframe
    }

    fn reset(&mut self) {
        self.timestamp = None;
        self.data.clear();
        self.fu_open = false;
        self.keyframe = false;
        self.broken = false;
    }

    fn append_nal(&mut self, nal: &[u8]) {
        if nal.is_empty() {
            return;
        }
        if self.data.len() + nal.len() + START_CODE.len() > MAX_ACCESS_UNIT {
            self.broken = true;
            return;
        }
        let nal_type = nal[0] & 0x1f;
        if nal_type == NAL_IDR || nal_type == NAL_SPS {
            self.keyframe |= nal_type == NAL_IDR;
        }
        self.data.extend_from_slice(&START_CODE);
        self.data.extend_from_slice(nal);
    }

    fn depacketize(&mut self, payload: &[u8]) {
        let Some(&header) = payload.first() else {
            return; // padding-only packets carry nothing
        };
        match header & 0x1f {
            1..=23 => {
                if self.fu_open {
                    self.broken = true;
                    return;
                }
                self.append_nal(payload);
            }
            STAP_A => {
                let mut rest = &payload[1..];
                while rest.len() >= 2 {
                    let size = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                    rest = &rest[2..];
                    if size == 0 || size > rest.len() {
                        self.broken = true;
                        return;
                    }
                    let (nal, tail) = rest.split_at(size);
                    self.append_nal(nal);
                    rest = tail;
                }
            }
            FU_A => {
                if payload.len() < 3 {
                    self.broken = true;
                    return;
                }
                let fu_header = payload[1];
                let (start, end) = (fu_header & 0x80 != 0, fu_header & 0x40 != 0);
                if start {
                    if self.fu_open {
                        self.broken = true;
                        return;
                    }
                    let nal_header = (header & 0xe0) | (fu_header & 0x1f);
                    self.append_nal(&[nal_header]);
                    self.fu_open = true;
                } else if !self.fu_open {
                    self.broken = true;
                    return;
                }
                if self.data.len() + payload.len() > MAX_ACCESS_UNIT {
                    self.broken = true;
                    return;
                }
                self.data.extend_from_slice(&payload[2..]);
                if end {
                    self.fu_open = false;
                }
            }
            // STAP-B, MTAP, FU-B are not used by WebRTC; types 0, 30, 31 are reserved.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stap_a(nals: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![0x78];
        for nal in nals {
            out.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            out.extend_from_slice(nal);
        }
        out
    }

    fn idr_packets() -> Vec<Vec<u8>> {
        vec![
            stap_a(&[&[0x67, 1, 2], &[0x68, 3]]),
            vec![0x7c, 0x85, 10, 11],
            vec![0x7c, 0x05, 12],
            vec![0x7c, 0x45, 13],
        ]
    }

    #[test]
    fn a_frame_is_complete_on_its_marker_packet() {
        let mut assembler = H264Assembler::new();
        let packets = idr_packets();
        let last = packets.len() - 1;
        let mut out = None;
        for (i, p) in packets.iter().enumerate() {
            out = assembler.push(100 + i as u16, 9000, i == last, p);
            if i < last {
                assert_eq!(out, None);
            }
        }
        let Some(Assembled::Frame(unit)) = out else {
            panic!("no frame: {out:?}");
        };
        assert!(unit.keyframe);
        assert_eq!(
            unit.data,
            vec![
                0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 10, 11, 12, 13
            ]
        );
        // A delta frame follows, in one packet.
        let next = assembler.push(104, 12000, true, &[0x41, 7, 7]);
        assert!(matches!(
            next,
            Some(Assembled::Frame(AccessUnit {
                keyframe: false,
                ..
            }))
        ));
    }

    #[test]
    fn a_lost_packet_asks_for_a_keyframe_and_drops_until_one_comes() {
        let mut assembler = H264Assembler::new();
        for (i, p) in idr_packets().iter().enumerate() {
            assembler.push(i as u16, 0, i == 3, p);
        }
        // Packet 4 is lost; 5 ends a frame.
        assert_eq!(
            assembler.push(5, 3000, true, &[0x41, 1]),
            Some(Assembled::NeedKeyframe)
        );
        // Delta frames are useless now.
        assert_eq!(
            assembler.push(6, 6000, true, &[0x41, 1]),
            Some(Assembled::NeedKeyframe)
        );
        let packets = idr_packets();
        let mut out = None;
        for (i, p) in packets.iter().enumerate() {
            out = assembler.push(7 + i as u16, 9000, i == 3, p);
        }
        assert!(matches!(
            out,
            Some(Assembled::Frame(AccessUnit { keyframe: true, .. }))
        ));
    }

    #[test]
    fn a_missing_marker_is_noticed_when_the_next_frame_starts() {
        let mut assembler = H264Assembler::new();
        for (i, p) in idr_packets().iter().enumerate() {
            assembler.push(i as u16, 0, i == 3, p);
        }
        assert_eq!(assembler.push(4, 3000, false, &[0x41, 1]), None);
        // Sequence continues (the marker packet was the last one, not lost) but the
        // timestamp moves on.
        assert_eq!(
            assembler.push(5, 6000, false, &[0x41, 1]),
            Some(Assembled::NeedKeyframe)
        );
    }

    #[test]
    fn late_duplicates_are_ignored() {
        let mut assembler = H264Assembler::new();
        for (i, p) in idr_packets().iter().enumerate() {
            assembler.push(1000 + i as u16, 0, i == 3, p);
        }
        assert_eq!(assembler.push(1001, 0, false, &[0x7c, 0x85, 1]), None);
        assert!(matches!(
            assembler.push(1004, 3000, true, &[0x41, 1]),
            Some(Assembled::Frame(_))
        ));
    }

    #[test]
    fn hostile_payloads_never_panic() {
        let mut assembler = H264Assembler::new();
        let payloads: Vec<Vec<u8>> = vec![
            vec![],
            vec![24],
            vec![24, 0],
            vec![24, 0, 5, 1],
            vec![24, 0xff, 0xff, 1, 2],
            vec![28],
            vec![28, 0x80],
            vec![28, 0x40, 1],
            vec![29, 1, 2],
            vec![0, 1],
            vec![31; 20],
        ];
        let mut seed = 99u32;
        let mut seq = 0u16;
        for round in 0..3000 {
            let payload = if round < payloads.len() {
                payloads[round].clone()
            } else {
                (0..(round % 40))
                    .map(|_| {
                        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        (seed >> 16) as u8
                    })
                    .collect()
            };
            seq = seq.wrapping_add(1 + (round % 7 == 0) as u16);
            let _ = assembler.push(seq, (round / 3) as u32, round % 3 == 2, &payload);
        }
    }
}
