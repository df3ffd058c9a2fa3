//! Hearing the far side leave by RTCP BYE (RFC 3550 6.6). Browsers and other stacks send
//! one for each stream as they close their connection; when every stream the far side
//! sent has said goodbye, it hung up, whether or not a data channel or DTLS close_notify
//! says so too (those can be lost, or never sent). A BYE for some streams only (a track
//! stopped) is not a hang-up.

use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::goodbye::Goodbye;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;
use std::collections::{HashSet, VecDeque};
use std::time::Instant;

/// Passes everything through; calls `on_hang_up` once, when the last of the far side's
/// streams has said goodbye.
pub struct GoodbyeWatcher {
    /// The far side's media streams still live, by SSRC.
    live: HashSet<u32>,
    /// Its repair streams (RTX, FEC): they come and go with their media stream.
    repair: HashSet<u32>,
    said: bool,
    on_hang_up: Box<dyn Fn() + Send + Sync>,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl GoodbyeWatcher {
    pub fn new(on_hang_up: impl Fn() + Send + Sync + 'static) -> Self {
        Self {
            live: HashSet::new(),
            repair: HashSet::new(),
            said: false,
            on_hang_up: Box::new(on_hang_up),
            read_queue: VecDeque::new(),
            write_queue: VecDeque::new(),
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for GoodbyeWatcher {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for bye in packets
                .iter()
                .filter_map(|p| p.as_any().downcast_ref::<Goodbye>())
            {
                let before = self.live.len();
                for source in &bye.sources {
                    self.live.remove(source);
                }
                if before > 0 && self.live.is_empty() && !self.said {
                    self.said = true;
                    (self.on_hang_up)();
                }
            }
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for GoodbyeWatcher {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        for repair in info.ssrc_rtx.iter().chain(&info.ssrc_fec) {
            self.repair.insert(*repair);
            self.live.remove(repair);
        }
        if !self.repair.contains(&info.ssrc) {
            self.live.insert(info.ssrc);
        }
    }
    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.live.remove(&info.ssrc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::AttributedPacket;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn stream(ssrc: u32) -> StreamInfo {
        StreamInfo {
            ssrc,
            ..Default::default()
        }
    }

    fn bye(sources: &[u32]) -> TaggedPacket {
        TaggedPacket {
            now: Instant::now(),
            transport: Default::default(),
            message: AttributedPacket::new(Packet::Rtcp(vec![Box::new(Goodbye {
                sources: sources.to_vec(),
                reason: Default::default(),
            })])),
        }
    }

    #[test]
    fn a_goodbye_from_every_stream_is_a_hang_up_and_from_some_is_not() {
        let heard = Arc::new(AtomicU32::new(0));
        let counter = heard.clone();
        let mut watcher = GoodbyeWatcher::new(move || {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        watcher.bind_remote_stream(&StreamInfo {
            ssrc: 1,
            ssrc_rtx: Some(3),
            ..Default::default()
        });
        watcher.bind_remote_stream(&stream(3));
        watcher.bind_remote_stream(&stream(2));
        watcher.handle_read(bye(&[1])).expect("read"); // test: a panic is the failure
        assert_eq!(
            heard.load(Ordering::Relaxed),
            0,
            "one stream stopped, its RTX aside"
        );
        assert!(watcher.poll_read().is_some(), "the packet goes on");
        watcher.handle_read(bye(&[2, 99])).expect("read"); // test: a panic is the failure
        assert_eq!(heard.load(Ordering::Relaxed), 1, "the last stream left");
        watcher.handle_read(bye(&[2])).expect("read"); // test: a panic is the failure
        assert_eq!(heard.load(Ordering::Relaxed), 1, "told once");
    }

    #[test]
    fn a_goodbye_before_any_stream_is_not_a_hang_up() {
        let heard = Arc::new(AtomicU32::new(0));
        let counter = heard.clone();
        let mut watcher = GoodbyeWatcher::new(move || {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        watcher.handle_read(bye(&[7])).expect("read"); // test: a panic is the failure
        assert_eq!(heard.load(Ordering::Relaxed), 0);
    }
}
